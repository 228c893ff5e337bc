// Documents: files dropped or picked are uploaded one request each (multipart POST
// /v1/documents) and followed until indexed; the tenant's documents are listed a page at a
// time with the API's cursor, and one can be deleted (a second click confirms).

import { describe, getJson } from "./api.js";
import { badge, byId, el, fill, sleep, statusKind, when } from "./dom.js";

const PAGE = 10;
const FIRST_POLL_MS = 400;
const MAX_POLL_MS = 5000; // the poll interval grows by half each time up to this
const uploadsEl = byId("uploads");
const chunks = (n) => `${n} chunk${n === 1 ? "" : "s"}`;
const listEl = byId("documents");
const pageEl = byId("docs-page");
const firstButton = byId("docs-first");
const nextButton = byId("docs-next");
let cursors = [null]; // the cursor of each page seen so far; the last is the current page
let nextCursor = null;

function uploadRow(file) {
  const status = badge("uploading", "busy", { dataset: { role: "status" } });
  const message = el("span", { className: "upload-message muted" });
  const row = el(
    "li",
    { className: "upload", dataset: { file: file.name, status: "uploading" } },
    el("span", { className: "upload-name", text: file.name }),
    status,
    message,
  );
  const set = (state, text = "") => {
    row.dataset.status = state;
    status.className = `badge badge-${statusKind(state)}`;
    status.textContent = state;
    message.textContent = text;
    message.className = `upload-message ${state === "failed" ? "error-text" : "muted"}`;
  };
  return { row, set };
}

async function follow(doc, set, onIndexed) {
  let delay = FIRST_POLL_MS;
  for (;;) {
    await sleep(delay);
    delay = Math.min(delay * 1.5, MAX_POLL_MS);
    let current;
    try {
      current = await getJson(`/v1/documents/${encodeURIComponent(doc.id)}`);
    } catch (error) {
      if (error.status === 404) {
        set("failed", "The document was deleted.");
        return;
      }
      if (error.status === 429 && error.retryAfter) delay = Number(error.retryAfter) * 1000;
      set(doc.status, `${describe(error)} Still trying…`);
      continue;
    }
    if (current.status === "indexed") {
      set("indexed", `${chunks(current.chunks)} · ${current.id}`);
      onIndexed(current);
      return;
    }
    if (current.status === "failed") {
      set("failed", current.error || "Indexing failed.");
      return;
    }
    set(current.status, current.id);
  }
}

async function upload(file, onIndexed) {
  const { row, set } = uploadRow(file);
  uploadsEl.prepend(row);
  const form = new FormData();
  form.append("file", file, file.name);
  let doc;
  try {
    doc = await getJson("/v1/documents", { method: "POST", body: form });
  } catch (error) {
    set("failed", describe(error));
    return;
  }
  row.dataset.documentId = doc.id;
  set(doc.status, doc.id);
  await follow(doc, set, onIndexed);
}

/** Upload every file of a drop or a pick, side by side. */
export function uploadAll(files, onIndexed) {
  return Promise.all(Array.from(files, (file) => upload(file, onIndexed)));
}

/** Wire the drop zone and the file picker. */
export function setupUploads(onIndexed) {
  const zone = byId("drop-zone");
  const input = byId("file-input");
  const over = (event) => {
    event.preventDefault();
    zone.classList.add("over");
  };
  zone.addEventListener("dragenter", over);
  zone.addEventListener("dragover", over);
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      uploadAll(event.dataTransfer.files, onIndexed);
    }
  });
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  input.addEventListener("change", () => {
    const files = Array.from(input.files);
    input.value = "";
    uploadAll(files, onIndexed);
  });
  // a file dropped beside the zone must not make the browser open it instead of the page
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}

function deleteButton(doc, onError) {
  const button = el("button", { type: "button", className: "quiet danger", text: "Delete" });
  button.setAttribute("aria-label", `Delete ${doc.title || doc.id}`);
  button.addEventListener("click", async () => {
    if (button.dataset.armed !== "true") {
      button.dataset.armed = "true";
      button.textContent = "Confirm delete";
      return;
    }
    button.disabled = true;
    try {
      await getJson(`/v1/documents/${encodeURIComponent(doc.id)}`, { method: "DELETE" });
    } catch (error) {
      onError(error);
    }
    await loadPage(cursors[cursors.length - 1], onError);
  });
  button.addEventListener("blur", () => {
    button.dataset.armed = "false";
    button.textContent = "Delete";
  });
  return button;
}

function documentItem(doc, onError) {
  const details = [doc.id];
  if (doc.chunks !== null) details.push(chunks(doc.chunks));
  if (doc.indexed_at) details.push(`indexed ${when(doc.indexed_at)}`);
  return el(
    "li",
    { className: "document", dataset: { documentId: doc.id, status: doc.status } },
    el(
      "div",
      { className: "document-main" },
      el("span", { className: "document-title", text: doc.title || doc.id }),
      el("span", { className: "muted small", text: details.join(" · ") }),
      doc.error ? el("span", { className: "error-text small", text: doc.error }) : null,
    ),
    badge(doc.status, statusKind(doc.status)),
    deleteButton(doc, onError),
  );
}

async function loadPage(cursor, onError) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (cursor) query.set("cursor", cursor);
  let page;
  try {
    page = await getJson(`/v1/documents?${query}`);
  } catch (error) {
    onError(error);
    return;
  }
  nextCursor = page.next_cursor;
  const items = page.data.map((doc) => documentItem(doc, onError));
  if (!items.length) items.push(el("li", { className: "hint", text: "No documents yet." }));
  fill(listEl, ...items);
  listEl.dataset.state = "ready";
  pageEl.textContent = `page ${cursors.length}`;
  firstButton.disabled = cursors.length === 1;
  nextButton.disabled = !page.has_more;
}

/** Wire the pager; `refresh()` reloads the current page. */
export function setupDocuments(onError) {
  firstButton.addEventListener("click", () => {
    cursors = [null];
    loadPage(null, onError);
  });
  nextButton.addEventListener("click", () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    loadPage(nextCursor, onError);
  });
  byId("docs-refresh").addEventListener("click", () => refreshDocuments(onError));
}

export function refreshDocuments(onError) {
  return loadPage(cursors[cursors.length - 1], onError);
}
