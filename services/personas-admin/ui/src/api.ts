// The admin API client: every call carries the in-memory JWT, and every
// failure becomes an ApiError whose kind a page can explain in words.
import { AuthError, bearer, renew } from "./auth";

export type ApiErrorKind = "signed-out" | "forbidden" | "not-found" | "not-available" | "migrating" | "unavailable" | "invalid" | "conflict" | "other";

export class ApiError extends Error {
  constructor(public kind: ApiErrorKind, public status: number, message: string) {
    super(message);
  }
}

export const BASE = "/api/v1/personas/admin";

interface ErrBody { error?: string; message?: string; details?: { field?: string; message?: string }[] }

async function classify(res: Response): Promise<ApiError> {
  let body: ErrBody = {};
  try { body = (await res.json()) as ErrBody; } catch { /* not JSON */ }
  const msg = body.message || body.error || `HTTP ${res.status}`;
  switch (res.status) {
    case 401: return new ApiError("signed-out", 401, "Your session has ended. Please sign in again.");
    case 403: return new ApiError("forbidden", 403, body.message || "Admin access required");
    case 404:
      // The service's own answer for a route it does not have (yet), or the gateway's bare 404.
      if (!body.message || /no such endpoint/i.test(body.message)) return new ApiError("not-available", 404, "not available yet");
      return new ApiError("not-found", 404, msg);
    case 405: return new ApiError("not-available", 405, "not available yet");
    case 400: {
      const details = (body.details ?? []).map((d) => `${d.field ?? ""}: ${d.message ?? ""}`).join("; ");
      return new ApiError("invalid", 400, details ? `${msg} (${details})` : msg);
    }
    case 409: return new ApiError("conflict", 409, msg);
    case 503:
      if (/migrat/i.test(msg)) return new ApiError("migrating", 503, `The database schema is being migrated: ${msg}`);
      return new ApiError("unavailable", 503, `The service is unavailable: ${msg}`);
    case 502: case 504: return new ApiError("unavailable", res.status, `The admin service is unreachable (HTTP ${res.status}): ${msg}`);
    default: return new ApiError("other", res.status, msg);
  }
}

export async function api<T>(method: string, path: string, body?: unknown, retried = false): Promise<T> {
  let jwt: string;
  try {
    jwt = await bearer();
  } catch (e) {
    if (e instanceof AuthError && e.kind === "signed-out") throw new ApiError("signed-out", 401, e.message);
    throw new ApiError("unavailable", 0, e instanceof Error ? e.message : String(e));
  }
  let res: Response;
  try {
    res = await fetch(BASE + path, {
      method,
      credentials: "same-origin",
      headers: { Authorization: `Bearer ${jwt}`, Accept: "application/json", ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new ApiError("unavailable", 0, "The admin API cannot be reached (network error).");
  }
  if (res.status === 401 && !retried) {
    // The token may have expired while the tab slept: renew once and retry.
    try { await renew(); } catch { throw await classify(res); }
    return api<T>(method, path, body, true);
  }
  if (!res.ok) throw await classify(res);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export function qs(params: Record<string, string | number | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : "";
}

// ---- shapes: as services/personas-admin/openapi.yaml defines them ----------

export type TickStatus = "running" | "ok" | "empty" | "failed" | "timeout" | "crashed";

export interface Persona {
  userId: string; email: string; name: string; archetype: string;
  /** Absent in the list with fields=summary (the personas table asks for that). */
  systemPrompt?: string;
  moduleMix: Record<string, number>; tickCadence: string; lastActiveAt: string | null;
  createdAt: string; updatedAt: string; actions7d: number;
  /** Past its slot by the overview's grace (the list's status=overdue rule). */
  overdue: boolean;
  tags?: string[];
  /** The effective tick hour (UTC), set or derived. */
  tickHour: number;
  enabled: boolean;
  quarantined: boolean;
  consecutiveFailures: number;
  /** End of the backoff after a failure; null when not backing off. */
  nextAttemptAt: string | null;
  /** The latest finished tick (null before the first). */
  lastTick: { status: TickStatus; finishedAt: string | null } | null;
  /** expiresAt in the past: a lapsed lease not yet counted as a crash. */
  lease: { runnerId: string; expiresAt: string; tickId?: string } | null;
}
export interface Action { id: string; personaId: string; tickId: string; seq?: number; toolName: string; inputHash: string | null; result: "ok" | "error"; errorMessage: string | null; latencyMs: number | null; createdAt: string }
export interface ModuleFeedback { module: string; avgRating: number; count: number; distribution: Record<string, number>; lastRatedAt: string }
export interface Detail { persona: Persona; recentActions: Action[]; feedbackByModule: ModuleFeedback[] }
export interface Tick {
  tickId: string;
  /** false: known only from its actions or feedback (then only counts, duration and createdAt). */
  recorded: boolean;
  status: TickStatus | null; runnerId: string | null; model: string | null; platformVersion: string | null;
  startedAt: string | null; finishedAt: string | null;
  errorKind: string | null; errorMessage: string | null; ratingStatus: "ok" | "unparsable" | "missing" | null;
  tokensIn: number | null; tokensOut: number | null; staleWrites: number;
  actions: number; errors: number; ratings: number; durationMs: number | null; createdAt: string;
  /** Only in GET /{id}/ticks/{tickId}. */
  summary?: string | null;
  /** Only in GET /{id}/ticks: the summary's first 200 characters. */
  summaryExcerpt?: string | null;
}
export interface TickFeedback { id: string; module: string; rating: number; notes: string | null; createdAt: string }
export interface TickDetail { tick: Tick & { summary: string | null }; actions: Action[]; feedback: TickFeedback[] }
export interface Feedback { id: string; personaId?: string; personaName?: string; personaArchetype?: string; tickId?: string; module: string; rating: number; notes: string | null; createdAt: string }
export interface Fleet { paused: boolean; updatedAt: string; updatedBy: string | null }
export interface PersonaCount { count: number; ids: string[] }
export interface Interval { low: number; high: number }
export interface ToolStats { name: string; calls: number; errors: number; errorRate: number; p95LatencyMs: number | null; meanLatencyMs: number | null; topErrors: { sample: string; count: number; other?: boolean }[]; previousCalls: number; previousErrorRate: number | null; errorRateChange: number | null }
export interface Overview {
  window: string; since: string; from: string; fleetPaused: boolean;
  personas: { total: number; enabled: number; disabled: PersonaCount; quarantined: PersonaCount; overdue: PersonaCount };
  ticks: { finished: number; byStatus: Record<string, number>; successRate: number | null };
  flaggedModules: { module: string; since: string; weeks: number; drop: number; baselineMean: number; runMean: number }[];
  errorRateRises: ToolStats[];
  ratings: { rated: number; unparsable: number };
}
export interface ModuleSummary {
  module: string; mean: number; count: number; ci: Interval | null; distribution: Record<string, number>; personas: number; lastRatedAt: string;
  change: { delta: number; previousMean: number; previousCount: number; ci: Interval | null; significant: boolean } | null;
}
export interface TrendBucket { start: string; mean: number | null; count: number; ci: Interval | null; distribution: Record<string, number>; partial: boolean }
export interface Trend {
  module: string; bucket: "day" | "week"; buckets: TrendBucket[];
  verdict: { flagged: boolean; since: string | null; buckets: number; baselineMean: number | null; runMean: number | null; drop: number | null; k: number; delta: number; minRatings: number; excludedTags: string[]; newestComplete: string | null };
}
