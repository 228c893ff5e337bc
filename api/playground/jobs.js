// Recent jobs and usage. ragq has no "list my jobs" route, so the tab remembers the ids of
// the jobs it submitted (sessionStorage) and reads each one's live status from
// GET /v1/jobs/{id}; usage is GET /v1/usage.

import { getJson } from "./api.js";
import { badge, byId, el, fill, statusKind, when } from "./dom.js";

const STORE = "ragq.recentJobs";
const KEEP = 20;
const FIRST_POLL_MS = 1000;
const MAX_POLL_MS = 10000;
const TERMINAL = new Set(["completed", "failed", "cancelled", "expired"]);
const jobsEl = byId("jobs");
const usageEl = byId("usage");
let pollTimer = null;
let pollDelay = FIRST_POLL_MS;

function remembered() {
  try {
    const jobs = JSON.parse(sessionStorage.getItem(STORE) || "[]");
    return Array.isArray(jobs) ? jobs : [];
  } catch {
    return [];
  }
}

/** Remember a job this tab submitted. */
export function rememberJob(id, question) {
  const jobs = remembered().filter((job) => job.id !== id);
  jobs.unshift({ id, question, at: new Date().toISOString() });
  sessionStorage.setItem(STORE, JSON.stringify(jobs.slice(0, KEEP)));
}

async function statusOf(job) {
  try {
    return await getJson(`/v1/jobs/${encodeURIComponent(job.id)}`);
  } catch (error) {
    if (error.status === 404) return { id: job.id, status: "expired", result: null };
    throw error;
  }
}

function jobItem(job, state, onShow) {
  const status = state ? state.status : "…";
  const show = el("button", { type: "button", className: "quiet", text: "Show" });
  show.setAttribute("aria-label", `Show the answer to: ${job.question}`);
  show.disabled = !state || state.status === "expired";
  show.addEventListener("click", () => onShow(state));
  const degraded = state && state.result && state.result.degraded;
  return el(
    "li",
    { className: "job", dataset: { jobId: job.id, status } },
    el(
      "div",
      { className: "job-main" },
      el("span", { className: "job-question", text: job.question }),
      el("span", { className: "muted small", text: `${when(job.at)} · ${job.id}` }),
    ),
    el(
      "div",
      { className: "job-badges" },
      badge(status, statusKind(status)),
      degraded ? badge("extractive", "warn") : null,
    ),
    show,
  );
}

/** Read the live status of every remembered job; keeps polling, with backoff, while one
 * is still queued or running. */
export async function refreshJobs(onShow, onError) {
  clearTimeout(pollTimer);
  const jobs = remembered();
  if (!jobs.length) {
    fill(jobsEl, el("li", { className: "hint", text: "Jobs you ask in this tab show here." }));
    return;
  }
  let states;
  try {
    states = await Promise.all(jobs.map(statusOf));
  } catch (error) {
    onError(error);
    return;
  }
  fill(jobsEl, ...jobs.map((job, i) => jobItem(job, states[i], onShow)));
  if (states.some((s) => !TERMINAL.has(s.status))) {
    pollTimer = setTimeout(() => refreshJobs(onShow, onError), pollDelay);
    pollDelay = Math.min(pollDelay * 2, MAX_POLL_MS);
  } else {
    pollDelay = FIRST_POLL_MS;
  }
}

function money(usd) {
  const value = Number(usd);
  // a few answers cost fractions of a cent: show them rather than $0.00
  return value !== 0 && Math.abs(value) < 0.01 ? value.toPrecision(2) : value.toFixed(2);
}

function row(term, value) {
  return [el("dt", { text: term }), el("dd", { text: value })];
}

/** Show the tenant's counters of today. */
export async function refreshUsage(onError) {
  let usage;
  try {
    usage = await getJson("/v1/usage");
  } catch (error) {
    onError(error);
    return false;
  }
  const jobs = usage.jobs || {};
  const tokens = usage.tokens || {};
  fill(
    usageEl,
    ...row("Tenant", usage.tenant),
    ...row("Date (UTC)", usage.date),
    ...row("Requests", String(usage.requests)),
    ...row("Jobs", `${jobs.completed || 0} completed, ${jobs.failed || 0} failed`),
    ...row("Tokens", `${tokens.prompt || 0} prompt, ${tokens.completion || 0} completion`),
    ...row("Cache hits", String(usage.cache_hits)),
    ...row("Spend", `$${money(usage.spend_usd)} of $${money(usage.budget_usd)}`),
  );
  usageEl.dataset.tenant = usage.tenant;
  return true;
}
