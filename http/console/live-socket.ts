/**
 * `GET /api/v1/ops/live`: the ops console's live feed over WebSocket, admin only. The token comes as
 * `Authorization: Bearer` or `?token=` (browsers cannot set headers on a WebSocket); any other role is refused
 * before the upgrade with the API's 401 or 403. Once open, the socket receives a frame each second:
 *
 *   <- { "type": "snapshot", "at": 1767000000000, "groups": [...], "hosts": [...] }
 *   <- { "type": "error", "status": 503, "code": "...", "message": "...", "retryable": true }
 *
 * `groups` and `hosts` are exactly what `GET /api/v1/ops/groups` and `GET /api/v1/ops/hosts` answer: the frames
 * are those routes, called in process with the connection's own token (so a token that expires or loses its role
 * mid-connection is closed with 4401 or 4403). `hosts` is null when the service has no hosts view.
 */
import { Elysia, t } from "elysia";
import { authenticate, bearerOf, requireRole } from "../auth.ts";
import type { RouteDeps } from "../deps.ts";
import { errorHandling, HttpError } from "../errors.ts";
import { opsRoutes } from "../routes/ops.ts";

export interface LiveOptions {
  /** Between the starts of two snapshots of one connection. */
  intervalMs?: number;
}

type Frame =
  | { type: "snapshot"; at: number; groups: unknown; hosts: unknown; hostsError?: string }
  | { type: "error"; status: number; code: string; message: string; retryable: boolean };

export function liveSocket(deps: RouteDeps, { intervalMs = 1000 }: LiveOptions = {}) {
  // The ops routes themselves, answered in process: the same JSON as over HTTP, without the access log and the
  // request budget of one call a second.
  const views = new Elysia({ normalize: false })
    .use(errorHandling(deps.log))
    .use(opsRoutes({ ...deps, limiter: { take: async () => {} } }));
  const read = async (path: string, token: string) => {
    const response = await views.handle(
      new Request(`http://ops.internal${path}`, { headers: { authorization: `Bearer ${token}` } }),
    );
    return { status: response.status, body: (await response.json().catch(() => undefined)) as unknown };
  };

  const snapshot = async (token: string): Promise<Frame> => {
    const at = Date.now();
    const [groups, hosts] = await Promise.all([
      read("/api/v1/ops/groups", token),
      read("/api/v1/ops/hosts", token),
    ]);
    if (groups.status !== 200) return errorFrame(groups.status, groups.body);
    if (hosts.status === 200) return { type: "snapshot", at, groups: groups.body, hosts: hosts.body };
    const e = errorOf(hosts.body);
    return {
      type: "snapshot",
      at,
      groups: groups.body,
      hosts: null,
      // A service without the hosts view answers 404 for the route itself; anything else is worth showing.
      ...(hosts.status === 404 && e.code === "not_found"
        ? {}
        : { hostsError: `${hosts.status} ${e.code}: ${e.message}` }),
    };
  };

  const feeds = new Map<string, { stop(): void }>();
  return new Elysia({ name: "ops-live", normalize: false }).ws("/api/v1/ops/live", {
    query: t.Object({ token: t.Optional(t.String({ maxLength: 4096 })) }),
    async beforeHandle({ headers, query, set }) {
      try {
        requireRole(await authenticate(deps.tokens, bearerOf(headers) ?? query.token), "admin");
      } catch (error) {
        if (!(error instanceof HttpError)) throw error;
        set.status = error.status;
        return { error: { code: error.code, message: error.message, retryable: false } };
      }
    },
    open(ws) {
      deps.metrics?.socketOpened();
      const token = bearerOf(ws.data.headers) ?? ws.data.query.token ?? "";
      let stopped = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      let failing = false;
      const tick = async () => {
        const started = Date.now();
        let frame: Frame;
        try {
          frame = await snapshot(token);
          failing = false;
        } catch (error) {
          // Logged once per outage, not once a second.
          if (!failing) deps.log.warn({ err: error }, "ops live snapshot failed");
          failing = true;
          frame = {
            type: "error",
            status: 503,
            code: "unavailable",
            message: "the snapshot could not be read; retrying",
            retryable: true,
          };
        }
        if (stopped) return;
        ws.send(JSON.stringify(frame));
        deps.metrics?.frameSent(frame.type === "snapshot" ? "ops-snapshot" : "ops-error");
        if (frame.type === "error" && (frame.status === 401 || frame.status === 403)) {
          ws.close(4000 + frame.status, frame.code);
          return;
        }
        timer = setTimeout(tick, Math.max(0, intervalMs - (Date.now() - started)));
      };
      feeds.set(ws.id, {
        stop() {
          stopped = true;
          clearTimeout(timer);
        },
      });
      void tick();
    },
    close(ws) {
      deps.metrics?.socketClosed();
      feeds.get(ws.id)?.stop();
      feeds.delete(ws.id);
    },
  });
}

function errorOf(body: unknown): { code: string; message: string; retryable: boolean } {
  const e = (body as { error?: { code?: unknown; message?: unknown; retryable?: unknown } } | undefined)
    ?.error;
  return {
    code: typeof e?.code === "string" ? e.code : "internal",
    message: typeof e?.message === "string" ? e.message : "no error body",
    retryable: e?.retryable === true,
  };
}

function errorFrame(status: number, body: unknown): Frame {
  return { type: "error", status, ...errorOf(body) };
}
