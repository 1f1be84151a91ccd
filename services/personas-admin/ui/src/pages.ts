// The dashboard's pages. Each page builds its static frame once and
// re-renders only its data regions on refresh (called on entry and every
// POLL_MS); a region is left untouched when its data did not change, so
// polling never steals keyboard focus or scroll position for nothing.
import { api, ApiError, qs, type ToolStats, type Action, type Detail, type Feedback, type Fleet, type ModuleFeedback, type ModuleSummary, type Overview, type Persona, type Tick, type TickDetail, type Trend } from "./api";
import { bar, h, num, replace, s, time } from "./dom";
import { badge, confirmDialog, empty, errorPanel, loading, notAvailable, statusBadges, toast } from "./ui";

export interface Page { refresh(): Promise<void>; dispose?(): void }

/**
 * For endpoints that arrive later (runner, overview, modules, feedback):
 * until they exist, their paths fall to GET /:id and answer 404 "Persona
 * not found", so any 404 of theirs means "not available yet".
 */
async function optional<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof ApiError && e.kind === "not-found") throw new ApiError("not-available", 404, "not available yet");
    throw e;
  }
}

/** Errors that end the session view are rethrown to main; the rest become panels. */
function fatal(err: unknown): boolean {
  return err instanceof ApiError && (err.kind === "signed-out" || err.kind === "forbidden");
}

/** A region re-rendered from one fetch; unchanged data leaves the DOM alone. */
function region(el: HTMLElement, what: string) {
  let last = "";
  return async <T>(load: () => Promise<T>, draw: (data: T) => Node | (Node | null)[]): Promise<T | undefined> => {
    try {
      const data = await load();
      const key = JSON.stringify(data);
      if (key !== last) {
        last = key;
        const out = draw(data);
        replace(el, ...(Array.isArray(out) ? out : [out]));
      }
      el.removeAttribute("aria-busy");
      return data;
    } catch (err) {
      if (fatal(err)) throw err;
      const key = `error:${err instanceof Error ? err.message : String(err)}`;
      if (key !== last) { last = key; replace(el, errorPanel(err, what)); }
      el.removeAttribute("aria-busy");
      return undefined;
    }
  };
}

function section(title: string, id: string, ...extra: Node[]): { el: HTMLElement; body: HTMLElement } {
  const body = h("div", { class: "region", id: `${id}-body`, "aria-busy": "true" }, loading());
  const el = h("section", { class: "panel", "aria-labelledby": `${id}-title`, "data-region": id }, h("h2", { id: `${id}-title` }, title), ...extra, body);
  return { el, body };
}

/** A calendar date (YYYY-MM-DD, a UTC day) as itself: no time, no time-zone shift. */
const day = (d: string) => h("time", { datetime: d }, d);

const personaHref = (id: string) => `#/personas/${encodeURIComponent(id)}`;

// ---- Overview ---------------------------------------------------------------

function stat(label: string, value: string | number, href?: string, id?: string): HTMLElement {
  const v = h("span", { class: "stat-value", "data-stat": id ?? label }, String(value));
  return h("div", { class: "stat" }, href ? h("a", { href }, v, h("span", { class: "stat-label" }, label)) : [v, h("span", { class: "stat-label" }, label)]);
}

