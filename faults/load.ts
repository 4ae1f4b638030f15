/**
 * The load of a fault run: customers walking whole booking chains through the HTTP API — book, the technician
 * starts, reports and completes the repair, the invoice follows, pay (approved or declined) — with unique ids,
 * Idempotency-Keys, and every unknown outcome (no answer, a 5xx, a 409 "still running") retried with the same
 * key. What was acknowledged is recorded, so the read-back can tell lost from never-promised.
 */
import { DEV_JWT_SECRET } from "../config.ts";
import { createTokens } from "../http/auth.ts";

export type Outcome = "ok" | "failed" | "unknown";

/**
 * Commands sent, by their final answer: ok (2xx, or the refusals the flow expects: 409 slot full, 402 declined),
 * failed (any other 4xx), unknown (no final answer before the run ended); `retried` counts the attempts whose
 * outcome was unknown (no answer, a 5xx, 409 still running) and were sent again with the same key.
 */
export interface RequestCounts {
  ok: number;
  failed: number;
  unknown: number;
  retried: number;
}

/** One booking chain as the clients saw it. */
export interface Chain {
  customer: string;
  bookingId?: string;
  /** The create was answered 201 (or its 202 later read CONFIRMED). */
  confirmed: boolean;
  rejected: boolean;
  repairId?: string;
  repairCompleted: boolean;
  invoiceId?: string;
  /** The payment's final answer: 200 PAID or 402 declined. */
  payment?: "PAID" | "DECLINED";
  /** Poison sent through HTTP: the answer it got. */
  poison?: { notes: string; status: number };
  /** The chain stopped before its end (the run ended, or a step's outcome stayed unknown). */
  unfinished?: string;
}

export interface LoadReport {
  requests: RequestCounts;
  /** Timestamps (ms) of requests answered ok, for throughput per window. */
  okAt: number[];
  chains: Chain[];
}

export interface LoadOptions {
  baseUrl: string;
  clients: number;
  /** Share of chains that book with text Postgres cannot store (NUL, a lone surrogate). */
  poisonRate?: number;
  /** Slots to spread bookings over (capacity 3 each): fewer slots, more 409s. */
  hours?: number;
}

const PROGRESS = [
  ["DIAGNOSING", 20],
  ["REPAIRING", 60],
  ["TESTING", 90],
] as const;
const ORDER = ["STARTED", "DIAGNOSING", "REPAIRING", "TESTING", "COMPLETED"];
const SERVICE_TYPES = ["OIL_CHANGE", "BRAKE_SERVICE", "TIRE_CHANGE", "INSPECTION", "GENERAL_REPAIR"];

class Stopped extends Error {}

export class Load {
  readonly report: LoadReport = {
    requests: { ok: 0, failed: 0, unknown: 0, retried: 0 },
    okAt: [],
    chains: [],
  };
  private running = false;
  private stopAt = Number.POSITIVE_INFINITY;
  private workers: Promise<void>[] = [];
  private readonly tokens = createTokens(process.env.JWT_SECRET ?? DEV_JWT_SECRET, 86_400);
  private readonly base = Date.now() + 2 * 86_400_000;

  constructor(private readonly options: LoadOptions) {}

  start(): void {
    this.running = true;
    this.workers = Array.from({ length: this.options.clients }, (_, i) => this.worker(i));
  }

  /** Stops starting chains; running ones may finish within `graceMs`, then they are cut short. */
  async stop(graceMs: number): Promise<void> {
    this.running = false;
    this.stopAt = Date.now() + graceMs;
    await Promise.all(this.workers);
  }

  private async worker(i: number): Promise<void> {
    const technician = await this.tokens.sign({ role: "technician", sub: `tech-${i}` });
    for (let n = 0; this.running; n++) {
      const customer = `c-${i}-${n}-${Bun.randomUUIDv7().slice(-6)}`;
      const chain: Chain = { customer, confirmed: false, rejected: false, repairCompleted: false };
      this.report.chains.push(chain);
      try {
        await this.walk(chain, await this.tokens.sign({ role: "customer", sub: customer }), technician);
      } catch (error) {
        chain.unfinished = error instanceof Stopped ? "run ended" : String((error as Error).message);
      }
    }
  }

