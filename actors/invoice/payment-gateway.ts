/**
 * The payment gateway behind an interface, and a simulated one for development and tests.
 *
 * The simulated gateway behaves like a real provider's test mode: its answer depends only on the card token,
 * and it remembers every idempotency key in its own ledger (`gateway_charge`), so a charge retried with the
 * same key returns the first answer and never charges twice. Test tokens:
 *
 * | token                     | answer                                                              |
 * | ------------------------- | ------------------------------------------------------------------- |
 * | `tok_visa`, any `tok_...` | approved                                                            |
 * | `tok_declined`            | declined: "card declined"                                           |
 * | `tok_insufficient_funds`  | declined: "insufficient funds"                                      |
 * | `tok_timeout`             | never answers in time (throws GatewayTimeoutError, retryable)       |
 * | `tok_flaky`               | times out on the first call for a key, approves the second          |
 */
import type postgres from "postgres";
import { RetryableError } from "../../runtime/index.ts";

export interface ChargeRequest {
  /** Same key, same charge: the gateway answers a retried request with its first answer. */
  idempotencyKey: string;
  /** What is paid (an invoice id), for the gateway's ledger. */
  reference: string;
  amount: number;
  currency: string;
  cardToken: string;
}

export type ChargeResult = { status: "approved"; chargeId: string } | { status: "declined"; reason: string };

export interface PaymentGateway {
  charge(request: ChargeRequest): Promise<ChargeResult>;
  /** Refunds an approved charge in full; refunding twice is a no-op. */
  refund(chargeId: string): Promise<void>;
}

/** The gateway did not answer: the charge may or may not have happened; retry with the same idempotency key. */
export class GatewayTimeoutError extends RetryableError {
  override name = "GatewayTimeoutError";
}

const DECLINES: Record<string, string> = {
  tok_declined: "card declined",
  tok_insufficient_funds: "insufficient funds",
};

export function simulatedGateway(sql: postgres.Sql): PaymentGateway {
  return {
    async charge(request) {
      if (request.cardToken === "tok_timeout") {
        throw new GatewayTimeoutError("payment gateway did not answer in time");
      }
      const reason = DECLINES[request.cardToken] ?? null;
      // The ledger row is the gateway's memory of this key: the first call writes it, retries read it.
      const [row] = await sql<{ id: string; status: string; reason: string | null; calls: number }[]>`
        insert into gateway_charge (id, idempotency_key, reference, amount, currency, card_token, status, reason)
        values (${Bun.randomUUIDv7()}, ${request.idempotencyKey}, ${request.reference}, ${request.amount},
          ${request.currency}, ${request.cardToken}, ${reason ? "declined" : "approved"}, ${reason})
        on conflict (idempotency_key) do update set calls = gateway_charge.calls + 1
        returning id, status, reason, calls`;
      if (!row) throw new GatewayTimeoutError("payment gateway answered nothing");
      if (request.cardToken === "tok_flaky" && row.calls === 1) {
        throw new GatewayTimeoutError("payment gateway did not answer in time (flaky test card)");
      }
      return row.status === "declined"
        ? { status: "declined", reason: row.reason ?? "declined" }
        : { status: "approved", chargeId: row.id };
    },
    async refund(chargeId) {
      await sql`
        update gateway_charge set status = 'refunded', refunded_at = coalesce(refunded_at, now())
        where id = ${chargeId} and status in ('approved', 'refunded')`;
    },
  };
}