export function overviewPage(main: HTMLElement): Page {
  let win = "24h";
  const winSel = h("select", { id: "ov-window", "aria-label": "Window" }, h("option", { value: "24h" }, "last 24 h"), h("option", { value: "7d" }, "last 7 days"));
  const fleet = section("Fleet", "fleet");
  const runner = section("Runner", "runner");
  const ov = section("Health", "overview", h("div", { class: "row" }, h("label", { for: "ov-window" }, "Window"), winSel));
  replace(main, h("h1", null, "Overview"), h("div", { class: "grid2" }, runner.el, fleet.el), ov.el);
  const drawFleet = region(fleet.body, "Fleet");
  const drawRunner = region(runner.body, "Runner control");
  const drawOv = region(ov.body, "Fleet overview");

  const refresh = async () => {
    const overview = optional(api<Overview>("GET", `/overview${qs({ window: win })}`));
    overview.catch(() => undefined); // each region reports it
    await Promise.all([
      drawRunner(() => optional(api<Fleet>("GET", "/runner")), (r) => {
        const btn = h("button", { type: "button", id: "fleet-toggle", class: r.paused ? "primary" : "danger" }, r.paused ? "Resume the fleet" : "Pause the fleet");
        btn.addEventListener("click", async () => {
          const ok = await confirmDialog(r.paused
            ? { title: "Resume the fleet?", body: "Runners will claim due personas again.", confirm: "Resume" }
            : { title: "Pause the fleet?", body: "Every runner stops claiming personas until you resume. Ticks in flight finish.", confirm: "Pause", danger: true });
          if (!ok) return;
          try { await api("PUT", "/runner", { paused: !r.paused }); toast(r.paused ? "Fleet resumed" : "Fleet paused"); } catch (e) { if (fatal(e)) throw e; toast((e as Error).message, "error"); }
          await refresh();
        });
        return [h("p", { "data-fleet": r.paused ? "paused" : "running" }, r.paused ? badge("paused") : badge("running", "ok"), " ",
          r.paused ? "Runners claim nothing until the fleet is resumed." : "Runners claim due personas."),
          h("p", { class: "muted small" }, "Switched ", time(r.updatedAt), r.updatedBy ? ` by ${r.updatedBy}` : null), btn];
      }),
      // Every number from GET /overview: the whole list grows with the
      // fleet, the overview counts it in the database.
      drawFleet(() => overview, (o) => {
        const p = o.personas;
        return h("div", { class: "stats" },
          stat("personas", p.total, "#/personas", "total"),
          stat("enabled", p.enabled, "#/personas?status=enabled", "enabled"),
          stat("paused (disabled)", p.disabled.count, "#/personas?status=disabled", "disabled"),
          stat("quarantined", p.quarantined.count, "#/personas?status=quarantined", "quarantined"),
          stat("overdue", p.overdue.count, "#/personas?status=overdue", "overdue"));
      }),
      drawOv(() => overview, (o) => {
        const t = o.ticks;
        return [
          h("div", { class: "stats" },
            stat("ticks finished", t.finished, undefined, "finished"),
            stat("tick success", t.successRate === null ? "—" : `${num(t.successRate * 100, 1)} %`, undefined, "successRate"),
            stat("ratings", o.ratings.rated, "#/notes", "rated"),
            stat("unparsable ratings", o.ratings.unparsable, "#/notes", "unparsable")),
          Object.keys(t.byStatus).length ? h("p", { "data-ticks": "byStatus" }, "Ticks: ", Object.entries(t.byStatus).map(([k, v]) => [badge(`${k} ${v}`, k), " "])) : null,
          o.fleetPaused ? h("p", null, badge("paused"), " The fleet is paused.") : null,
          h("h3", null, "Flagged modules"),
          o.flaggedModules.length === 0 ? empty("No module is flagged.")
            : h("ul", { "data-list": "flagged" }, o.flaggedModules.map((m) => h("li", { "data-module": m.module }, h("a", { href: `#/modules/${encodeURIComponent(m.module)}` }, m.module), " ", badge("flagged", "quarantined"),
              ` ${num(m.baselineMean, 2)} → ${num(m.runMean, 2)} (−${num(m.drop, 2)}) for ${m.weeks} week${m.weeks === 1 ? "" : "s"} since `, day(m.since)))),
          h("h3", null, "Tools whose errors rose"),
          o.errorRateRises.length === 0 ? empty("No tool's error rate rose.")
            : h("ul", { "data-list": "tools" }, o.errorRateRises.map((x) => h("li", { "data-tool": x.name }, h("a", { href: `#/tools?tool=${encodeURIComponent(x.name)}` }, h("code", null, x.name)),
              ` error rate ${num(x.errorRate * 100, 1)} % of ${num(x.calls)} calls`, x.errorRateChange !== null ? ` (${x.errorRateChange >= 0 ? "+" : ""}${num(x.errorRateChange * 100, 1)} pts)` : "",
              x.p95LatencyMs !== null ? ` · p95 ${num(x.p95LatencyMs)} ms` : ""))),
        ];
      }),
    ]);
  };
  winSel.addEventListener("change", () => { win = winSel.value; void refresh(); });
  return { refresh };
}

// ---- Personas ---------------------------------------------------------------

const CADENCES = ["daily", "weekdays", "hourly"];
// The list's status filter (GET /?status=), by the overview's rules.
const STATUSES = ["enabled", "disabled", "backing-off", "quarantined", "leased", "overdue"];

