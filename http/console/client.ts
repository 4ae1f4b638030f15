/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="dom.asynciterable" />
/**
 * The ops console in the browser (bundled by Bun at the first request for `/ops/console.js`): an admin pastes a
 * bearer token, kept in sessionStorage and sent with every call; the live socket (`/api/v1/ops/live`) pushes the
 * groups and hosts each second; the actor and dead-letter views call the ops API on demand.
 *
 * Every value shown comes from the API and reaches the page as text (`textContent`, `append` of strings,
 * `setAttribute`): keys are the users' own, so nothing is ever parsed as HTML.
 */

// The DOM types above are the browser's (a triple-slash lib applies to the whole program: the server's code
// must simply not use them). `export {}` makes this file a module, so nothing here is a global of the program.
export {};

const TOKEN_KEY = "pitstop.ops.token";
const CHART_POINTS = 120;

interface ApiErrorBody {
  error?: { code?: string; message?: string };
}

class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
  describe(): string {
    return `${this.status} ${this.code}: ${this.message}`;
  }
}

interface Partition {
  topic: string;
  partition: number;
  owner: string | null;
  epoch: number | null;
  member: string | null;
  committed: string;
  end: string;
  lag: number;
  paused?: boolean;
  pausedBy?: string | null;
  pauseReason?: string | null;
}

interface Group {
  groupId: string;
  state: string;
  members: number;
  lag: number;
  partitions: Partition[];
}

interface Host {
  hostId: string;
  role: string;
  version: string;
  startedAt: string;
  seenAt: string;
  up: boolean;
  uptimeSeconds: number;
  activeActors: number;
  inFlight: number;
  fenced: number;
  failed: number;
  groups: { groupId: string; partitions: { topic: string; partition: number; lag: number | null }[] }[];
}

interface Snapshot {
  type: "snapshot";
  at: number;
  groups: Group[];
  hosts: Host[] | null;
  hostsError?: string;
}

interface LiveError {
  type: "error";
  status: number;
  code: string;
  message: string;
}

interface Actor {
  kind: string;
  key: string;
  state: unknown;
  version: number;
  lastPartition: number | null;
  lastOffset: string | null;
  parked: boolean;
  parkedAt: string | null;
  updatedAt: string | null;
  timers: { name: string; fireAt: string; type: string }[];
  deadLetters: {
    id: number;
    status: string;
    errorClass: string;
    errorCode: string | null;
    errorMessage: string;
    source: string;
    createdAt: string;
  }[];
}

interface DeadLetter {
  id: number;
  consumer: string;
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: string;
  messageKey: string | null;
  errorClass: string;
  errorCode: string | null;
  errorMessage: string;
  attempts: number;
  status: string;
  lastFailureAt: string;
}

// ---------------------------------------------------------------------------------------------------------------
// DOM helpers: elements are built, never parsed; text is text.

type Child = Node | string | number | null | undefined | false;
type Attributes = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children)
    if (child !== null && child !== undefined && child !== false)
      element.append(typeof child === "number" ? String(child) : child);
  return element;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag: string, attributes: Record<string, string | number> = {}, text?: string): SVGElement {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}

/** Sets an element's text only when it changed (a live table keeps its selection and focus). */
function setText(element: Element, text: string): void {
  if (element.textContent !== text) element.textContent = text;
}

function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function time(iso: string | null | undefined): string {
  if (!iso) return "-";
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? iso : at.toISOString().replace("T", " ").slice(0, 19);
}

const partitionName = (p: { topic: string; partition: number }) => `${p.topic}[${p.partition}]`;

// ---------------------------------------------------------------------------------------------------------------
// The API, with the token.

let token: string | null = sessionStorage.getItem(TOKEN_KEY);

async function api<T>(method: string, path: string, body?: unknown, bearer = token): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, "unreachable", `the service did not answer (${(error as Error).message})`);
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const e = (parsed as ApiErrorBody | undefined)?.error;
    const error = new ApiError(
      response.status,
      e?.code ?? `http_${response.status}`,
      e?.message ?? (text.slice(0, 200) || response.statusText),
    );
    if (response.status === 401 && bearer === token) logOut(`Logged out: ${error.describe()}`);
    throw error;
  }
  return parsed as T;
}

const segments = (...parts: string[]) => parts.map(encodeURIComponent).join("/");

function say(text: string, kind: "ok" | "error" = "ok"): void {
  const message = byId("message");
  message.textContent = text;
  message.dataset.kind = kind;
}

