// The answer panel: a question streamed through POST /v1/rag (resumed from the job's
// event stream if the connection drops), the answer with its [n] markers, the citations
// with the cited range highlighted in the document's text, and the job's badges.

import { ApiError, describe, request } from "./api.js";
import { badge, byId, el, fill, statusKind } from "./dom.js";
import { sseEvents } from "./sse.js";

const CONTEXT = 240; // characters of document text shown around a cited range
const RESUMES = 3; // reconnects to the job's event stream after a dropped connection
const TERMINAL = new Set(["job.completed", "job.failed", "job.cancelled"]);
const DEGRADED = {
  no_llm_configured: "no LLM is configured",
  llm_unavailable: "the LLM was unavailable",
  llm_timeout: "the LLM timed out",
  budget_exhausted: "the spend budget is exhausted",
  circuit_open: "the LLM's circuit breaker is open",
  ungrounded: "the LLM's answer cited no passage",
};

const answerEl = byId("answer");
const metaEl = byId("answer-meta");
const citationsEl = byId("citations");
let shown = 0; // which answer the panel shows: a late render of an earlier one is dropped

/** [before, cited, after] of `text` split at code-point offsets (ragq counts code points,
 * JavaScript strings UTF-16 units). */
export function splitAt(text, start, end) {
  const units = (points) => {
    if (!/[\uD800-\uDFFF]/.test(text)) return points;
    let unit = 0;
    for (let p = 0; p < points && unit < text.length; p += 1) {
      unit += text.codePointAt(unit) > 0xffff ? 2 : 1;
    }
    return unit;
  };
  const a = units(start);
  const b = units(end);
  return [text.slice(0, a), text.slice(a, b), text.slice(b)];
}