export function personasPage(main: HTMLElement, q: URLSearchParams): Page {
  const state = { q: q.get("q") ?? "", archetype: q.get("archetype") ?? "", cadence: q.get("cadence") ?? "", tag: q.get("tag") ?? "", status: q.get("status") ?? "", limit: Number(q.get("limit") ?? 25) || 25 };
  const cursors: string[] = [""]; // cursors[i] is the cursor that loads page i
  let pageIdx = 0;
  let next: string | null = null;
  let sortKey: keyof Persona | "lastTick" | "" = "";
  let sortDir = 1;
  let rows: Persona[] = [];
  const archetypes = new Set<string>();

  const search = h("input", { id: "f-q", type: "search", value: state.q, placeholder: "name or email", autocomplete: "off" });
  const arch = h("select", { id: "f-archetype" }, h("option", { value: "" }, "all"));
  const cad = h("select", { id: "f-cadence" }, h("option", { value: "" }, "all"), CADENCES.map((c) => h("option", { value: c, selected: c === state.cadence }, c)));
  const tag = h("input", { id: "f-tag", type: "text", value: state.tag, placeholder: "chaos, night", autocomplete: "off", "aria-describedby": "f-tag-hint" });
  const stat = h("select", { id: "f-status" }, h("option", { value: "" }, "all"), STATUSES.map((v) => h("option", { value: v, selected: v === state.status }, v)));
  const size = h("select", { id: "f-limit" }, [5, 10, 25, 50, 100].map((n) => h("option", { value: n, selected: n === state.limit }, n)));
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter personas" },
    h("div", null, h("label", { for: "f-q" }, "Search"), search),
    h("div", null, h("label", { for: "f-archetype" }, "Archetype"), arch),
    h("div", null, h("label", { for: "f-cadence" }, "Cadence"), cad),
    h("div", null, h("label", { for: "f-tag" }, "Tags"), tag, h("span", { id: "f-tag-hint", class: "sr-only" }, "comma-separated; personas with every tag")),
    h("div", null, h("label", { for: "f-status" }, "Status"), stat),
    h("div", null, h("label", { for: "f-limit" }, "Per page"), size),
    h("button", { type: "submit", class: "primary" }, "Apply"));
  const body = h("div", { class: "region", id: "personas-body", "aria-busy": "true" }, loading());
  const prev = h("button", { type: "button", id: "page-prev", disabled: true }, "← Previous");
  const nextBtn = h("button", { type: "button", id: "page-next", disabled: true }, "Next →");
  const pos = h("span", { id: "page-pos", class: "muted", "aria-live": "polite" });
  replace(main, h("h1", null, "Personas"), form, h("section", { class: "panel", "aria-labelledby": "personas-list-title" }, h("h2", { id: "personas-list-title", class: "sr-only" }, "Personas list"), body, h("nav", { class: "pager", "aria-label": "Pages" }, prev, pos, nextBtn)));

  const apply = () => {
    state.q = search.value.trim(); state.archetype = arch.value; state.cadence = cad.value;
    state.tag = tag.value.split(",").map((t) => t.trim()).filter(Boolean).join(","); state.status = stat.value; state.limit = Number(size.value);
    cursors.length = 1; pageIdx = 0;
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(state)) if (v && !(k === "limit" && v === 25)) p.set(k, String(v));
    history.replaceState(null, "", `#/personas${p.toString() ? `?${p}` : ""}`);
    void refresh();
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); apply(); });
  arch.addEventListener("change", apply);
  cad.addEventListener("change", apply);
  stat.addEventListener("change", apply);
  size.addEventListener("change", apply);
  prev.addEventListener("click", () => { if (pageIdx > 0) { pageIdx--; void refresh(); } });
  nextBtn.addEventListener("click", () => { if (next) { cursors[pageIdx + 1] = next; pageIdx++; void refresh(); } });

  const sortVal = (p: Persona, k: string): string | number => {
    if (k === "lastTick") return p.lastTick?.finishedAt ?? "";
    if (k === "lease") return p.lease?.expiresAt ?? "";
    const v = (p as unknown as Record<string, unknown>)[k];
    return typeof v === "number" ? v : String(v ?? "").toLowerCase();
  };
  const th = (label: string, key: string) => {
    const sorted = sortKey === key;
    const b = h("button", { type: "button", class: "sort" }, label, sorted ? (sortDir > 0 ? " ▲" : " ▼") : "");
    b.addEventListener("click", () => { if (sortKey === key) sortDir = -sortDir; else { sortKey = key as typeof sortKey; sortDir = 1; } draw(); });
    return h("th", { scope: "col", "aria-sort": sorted ? (sortDir > 0 ? "ascending" : "descending") : "none" }, b);
  };
  const draw = () => {
    if (rows.length === 0) { replace(body, empty(state.q || state.archetype || state.cadence || state.tag || state.status ? "No persona matches these filters." : "No personas yet. Seed the catalog with bin/personasctl seed.")); return; }
    const list = sortKey ? [...rows].sort((a, b) => { const x = sortVal(a, sortKey), y = sortVal(b, sortKey); return (x < y ? -1 : x > y ? 1 : 0) * sortDir; }) : rows;
    replace(body, h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Personas table (scrolls sideways)" }, h("table", { id: "personas-table" },
      h("caption", { class: "sr-only" }, "Personas; column headers sort this page"),
      h("thead", null, h("tr", null, th("Name", "name"), th("Archetype", "archetype"), th("Cadence", "tickCadence"), th("Last tick", "lastTick"),
        th("Actions 7 d", "actions7d"), th("Failures", "consecutiveFailures"), th("Lease", "lease"), h("th", { scope: "col" }, "Status"))),
      h("tbody", null, list.map((p) => h("tr", { "data-id": p.userId },
        h("td", { "data-label": "Name" }, h("a", { href: personaHref(p.userId) }, p.name || p.email), h("div", { class: "muted small" }, p.email)),
        h("td", { "data-label": "Archetype" }, p.archetype),
        h("td", { "data-label": "Cadence" }, p.tickCadence),
        h("td", { "data-label": "Last tick" }, h("span", null, p.lastTick ? [badge(p.lastTick.status), " ", time(p.lastTick.finishedAt)] : p.lastActiveAt ? ["active ", time(p.lastActiveAt)] : h("span", { class: "muted" }, "never"))),
        h("td", { class: "num", "data-col": "actions7d", "data-label": "Actions 7 d" }, num(p.actions7d)),
        h("td", { class: "num", "data-label": "Failures" }, num(p.consecutiveFailures)),
        h("td", { "data-label": "Lease" }, h("span", null, p.lease ? [h("code", null, p.lease.runnerId), " until ", time(p.lease.expiresAt)] : h("span", { class: "muted" }, "—"))),
        h("td", { "data-label": "Status" }, statusBadges(p).length ? h("span", null, statusBadges(p)) : null)))))));
  };

  // seq numbers the requests: a poll's answer that lands after a newer
  // filter or page change answered is stale and dropped.
  let seq = 0;
  const refresh = async () => {
    const mine = ++seq;
    try {
      const res = await api<{ personas: Persona[]; nextCursor?: string | null }>("GET", qs({ limit: state.limit, cursor: cursors[pageIdx], q: state.q, archetype: state.archetype, cadence: state.cadence, tag: state.tag, status: state.status, fields: "summary" }));
      if (mine !== seq) return;
      next = res.nextCursor ?? null;
      for (const p of res.personas) archetypes.add(p.archetype);
      if (state.archetype) archetypes.add(state.archetype);
      const have = new Set([...arch.options].map((o) => o.value));
      for (const a of [...archetypes].sort()) if (!have.has(a)) arch.appendChild(h("option", { value: a, selected: a === state.archetype }, a));
      if (JSON.stringify(res.personas) !== JSON.stringify(rows) || body.getAttribute("aria-busy") !== null || !body.querySelector("table, .empty")) { rows = res.personas; draw(); }
      prev.disabled = pageIdx === 0; nextBtn.disabled = !next;
      pos.textContent = `Page ${pageIdx + 1} · ${rows.length} shown`;
      body.removeAttribute("aria-busy");
    } catch (err) {
      if (mine !== seq) return;
      if (fatal(err)) throw err;
      replace(body, errorPanel(err, "Personas"));
    }
  };
  return { refresh };
}

