// Sign-in the way the platform does it: Better Auth's email sign-in on the
// same origin (through the gateway) sets the HttpOnly session cookie
// mana.session_token; GET /api/auth/token trades that cookie for a
// short-lived admin JWT. The JWT lives only in this module's memory — never
// localStorage or sessionStorage — and is renewed about a minute before it
// expires. A reload simply asks /api/auth/token again (the cookie survives).

export type AuthFailure = "invalid" | "unavailable" | "not-supported" | "signed-out";

export class AuthError extends Error {
  constructor(public kind: AuthFailure, message: string) {
    super(message);
  }
}

interface Claims { exp?: number; iat?: number; email?: string; role?: string; sub?: string }

let token: string | null = null;
let claims: Claims = {};
let renewTimer: number | undefined;
let renewing: Promise<string> | null = null;
const listeners = new Set<() => void>();

/** Seconds before expiry at which the token is renewed (at most a quarter of a short token's lifetime). */
export const RENEW_BEFORE_S = 60;

/** When to renew the current token: a minute before expiry, or a quarter of its lifetime for tokens shorter than 4 minutes. */
function renewBeforeMs(): number {
  const life = claims.exp && claims.iat ? claims.exp - claims.iat : 0;
  return (life > 0 ? Math.min(RENEW_BEFORE_S, life / 4) : RENEW_BEFORE_S) * 1000;
}

export function onChange(fn: () => void): void { listeners.add(fn); }
function changed(): void { for (const fn of listeners) fn(); }

export function currentClaims(): Claims { return claims; }
export function signedIn(): boolean { return token !== null; }

function decode(jwt: string): Claims {
  try {
    const part = jwt.split(".")[1] ?? "";
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    return JSON.parse(json) as Claims;
  } catch {
    return {};
  }
}

function setToken(jwt: string | null): void {
  token = jwt;
  claims = jwt ? decode(jwt) : {};
  window.clearTimeout(renewTimer);
  renewTimer = undefined;
  if (jwt && claims.exp) {
    const delay = Math.max(1_000, claims.exp * 1000 - Date.now() - renewBeforeMs());
    renewTimer = window.setTimeout(() => { void renew().catch(() => changed()); }, delay);
  }
  changed();
}

async function authFetch(path: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(path, { credentials: "same-origin", ...init, headers: { Accept: "application/json", ...(init?.headers ?? {}) } });
  } catch {
    throw new AuthError("unavailable", "mana-auth cannot be reached (network error). Is the gateway running?");
  }
}

function unavailable(res: Response): AuthError {
  return new AuthError("unavailable", `mana-auth is unavailable (HTTP ${res.status}). Try again in a moment.`);
}

/** Trades the session cookie for a fresh JWT. Rejects with "signed-out" when there is no session. */
export function renew(): Promise<string> {
  if (renewing) return renewing;
  renewing = (async () => {
    const res = await authFetch("/api/auth/token");
    if (res.status === 401 || res.status === 403) {
      setToken(null);
      throw new AuthError("signed-out", "Your session has ended. Please sign in again.");
    }
    if (res.status === 404) throw new AuthError("not-supported", "This mana-auth does not offer /api/auth/token.");
    if (!res.ok) throw unavailable(res);
    const body = (await res.json()) as { token?: string };
    if (!body.token) throw new AuthError("unavailable", "mana-auth answered without a token.");
    setToken(body.token);
    return body.token;
  })().finally(() => { renewing = null; });
  return renewing;
}

/** The current JWT, renewed first if it expires within half the renewal margin (timers sleep in background tabs). */
export async function bearer(): Promise<string> {
  if (token && claims.exp && claims.exp * 1000 - Date.now() > renewBeforeMs() / 2) return token;
  if (token && !claims.exp) return token;
  return renew();
}

export async function signIn(email: string, password: string): Promise<void> {
  const res = await authFetch("/api/auth/sign-in/email", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  if (res.status === 401 || res.status === 400 || res.status === 422) {
    throw new AuthError("invalid", "Invalid email or password.");
  }
  if (res.status === 404) throw new AuthError("not-supported", "Sign-in is not available on this mana-auth (no /api/auth/sign-in/email).");
  if (!res.ok) throw unavailable(res);
  await renew();
}

export async function signOut(): Promise<void> {
  try {
    await authFetch("/api/auth/sign-out", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  } finally {
    setToken(null);
  }
}
