// The REST api, with the session cookie; writes carry the session's CSRF token.

let csrfToken = null;

export class ApiError extends Error {
  constructor(status, kind, detail) {
    super(typeof detail === "string" ? detail : describe(detail) || `HTTP ${status}`);
    this.status = status;
    this.kind = kind;
  }
}

function describe(detail) {
  if (!Array.isArray(detail)) return detail ? JSON.stringify(detail) : "";
  return detail.map((d) => `${d.location}: ${d.message}`).join("; ");
}

export function setCsrfToken(token) {
  csrfToken = token;
}

export async function api(method, path, { body, params } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401 && !path.startsWith("/api/session")) {
      window.dispatchEvent(new CustomEvent("gristmill:signed-out"));
    }
    throw new ApiError(response.status, data?.error, data?.detail ?? response.statusText);
  }
  return data;
}

export const get = (path, params) => api("GET", path, { params });
export const post = (path, body) => api("POST", path, { body });
export const del = (path) => api("DELETE", path);
