// Personas admin dashboard. Hash routing under /personas/ (#/personas/ID…),
// so the server only serves index.html and hashed assets. Every page
// re-reads its data every POLL_MS (polling, not server-sent events: the
// admin API is plain request/response behind nginx and a 10 s delay is
// fine for an operator's screen).
import "./style.css";
import { api, ApiError } from "./api";
import { AuthError, currentClaims, onChange, renew, signedIn, signIn, signOut } from "./auth";
import { h, refreshRelativeTimes, replace } from "./dom";
import { loading } from "./ui";
import { type Page, overviewPage, personasPage, personaPage, tickPage, modulesPage, modulePage, notesPage, toolsPage } from "./pages";

export const POLL_MS = 10_000;

const app = document.getElementById("app")!;
let page: Page | null = null;
let pollTimer: number | undefined;
let shellShown = false;

type Route = { name: string; make: (main: HTMLElement, q: URLSearchParams) => Page };

function route(): { nav: string; make: (main: HTMLElement) => Page; title: string } {
  const raw = location.hash.replace(/^#/, "") || "/overview";
  const [path, query = ""] = raw.split("?", 2);
  const q = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const r = (nav: string, title: string, make: Route["make"]) => ({ nav, title, make: (m: HTMLElement) => make(m, q) });
  if (parts[0] === "personas" && parts[1] && parts[2] === "ticks" && parts[3]) return r("personas", "Tick", (m) => tickPage(m, parts[1], parts[3]));
  if (parts[0] === "personas" && parts[1]) return r("personas", "Persona", (m) => personaPage(m, parts[1]));
  if (parts[0] === "personas") return r("personas", "Personas", (m, qq) => personasPage(m, qq));
  if (parts[0] === "modules" && parts[1]) return r("modules", "Module", (m) => modulePage(m, parts[1]));
  if (parts[0] === "modules") return r("modules", "Modules", (m) => modulesPage(m));
  if (parts[0] === "notes") return r("notes", "Notes", (m, qq) => notesPage(m, qq));
  if (parts[0] === "tools") return r("tools", "Tools", (m, qq) => toolsPage(m, qq));
  return r("overview", "Overview", (m) => overviewPage(m));
}

function shell(): HTMLElement {
  const links: [string, string][] = [["overview", "Overview"], ["personas", "Personas"], ["modules", "Modules"], ["notes", "Notes"], ["tools", "Tools"]];
  const who = currentClaims().email ?? "";
  const header = h("header", { class: "top" },
    h("a", { class: "brand", href: "#/overview" }, "Mana personas"),
    h("nav", { "aria-label": "Main" }, h("ul", null, links.map(([k, label]) => h("li", null, h("a", { href: `#/${k}`, "data-nav": k }, label))))),
    h("div", { class: "who" }, h("span", { class: "muted", title: "Signed in as" }, who),
      h("button", { type: "button", id: "sign-out", onclick: () => { void doSignOut(); } }, "Sign out")));
  const main = h("main", { id: "main", tabindex: "-1" });
  replace(app, header, main, h("div", { id: "toast", class: "toast", role: "status", "aria-live": "polite" }));
  shellShown = true;
  return main;
}

async function doSignOut(): Promise<void> {
  await signOut();
  showSignIn("You are signed out.");
}

function render(): void {
  window.clearInterval(pollTimer);
  page?.dispose?.();
  page = null;
  if (!signedIn()) return;
  const main = shellShown ? (document.getElementById("main") as HTMLElement) : shell();
  const r = route();
  for (const a of app.querySelectorAll<HTMLAnchorElement>("[data-nav]")) {
    if (a.dataset.nav === r.nav) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  document.title = `${r.title} — Mana personas`;
  replace(main, loading());
  page = r.make(main);
  const current = page;
  // One refresh at a time: on a slow API a poll waits for the previous one
  // rather than racing it (an older answer must not land after a newer one).
  let inFlight = false;
  const run = () => {
    inFlight = true;
    return current.refresh().catch(handleFatal).finally(() => { inFlight = false; });
  };
  void run();
  pollTimer = window.setInterval(() => {
    if (document.hidden || page !== current) return;
    refreshRelativeTimes();
    if (!inFlight) void run();
  }, POLL_MS);
}

/** Errors that end the whole session view rather than one panel. */
function handleFatal(err: unknown): void {
  if (err instanceof ApiError && err.kind === "signed-out") showSignIn(err.message);
  else if (err instanceof ApiError && err.kind === "forbidden") showForbidden();
  else console.error(err);
}

function showForbidden(): void {
  window.clearInterval(pollTimer);
  page = null;
  shellShown = false;
  const who = currentClaims().email ?? "this account";
  replace(app, h("main", { id: "main", class: "center", "data-page": "forbidden" },
    h("section", { class: "card" },
      h("h1", null, "Admin access required"),
      h("p", null, `You are signed in as ${who}, which is not an administrator. The personas dashboard is for Mana admins only.`),
      h("p", { class: "muted" }, "If you are an admin and still see this, your token may carry role \"user\" (a known mana-auth configuration quirk; see the README)."),
      h("button", { type: "button", class: "primary", onclick: () => { void doSignOut(); } }, "Sign out and use another account"))));
}

function showAuthDown(message: string): void {
  shellShown = false;
  replace(app, h("main", { id: "main", class: "center", "data-page": "auth-down" },
    h("section", { class: "card", role: "alert" },
      h("h1", null, "Sign-in service unavailable"),
      h("p", null, message),
      h("button", { type: "button", class: "primary", onclick: () => { void boot(); } }, "Try again"))));
}

function showSignIn(notice?: string): void {
  window.clearInterval(pollTimer);
  page = null;
  shellShown = false;
  const email = h("input", { id: "email", name: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const msg = h("p", { id: "signin-msg", role: "alert", class: notice ? "notice" : "" }, notice ?? "");
  const form = h("form", { class: "card", "aria-labelledby": "signin-title", novalidate: true },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", { class: "muted" }, "Mana personas dashboard — for administrators."),
    h("label", { for: "email" }, "Email"), email,
    h("label", { for: "password" }, "Password"), password,
    msg, submit);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!email.value || !password.value) { msg.textContent = "Enter your email and password."; msg.className = "error"; return; }
    submit.disabled = true;
    msg.textContent = "Signing in…"; msg.className = "";
    signIn(email.value.trim(), password.value)
      .then(() => afterSignIn())
      .catch((err: unknown) => {
        msg.textContent = err instanceof Error ? err.message : String(err);
        msg.className = "error";
      })
      .finally(() => { submit.disabled = false; });
  });
  replace(app, h("main", { id: "main", class: "center", "data-page": "sign-in" }, form));
  email.focus();
}

/** After a token is at hand: one cheap call tells an admin from a non-admin before any page renders. */
async function afterSignIn(): Promise<void> {
  try {
    await api("GET", "?limit=1");
  } catch (err) {
    if (err instanceof ApiError && err.kind === "forbidden") { showForbidden(); return; }
    if (err instanceof ApiError && err.kind === "signed-out") { showSignIn(err.message); return; }
    // Other failures (503 migrating, ...) are shown by the page itself.
  }
  shellShown = false;
  render();
}

async function boot(): Promise<void> {
  replace(app, loading("Checking your session…"));
  try {
    await renew();
  } catch (err) {
    if (err instanceof AuthError && err.kind === "unavailable") { showAuthDown(err.message); return; }
    showSignIn(err instanceof AuthError && err.kind === "not-supported" ? err.message : undefined);
    return;
  }
  await afterSignIn();
}

// A new page: render it, start at its top and put keyboard focus on its
// content (as a full page load would), so Tab continues from there.
window.addEventListener("hashchange", () => {
  if (!signedIn() || !shellShown) return;
  render();
  window.scrollTo(0, 0);
  document.getElementById("main")?.focus({ preventScroll: true });
});
onChange(() => { if (!signedIn() && shellShown) showSignIn("Your session has ended. Please sign in again."); });
window.addEventListener("unhandledrejection", (e) => {
  if (e.reason instanceof ApiError) { handleFatal(e.reason); e.preventDefault(); }
});
void boot();


// The skip link must not change the hash (that is the router's): focus instead.
document.querySelector<HTMLAnchorElement>("a.skip")?.addEventListener("click", (e) => {
  e.preventDefault();
  document.getElementById("main")?.focus();
});
