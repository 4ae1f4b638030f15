/**
 * The ops views from a shell, through the running service's API (the same routes, the same authorisation):
 *
 *   npm run -s ops -- groups [--group G] [--json]     every consumer group's partitions: owner, epoch, lag
 *   npm run -s ops -- actor KIND KEY                  one actor: state, position, parking, timers, dead letters
 *
 * --url (default http://localhost:$PORT, PORT from the environment or 3000) names the service; --token (or
 * PITSTOP_TOKEN) an admin bearer token. Without one, an admin token is minted with the configured JWT_SECRET, as
 * `npm run token -- --role admin` would: on the service's own machine that is the operator's secret anyway.
 * Exit codes: 0 done, 1 the service refused or failed (its error printed), 2 bad arguments.
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../config.ts";
import { createTokens } from "../http/index.ts";

const usage = `usage:
  npm run -s ops -- groups [--group G] [--json] [--url U] [--token T]
  npm run -s ops -- actor KIND KEY [--url U] [--token T]`;

function fail(message: string, code = 2): never {
  console.error(message);
  process.exit(code);
}

let parsed: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    args: Bun.argv.slice(2),
    allowPositionals: true,
    options: {
      group: { type: "string" },
      json: { type: "boolean", default: false },
      url: { type: "string" },
      token: { type: "string" },
    },
  });
}
try {
  parsed = parse();
} catch (error) {
  fail(`${(error as Error).message}\n${usage}`);
}
const { values, positionals } = parsed;
const [command, ...rest] = positionals;
const base = (values.url ?? `http://localhost:${process.env.PORT ?? 3000}`).replace(/\/$/, "");

async function call(path: string): Promise<unknown> {
  const config = loadConfig();
  const token =
    values.token ||
    process.env.PITSTOP_TOKEN ||
    (await createTokens(config.auth.jwtSecret, 300).sign({ sub: "ops-cli", role: "admin" }));
  let response: Response;
  try {
    response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  } catch (error) {
    return fail(`cannot reach ${base}: ${(error as Error).message}`, 1);
  }
  const body = await response.json().catch(() => undefined);
  if (!response.ok) {
    const e = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    fail(`${response.status} ${e?.code ?? ""}: ${e?.message ?? "no error body"}`, 1);
  }
  return body;
}

interface Group {
  groupId: string;
  state: string;
  members: number;
  lag: number;
  partitions: {
    topic: string;
    partition: number;
    owner: string | null;
    epoch: number | null;
    committed: string;
    end: string;
    lag: number;
  }[];
}

if (command === "groups" && rest.length === 0) {
  const query = values.group ? `?group=${encodeURIComponent(values.group)}` : "";
  const groups = (await call(`/api/v1/ops/groups${query}`)) as Group[];
  if (values.json) {
    console.log(JSON.stringify(groups, null, 2));
  } else {
    for (const g of groups) {
      console.log(`${g.groupId}  ${g.state}, ${g.members} member(s), lag ${g.lag}`);
      for (const p of g.partitions)
        console.log(
          `  ${p.topic}[${p.partition}]  owner ${p.owner ?? "-"} epoch ${p.epoch ?? "-"}  committed ${p.committed} end ${p.end} lag ${p.lag}`,
        );
    }
  }
} else if (command === "actor" && rest.length === 2) {
  const [kind, key] = rest as [string, string];
  console.log(
    JSON.stringify(
      await call(`/api/v1/ops/actors/${encodeURIComponent(kind)}/${encodeURIComponent(key)}`),
      null,
      2,
    ),
  );
} else {
  fail(usage);
}
