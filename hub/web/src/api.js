// The hub's JSON API (same origin, /api/v1). The "login" is an access token pasted by the user,
// kept in sessionStorage (gone when the tab closes) and sent as a Bearer header: the hub uses no
// cookies, so there is no CSRF surface.

const TOKEN_KEY = 'sluice-hub-token';
const TIMEOUT_MS = 15000; // every request is bounded: a hung server shows an error, not a spinner

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: behave as logged out
  }
}

export function storeToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * Calls the API and returns the parsed JSON (null for 204). Throws ApiError with the server's
 * {"error": "..."} message for any non-2xx answer. options.token overrides the stored token
 * (the login page checks a token before storing it).
 */
export async function api(path, { method = 'GET', body, token } = {}) {
  const headers = { Accept: 'application/json' };
  const bearer = token !== undefined ? token : storedToken();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const init = { method, headers, signal: AbortSignal.timeout(TIMEOUT_MS) };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/api/v1${path}`, init);
  } catch (err) {
    const why = err && err.name === 'TimeoutError' ? 'the hub did not answer in time' : 'the hub cannot be reached';
    throw new ApiError(0, why);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const message = data && typeof data.error === 'string' ? data.error : `HTTP ${res.status} ${res.statusText}`.trim();
    throw new ApiError(res.status, message);
  }
  if (data === null) throw new ApiError(res.status, 'the hub sent an answer that is not JSON');
  return data;
}

/** Path segments of a repository name ("ns/name", maybe deeper), each URL-encoded. */
export function repoPath(name) {
  return name.split('/').map(encodeURIComponent).join('/');
}