// ---- Persona ----------------------------------------------------------------

function mixChart(mix: Record<string, number>): Node {
  const entries = Object.entries(mix).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return empty("No module mix.");
  const total = entries.reduce((a, [, v]) => a + v, 0) || 1;
  const max = Math.max(...entries.map(([, v]) => v)) || 1;
  return h("table", { class: "bars", "aria-label": "Module mix" },
    h("tbody", null, entries.map(([m, v]) => h("tr", null, h("th", { scope: "row" }, m), h("td", { class: "bar-cell" }, bar(v / max)), h("td", { class: "num" }, `${num((v / total) * 100)} %`)))));
}

function ratingsTable(fb: ModuleFeedback[]): Node {
  if (fb.length === 0) return empty("No ratings yet.");
  return h("div", { class: "table-wrap" }, h("table", { class: "ratings" },
    h("thead", null, h("tr", null, h("th", { scope: "col" }, "Module"), h("th", { scope: "col" }, "Mean"), h("th", { scope: "col" }, "Count"), h("th", { scope: "col" }, "Distribution 1–5"), h("th", { scope: "col" }, "Last rated"))),
    h("tbody", null, fb.map((m) => {
      const max = Math.max(1, ...Object.values(m.distribution ?? {}));
      return h("tr", null,
        h("th", { scope: "row" }, h("a", { href: `#/modules/${encodeURIComponent(m.module)}` }, m.module)),
        h("td", { class: "num" }, num(m.avgRating, 2)),
        h("td", { class: "num" }, num(m.count)),
        h("td", null, h("div", { class: "dist", role: "img", "aria-label": [1, 2, 3, 4, 5].map((r) => `${r}: ${m.distribution?.[r] ?? 0}`).join(", ") },
          [1, 2, 3, 4, 5].map((r) => h("span", { class: `dist-col r${r}`, title: `${r} ★: ${m.distribution?.[r] ?? 0}` }, vbar((m.distribution?.[r] ?? 0) / max), h("span", { class: "small" }, r))))),
        h("td", null, time(m.lastRatedAt)));
    }))));
}

function vbar(f: number): HTMLElement {
  const outer = h("span", { class: "vbar", "aria-hidden": "true" });
  const inner = h("span", { class: "vbar-fill" });
  inner.style.height = `${Math.max(0, Math.min(1, f)) * 100}%`;
  outer.appendChild(inner);
  return outer;
}

const plural = (n: number, one: string, many = `${one}s`) => `${num(n)} ${n === 1 ? one : many}`;

function actionsTable(actions: Action[], linkTicks = true): Node {
  if (actions.length === 0) return empty("No actions recorded.");
  return h("div", { class: "table-wrap" }, h("table", { class: "actions" },
    h("thead", null, h("tr", null, h("th", { scope: "col" }, "When"), h("th", { scope: "col" }, "Tool"), h("th", { scope: "col" }, "Result"), h("th", { scope: "col" }, "Latency"), h("th", { scope: "col" }, "Tick"))),
    h("tbody", null, actions.map((a) => h("tr", null,
      h("td", null, time(a.createdAt)), h("td", null, h("code", null, a.toolName)),
      h("td", null, badge(a.result, a.result === "ok" ? "ok" : "failed"), a.errorMessage ? h("div", { class: "small muted" }, a.errorMessage) : null),
      h("td", { class: "num" }, a.latencyMs === null || a.latencyMs === undefined ? "—" : `${num(a.latencyMs)} ms`),
      h("td", null, linkTicks ? h("a", { href: `${personaHref(a.personaId)}/ticks/${encodeURIComponent(a.tickId)}` }, h("code", { class: "small" }, a.tickId)) : h("code", { class: "small" }, a.tickId)))))));
}

function ticksList(personaId: string, ticks: Tick[]): Node {
  if (ticks.length === 0) return empty("No ticks recorded yet.");
  return h("ol", { class: "timeline" }, ticks.map((t) => h("li", { class: `tick tick-${t.status ?? "unrecorded"}`, "data-tick": t.tickId },
    h("a", { href: `${personaHref(personaId)}/ticks/${encodeURIComponent(t.tickId)}` }, badge(t.status ?? "unrecorded", t.status ?? undefined), " ", time(t.startedAt ?? t.createdAt)),
    " · ", t.durationMs !== null ? `${num(t.durationMs / 1000, 1)} s` : t.status === "running" ? "running" : "—",
    ` · ${plural(t.actions, "action")} · ${plural(t.errors, "error")} · ${plural(t.ratings, "rating")}`,
    t.staleWrites > 0 ? ` · ${plural(t.staleWrites, "stale write")}` : "",
    t.summaryExcerpt ? h("p", { class: "summary", lang: "de", "data-field": "summary" }, t.summaryExcerpt) : null,
    t.errorMessage ? h("p", { class: "small muted" }, `${t.errorKind ?? "error"}: ${t.errorMessage}`) : null)));
}

