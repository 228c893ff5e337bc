// Talking to ragq: the tab's API key (sessionStorage only), requests, and readable errors.

const KEY = "ragq.apiKey";

/** The tab's API key, or "" (sessionStorage: gone when the tab closes, never in the URL). */
export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** A refused request (`status` 0: ragq could not be reached). */
export class ApiError extends Error {
  constructor(status, title, detail, { retryAfter = null, problem = null } = {}) {
    super(detail || title);
    this.name = "ApiError";
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.retryAfter = retryAfter;
    this.problem = problem;
  }
}

async function problemOf(response) {
  const retryAfter = response.headers.get("Retry-After");
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const title = (body && body.title) || response.statusText || "Request failed";
  let detail = (body && body.detail) || "";
  const first = body && Array.isArray(body.errors) && body.errors[0];
  if (first && first.msg) {
    const where = Array.isArray(first.loc) ? first.loc.join(".") : "";
    detail = detail ? `${detail} (${where} ${first.msg})` : `${where} ${first.msg}`;
  }
  return new ApiError(response.status, title, detail, { retryAfter, problem: body });
}

/**
 * Send a request with the tab's key; resolves with the Response when it is a 2xx and
 * rejects with an ApiError otherwise. `json` is sent as a JSON body.
 */
export async function request(path, { method = "GET", json, body, headers = {}, signal } = {}) {
  const sent = { ...headers };
  const key = apiKey();
  if (key) sent.Authorization = `Bearer ${key}`;
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, body, headers: sent, signal, cache: "no-store" });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(0, "Network error", String((error && error.message) || error));
  }
  if (!response.ok) throw await problemOf(response);
  return response;
}

/** The JSON body of a request (null for a 204). */
export async function getJson(path, options) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

/** One readable line for an error of any kind. */
export function describe(error) {
  if (error instanceof ApiError) {
    if (error.status === 0) {
      return `Cannot reach ragq (${error.detail}). Is the server running?`;
    }
    if (error.status === 401) {
      return `The API key was refused: ${error.detail || "unknown or revoked"} Enter a valid key above.`;
    }
    const text = `${error.status} ${error.title}${error.detail ? `: ${error.detail}` : ""}`;
    if (error.status === 429 && error.retryAfter) {
      return `${text} Retry in ${error.retryAfter} s.`;
    }
    return text;
  }
  return `Something went wrong in the page: ${(error && error.message) || error}`;
}
