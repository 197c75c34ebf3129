// Talking to the server: the API key lives in sessionStorage only (this tab, until closed).
const KEY = "ragtune.key";

export const session = {
  get key() { return sessionStorage.getItem(KEY) || ""; },
  set key(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers(extra = {}) {
  const h = { ...extra };
  if (session.key) h.Authorization = `Bearer ${session.key}`;
  return h;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch (_) { /* not JSON */ }
  return new ApiError(response.status, message);
}

export async function api(path, { method = "GET", json, signal } = {}) {
  const init = { method, headers: headers(json === undefined ? {} : { "Content-Type": "application/json" }), signal };
  if (json !== undefined) init.body = JSON.stringify(json);
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  const type = response.headers.get("content-type") || "";
  return type.includes("application/json") ? response.json() : response.text();
}

// POST /v1/chat/completions with stream=true; calls onToken(text) per delta and returns
// the final event (citations, per-sentence support, answer id).
export async function streamChat(body, onToken, signal) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST", signal,
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let final = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;  // ": comments" keep the line open
        const data = line.slice(6);
        if (data === "[DONE]") return final;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(500, chunk.error.message);
        if (chunk.citations) final = chunk;
        for (const choice of chunk.choices || []) {
          if (choice.delta && choice.delta.content) onToken(choice.delta.content);
        }
      }
    }
  }
  return final;
}

// Upload one file with progress (fetch has no upload progress): resolves to the server's
// per-file result.
export function uploadFile(file, { collection, groups }, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("files", file, file.name);
    form.append("collection", collection || "default");
    form.append("groups", groups || "");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/documents");
    if (session.key) xhr.setRequestHeader("Authorization", `Bearer ${session.key}`);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body.files[0]);
      else reject(new ApiError(xhr.status, (body && body.error && body.error.message) || `HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new ApiError(0, "network error"));
    xhr.send(form);
  });
}

// Small DOM helper: el("p", {class: "x"}, "text", child...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function when(ts) {
  return ts ? new Date(ts * 1000).toLocaleString() : "never";
}

export function basename(path) {
  return String(path).split("/").pop();
}
