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

// ---- shapes (fields the backend adds later are optional) --------------------

export interface Persona {
  userId: string; email: string; name: string; archetype: string; systemPrompt: string;
  moduleMix: Record<string, number>; tickCadence: string; lastActiveAt: string | null;
  createdAt: string; updatedAt: string; actions7d: number;
  lastTick?: { status: string; finishedAt: string | null } | null;
  consecutiveFailures?: number; quarantined?: boolean; enabled?: boolean;
  lease?: { runnerId: string; expiresAt: string } | null;
  nextAttemptAt?: string | null; tickHour?: number; overdue?: boolean; tags?: string[];
}
export interface Action { id: string; tickId: string; toolName: string; result: string; errorMessage?: string | null; latencyMs?: number | null; createdAt: string }
export interface ModuleFeedback { module: string; avgRating: number; count: number; distribution: Record<string, number>; lastRatedAt: string }
export interface Detail { persona: Persona; recentActions: Action[]; feedbackByModule: ModuleFeedback[] }
export interface Tick {
  tickId: string; status: string; startedAt?: string; finishedAt?: string | null; durationMs?: number | null;
  actions?: number; errors?: number; ratings?: number; summary?: string | null; errorKind?: string | null; errorMessage?: string | null; runnerId?: string;
}
export interface Feedback { id?: string; tickId?: string; module: string; rating: number; notes?: string | null; createdAt?: string; personaId?: string; personaName?: string; archetype?: string }