export function personaPage(main: HTMLElement, id: string): Page {
  const head = h("div", { class: "region", "aria-busy": "true" }, loading());
  const controls = h("div", { class: "controls row", "aria-label": "Persona actions" });
  const profile = section("Profile", "profile");
  const mix = section("Module mix", "mix");
  const ticks = section("Ticks", "ticks");
  const ratings = section("Ratings by module", "ratings");
  const actions = section("Recent actions", "actions");
  const notes = section("Recent notes", "persona-notes", h("p", { class: "small" }, h("a", { href: `#/notes?persona=${encodeURIComponent(id)}` }, "All of this persona's notes →")));
  replace(main, h("p", null, h("a", { href: "#/personas" }, "← All personas")), head, controls, h("div", { class: "grid2" }, profile.el, mix.el), ticks.el, ratings.el, notes.el, actions.el);
  const drawTicks = region(ticks.body, "Tick timeline");
  const drawNotes = region(notes.body, "Recent notes");
  let current: Persona | null = null;

  const act = async (label: string | ((res: unknown) => string), method: string, path: string, body?: unknown) => {
    try { const res = await api<unknown>(method, path, body); toast(typeof label === "string" ? label : label(res)); } catch (e) {
      if (fatal(e)) throw e;
      toast((e as Error).message, "error");
    }
    await refresh();
  };
  const drawControls = (p: Persona) => {
    const pid = encodeURIComponent(p.userId);
    const btn = (id2: string, label: string, fn: () => void, cls = "", disabled = false) => h("button", { type: "button", id: id2, class: cls, onclick: fn, disabled, "aria-disabled": disabled ? "true" : null }, label);
    replace(controls,
      p.enabled === false
        ? btn("btn-enable", "Enable", () => void act("Enabled", "PATCH", `/${pid}`, { enabled: true }))
        : btn("btn-disable", "Disable", () => void act("Disabled", "PATCH", `/${pid}`, { enabled: false })),
      btn("btn-release", "Release lease", () => void act((r) => (r as { released?: boolean } | undefined)?.released ? "Lease released" : "The persona held no lease", "POST", `/${pid}/lease/release`, {}), "", !p.lease),
      btn("btn-unquarantine", p.quarantined ? "Lift quarantine" : "Reset failures", () => void act(p.quarantined ? "Quarantine lifted" : "Failures reset", "POST", `/${pid}/unquarantine`, {}), "", !p.quarantined && p.consecutiveFailures === 0),
      btn("btn-delete", "Delete…", async () => {
        const ok = await confirmDialog({ title: `Delete ${p.name || p.email}?`, body: "This deletes the account in mana-auth and all of its actions, ratings and ticks. It cannot be undone.", confirm: "Delete for good", danger: true, mustType: p.email });
        if (!ok) return;
        try {
          await api("DELETE", `/${pid}`);
          toast(`Deleted ${p.email}`);
          location.hash = "#/personas";
        } catch (e) { if (fatal(e)) throw e; toast((e as Error).message, "error"); }
      }, "danger"));
  };

  const refresh = async () => {
    let d: Detail;
    try {
      d = await api<Detail>("GET", `/${encodeURIComponent(id)}`);
    } catch (err) {
      if (fatal(err)) throw err;
      replace(head, errorPanel(err, "Persona"));
      replace(controls);
      return;
    }
    const p = d.persona;
    const key = JSON.stringify(d);
    if (JSON.stringify(current) !== JSON.stringify(p) || head.dataset.key !== key) {
      head.dataset.key = key;
      if (JSON.stringify(current) !== JSON.stringify(p)) drawControls(p);
      current = p;
      replace(head, h("h1", null, p.name || p.email, " ", statusBadges(p)), h("p", { class: "muted" }, p.email, " · ", h("code", null, p.userId)));
      replace(profile.body, h("dl", { class: "kv" },
        h("dt", null, "Archetype"), h("dd", null, p.archetype),
        h("dt", null, "Cadence"), h("dd", null, p.tickCadence, ` from ${String(p.tickHour).padStart(2, "0")}:00 UTC`),
        h("dt", null, "Last active"), h("dd", null, time(p.lastActiveAt)),
        h("dt", null, "Last tick"), h("dd", null, p.lastTick ? [badge(p.lastTick.status), " ", time(p.lastTick.finishedAt)] : "—"),
        h("dt", null, "Enabled"), h("dd", { "data-field": "enabled" }, p.enabled ? "yes" : "no (never due)"),
        h("dt", null, "Failures in a row"), h("dd", { "data-field": "consecutiveFailures" }, num(p.consecutiveFailures), p.quarantined ? [" ", badge("quarantined")] : null),
        h("dt", null, "Next attempt"), h("dd", null, p.nextAttemptAt ? time(p.nextAttemptAt) : "not backing off"),
        h("dt", null, "Lease"), h("dd", { "data-field": "lease" }, p.lease ? [h("code", null, p.lease.runnerId), new Date(p.lease.expiresAt).getTime() > Date.now() ? " until " : " lapsed ", time(p.lease.expiresAt), p.lease.tickId ? [" · tick ", h("code", null, p.lease.tickId)] : null] : "none"),
        h("dt", null, "Tags"), h("dd", null, p.tags?.length ? p.tags.map((t) => [badge(t, "tag"), " "]) : "—"),
        h("dt", null, "Created"), h("dd", null, time(p.createdAt, "absolute"))),
        h("h3", null, "System prompt"), h("blockquote", { class: "prompt", lang: "de" }, p.systemPrompt));
      replace(mix.body, mixChart(p.moduleMix));
      replace(ratings.body, ratingsTable(d.feedbackByModule ?? []));
      replace(actions.body, actionsTable(d.recentActions ?? []));
    }
    await Promise.all([
      drawTicks(() => api<{ ticks: Tick[] }>("GET", `/${encodeURIComponent(id)}/ticks${qs({ limit: 20 })}`), (r) => ticksList(id, r.ticks)),
      drawNotes(() => optional(api<{ feedback: Feedback[] }>("GET", `/feedback${qs({ persona: id, limit: 10 })}`)), (r) => notesList(r.feedback ?? [], false)),
    ]);
  };
  return { refresh };
}

