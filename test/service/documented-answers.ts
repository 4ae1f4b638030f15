/**
 * Checks an answer against what the route documents (http/routes/answers.ts, served in /docs/json): its status is
 * one the route lists and its body matches that status's schema. `startService().call` runs it on every answer the
 * service tests get, so the OpenAPI document cannot drift from what is sent.
 */
import type { TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";

interface RouteLike {
  method: string;
  path: string;
  hooks?: unknown;
}

interface Documented {
  method: string;
  pattern: RegExp;
  /** Static routes win over ones with parameters (`/repairs/start` over `/repairs/:id`). */
  params: number;
  responses: Record<string, { content?: Record<string, { schema?: TSchema }> }>;
}

export function answerChecker(routes: readonly RouteLike[]) {
  const documented: Documented[] = routes
    .map((route) => {
      const detail = (route.hooks as { detail?: { responses?: Documented["responses"] } } | undefined)
        ?.detail;
      if (!detail?.responses) return undefined;
      const source = route.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:[^/]+/g, "[^/]+");
      return {
        method: route.method,
        pattern: new RegExp(`^${source}$`),
        params: (route.path.match(/:/g) ?? []).length,
        responses: detail.responses,
      };
    })
    .filter((d): d is Documented => d !== undefined)
    .sort((a, b) => a.params - b.params);

  /** What is wrong with the answer, or undefined when it is as documented (or its route documents nothing). */
  return (method: string, path: string, status: number, body: unknown): string | undefined => {
    const pathname = path.split("?")[0] ?? path;
    const route = documented.find((d) => d.method === method && d.pattern.test(pathname));
    if (!route) return undefined;
    const answer = route.responses[String(status)];
    if (!answer) return `${method} ${pathname} answered ${status}, which it does not document`;
    const schema = answer.content?.["application/json"]?.schema;
    if (!schema) return undefined;
    if (Value.Check(schema, body)) return undefined;
    const errors = [...Value.Errors(schema, body)]
      .slice(0, 3)
      .map((e) => `${e.path || "/"}: ${e.message}`)
      .join("; ");
    return `${method} ${pathname} answered ${status} with a body outside its documented schema (${errors}): ${JSON.stringify(body).slice(0, 300)}`;
  };
}
