/**
 * `GET /ops`: the ops console's page, its stylesheet and its script (http/console/client.ts, bundled by Bun at the
 * first request and kept). The page holds no data: it asks the admin for a token and reads everything through
 * the ops API and the live socket (live-socket.ts), so these three answer anyone. Nothing is fetched from
 * elsewhere at run time, and the content security policy says so.
 */
import { join } from "node:path";
import { Elysia } from "elysia";
import { HttpError } from "../errors.ts";

const HERE = import.meta.dir;

const SECURITY_HEADERS = {
  "content-security-policy": [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** The client bundle, built once per process (a failed build is tried again at the next request). */
function clientBundle(): () => Promise<string> {
  let built: Promise<string> | undefined;
  return () => {
    built ??= Bun.build({
      entrypoints: [join(HERE, "client.ts")],
      target: "browser",
      minify: true,
      sourcemap: "none",
    })
      .then(async (result) => {
        const output = result.outputs[0];
        if (!result.success || !output) {
          throw new Error(result.logs.map((l) => l.message).join("\n") || "no output");
        }
        return output.text();
      })
      .catch((error: unknown) => {
        built = undefined;
        throw new HttpError(
          500,
          "internal",
          `the console's script did not build: ${(error as Error).message}`,
          {
            retryable: true,
          },
        );
      });
    return built;
  };
}

export function consolePage() {
  const bundle = clientBundle();
  const file = (name: string, type: string, cache: string) =>
    new Response(Bun.file(join(HERE, name)), {
      headers: { "content-type": type, "cache-control": cache, ...SECURITY_HEADERS },
    });
  return new Elysia({ name: "ops-console", normalize: false })
    .get("/ops", () => file("index.html", "text/html; charset=utf-8", "no-store"), { detail: { hide: true } })
    .get("/ops/console.css", () => file("console.css", "text/css; charset=utf-8", "no-cache"), {
      detail: { hide: true },
    })
    .get(
      "/ops/console.js",
      async () =>
        new Response(await bundle(), {
          headers: {
            "content-type": "text/javascript; charset=utf-8",
            "cache-control": "no-cache",
            ...SECURITY_HEADERS,
          },
        }),
      { detail: { hide: true } },
    );
}