export function tickPage(main: HTMLElement, id: string, tickId: string): Page {
  const body = h("div", { class: "region", "aria-busy": "true" }, loading());
  replace(main, h("p", null, h("a", { href: personaHref(id) }, "← Persona")), h("h1", null, "Tick ", h("code", null, tickId)), body);
  const draw = region(body, "Tick detail");
  const opt = (v: string | number | null) => (v === null ? "—" : typeof v === "number" ? num(v) : v);
  return {
    refresh: async () => {
      await draw(() => api<TickDetail>("GET", `/${encodeURIComponent(id)}/ticks/${encodeURIComponent(tickId)}`), (r) => {
        const t = r.tick;
        return [
          h("section", { class: "panel", "data-region": "tick-summary" }, h("h2", null, "Summary"),
            h("p", null, badge(t.status ?? "unrecorded", t.status ?? undefined), " started ", time(t.startedAt), " · finished ", time(t.finishedAt),
              t.durationMs !== null ? ` · ${num(t.durationMs / 1000, 1)} s` : ""),
            t.recorded ? null : h("p", { class: "muted" }, "Known only from its actions and ratings (a runner without tick records)."),
            h("dl", { class: "kv" },
              h("dt", null, "Runner"), h("dd", null, t.runnerId ? h("code", null, t.runnerId) : "—"),
              h("dt", null, "Model"), h("dd", null, opt(t.model)),
              h("dt", null, "Platform"), h("dd", null, opt(t.platformVersion)),
              h("dt", null, "Tokens in / out"), h("dd", null, `${opt(t.tokensIn)} / ${opt(t.tokensOut)}`),
              h("dt", null, "Rating"), h("dd", null, opt(t.ratingStatus)),
              h("dt", null, "Stale writes"), h("dd", null, num(t.staleWrites))),
            t.summary ? h("blockquote", { class: "prompt", lang: "de", "data-field": "summary" }, t.summary) : empty("No summary."),
            t.errorMessage ? h("p", { class: "error" }, `${t.errorKind ?? "error"}: ${t.errorMessage}`) : null),
          h("section", { class: "panel", "data-region": "tick-actions" }, h("h2", null, `Actions (${num(r.actions.length)})`), actionsTable(r.actions, false)),
          h("section", { class: "panel", "data-region": "tick-ratings" }, h("h2", null, "Ratings"), notesList(r.feedback)),
        ];
      });
    },
  };
}

// ---- Modules, notes -----------------------------------------------------------

export function modulesPage(main: HTMLElement): Page {
  let win = "7d";
  const sel = h("select", { id: "mod-window" }, h("option", { value: "7d" }, "7 days"), h("option", { value: "28d" }, "28 days"));
  const sec = section("Modules", "modules", h("div", { class: "row" }, h("label", { for: "mod-window" }, "Window"), sel));
  replace(main, h("h1", null, "Modules"), sec.el);
  const draw = region(sec.body, "Module ratings");
  const refresh = async () => {
    await draw(() => optional(api<{ modules: ModuleSummary[] }>("GET", `/modules${qs({ window: win })}`)), (r) => (r.modules ?? []).length === 0 ? empty("No ratings in this window.") :
      h("div", { class: "table-wrap" }, h("table", null,
        h("thead", null, h("tr", null, ["Module", "Mean", "95 % interval", "Count", "Change", "Personas", "Last rated"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", null, r.modules.map((m) => h("tr", null,
          h("th", { scope: "row" }, h("a", { href: `#/modules/${encodeURIComponent(m.module)}` }, m.module)),
          h("td", { class: "num", "data-col": "mean" }, num(m.mean, 2)),
          h("td", { class: "num" }, m.ci ? `${num(m.ci.low, 2)}–${num(m.ci.high, 2)}` : "—"),
          h("td", { class: "num", "data-col": "count" }, num(m.count)),
          h("td", { class: "num" }, m.change === null ? "—" : [`${m.change.delta >= 0 ? "+" : ""}${num(m.change.delta, 2)}`, m.change.significant ? [" ", badge("significant", m.change.delta < 0 ? "failed" : "ok")] : null]),
          h("td", { class: "num" }, num(m.personas)), h("td", null, time(m.lastRatedAt))))))));
  };
  sel.addEventListener("change", () => { win = sel.value; void refresh(); });
  return { refresh };
}

/** Whether a bucket lies in the verdict's flagged run (since … since + buckets, complete buckets only). */
function inRun(t: Trend, k: { start: string; partial: boolean }): boolean {
  const v = t.verdict;
  if (!v.flagged || !v.since || k.partial) return false;
  const days = t.bucket === "week" ? 7 : 1;
  const from = Date.parse(v.since);
  const at = Date.parse(k.start);
  return at >= from && at < from + v.buckets * days * 86_400_000;
}