  private async walk(chain: Chain, customer: string, technician: string): Promise<void> {
    const hours = this.options.hours ?? 400;
    const at = new Date(this.base + Math.floor(Math.random() * hours) * 3_600_000);
    at.setUTCMinutes(0, 0, 0);
    const booking = {
      vehicleId: `car-${chain.customer}`,
      serviceType: SERVICE_TYPES[Math.floor(Math.random() * SERVICE_TYPES.length)],
      bookingDate: at.toISOString(),
      notes: "fault run",
    };
    if (Math.random() < (this.options.poisonRate ?? 0)) {
      // Poison is bad input: whatever the system answers is its answer (sent once, not retried).
      const notes = Math.random() < 0.5 ? "a\u0000b" : "x\ud800y";
      chain.poison = { notes, status: -1 };
      const answer = await this.call("POST", "/api/v1/bookings", customer, { ...booking, notes });
      chain.poison.status = answer.status;
      return;
    }
    const book = await this.idempotent("POST", "/api/v1/bookings", customer, booking);
    if (book.status === 409) {
      chain.rejected = true;
      return;
    }
    const bookingId = String(
      book.body?.bookingId ??
        String(book.body?.statusUrl ?? "")
          .split("/")
          .at(-1),
    );
    chain.bookingId = bookingId;
    if (book.status === 202) {
      const status = await this.until(customer, `/api/v1/bookings/${bookingId}`, (b) =>
        ["CONFIRMED", "REJECTED"].includes(b?.status) ? b.status : undefined,
      );
      if (status === "REJECTED") {
        chain.rejected = true;
        return;
      }
    } else if (book.status !== 201) {
      throw new Error(`booking answered ${book.status}`);
    }
    chain.confirmed = true;

    const started = await this.idempotent("POST", "/api/v1/repairs/start", technician, {
      bookingId,
      estimatedTime: 60,
    });
    if (started.status !== 201 && started.status !== 202)
      throw new Error(`repair start answered ${started.status}`);
    const repairId = String(
      started.body?.repairId ??
        String(started.body?.statusUrl ?? "")
          .split("/")
          .at(-1),
    );
    chain.repairId = repairId;
    await this.until(technician, `/api/v1/repairs/${repairId}`, (r) => (r?.status ? true : undefined));
    for (const [stage, progress] of PROGRESS) {
      await this.step(technician, repairId, stage, () =>
        this.call("POST", `/api/v1/repairs/${repairId}/progress`, technician, { status: stage, progress }),
      );
    }
    await this.step(technician, repairId, "COMPLETED", () =>
      this.call("POST", `/api/v1/repairs/${repairId}/complete`, technician, {
        parts: [{ partId: "OIL-5W30-4L", quantity: 1 }],
        labourMinutes: 45,
      }),
    );
    chain.repairCompleted = true;

    const invoiceId = await this.until(
      customer,
      `/api/v1/bookings/${bookingId}`,
      (b) => b?.invoiceId ?? undefined,
    );
    chain.invoiceId = String(invoiceId);
    const card = Math.random() < 0.85 ? "tok_visa" : "tok_declined";
    const paid = await this.idempotent("POST", "/api/v1/payments", customer, { invoiceId, cardToken: card });
    if (paid.status === 200) chain.payment = "PAID";
    else if (paid.status === 402) chain.payment = "DECLINED";
    else if (paid.status === 202) {
      const status = await this.until(customer, `/api/v1/invoices/${invoiceId}`, (inv) =>
        ["PAID", "FAILED", "VOID"].includes(inv?.status) ? inv.status : undefined,
      );
      chain.payment = status === "PAID" ? "PAID" : "DECLINED";
    } else throw new Error(`payment answered ${paid.status}`);
  }

