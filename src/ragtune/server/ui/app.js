// The shell: sign in, who am I, the pages this user may open (from /api/me), routing by #hash.
import { api, ApiError, el, session } from "./api.js";

const state = { me: null };
const $ = (id) => document.getElementById(id);

function showSignIn(message = "") {
  state.me = null;
  $("nav").replaceChildren();
  $("who").textContent = "";
  $("signout").hidden = true;
  $("page").replaceChildren();
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("signin-key").focus();
}

async function loadMe() {
  try {
    state.me = await api("/api/me");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      showSignIn(session.key ? "That key was not accepted (wrong, expired or revoked)." : "");
      session.key = "";
      return false;
    }
    throw e;
  }
  $("signin").hidden = true;
  const me = state.me;
  const groups = me.groups.length ? me.groups.join(", ") : "no groups";
  $("who").replaceChildren(
    el("span", { class: "user", id: "user-name" }, me.user),
    el("span", { class: "groups", id: "user-groups" }, ` (${groups}${me.admin ? "; admin" : ""})`));
  $("signout").hidden = me.auth !== "key";
  $("nav").replaceChildren(...me.pages.map((p) =>
    el("a", { href: `#${p.id}`, id: `nav-${p.id}`, "data-page": p.id }, p.title)));
  return true;
}

async function route() {
  if (!state.me) return;
  const id = location.hash.slice(1) || "chat";
  const page = state.me.pages.find((p) => p.id === id);
  for (const a of $("nav").querySelectorAll("a")) {
    if (a.dataset.page === id) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const root = $("page");
  if (!page) {
    root.replaceChildren(el("p", { class: "error", role: "alert" }, "There is no such page for you."));
    return;
  }
  const module = await import(page.module);
  root.replaceChildren();
  await module.render(root, { me: state.me, api });
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  session.key = $("signin-key").value.trim();
  $("signin-key").value = "";
  if (await loadMe()) route();
});

$("signout").addEventListener("click", () => {
  session.key = "";
  sessionStorage.removeItem("ragtune.chat");
  showSignIn();
});

window.addEventListener("hashchange", route);
(async () => { if (await loadMe()) route(); })().catch((e) => showSignIn(e.message));
