// Shared building blocks: state panels (loading, empty, error), badges, dialogs.
import { ApiError } from "./api";
import { h } from "./dom";

export function loading(what = "Loading…"): HTMLElement {
  return h("p", { class: "loading", role: "status" }, what);
}

export function empty(text: string): HTMLElement {
  return h("p", { class: "empty" }, text);
}

export function notAvailable(what: string): HTMLElement {
  return h("section", { class: "panel not-available", "data-state": "not-available" },
    h("h3", null, `${what}: not available yet`),
    h("p", { class: "muted" }, "The admin API on this deployment does not offer this endpoint yet; this panel fills in once it does."));
}

export function errorPanel(err: unknown, what = "This data"): HTMLElement {
  if (err instanceof ApiError && err.kind === "not-available") return notAvailable(what);
  const msg = err instanceof Error ? err.message : String(err);
  const title = err instanceof ApiError ? ({
    "migrating": "The database is being migrated",
    "unavailable": "Service unavailable",
    "forbidden": "Admin access required",
    "not-found": "Not found",
    "signed-out": "Signed out",
  } as Record<string, string>)[err.kind] ?? "Something went wrong" : "Something went wrong";
  return h("section", { class: "panel error", role: "alert", "data-state": "error" },
    h("h3", null, title), h("p", null, msg),
    err instanceof ApiError && err.kind === "migrating" ? h("p", { class: "muted" }, "This page retries by itself every 10 seconds.") : null);
}

export function badge(text: string, kind = text): HTMLElement {
  return h("span", { class: `badge badge-${kind}` }, text);
}

export function statusBadges(p: { enabled?: boolean; quarantined?: boolean; lease?: { expiresAt: string } | null; overdue?: boolean }, fleetPaused = false): HTMLElement[] {
  const out: HTMLElement[] = [];
  if (fleetPaused) out.push(badge("paused"));
  if (p.enabled === false) out.push(badge("disabled", "paused"));
  if (p.quarantined) out.push(badge("quarantined"));
  if (p.lease && new Date(p.lease.expiresAt).getTime() > Date.now()) out.push(badge("leased"));
  if (p.overdue) out.push(badge("overdue"));
  return out;
}

/** A modal <dialog> that resolves true on confirm. `mustType` requires typing that exact text first. */
export function confirmDialog(opts: { title: string; body: string; confirm: string; danger?: boolean; mustType?: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const input = opts.mustType !== undefined
      ? h("input", { type: "text", id: "confirm-input", autocomplete: "off", spellcheck: "false", "aria-describedby": "confirm-hint" })
      : null;
    const ok = h("button", { type: "submit", class: opts.danger ? "danger" : "primary", disabled: opts.mustType !== undefined }, opts.confirm);
    const cancel = h("button", { type: "button" }, "Cancel");
    const form = h("form", { method: "dialog" },
      h("h2", { id: "dlg-title" }, opts.title),
      h("p", null, opts.body),
      input ? h("label", { for: "confirm-input" }, "Type ", h("strong", null, opts.mustType ?? ""), " to confirm") : null,
      input,
      input ? h("p", { id: "confirm-hint", class: "muted" }, "The button unlocks when the text matches exactly.") : null,
      h("div", { class: "row end" }, cancel, ok));
    const dlg = h("dialog", { "aria-labelledby": "dlg-title" }, form);
    input?.addEventListener("input", () => { ok.disabled = input.value.trim() !== opts.mustType; });
    let result = false;
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (ok.disabled) return;
      result = true;
      dlg.close();
    });
    cancel.addEventListener("click", () => dlg.close());
    dlg.addEventListener("close", () => { dlg.remove(); resolve(result); });
    document.body.appendChild(dlg);
    dlg.showModal();
    (input ?? cancel).focus();
  });
}

let toastTimer: number | undefined;
export function toast(text: string, kind: "ok" | "error" = "ok"): void {
  const el = document.getElementById("toast");
  if (!el) return;
  el.textContent = text;
  el.className = `toast toast-${kind} show`;
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => { el.className = "toast"; }, 6000);
}
