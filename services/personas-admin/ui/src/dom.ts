// Tiny DOM helpers: every element is built with createElement (no innerHTML
// with data), so server text can never become markup.

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
      } else if (k === "class") {
        el.className = String(v);
      } else if (v === true) {
        el.setAttribute(k, "");
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

const SVG = "http://www.w3.org/2000/svg";
export function s(tag: string, attrs: Record<string, string | number>, ...children: (Node | string)[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  return el;
}

export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A horizontal bar whose width is set through the CSSOM (allowed by the CSP, unlike a style attribute). */
export function bar(fraction: number, cls = "bar"): HTMLElement {
  const outer = h("span", { class: cls, "aria-hidden": "true" });
  const inner = h("span", { class: "bar-fill" });
  inner.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  outer.appendChild(inner);
  return outer;
}

// ---- time -----------------------------------------------------------------

const fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function relative(iso: string, now = Date.now()): string {
  const diff = (new Date(iso).getTime() - now) / 1000;
  const abs = Math.abs(diff);
  if (abs < 45) return rtf.format(Math.round(diff), "second");
  if (abs < 45 * 60) return rtf.format(Math.round(diff / 60), "minute");
  if (abs < 22 * 3600) return rtf.format(Math.round(diff / 3600), "hour");
  return rtf.format(Math.round(diff / 86400), "day");
}

/** A <time> in the browser's zone, relative or absolute, with UTC in its title on hover. */
export function time(iso: string | null | undefined, mode: "relative" | "absolute" = "relative"): Node {
  if (!iso) return h("span", { class: "muted" }, "—");
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return document.createTextNode(iso);
  const utc = d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  const text = mode === "relative" ? relative(iso) : fmt.format(d);
  return h("time", { datetime: d.toISOString(), title: `${fmt.format(d)} (local) · ${utc}`, "data-rel": mode === "relative" ? "" : null }, text);
}

/** Re-words every relative time on the page ("5 minutes ago" keeps its meaning while the data stands still). */
export function refreshRelativeTimes(root: ParentNode = document, now = Date.now()): void {
  for (const el of root.querySelectorAll<HTMLTimeElement>("time[data-rel]")) {
    const text = relative(el.dateTime, now);
    if (el.textContent !== text) el.textContent = text;
  }
}

export function num(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return n.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
