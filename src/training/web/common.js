// Shared by the pages of `vmlab train serve`: calls to the server's JSON API and small DOM helpers.

/** Call the API: JSON in and out, the token in an Authorization header. Throws an Error with the server's words. */
export async function api(method, path, token, body) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  let data = {};
  try {
    data = await res.json();
  } catch {
    data = {};
  }
  if (!res.ok) {
    const err = new Error(data.error ? data.error + (data.hint ? ` (${data.hint})` : "") : `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

/** An element with attributes and children; strings become text, never HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** "3 min", "1 h 05 min" since an ISO time. */
export function since(iso, now = Date.now()) {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

/** The sessions this browser started, with their tokens (this origin's storage only). */
export function mySessions() {
  try {
    const v = JSON.parse(localStorage.getItem("vmlab-sessions") || "[]");
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

export function rememberSession(entry) {
  const list = mySessions().filter((s) => s.id !== entry.id);
  list.unshift(entry);
  localStorage.setItem("vmlab-sessions", JSON.stringify(list.slice(0, 20)));
}
