// The playground's entry point: the API key form, the notice line every error lands on,
// and the wiring of the panels (answer.js, documents.js, jobs.js).

import { ask, showJob } from "./answer.js";
import { apiKey, describe, request, setApiKey } from "./api.js";
import { byId } from "./dom.js";
import { refreshDocuments, setupDocuments, setupUploads } from "./documents.js";
import { refreshJobs, refreshUsage, rememberJob } from "./jobs.js";

const notice = byId("notice");
const keyInput = byId("key-input");
const keyState = byId("key-state");
const forget = byId("key-forget");
const question = byId("question");
const askButton = byId("ask");
const stopButton = byId("stop");
let running = null; // {controller, jobId} of the question being answered

/** Show one readable line for an error (401, 429 with Retry-After, network, …). */
function showError(error) {
  notice.textContent = describe(error);
  notice.hidden = false;
  if (error && error.status === 401) keyState.textContent = "Key refused.";
}

function clearNotice() {
  notice.hidden = true;
  notice.textContent = "";
}

window.addEventListener("error", (event) => showError(event.error || event.message));
window.addEventListener("unhandledrejection", (event) => showError(event.reason));

const onShow = (job) => showJob(job).catch(showError);
const refreshAll = () =>
  Promise.all([refreshDocuments(showError), refreshJobs(onShow, showError), refreshUsage(showError)]);

function setKeyed(keyed) {
  document.body.dataset.keyed = String(keyed);
  forget.hidden = !keyed;
  askButton.disabled = !keyed;
  keyState.textContent = keyed ? "Key set for this tab." : "No key: kept in this tab only once entered.";
  keyInput.placeholder = keyed ? "key set; paste another to replace it" : "paste a key from ragq keys create";
}

byId("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) return;
  setApiKey(key);
  keyInput.value = "";
  clearNotice();
  setKeyed(true);
  if (await refreshUsage(showError)) {
    await Promise.all([refreshDocuments(showError), refreshJobs(onShow, showError)]);
  } else {
    setApiKey("");
    setKeyed(false);
    keyState.textContent = "Key refused: enter another.";
  }
});

forget.addEventListener("click", () => {
  setApiKey("");
  setKeyed(false);
  keyInput.focus();
});

byId("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = question.value.trim();
  if (!text || running) return;
  const topK = Number(byId("top-k").value) || 5;
  clearNotice();
  running = { controller: new AbortController(), jobId: null };
  askButton.disabled = true;
  stopButton.hidden = false;
  const onJob = (id, asked) => {
    running.jobId = id;
    rememberJob(id, asked);
    refreshJobs(onShow, showError);
  };
  try {
    await ask(text, topK, { signal: running.controller.signal, onJob, onError: showError });
  } finally {
    running = null;
    askButton.disabled = !apiKey();
    stopButton.hidden = true;
    refreshJobs(onShow, showError);
    refreshUsage(showError);
  }
});

question.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    byId("ask-form").requestSubmit();
  }
});

stopButton.addEventListener("click", async () => {
  if (!running) return;
  const { controller, jobId } = running;
  controller.abort();
  if (jobId) {
    // a job that finished meanwhile answers 409: nothing left to stop
    await request(`/v1/jobs/${jobId}/cancel`, { method: "POST" }).catch((error) => {
      if (error.status !== 409) showError(error);
    });
  }
});

byId("jobs-refresh").addEventListener("click", () => refreshJobs(onShow, showError));
byId("usage-refresh").addEventListener("click", () => refreshUsage(showError));
setupDocuments(showError);
setupUploads(() => refreshDocuments(showError));

setKeyed(Boolean(apiKey()));
if (apiKey()) refreshAll();
else refreshJobs(onShow, showError);
document.body.dataset.ready = "true";
