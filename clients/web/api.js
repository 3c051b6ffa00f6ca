// The signed-in session (kept in sessionStorage) and calls to the REST API (docs/api.md).

const SESSION_KEY = 'yunshi.session';

let session = load();              // {token, expires_at, user: {name, role}} or null
let onUnauthorized = () => {};

function load() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY));
    if (stored?.token && (!stored.expires_at || stored.expires_at * 1000 > Date.now())) return stored;
  } catch { /* a corrupt entry: treat as signed out */ }
  sessionStorage.removeItem(SESSION_KEY);
  return null;
}

export function currentSession() {
  return session;
}

export function clearSession() {
  session = null;
  sessionStorage.removeItem(SESSION_KEY);
}

// Called when the server answers 401 to anything but the login itself: the token has
// expired or was revoked.
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;   // 0 when the server could not be reached
    this.code = code;
  }
}

export async function api(method, path, body) {
  const headers = {};
  if (session) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'unreachable', 'The server cannot be reached');
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new ApiError(response.status, data?.error || `http_${response.status}`,
      data?.message || `Request failed (${response.status})`);
    if (response.status === 401 && path !== '/api/v1/auth/login') onUnauthorized();
    throw error;
  }
  return data;
}

export async function login(username, password) {
  const data = await api('POST', '/api/v1/auth/login', { username, password });
  session = { token: data.token, expires_at: data.expires_at, user: data.user };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return session;
}