  /** A repair step without an idempotency key: re-read the repair before each try, so a step is sent once. */
  private async step(token: string, repairId: string, stage: string, send: () => Promise<Answer>) {
    let unsure = false; // the last send's outcome is not known yet
    for (let attempt = 0; ; attempt++) {
      const repair = await this.read(token, `/api/v1/repairs/${repairId}`);
      if (repair.status === 200 && ORDER.indexOf(repair.body?.status) >= ORDER.indexOf(stage)) {
        this.counted("ok");
        return;
      }
      if (repair.status === 200 && unsure) {
        unsure = false; // give it time to land, then look again
        await Bun.sleep(1000);
        continue;
      }
      if (repair.status === 200) {
        this.check();
        const answer = await send();
        if (answer.status === 200 || answer.status === 201) {
          this.counted("ok");
          return;
        }
        if (answer.outcome === "failed") {
          this.counted("failed");
          throw new Error(`${stage} answered ${answer.status}`);
        }
        this.report.requests.retried++;
        unsure = true;
      }
      await Bun.sleep(Math.min(2000, 200 * 2 ** attempt));
    }
  }

  /** Polls `path` until `done` returns a value. */
  private async until<T>(token: string, path: string, done: (body: Json) => T | undefined): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const read = await this.read(token, path);
      const value = read.status === 200 ? done(read.body) : undefined;
      if (value !== undefined) return value;
      await Bun.sleep(Math.min(1000, 100 * 2 ** attempt));
    }
  }

  /** A POST with an Idempotency-Key, retried with the same key until its answer is final. */
  private async idempotent(method: string, path: string, token: string, body: unknown): Promise<Answer> {
    const key = `k-${Bun.randomUUIDv7()}`;
    for (let attempt = 0; ; attempt++) {
      try {
        this.check();
      } catch (error) {
        this.counted("unknown");
        throw error;
      }
      const answer = await this.call(method, path, token, body, key);
      if (answer.outcome !== "unknown") {
        const expected = answer.status === 409 || answer.status === 402; // slot full, card declined
        this.counted(answer.outcome === "ok" || expected ? "ok" : "failed");
        return answer;
      }
      this.report.requests.retried++;
      await Bun.sleep(Math.min(2000, 100 * 2 ** attempt));
    }
  }

  /** A read, retried until it answers (reads have no effects). */
  private async read(token: string, path: string): Promise<Answer> {
    for (let attempt = 0; ; attempt++) {
      this.check();
      const answer = await this.call("GET", path, token);
      if (answer.outcome !== "unknown") return answer;
      await Bun.sleep(Math.min(1000, 100 * 2 ** attempt));
    }
  }

  private counted(outcome: Outcome): void {
    this.report.requests[outcome]++;
    if (outcome === "ok") this.report.okAt.push(Date.now());
  }

  private check(): void {
    if (Date.now() > this.stopAt) throw new Stopped("run ended");
  }

  private async call(
    method: string,
    path: string,
    token: string,
    body?: unknown,
    key?: string,
  ): Promise<Answer> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (key) headers["idempotency-key"] = key;
    let answer: Answer;
    try {
      const response = await fetch(`${this.options.baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
      const text = await response.text();
      let parsed: Json;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = text;
      }
      const retry =
        response.status >= 500 || (response.status === 409 && parsed?.error?.code === "in_progress");
      answer = {
        status: response.status,
        body: parsed,
        outcome: retry ? "unknown" : response.ok ? "ok" : "failed",
      };
    } catch {
      answer = { status: 0, body: undefined, outcome: "unknown" };
    }
    return answer;
  }
}

// biome-ignore lint/suspicious/noExplicitAny: JSON answers of the API, read field by field
type Json = any;

interface Answer {
  status: number;
  body: Json;
  outcome: Outcome;
}