function renderAnswer(text, onCite) {
  const parts = [];
  let last = 0;
  for (const m of text.matchAll(/\[(\d+)\]/g)) {
    if (m.index > last) parts.push(text.slice(last, m.index));
    const index = m[1];
    parts.push(
      el("a", {
        className: "cite-ref",
        href: `#cite-${index}`,
        text: m[0],
        on: { click: (event) => onCite(event, index) },
      }),
    );
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  fill(answerEl, el("p", { className: "answer-text" }, ...parts));
}

function focusCitation(event, index) {
  event.preventDefault();
  const item = byId(`cite-${index}`);
  if (!item) return;
  item.scrollIntoView({ block: "nearest", behavior: "smooth" });
  item.focus();
}

function passage(citation, documentText) {
  if (documentText !== null) {
    const [before, cited, after] = splitAt(documentText, citation.start, citation.end);
    if (cited === citation.text) {
      const head = before.length > CONTEXT ? before.slice(-CONTEXT) : before;
      const tail = after.length > CONTEXT ? after.slice(0, CONTEXT) : after;
      return el(
        "blockquote",
        { className: "passage", dataset: { context: "document" } },
        head.length < before.length ? el("span", { className: "elided", text: "… " }) : null,
        el("span", { className: "context", text: head }),
        el("mark", { text: cited }),
        el("span", { className: "context", text: tail }),
        tail.length < after.length ? el("span", { className: "elided", text: " …" }) : null,
      );
    }
  }
  // the document is gone or was replaced since the answer: the chunk itself is the range
  return el(
    "blockquote",
    { className: "passage", dataset: { context: "chunk" } },
    el("mark", { text: citation.text }),
  );
}

function citationItem(citation, documentText) {
  return el(
    "li",
    { id: `cite-${citation.index}`, className: "citation", tabindex: "-1" },
    el(
      "div",
      { className: "citation-head" },
      el("span", { className: "cite-index", text: `[${citation.index}]` }),
      el("span", { className: "cite-title", text: citation.title || citation.document_id }),
    ),
    el("div", {
      className: "cite-where muted",
      text:
        `${citation.document_id} · characters ${citation.start}–${citation.end}` +
        ` · rank ${citation.rank} · score ${Number(citation.score).toFixed(3)}`,
    }),
    passage(citation, documentText),
  );
}

async function documentText(cache, id, signal) {
  if (!cache.has(id)) {
    const path = `/v1/documents/${encodeURIComponent(id)}/content`;
    cache.set(
      id,
      request(path, { signal })
        .then((response) => response.text())
        .catch(() => null),
    );
  }
  return cache.get(id);
}

async function renderCitations(citations, cache, signal) {
  const answer = shown;
  citationsEl.dataset.state = "loading";
  fill(citationsEl, ...citations.map((c) => citationItem(c, null)));
  const texts = await Promise.all(citations.map((c) => documentText(cache, c.document_id, signal)));
  if (signal?.aborted || answer !== shown) return;
  fill(citationsEl, ...citations.map((c, i) => citationItem(c, texts[i])));
  citationsEl.dataset.state = "ready";
}

function renderMeta(job) {
  const result = job.result;
  const items = [badge(job.status, statusKind(job.status), { dataset: { role: "status" } })];
  if (result) {
    if (result.degraded) {
      const why = DEGRADED[result.degraded_reason] || result.degraded_reason || "degraded";
      items.push(
        badge(`Extractive answer: ${why}`, "warn", {
          dataset: { role: "degraded", reason: result.degraded_reason || "" },
          title: "Built from the retrieved passages without the LLM",
        }),
      );
    }
    if (result.cached) items.push(badge("cached", "plain"));
    if (result.model) items.push(el("span", { className: "muted", text: result.model }));
    const total = result.timings_ms && result.timings_ms.total;
    if (total !== undefined) items.push(el("span", { className: "muted", text: `${total} ms` }));
  }
  if (job.error) items.push(el("span", { className: "error-text", text: job.error.message }));
  items.push(el("span", { className: "muted job-id", text: job.id }));
  fill(metaEl, ...items);
}

function setState(state) {
  answerEl.dataset.state = state;
  answerEl.setAttribute("aria-busy", String(state === "streaming" || state === "waiting"));
}

/** Show a finished job (from Recent jobs) without streaming. */
export async function showJob(job) {
  shown += 1;
  answerEl.dataset.jobId = job.id;
  answerEl.dataset.deltas = "0";
  renderMeta(job);
  if (job.result) {
    renderAnswer(job.result.answer, focusCitation);
    setState("completed");
    await renderCitations(job.result.citations, new Map());
  } else {
    fill(answerEl, el("p", { className: "hint", text: `This job is ${job.status}.` }));
    fill(citationsEl);
    setState(job.status);
  }
}

/**
 * Ask `question`, streaming the answer into the panel. `onJob(id, question)` is called
 * once the job has an id; resolves when the job ended (or the stream could not go on).
 */
export async function ask(question, topK, { signal, onJob, onError }) {
  shown += 1;
  const cache = new Map();
  let answer = "";
  let deltas = 0;
  let jobId = null;
  let lastId = 0;
  let finished = false;
  answerEl.dataset.deltas = "0";
  delete answerEl.dataset.jobId;
  setState("waiting");
  fill(answerEl, el("p", { className: "hint", text: "Waiting for the answer…" }));
  fill(citationsEl);
  fill(metaEl, badge("submitting", "busy"));

  const handle = async ({ event, data, id }) => {
    if (id) lastId = Number(id);
    const body = JSON.parse(data);
    if (body.job_id && !jobId) {
      jobId = body.job_id;
      answerEl.dataset.jobId = jobId;
      onJob(jobId, question);
    }
    if (event === "job.queued" || event === "job.in_progress") {
      fill(metaEl, badge(body.status, "busy"), el("span", { className: "muted", text: jobId }));
    } else if (event === "retrieval.completed") {
      renderCitations(body.citations, cache, signal);
    } else if (event === "answer.delta") {
      answer += body.delta;
      deltas += 1;
      answerEl.dataset.deltas = String(deltas);
      setState("streaming");
      renderAnswer(answer, focusCitation);
    } else if (event === "answer.completed") {
      answer = body.answer;
      renderAnswer(answer, focusCitation);
    } else if (event === "job.completed") {
      renderMeta(body);
      renderAnswer(body.result.answer, focusCitation);
      if (!citationsEl.children.length) await renderCitations(body.result.citations, cache, signal);
      setState("completed");
    } else if (event === "job.failed") {
      renderMeta({ id: jobId, status: "failed", error: body.error, result: null });
      setState("failed");
    } else if (event === "job.cancelled") {
      renderMeta({ id: jobId, status: "cancelled", error: null, result: null });
      setState("cancelled");
    }
    if (TERMINAL.has(event)) finished = true;
  };

  const consume = async (response) => {
    for await (const frame of sseEvents(response.body)) {
      await handle(frame);
      if (finished) return;
    }
  };

  try {
    const body = { question, top_k: topK, stream: true };
    await consume(await request("/v1/rag", { method: "POST", json: body, signal }));
    for (let attempt = 0; !finished && jobId && attempt < RESUMES; attempt += 1) {
      const headers = { Accept: "text/event-stream", "Last-Event-ID": String(lastId) };
      await consume(await request(`/v1/jobs/${jobId}/events`, { headers, signal }));
    }
    if (!finished) throw new ApiError(0, "Stream ended", "the answer stream ended early");
  } catch (error) {
    if (error && error.name === "AbortError") {
      setState("stopped");
      const note = el("span", { className: "muted", text: "stopped: the job is cancelled" });
      fill(metaEl, badge("stopped", "warn"), note, el("span", { className: "muted job-id", text: jobId || "" }));
      return jobId;
    }
    setState("error");
    fill(metaEl, badge("error", "bad"), el("span", { className: "error-text", text: describe(error) }));
    onError(error);
  }
  return jobId;
}
