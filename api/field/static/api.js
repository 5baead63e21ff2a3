// The HTTP API of api.md as the app uses it: a bearer token from the password grant, problem details turned
// into errors that carry the rule's own words, and the last answer of each GET kept for reading offline.
const BASE = "/api/v1";
const TOKEN = "spotcheck.token";

export class Offline extends Error {
  constructor() { super("网络不可用"); }
}

export class Problem extends Error {
  // `detail`: the rule's message (RFC 9457), the only words a refusal is shown with.
  constructor(status, body) {
    super(body?.detail || body?.title || `HTTP ${status}`);
    this.status = status;
    this.rule = body?.rule || null;
    this.errors = body?.errors || [];
  }
  get transient() { return this.status >= 500 || this.status === 401 || this.status === 429; }
}

export const token = {
  get: () => localStorage.getItem(TOKEN),
  set: (value) => localStorage.setItem(TOKEN, value),
  clear: () => localStorage.removeItem(TOKEN),
};

async function call(method, path, { body, form, key } = {}) {
  const headers = {};
  if (token.get()) headers.Authorization = `Bearer ${token.get()}`;
  if (key) headers["Idempotency-Key"] = key;
  if (body !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(body); }
  let answer;
  try {
    answer = await fetch(BASE + path, { method, headers, body: form ?? body });
  } catch {
    throw new Offline();
  }
  const data = (answer.headers.get("content-type") || "").includes("json") ? await answer.json() : null;
  if (!answer.ok) throw new Problem(answer.status, data);
  return data;
}

export async function login(username, password) {
  const form = new URLSearchParams({ grant_type: "password", username, password });
  let answer;
  try {
    answer = await fetch(BASE + "/auth/token", { method: "POST", body: form });
  } catch {
    throw new Offline();
  }
  const data = await answer.json().catch(() => null);
  if (!answer.ok) throw new Problem(answer.status, data);
  token.set(data.access_token);
}

// A read: fresh when the network answers, else the last answer seen (marked `stale`), else Offline.
export async function read(path) {
  const cached = `spotcheck.cache:${path}`;
  try {
    const data = await call("GET", path);
    localStorage.setItem(cached, JSON.stringify(data));
    return { data, stale: false };
  } catch (error) {
    const kept = localStorage.getItem(cached);
    if (error instanceof Offline && kept !== null) return { data: JSON.parse(kept), stale: true };
    throw error;
  }
}

export const post = (path, body, key) => call("POST", path, { body, key });

export function upload(path, blob, name, key) {
  const form = new FormData();
  form.append("file", blob, name);
  return call("POST", path, { form, key });
}

export const targetPath = (taskId, uscc) =>
  `/tasks/${encodeURIComponent(taskId)}/targets/${encodeURIComponent(uscc)}`;