function trendChart(t: Trend): Node {
  const b = t.buckets.filter((x) => x.mean !== null);
  if (b.length === 0) return empty("No ratings for this module yet.");
  const W = 640, H = 220, P = 32;
  const x = (i: number) => P + (b.length === 1 ? (W - 2 * P) / 2 : (i * (W - 2 * P)) / (b.length - 1));
  const y = (v: number) => H - P - ((v - 1) / 4) * (H - 2 * P);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": `${t.bucket === "day" ? "Daily" : "Weekly"} mean rating of ${t.module}${t.verdict.flagged ? ", flagged" : ""}` });
  for (const v of [1, 2, 3, 4, 5]) {
    svg.appendChild(s("line", { x1: P, x2: W - P, y1: y(v), y2: y(v), class: "grid" }));
    svg.appendChild(s("text", { x: 4, y: y(v) + 4, class: "axis" }, String(v)));
  }
  b.forEach((k, i) => { if (inRun(t, k)) svg.appendChild(s("rect", { x: x(i) - 10, y: P, width: 20, height: H - 2 * P, class: "flag-band", "data-flag": k.start }, s("title", {}, `${k.start}: in the flagged run`))); });
  const base = t.verdict.baselineMean;
  if (t.verdict.flagged && base !== null) {
    const run = b.map((k, i) => (inRun(t, k) ? i : -1)).filter((i) => i >= 0);
    const i0 = Math.max(0, (run[0] ?? 0) - t.verdict.buckets);
    svg.appendChild(s("polyline", { points: `${x(i0)},${y(base)} ${x(b.length - 1)},${y(base)}`, class: "baseline" }, s("title", {}, `baseline ${num(base, 2)}`)));
  }
  // The x axis: each bucket's first day (YYYY-MM-DD, UTC), thinned to about eight labels.
  const every = Math.max(1, Math.ceil(b.length / 8));
  b.forEach((k, i) => { if (i % every === 0 || i === b.length - 1) svg.appendChild(s("text", { x: x(i), y: H - 8, class: "axis", "text-anchor": "middle", "data-x": k.start }, k.start.slice(5))); });
  svg.appendChild(s("polyline", { points: b.map((k, i) => `${x(i)},${y(k.mean as number)}`).join(" "), class: "line" }));
  b.forEach((k, i) => svg.appendChild(s("circle", { cx: x(i), cy: y(k.mean as number), r: 4, class: k.partial ? "pt partial" : "pt" },
    s("title", {}, `${k.start}: mean ${num(k.mean, 2)} (${k.count} ratings)${k.partial ? ", partial" : ""}${inRun(t, k) ? ", flagged" : ""}`))));
  return h("figure", null, svg, h("figcaption", { class: "muted small" }, `Solid: mean per ${t.bucket} (rating 1–5; labels: the ${t.bucket}'s first day, MM-DD, UTC); dashed: the verdict's baseline; shaded: the ${t.bucket}s of the flagged run; hollow point: the current, partial ${t.bucket}.`));
}

export function modulePage(main: HTMLElement, module: string): Page {
  const trend = section("Weekly trend", "trend");
  const notes = section("Worst notes", "worst", h("p", { class: "small" }, h("a", { href: `#/notes?module=${encodeURIComponent(module)}&maxRating=2` }, "All low-rated notes of this module →")));
  replace(main, h("p", null, h("a", { href: "#/modules" }, "← Modules")), h("h1", null, "Module ", h("code", null, module)), trend.el, notes.el);
  const dt = region(trend.body, "Module trend");
  const dn = region(notes.body, "Notes");
  return {
    refresh: async () => {
      await Promise.all([
        dt(() => optional(api<Trend>("GET", `/modules/${encodeURIComponent(module)}/trend${qs({ bucket: "week" })}`)), (t) => [
          t.verdict.flagged ? h("p", { class: "flagged", "data-flagged": "true" }, badge("flagged", "quarantined"),
            ` rated ${num(t.verdict.runMean, 2)} against a baseline of ${num(t.verdict.baselineMean, 2)}${t.verdict.drop !== null ? ` (−${num(t.verdict.drop, 2)})` : ""} for ${t.verdict.buckets} ${t.bucket === "day" ? "day" : "week"}${t.verdict.buckets === 1 ? "" : "s"}`, t.verdict.since ? [" since ", day(t.verdict.since)] : null)
            : h("p", { "data-flagged": "false" }, `Not flagged (rule: ${t.verdict.k} buckets of ≥ ${t.verdict.minRatings} ratings, ${num(t.verdict.delta, 2)} below the baseline).`),
          trendChart(t),
        ]),
        dn(() => optional(api<{ feedback: Feedback[] }>("GET", `/feedback${qs({ module, maxRating: 2, limit: 20 })}`)), (r) => notesList(r.feedback ?? [])),
      ]);
    },
  };
}

function notesList(items: (Feedback | (TickDetail["feedback"][number] & Partial<Feedback>))[], withPersona = true): Node {
  if (items.length === 0) return empty("No notes.");
  return h("ul", { class: "notes" }, items.map((f) => h("li", { "data-feedback": f.id },
    h("div", null, badge(`${f.rating} ★`, `r${f.rating}`), " ", h("a", { href: `#/modules/${encodeURIComponent(f.module)}` }, f.module),
      withPersona && f.personaId ? [" · ", h("a", { href: personaHref(f.personaId) }, f.personaName ?? f.personaId)] : null,
      withPersona && f.personaArchetype ? h("span", { class: "muted" }, ` (${f.personaArchetype})`) : null, " · ", time(f.createdAt),
      f.personaId && f.tickId ? [" · ", h("a", { href: `${personaHref(f.personaId)}/ticks/${encodeURIComponent(f.tickId)}`, class: "small" }, "tick")] : null),
    f.notes ? h("p", { lang: "de" }, f.notes) : h("p", { class: "muted" }, "no note"))));
}

// ---- Tools -------------------------------------------------------------------

