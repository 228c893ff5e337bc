// Building the page: every piece of text goes in as a text node, never as markup.

/** The element with this id. */
export const byId = (id) => document.getElementById(id);

/**
 * A new element: `props` sets `className`, `text` (textContent), `dataset`, `on` (event
 * listeners) and any other attribute; children are nodes or strings (text nodes).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = String(value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "on") {
      for (const [type, handler] of Object.entries(value)) node.addEventListener(type, handler);
    } else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** Remove every child of `node`, then append `children`. */
export function fill(node, ...children) {
  node.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** A status badge; `kind` picks its colour (ok, warn, bad, busy, plain). */
export function badge(text, kind = "plain", props = {}) {
  return el("span", { className: `badge badge-${kind}`, text, ...props });
}

/** The badge kind of a job or document status. */
export function statusKind(status) {
  if (status === "completed" || status === "indexed") return "ok";
  if (status === "failed" || status === "expired") return "bad";
  if (status === "cancelled") return "warn";
  if (status === "queued" || status === "in_progress" || status === "indexing") return "busy";
  return "plain";
}

/** A local, readable time of an RFC 3339 timestamp. */
export function when(stamp) {
  if (!stamp) return "";
  const date = new Date(stamp);
  return Number.isNaN(date.getTime()) ? String(stamp) : date.toLocaleTimeString();
}

/** Resolve after `ms` milliseconds, or at once when `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
