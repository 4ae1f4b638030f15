/**
 * The ops views and controls from a shell, through the running service's API (the same routes, the same
 * authorisation, the same audit):
 *
 *   npm run -s ops -- hosts [--json]                  every process: role, version, uptime, partitions with lag
 *   npm run -s ops -- groups [--group G] [--json]     every consumer group's partitions: owner, epoch, lag, pause
 *   npm run -s ops -- actor KIND KEY                  one actor: state, position, parking, timers, records, letters
 *   npm run -s ops -- stuck [--older-than SECONDS] [--kind K]
 *   npm run -s ops -- pause|resume GROUP TOPIC PARTITION [--reason R]
 *   npm run -s ops -- park|unpark KIND KEY [--reason R]
 *   npm run -s ops -- dead-letters [--consumer C] [--topic T] [--key K] [--status S]
 *   npm run -s ops -- replay ID... | replay --consumer C --key K     (a key's letters in order: a redrive)
 *   npm run -s ops -- skip ID... --reason R
 *   npm run -s ops -- audit [--action A] [--json]
 *
 * --url (default http://localhost:$PORT, PORT from the environment or 3000) names the service; --token (or
 * PITSTOP_TOKEN) an admin bearer token. Without one, an admin token is minted with the configured JWT_SECRET, as
 * `npm run token -- --role admin` would: on the service's own machine that is the operator's secret anyway.
 * Exit codes: 0 done, 1 the service refused or failed (its error printed), 2 bad arguments.
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../config.ts";
import { createTokens } from "../http/index.ts";

const usage = `usage (each also takes [--url U] [--token T]):
  npm run -s ops -- hosts [--json]
  npm run -s ops -- groups [--group G] [--json]
  npm run -s ops -- actor KIND KEY
  npm run -s ops -- stuck [--older-than SECONDS] [--kind K]
  npm run -s ops -- pause|resume GROUP TOPIC PARTITION [--reason R]
  npm run -s ops -- park|unpark KIND KEY [--reason R]
  npm run -s ops -- dead-letters [--consumer C] [--topic T] [--key K] [--status dead|parked|replayed|skipped]
  npm run -s ops -- replay ID... | replay --consumer C --key K
  npm run -s ops -- skip ID... --reason R
  npm run -s ops -- audit [--action A] [--json]`;

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
      reason: { type: "string" },
      consumer: { type: "string" },
      topic: { type: "string" },
      key: { type: "string" },
      status: { type: "string" },
      kind: { type: "string" },
      action: { type: "string" },
      "older-than": { type: "string" },
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

async function call(route: string, body?: unknown): Promise<unknown> {
  const config = loadConfig();
  const token =
    values.token ||
    process.env.PITSTOP_TOKEN ||
    (await createTokens(config.auth.jwtSecret, 300).sign({ sub: "ops-cli", role: "admin" }));
  let response: Response;
  try {
    response = await fetch(`${base}${route}`, {
      method: body === undefined ? "GET" : "POST",
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    return fail(`cannot reach ${base}: ${(error as Error).message}`, 1);
  }
  const answer = await response.json().catch(() => undefined);
  if (!response.ok) {
    const e = (answer as { error?: { code?: string; message?: string } } | undefined)?.error;
    fail(`${response.status} ${e?.code ?? ""}: ${e?.message ?? "no error body"}`, 1);
  }
  return answer;
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
    paused: boolean;
  }[];
}

interface HostRow {
  hostId: string;
  role: string;
  version: string;
  up: boolean;
  uptimeSeconds: number;
  activeActors: number;
  inFlight: number;
  fenced: number;
  failed: number;
  groups: {
    groupId: string;
    partitions: { topic: string; partition: number; lag: number | null; held: boolean }[];
  }[];
}

const print = (value: unknown) => console.log(JSON.stringify(value, null, 2));
const query = (fields: Record<string, string | undefined>) => {
  const set = Object.entries(fields).filter((e): e is [string, string] => e[1] !== undefined);
  return set.length ? `?${new URLSearchParams(set)}` : "";
};
const ids = (words: string[]) =>
  words.map((w) => (/^[1-9]\d*$/.test(w) ? Number(w) : fail(`not a dead letter id: ${w}\n${usage}`)));
const path = (...parts: string[]) => parts.map(encodeURIComponent).join("/");

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
          `  ${p.topic}[${p.partition}]  owner ${p.owner ?? "-"} epoch ${p.epoch ?? "-"}  committed ${p.committed} end ${p.end} lag ${p.lag}${p.paused ? "  PAUSED" : ""}`,
        );
    }
  }
} else if (command === "hosts" && rest.length === 0) {
  const hosts = (await call("/api/v1/ops/hosts")) as HostRow[];
  if (values.json) print(hosts);
  else
    for (const h of hosts) {
      console.log(
        `${h.hostId}  ${h.up ? "up" : "DOWN"} ${h.role} v${h.version} ${h.uptimeSeconds}s  actors ${h.activeActors} in-flight ${h.inFlight} fenced ${h.fenced} failed ${h.failed}`,
      );
      // A line per group: how many partitions it owns there and their lag; those behind or paused by name.
      for (const g of h.groups) {
        const lag = g.partitions.reduce((n, p) => n + (p.lag ?? 0), 0);
        const notable = g.partitions
          .filter((p) => (p.lag ?? 0) > 0 || p.held)
          .map((p) => `${p.topic}[${p.partition}] lag ${p.lag ?? "?"}${p.held ? " PAUSED" : ""}`);
        console.log(
          `  ${g.groupId}  ${g.partitions.length} partition(s), lag ${lag}${notable.length ? `: ${notable.join(", ")}` : ""}`,
        );
      }
    }
} else if (command === "actor" && rest.length === 2) {
  print(await call(`/api/v1/ops/actors/${path(...(rest as [string, string]))}`));
} else if (command === "stuck" && rest.length === 0) {
  print(
    await call(`/api/v1/ops/stuck${query({ olderThanSeconds: values["older-than"], kind: values.kind })}`),
  );
} else if ((command === "pause" || command === "resume") && rest.length === 3) {
  const [group, topic, partition] = rest as [string, string, string];
  if (!/^\d+$/.test(partition)) fail(`not a partition number: ${partition}\n${usage}`);
  print(
    await call(`/api/v1/ops/partitions/${command}`, {
      group,
      topic,
      partition: Number(partition),
      ...(values.reason ? { reason: values.reason } : {}),
    }),
  );
} else if ((command === "park" || command === "unpark") && rest.length === 2) {
  print(
    await call(
      `/api/v1/ops/actors/${path(...(rest as [string, string]))}/${command}`,
      values.reason ? { reason: values.reason } : {},
    ),
  );
} else if (command === "dead-letters" && rest.length === 0) {
  print(
    await call(
      `/api/v1/ops/dead-letters${query({ consumer: values.consumer, topic: values.topic, key: values.key, status: values.status })}`,
    ),
  );
} else if (command === "replay" && (rest.length > 0 || (values.consumer && values.key))) {
  print(
    await call(
      "/api/v1/ops/dead-letters/replay",
      rest.length > 0 ? { ids: ids(rest) } : { consumer: values.consumer, key: values.key },
    ),
  );
} else if (command === "skip" && rest.length > 0 && values.reason) {
  print(await call("/api/v1/ops/dead-letters/skip", { ids: ids(rest), reason: values.reason }));
} else if (command === "audit" && rest.length === 0) {
  const rows = (await call(`/api/v1/ops/audit${query({ action: values.action })}`)) as {
    id: number;
    at: string;
    who: string;
    action: string;
    target: unknown;
    outcome: unknown;
  }[];
  if (values.json) print(rows);
  else
    for (const a of rows)
      console.log(
        `${a.id}  ${a.at}  ${a.who}  ${a.action}  ${JSON.stringify(a.target)} -> ${JSON.stringify(a.outcome)}`,
      );
} else {
  fail(usage);
}