/** Runs an operator's action: its outcome (or the API's refusal) in the message line. */
async function act(what: () => Promise<string>): Promise<void> {
  try {
    say(await what());
  } catch (error) {
    say(error instanceof ApiError ? error.describe() : String(error), "error");
  }
}

/** Asks for a reason in the page's dialog; null when cancelled. */
function askReason(title: string, required: boolean): Promise<string | null> {
  const dialog = byId<HTMLDialogElement>("reason-dialog");
  const input = byId<HTMLInputElement>("reason-input");
  byId("reason-title").textContent = title;
  byId("reason-label").textContent = required ? "Reason (required, kept for audit)" : "Reason (optional)";
  input.value = "";
  input.required = required;
  return new Promise((resolve) => {
    const form = byId<HTMLFormElement>("reason-form");
    const cancel = byId("reason-cancel");
    const done = (value: string | null) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      dialog.close();
      resolve(value);
    };
    const onSubmit = (event: Event) => {
      event.preventDefault();
      const reason = input.value.trim();
      if (required && !reason) return;
      done(reason);
    };
    const onCancel = (event: Event) => {
      event.preventDefault();
      done(null);
    };
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    input.focus();
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Log in and out.

function show(loggedIn: boolean): void {
  byId("login").hidden = loggedIn;
  byId("console").hidden = !loggedIn;
  byId("session").hidden = !loggedIn;
}

function logOut(reason = ""): void {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  live?.stop();
  live = undefined;
  show(false);
  byId("login-error").textContent = reason;
}

/** A token is taken when the ops API answers it (a customer's gets the API's 403, shown as it is). */
async function logIn(candidate: string): Promise<void> {
  const groups = await api<Group[]>("GET", "/api/v1/ops/groups", undefined, candidate);
  token = candidate;
  sessionStorage.setItem(TOKEN_KEY, candidate);
  byId("login-error").textContent = "";
  byId("principal").textContent = subjectOf(candidate);
  show(true);
  renderGroups(groups);
  live = openLive();
  void loadDeadLetters();
}

/** The token's subject, for the header (read from the JWT's payload; the server is what checks it). */
function subjectOf(jwt: string): string {
  try {
    const payload = JSON.parse(atob((jwt.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/")));
    return typeof payload.sub === "string" ? `${payload.sub} (${payload.role})` : "";
  } catch {
    return "";
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The live feed: a snapshot of the groups and hosts each second; reconnects with a growing pause.

let live: { stop(): void } | undefined;

function openLive(): { stop(): void } {
  const status = byId("live-status");
  let socket: WebSocket | undefined;
  let stopped = false;
  let retryMs = 500;
  let retry: ReturnType<typeof setTimeout> | undefined;
  const state = (name: string, text: string) => {
    status.dataset.state = name;
    status.textContent = text;
  };
  const connect = () => {
    if (stopped || !token) return;
    state("connecting", "connecting…");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/api/v1/ops/live?token=${encodeURIComponent(token)}`);
    socket.onmessage = (event) => {
      const frame = JSON.parse(String(event.data)) as Snapshot | LiveError;
      if (frame.type === "snapshot") {
        retryMs = 500;
        state("live", `live · ${new Date(frame.at).toLocaleTimeString()}`);
        applySnapshot(frame);
      } else {
        state("error", `live: ${frame.code}`);
        say(`live feed: ${frame.status} ${frame.code}: ${frame.message}`, "error");
      }
    };
    socket.onclose = (event) => {
      if (stopped) return;
      if (event.code === 4401 || event.code === 4403) {
        logOut(`Logged out: the live feed refused the token (${event.reason || event.code})`);
        return;
      }
      state("offline", "offline, reconnecting…");
      retry = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10_000);
    };
  };
  connect();
  return {
    stop() {
      stopped = true;
      clearTimeout(retry);
      socket?.close();
      state("offline", "offline");
    },
  };
}

function applySnapshot(snapshot: Snapshot): void {
  renderGroups(snapshot.groups);
  recordHistory(snapshot);
  renderHosts(snapshot.hosts, snapshot.hostsError);
}

// ---------------------------------------------------------------------------------------------------------------
// Hosts.

function renderHosts(hosts: Host[] | null, error?: string): void {
  const note = byId("hosts-note");
  const table = byId<HTMLTableElement>("hosts");
  if (!hosts) {
    note.textContent = error ?? "This service does not report its hosts.";
    table.hidden = true;
    return;
  }
  note.textContent = hosts.length ? "" : "No host has reported yet.";
  table.hidden = hosts.length === 0;
  // A tbody per host: its figures, then the partitions it owns per group with their lag.
  const bodies = new Map([...table.tBodies].map((body) => [body.dataset.hostId, body]));
  const seen = new Set<string>();
  for (const host of hosts) {
    seen.add(host.hostId);
    let body = bodies.get(host.hostId);
    if (!body) {
      body = h(
        "tbody",
        { "data-host-id": host.hostId },
        h("tr", { class: "host" }, ...HOST_FIELDS.map((field) => h("td", { "data-field": field }))),
        h("tr", { class: "owned-row" }, h("td", { colspan: HOST_FIELDS.length, "data-field": "partitions" })),
      );
      table.append(body);
    }
    body.classList.toggle("down", !host.up);
    const cell = (field: string) => body.querySelector(`[data-field="${field}"]`) as HTMLElement;
    setText(cell("host"), host.hostId);
    setText(cell("role"), host.role.split(",").join(", "));
    setText(cell("version"), host.version);
    setText(cell("up"), host.up ? "up" : "down");
    setText(cell("uptime"), duration(host.uptimeSeconds));
    setText(cell("actors"), String(host.activeActors));
    setText(cell("inFlight"), String(host.inFlight));
    setText(cell("fenced"), String(host.fenced));
    setText(cell("failed"), String(host.failed));
    setText(cell("seen"), time(host.seenAt));
    const owned = cell("partitions");
    const summary = JSON.stringify(host.groups);
    if (owned.dataset.summary !== summary) {
      owned.dataset.summary = summary;
      owned.replaceChildren(
        ...host.groups.map((g) =>
          h(
            "div",
            { class: "owned", "data-group-id": g.groupId },
            h("span", { class: "group-name" }, g.groupId),
            ...g.partitions.map((p) =>
              h(
                "span",
                {
                  class: (p.lag ?? 0) > 0 ? "chip behind" : "chip",
                  "data-topic": p.topic,
                  "data-partition": p.partition,
                },
                `${partitionName(p)} lag ${p.lag ?? "-"}`,
              ),
            ),
          ),
        ),
      );
    }
  }
  for (const [id, body] of bodies) if (id !== undefined && !seen.has(id)) body.remove();
}

const HOST_FIELDS = [
  "host",
  "role",
  "version",
  "up",
  "uptime",
  "actors",
  "inFlight",
  "fenced",
  "failed",
  "seen",
] as const;

// ---------------------------------------------------------------------------------------------------------------
// Consumer groups: a card per group with its chart and its partitions, updated in place.

const PARTITION_FIELDS = [
  "partition",
  "owner",
  "epoch",
  "member",
  "committed",
  "end",
  "lag",
  "paused",
  "action",
] as const;

function groupCard(groupId: string): HTMLElement {
  const container = byId("groups");
  const existing = [...container.children].find((c) => (c as HTMLElement).dataset.groupId === groupId) as
    | HTMLElement
    | undefined;
  if (existing) return existing;
  const chart = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`,
    preserveAspectRatio: "none",
    "data-testid": "chart",
  });
  chart.append(svg("polyline", { class: "lag", points: "" }), svg("polyline", { class: "rate", points: "" }));
  const card = h(
    "article",
    { class: "group", "data-group-id": groupId },
    h(
      "header",
      {},
      h("h3", {}, groupId),
      h("span", { "data-field": "state" }),
      h("span", { "data-field": "group-lag", class: "lag-now" }),
      h("span", { "data-field": "rate", class: "rate-now" }),
    ),
    chart,
    h(
      "table",
      { class: "partitions" },
      h("thead", {}, h("tr", {}, ...PARTITION_FIELDS.map((f) => h("th", {}, f === "action" ? "" : f)))),
      h("tbody"),
    ),
  );
  container.append(card);
  return card;
}

function renderGroups(groups: Group[]): void {
  const container = byId("groups");
  const ids = new Set(groups.map((g) => g.groupId));
  for (const card of [...container.children] as HTMLElement[])
    if (!ids.has(card.dataset.groupId ?? "")) card.remove();
  for (const group of groups) {
    const card = groupCard(group.groupId);
    setText(
      card.querySelector('[data-field="state"]') as Element,
      `${group.state}, ${group.members} member(s)`,
    );
    setText(card.querySelector('[data-field="group-lag"]') as Element, `lag ${group.lag}`);
    const body = card.querySelector("tbody") as HTMLTableSectionElement;
    const rows = new Map(
      [...body.rows].map((row) => [`${row.dataset.topic}\u0000${row.dataset.partition}`, row]),
    );
    const seen = new Set<string>();
    for (const p of group.partitions) {
      const id = `${p.topic}\u0000${p.partition}`;
      seen.add(id);
      let row = rows.get(id);
      if (!row) {
        row = partitionRow(group.groupId, p);
        body.append(row);
      }
      const cell = (field: string) => row.querySelector(`[data-field="${field}"]`) as HTMLElement;
      setText(cell("owner"), p.owner ?? "-");
      setText(cell("epoch"), p.epoch === null ? "-" : String(p.epoch));
      setText(cell("member"), p.member ?? "-");
      setText(cell("committed"), p.committed);
      setText(cell("end"), p.end);
      setText(cell("lag"), String(p.lag));
      setText(cell("paused"), p.paused === undefined ? "-" : p.paused ? "paused" : "no");
      const why = p.paused
        ? `paused by ${p.pausedBy ?? "?"}${p.pauseReason ? `: ${p.pauseReason}` : ""}`
        : "";
      if (cell("paused").title !== why) cell("paused").title = why;
      row.classList.toggle("paused", p.paused === true);
      row.classList.toggle("behind", p.lag > 0);
      row.dataset.paused = String(p.paused === true);
      const button = row.querySelector("button") as HTMLButtonElement;
      setText(button, p.paused ? "Resume" : "Pause");
    }
    for (const [id, row] of rows) if (!seen.has(id)) row.remove();
  }
}

function partitionRow(groupId: string, p: Partition): HTMLTableRowElement {
  const row = h("tr", { "data-topic": p.topic, "data-partition": p.partition });
  for (const field of PARTITION_FIELDS) {
    const cell = h("td", { "data-field": field });
    if (field === "partition") cell.textContent = partitionName(p);
    row.append(cell);
  }
  const button = h("button", {
    type: "button",
    class: "small",
    "data-testid": "pause-toggle",
    onclick: () => {
      const paused = row.dataset.paused === "true";
      const target = `${partitionName(p)} of ${groupId}`;
      void (async () => {
        const reason = await askReason(`${paused ? "Resume" : "Pause"} ${target}`, false);
        if (reason === null) return;
        await act(async () => {
          await api("POST", `/api/v1/ops/partitions/${paused ? "resume" : "pause"}`, {
            group: groupId,
            topic: p.topic,
            partition: p.partition,
            ...(reason ? { reason } : {}),
          });
          await refreshGroups();
          return `${paused ? "resumed" : "paused"} ${target}`;
        });
      })();
    },
  });
  (row.querySelector('[data-field="action"]') as HTMLElement).append(button);
  return row;
}

async function refreshGroups(): Promise<void> {
  renderGroups(await api<Group[]>("GET", "/api/v1/ops/groups"));
}

// The chart: lag (sum over the group's partitions) and throughput (committed offsets' growth per second) from
// the live snapshots, each line scaled to its own maximum over the window.

const CHART_WIDTH = 400;
const CHART_HEIGHT = 70;
const samples = new Map<string, { at: number; lag: number; committed: number }[]>();

function recordHistory(snapshot: Snapshot): void {
  for (const group of snapshot.groups) {
    const points = samples.get(group.groupId) ?? [];
    const committed = group.partitions.reduce((sum, p) => sum + Math.max(0, Number(p.committed)), 0);
    points.push({ at: snapshot.at, lag: group.lag, committed });
    if (points.length > CHART_POINTS + 1) points.shift();
    samples.set(group.groupId, points);
    drawChart(group.groupId, points);
  }
}

function drawChart(groupId: string, points: { at: number; lag: number; committed: number }[]): void {
  const card = groupCard(groupId);
  const rates = points.slice(1).map((p, i) => {
    const before = points[i] as (typeof points)[number];
    const seconds = (p.at - before.at) / 1000;
    return seconds > 0 ? Math.max(0, (p.committed - before.committed) / seconds) : 0;
  });
  const lags = points.slice(1).map((p) => p.lag);
  // The x axis spans what has been seen (up to CHART_POINTS snapshots), so a new chart is not a sliver.
  const line = (values: number[]) => {
    const max = Math.max(1, ...values);
    const step = CHART_WIDTH / Math.max(1, values.length - 1);
    const offset = values.length === 1 ? CHART_WIDTH : 0;
    return values
      .map(
        (v, i) =>
          `${(offset + i * step).toFixed(1)},${(CHART_HEIGHT - 4 - (v / max) * (CHART_HEIGHT - 8)).toFixed(1)}`,
      )
      .join(" ");
  };
  card.querySelector("polyline.lag")?.setAttribute("points", line(lags));
  card.querySelector("polyline.rate")?.setAttribute("points", line(rates));
  const rate = rates.at(-1) ?? 0;
  setText(
    card.querySelector('[data-field="rate"]') as Element,
    `${rate.toFixed(1)} rec/s · max lag ${Math.max(0, ...lags)} · last ${Math.round(((points.at(-1)?.at ?? 0) - (points[0]?.at ?? 0)) / 1000)} s`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// One actor.

async function lookUpActor(kind: string, key: string): Promise<void> {
  const view = byId("actor-view");
  let actor: Actor;
  try {
    actor = await api<Actor>("GET", `/api/v1/ops/actors/${segments(kind, key)}`);
  } catch (error) {
    view.replaceChildren(
      h(
        "p",
        { class: "error", "data-testid": "actor-error" },
        error instanceof ApiError ? error.describe() : String(error),
      ),
    );
    return;
  }
  const status =
    actor.state &&
    typeof actor.state === "object" &&
    typeof (actor.state as { status?: unknown }).status === "string"
      ? (actor.state as { status: string }).status
      : "-";
  const park = (verb: "park" | "unpark") =>
    h(
      "button",
      {
        type: "button",
        id: `actor-${verb}`,
        "data-testid": `actor-${verb}`,
        onclick: () =>
          void (async () => {
            const reason = await askReason(`${verb === "park" ? "Park" : "Unpark"} ${kind}/${key}`, false);
            if (reason === null) return;
            await act(async () => {
              await api(
                "POST",
                `/api/v1/ops/actors/${segments(kind, key)}/${verb}`,
                reason ? { reason } : {},
              );
              await lookUpActor(kind, key);
              return `${verb}ed ${kind}/${key}`;
            });
          })(),
      },
      verb === "park" ? "Park" : "Unpark",
    );
  view.replaceChildren(
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "actor"),
      h("dd", { id: "actor-id" }, `${actor.kind}/${actor.key}`),
      h("dt", {}, "status"),
      h("dd", { id: "actor-status", "data-testid": "actor-status" }, status),
      h("dt", {}, "version"),
      h("dd", { id: "actor-version", "data-testid": "actor-version" }, actor.version),
      h("dt", {}, "position"),
      h(
        "dd",
        { id: "actor-position" },
        actor.lastOffset === null ? "-" : `partition ${actor.lastPartition} @ ${actor.lastOffset}`,
      ),
      h("dt", {}, "parked"),
      h(
        "dd",
        { id: "actor-parked", "data-testid": "actor-parked" },
        actor.parked ? `parked since ${time(actor.parkedAt)}` : "no",
        " ",
        actor.parked ? park("unpark") : park("park"),
      ),
      h("dt", {}, "updated"),
      h("dd", {}, time(actor.updatedAt)),
    ),
    h("h4", {}, "State"),
    h("pre", { id: "actor-state", "data-testid": "actor-state" }, JSON.stringify(actor.state, null, 2)),
    h("h4", {}, `Timers (${actor.timers.length})`),
    actor.timers.length
      ? h(
          "table",
          { id: "actor-timers" },
          h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", {}, "fires at"), h("th", {}, "message"))),
          h(
            "tbody",
            {},
            ...actor.timers.map((t) =>
              h("tr", {}, h("td", {}, t.name), h("td", {}, time(t.fireAt)), h("td", {}, t.type)),
            ),
          ),
        )
      : h("p", { class: "note" }, "none pending"),
    h("h4", {}, `Dead letters (${actor.deadLetters.length})`),
    actor.deadLetters.length
      ? h(
          "table",
          { id: "actor-dead-letters" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", {}, "id"),
              h("th", {}, "status"),
              h("th", {}, "error"),
              h("th", {}, "source"),
            ),
          ),
          h(
            "tbody",
            {},
            ...actor.deadLetters.map((d) =>
              h(
                "tr",
                {},
                h("td", {}, d.id),
                h("td", {}, d.status),
                h("td", {}, `${d.errorClass}${d.errorCode ? ` ${d.errorCode}` : ""}: ${d.errorMessage}`),
                h("td", {}, d.source),
              ),
            ),
          ),
        )
      : h("p", { class: "note" }, "none"),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Dead letters.

async function loadDeadLetters(): Promise<void> {
  const query = new URLSearchParams();
  const consumer = byId<HTMLInputElement>("dl-consumer").value.trim();
  const key = byId<HTMLInputElement>("dl-key").value.trim();
  const status = byId<HTMLSelectElement>("dl-status").value;
  if (consumer) query.set("consumer", consumer);
  if (key) query.set("key", key);
  if (status) query.set("status", status);
  query.set("limit", "500");
  query.set("order", "newest");
  const body = byId<HTMLTableElement>("dead-letters").tBodies[0] as HTMLTableSectionElement;
  let letters: DeadLetter[];
  try {
    letters = await api<DeadLetter[]>("GET", `/api/v1/ops/dead-letters?${query}`);
  } catch (error) {
    say(error instanceof ApiError ? error.describe() : String(error), "error");
    return;
  }
  body.replaceChildren(
    ...(letters.length
      ? letters.map(deadLetterRow)
      : [h("tr", {}, h("td", { colspan: 9, class: "note" }, "no dead letters"))]),
  );
}

function deadLetterRow(d: DeadLetter): HTMLTableRowElement {
  const error = `${d.errorClass}${d.errorCode ? ` ${d.errorCode}` : ""}: ${d.errorMessage}`;
  const open = d.status === "dead" || d.status === "parked";
  const replay = h(
    "button",
    {
      type: "button",
      class: "small",
      "data-testid": "replay",
      onclick: () =>
        void act(async () => {
          const { replayed } = await api<{ replayed: number[] }>("POST", "/api/v1/ops/dead-letters/replay", {
            ids: [d.id],
          });
          await loadDeadLetters();
          return replayed.length ? `replayed dead letter ${d.id}` : `dead letter ${d.id} was not waiting`;
        }),
    },
    "Replay",
  );
  const skip = h(
    "button",
    {
      type: "button",
      class: "small",
      "data-testid": "skip",
      onclick: () =>
        void (async () => {
          const reason = await askReason(`Skip dead letter ${d.id} (discard it, kept for audit)`, true);
          if (reason === null) return;
          await act(async () => {
            const { skipped } = await api<{ skipped: number[] }>("POST", "/api/v1/ops/dead-letters/skip", {
              ids: [d.id],
              reason,
            });
            await loadDeadLetters();
            return skipped.length ? `skipped dead letter ${d.id}` : `dead letter ${d.id} was not waiting`;
          });
        })(),
    },
    "Skip",
  );
  const lookUp = h(
    "button",
    {
      type: "button",
      class: "link",
      title: "look this key up",
      onclick: () => {
        if (d.messageKey === null) return;
        byId<HTMLInputElement>("actor-kind").value = d.consumer;
        byId<HTMLInputElement>("actor-key").value = d.messageKey;
        void lookUpActor(d.consumer, d.messageKey);
      },
    },
    d.messageKey ?? "(no key)",
  );
  return h(
    "tr",
    { "data-dead-letter-id": d.id, "data-status": d.status },
    h("td", { "data-field": "id" }, d.id),
    h("td", { "data-field": "consumer" }, d.consumer),
    h("td", { "data-field": "key" }, lookUp),
    h("td", { "data-field": "source" }, `${d.sourceTopic}[${d.sourcePartition}]@${d.sourceOffset}`),
    h(
      "td",
      { "data-field": "error", class: "error-text", title: error },
      h("div", { class: "clamp" }, error),
    ),
    h("td", { "data-field": "attempts" }, d.attempts),
    h("td", { "data-field": "status" }, h("span", { class: `badge ${d.status}` }, d.status)),
    h("td", { "data-field": "lastFailure" }, time(d.lastFailureAt)),
    h("td", { "data-field": "actions" }, open && replay, open && skip),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Wiring.

byId("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const candidate = byId<HTMLTextAreaElement>("token-input").value.trim();
  void logIn(candidate).catch((error) => {
    byId("login-error").textContent = error instanceof ApiError ? error.describe() : String(error);
  });
});
byId("logout").addEventListener("click", () => logOut());
byId("actor-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void lookUpActor(
    byId<HTMLInputElement>("actor-kind").value.trim(),
    byId<HTMLInputElement>("actor-key").value.trim(),
  );
});
byId("dead-letters-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void loadDeadLetters();
});

if (token) {
  const saved = token;
  void logIn(saved).catch((error) =>
    logOut(error instanceof ApiError ? `Logged out: ${error.describe()}` : String(error)),
  );
} else {
  show(false);
}