export function toolsPage(main: HTMLElement, q: URLSearchParams): Page {
  let win = "7d";
  const focus = q.get("tool") ?? "";
  const sel = h("select", { id: "tools-window" }, ["24h", "7d", "28d"].map((w) => h("option", { value: w, selected: w === win }, w)));
  const sec = section("Tools", "tools", h("div", { class: "row" }, h("label", { for: "tools-window" }, "Window"), sel));
  replace(main, h("h1", null, "Tools"), sec.el);
  const draw = region(sec.body, "Tool statistics");
  const pct = (v: number | null) => (v === null ? "—" : `${num(v * 100, 1)} %`);
  let scrolled = false;
  const refresh = async () => {
    await draw(() => optional(api<{ tools: ToolStats[] }>("GET", `/tools${qs({ window: win })}`)), (r) => (r.tools ?? []).length === 0 ? empty("No tool calls in this window.") :
      h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Tools table (scrolls sideways)" }, h("table", { id: "tools-table" },
        h("thead", null, h("tr", null, ["Tool", "Calls", "Errors", "Error rate", "Change", "p95", "Most frequent errors"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", null, r.tools.map((x) => h("tr", { "data-tool": x.name, class: x.name === focus ? "focus" : "" },
          h("th", { scope: "row" }, h("code", null, x.name)),
          h("td", { class: "num" }, num(x.calls)), h("td", { class: "num" }, num(x.errors)), h("td", { class: "num" }, pct(x.errorRate)),
          h("td", { class: "num" }, x.errorRateChange === null ? "—" : `${x.errorRateChange >= 0 ? "+" : ""}${num(x.errorRateChange * 100, 1)} pts`),
          h("td", { class: "num" }, x.p95LatencyMs === null ? "—" : `${num(x.p95LatencyMs)} ms`),
          h("td", null, (x.topErrors ?? []).length === 0 ? h("span", { class: "muted" }, "—")
            : h("ul", { class: "plain" }, x.topErrors.map((e) => h("li", { class: "small" }, `${num(e.count)} × `, h("code", null, e.sample)))))))))));
    if (focus && !scrolled) { scrolled = true; sec.body.querySelector("tr.focus")?.scrollIntoView({ block: "center" }); }
  };
  sel.addEventListener("change", () => { win = sel.value; void refresh(); });
  return { refresh };
}

const NOTE_FILTERS = ["module", "persona", "archetype", "minRating", "maxRating", "from", "to"] as const;

export function notesPage(main: HTMLElement, q: URLSearchParams): Page {
  const f: Record<(typeof NOTE_FILTERS)[number], string> = Object.fromEntries(NOTE_FILTERS.map((k) => [k, q.get(k) ?? ""])) as never;
  const text = (id: string, value: string, attrs: Record<string, string> = {}) => h("input", { id, type: "text", value, autocomplete: "off", ...attrs });
  const rating = (id: string, value: string, prefix: string) => h("select", { id }, h("option", { value: "" }, "any"), [1, 2, 3, 4, 5].map((n) => h("option", { value: n, selected: String(n) === value }, `${prefix} ${n}`)));
  const fields = {
    module: text("n-module", f.module),
    persona: text("n-persona", f.persona, { placeholder: "persona id" }),
    archetype: text("n-archetype", f.archetype),
    minRating: rating("n-min", f.minRating, "≥"),
    maxRating: rating("n-max", f.maxRating, "≤"),
    from: h("input", { id: "n-from", type: "date", value: f.from }),
    to: h("input", { id: "n-to", type: "date", value: f.to }),
  };
  const labels: Record<keyof typeof fields, string> = { module: "Module", persona: "Persona", archetype: "Archetype", minRating: "Rating at least", maxRating: "Rating at most", from: "From (UTC day)", to: "To (UTC day)" };
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter notes" },
    (Object.keys(fields) as (keyof typeof fields)[]).map((k) => h("div", null, h("label", { for: fields[k].id }, labels[k]), fields[k])),
    h("button", { type: "submit", class: "primary" }, "Apply"),
    h("button", { type: "button", id: "n-clear", onclick: () => { for (const el of Object.values(fields)) el.value = ""; apply(); } }, "Clear"));
  const sec = section("Notes", "notes");
  const prev = h("button", { type: "button", id: "notes-prev", disabled: true }, "← Newer");
  const more = h("button", { type: "button", id: "notes-more", disabled: true }, "Older notes →");
  const cursors: string[] = [""];
  let idx = 0;
  let next: string | null = null;
  replace(main, h("h1", null, "Notes"), form, sec.el, h("nav", { class: "pager", "aria-label": "Pages" }, prev, more));
  const draw = region(sec.body, "Notes feed");
  const refresh = async () => {
    const r = await draw(() => optional(api<{ feedback: Feedback[]; nextCursor?: string | null }>("GET", `/feedback${qs({ ...f, cursor: cursors[idx], limit: 50 })}`)), (r) => notesList(r.feedback ?? []));
    next = r?.nextCursor ?? null;
    more.disabled = !next;
    prev.disabled = idx === 0;
  };
  const apply = () => {
    for (const k of NOTE_FILTERS) f[k] = fields[k].value.trim();
    cursors.length = 1; idx = 0;
    const p = new URLSearchParams();
    for (const k of NOTE_FILTERS) if (f[k]) p.set(k, f[k]);
    history.replaceState(null, "", `#/notes${p.toString() ? `?${p}` : ""}`);
    void refresh();
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); apply(); });
  for (const k of ["minRating", "maxRating"] as const) fields[k].addEventListener("change", apply);
  more.addEventListener("click", () => { if (next) { cursors[idx + 1] = next; idx++; void refresh(); } });
  prev.addEventListener("click", () => { if (idx > 0) { idx--; void refresh(); } });
  return { refresh };
}

// Re-exported so the bundle keeps one import site for page helpers.
export { notAvailable };
