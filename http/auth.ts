/**
 * Bearer JWT (HS256, `@elysiajs/jwt`) with one of three roles. A customer acts on and reads only their own
 * bookings, repairs and invoices (someone else's id answers 404, as if it did not exist); technicians run
 * repairs; admins operate (dead letters, analytics). `npm run token` mints a development token.
 */
import { jwt } from "@elysiajs/jwt";
import { Elysia } from "elysia";
import { forbidden, unauthorized } from "./errors.ts";
import type { RateLimiter } from "./rate-limit.ts";

export const ROLES = ["customer", "technician", "admin"] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  sub: string;
  role: Role;
}

export interface Tokens {
  sign(principal: Principal): Promise<string>;
  /** The principal of a valid, unexpired token; undefined otherwise. */
  verify(token: string): Promise<Principal | undefined>;
}

export function createTokens(secret: string, ttlSeconds: number): Tokens {
  const plugin = new Elysia().use(jwt({ name: "jwt", secret, alg: "HS256", exp: `${ttlSeconds}s` }));
  const j = (
    plugin.decorator as { jwt: { sign(p: object): Promise<string>; verify(t: string): Promise<unknown> } }
  ).jwt;
  return {
    sign: (principal) => j.sign({ sub: principal.sub, role: principal.role }),
    async verify(token) {
      // Only HS256: the plugin's verify takes any HMAC algorithm the secret can key (HS384, HS512 too).
      if (!isHs256(token)) return undefined;
      const claims = (await j.verify(token).catch(() => false)) as
        | { sub?: unknown; role?: unknown; exp?: unknown }
        | false;
      if (!claims || typeof claims.sub !== "string" || !/^[\w.@:-]{1,100}$/.test(claims.sub))
        return undefined;
      // The plugin checks exp only when there is one: a token without it, signed with the secret, would never expire.
      if (typeof claims.exp !== "number") return undefined;
      if (!ROLES.includes(claims.role as Role)) return undefined;
      return { sub: claims.sub, role: claims.role as Role };
    },
  };
}

/** Whether the token's protected header names HS256 (and is a JWT at all). */
function isHs256(token: string): boolean {
  const [encoded] = token.split(".", 1);
  try {
    const header = JSON.parse(Buffer.from(encoded ?? "", "base64url").toString("utf8")) as { alg?: unknown };
    return header.alg === "HS256";
  } catch {
    return false;
  }
}

/** The bearer token of a request, or of a WebSocket's `?token=` (browsers cannot set headers on one). */
export function bearerOf(headers: Record<string, string | undefined>): string | undefined {
  const header = headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1];
}

/** Resolves the request's principal or throws 401. */
export async function authenticate(tokens: Tokens, token: string | undefined): Promise<Principal> {
  if (!token) throw unauthorized("a bearer token is required (Authorization: Bearer <token>)");
  const principal = await tokens.verify(token);
  if (!principal) throw unauthorized("the bearer token is invalid or expired");
  return principal;
}

/** Throws 403 unless the principal has one of the roles. */
export function requireRole(principal: Principal, ...roles: Role[]): void {
  if (!roles.includes(principal.role)) {
    throw forbidden(`this needs the ${roles.join(" or ")} role; the token has ${principal.role}`);
  }
}

/**
 * Elysia plugin: `principal` on every request of the routes that use it (401 without a valid token), each
 * request counted against the principal's budget (429 beyond it).
 */
export function authentication(tokens: Tokens, limiter?: RateLimiter) {
  return new Elysia({ name: "pitstop-auth" }).derive({ as: "scoped" }, async ({ headers }) => {
    const principal = await authenticate(tokens, bearerOf(headers));
    await limiter?.take(principal.sub);
    return { principal };
  });
}
