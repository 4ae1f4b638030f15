/** Invoices and payments: the seed's `POST /api/v1/payments`, reading invoices, and the job saga's history. */
import { Elysia, t } from "elysia";
import { type InvoiceState, invoiceView } from "../../actors/invoice/invoice.ts";
import { type JobState, jobView } from "../../actors/job-saga/job-saga.ts";
import { authentication, requireRole } from "../auth.ts";
import { command } from "../commands.ts";
import type { RouteDeps } from "../deps.ts";
import { idempotently } from "../idempotency.ts";
import { requestContext } from "../observability.ts";
import { AcceptedAnswer, answers, InvoiceAnswer, JobAnswer } from "./answers.ts";
import { Id, IdParams, ListQuery, pageSize, strict } from "./schemas.ts";

export function paymentRoutes(deps: RouteDeps) {
  const { entities, client, refs } = deps;
  return new Elysia({ prefix: "/api/v1", normalize: false })
    .use(authentication(deps.tokens, deps.limiter))
    .use(requestContext(deps.log))
    .post(
      "/payments",
      async ({ principal, body, headers, set, trace }) => {
        requireRole(principal, "customer", "admin");
        const invoice = await entities.read<InvoiceState>("invoice", body.invoiceId, principal);
        const key = headers["idempotency-key"];
        return idempotently(
          deps.sql,
          principal,
          "POST /api/v1/payments",
          key,
          body,
          set,
          async ({ messageId }) => {
            const answer = await command(
              client,
              refs.invoice(invoice.invoiceId),
              "PAY",
              // Without a key, the command's own id keys the charge: a redelivered command still charges once.
              { cardToken: body.cardToken, idempotencyKey: key ?? messageId },
              {
                messageId,
                timeoutMs: deps.askTimeoutMs,
                statusUrl: `/api/v1/invoices/${invoice.invoiceId}`,
                trace,
              },
            );
            if (!answer.view) return answer;
            await entities.remember("invoice", invoice.invoiceId, answer.view as InvoiceState);
            return { ...answer, body: invoiceView(answer.view as InvoiceState) };
          },
        );
      },
      {
        body: t.Object(
          { invoiceId: Id, cardToken: t.String({ pattern: "^tok_[a-z0-9_]{1,40}$", maxLength: 44 }) },
          strict,
        ),
        detail: {
          summary: "Pay an invoice (200 paid, 402 declined; the job is then compensated)",
          description:
            "Test cards: tok_visa (approved), tok_declined, tok_insufficient_funds, tok_timeout, tok_flaky.",
          tags: ["payments"],
          responses: answers({ 200: InvoiceAnswer, 202: AcceptedAnswer }, [400, 402, 404, 409]),
        },
      },
    )
    .get(
      "/invoices",
      async ({ principal, query }) => {
        const customerId = principal.role === "customer" ? principal.sub : query.customerId;
        const list = await entities.listOf<InvoiceState>(
          "invoice",
          customerId,
          pageSize(query.limit, 50, 200),
        );
        return list.map(invoiceView);
      },
      {
        query: ListQuery,
        detail: {
          summary: "Your invoices (staff: all, or ?customerId=)",
          tags: ["payments"],
          responses: answers({ 200: t.Array(InvoiceAnswer) }),
        },
      },
    )
    .get(
      "/invoices/:id",
      async ({ principal, params }) =>
        invoiceView(await entities.read<InvoiceState>("invoice", params.id, principal)),
      {
        params: IdParams,
        detail: {
          summary: "One invoice",
          tags: ["payments"],
          responses: answers({ 200: InvoiceAnswer }, [404]),
        },
      },
    )
    .get(
      "/jobs/:id",
      async ({ principal, params }) =>
        jobView(await entities.read<JobState>("job-saga", params.id, principal)),
      {
        params: IdParams,
        detail: {
          summary: "The job saga of a booking, with its history (id: the booking id)",
          tags: ["jobs"],
          responses: answers({ 200: JobAnswer }, [404]),
        },
      },
    );
}
