// Ask: streaming answers, [n] markers that open the cited passage, unsupported sentences
// marked, a model picker from /v1/models, feedback, copy, and this tab's conversation.
import { api, basename, el, streamChat } from "./api.js";

const HISTORY = "ragtune.chat";
const MODEL = "ragtune.model";

function loadHistory() {
  try { return JSON.parse(sessionStorage.getItem(HISTORY)) || []; } catch (_) { return []; }
}

function saveHistory(turns) {
  sessionStorage.setItem(HISTORY, JSON.stringify(turns));
}

// Text with [n] markers as buttons that open source n.
function withMarkers(text, openSource) {
  const parts = [];
  let last = 0;
  for (const m of text.matchAll(/\[(\d+)\]/g)) {
    parts.push(text.slice(last, m.index));
    const n = Number(m[1]);
    parts.push(el("button", { type: "button", class: "cite", "data-n": n,
      "aria-label": `Show source ${n}`, onclick: () => openSource(n) }, `[${n}]`));
    last = m.index + m[0].length;
  }
  parts.push(text.slice(last));
  return parts;
}

// The answer with each unsupported sentence visibly marked.
function answerNodes(text, final, openSource) {
  const unsupported = ((final && final.ragtune && final.ragtune.sentences) || [])
    .filter((s) => !s.supported).map((s) => s.text);
  const nodes = [];
  let cursor = 0;
  for (const sentence of unsupported) {
    const at = text.indexOf(sentence, cursor);
    if (at < 0) continue;
    nodes.push(...withMarkers(text.slice(cursor, at), openSource));
    nodes.push(el("mark", { class: "unsupported", title: "Not supported by the cited sources" },
      el("span", { class: "flag", "aria-hidden": "true" }, "⚠ "),
      ...withMarkers(sentence, openSource),
      el("span", { class: "sr-only" }, " (not supported by the cited sources)")));
    cursor = at + sentence.length;
  }
  nodes.push(...withMarkers(text.slice(cursor), openSource));
  return nodes;
}

export async function render(root, { me }) {
  const models = await api("/v1/models");
  const select = el("select", { id: "model", name: "model" },
    ...models.data.map((m) => el("option", { value: m.id }, m.id + (m.stale ? " (stale)" : ""))));
  const saved = sessionStorage.getItem(MODEL);
  if (saved && models.data.some((m) => m.id === saved)) select.value = saved;
  select.addEventListener("change", () => sessionStorage.setItem(MODEL, select.value));

  const conversation = el("ol", { id: "conversation", class: "conversation" });
  const question = el("textarea", { id: "question", name: "question", rows: 2, required: true,
    placeholder: "Ask about your documents…" });
  const status = el("p", { id: "chat-status", class: "status", role: "status" });
  const sourceBody = el("div", { id: "source-body" },
    el("p", { class: "help" }, "Select a [n] marker in an answer to see the passage it cites."));
  const sourceTitle = el("h2", { id: "source-title", tabindex: "-1" }, "Source");
  const aside = el("aside", { id: "source", class: "source", "aria-labelledby": "source-title" },
    sourceTitle, sourceBody);
  const form = el("form", { id: "ask-form", class: "ask" },
    el("label", { for: "question", class: "sr-only" }, "Question"), question,
    el("button", { type: "submit", id: "ask" }, "Ask"));
  const newChat = el("button", { type: "button", id: "new-chat" }, "New conversation");
  root.append(el("div", { class: "chat-layout" },
    el("section", { class: "chat", "aria-labelledby": "chat-title" },
      el("h1", { id: "chat-title", class: "sr-only" }, "Ask"),
      el("div", { class: "toolbar" }, el("label", { for: "model" }, "Answer with"), select, newChat),
      conversation, status, form),
    aside));

  let turns = loadHistory();

  function openSource(turn, n) {
    const c = ((turn.final && turn.final.citations) || []).find((x) => x.n === n);
    if (!c) {
      sourceBody.replaceChildren(el("p", { class: "help" }, `Source ${n} was not cited with a checked passage.`));
    } else {
      sourceBody.replaceChildren(
        el("p", { class: "doc" }, el("strong", {}, `[${c.n}] ${basename(c.document)}`)),
        el("p", { class: "section" }, c.section),
        el("blockquote", { id: "source-quote" }, c.quote),
        el("p", { class: c.supported ? "ok" : "bad" },
          c.supported ? "✓ supports the sentences that cite it" : "✗ does not support every sentence that cites it"),
        el("p", { class: "help" }, `chunk ${c.chunk_id}`));
    }
    sourceTitle.focus();
  }

  function turnNode(turn, index) {
    const answer = el("div", { class: "answer", id: `answer-${index}` });
    const cites = el("ul", { class: "citations", "aria-label": "Sources" });
    const actions = el("div", { class: "actions" });
    const node = el("li", { class: "turn" },
      el("p", { class: "question" }, el("span", { class: "who" }, "You: "), turn.question),
      answer, cites, actions);
    fill(turn, index, answer, cites, actions);
    return node;
  }

  function fill(turn, index, answer, cites, actions) {
    answer.replaceChildren(...answerNodes(turn.answer || "", turn.final, (n) => openSource(turn, n)));
    if (turn.error) answer.append(el("p", { class: "error", role: "alert" }, turn.error));
    if (!turn.final) return;
    cites.replaceChildren(...(turn.final.citations || []).map((c) => el("li", {},
      el("button", { type: "button", class: "source-link", onclick: () => openSource(turn, c.n) },
        `[${c.n}] ${basename(c.document)} — ${c.section}`),
      c.supported ? "" : el("span", { class: "bad" }, " ✗ unsupported"))));
    const id = turn.final.ragtune.id;
    const note = el("span", { class: "help", role: "status" });
    const comment = el("input", { type: "text", class: "comment", hidden: true,
      "aria-label": "What was wrong (optional)", placeholder: "What was wrong? (optional)" });
    const send = async (rating) => {
      try {
        await api("/api/feedback", { method: "POST", json: { answer_id: id, rating, comment: comment.value } });
        note.textContent = "Thanks for the feedback.";
      } catch (e) { note.textContent = e.message; }
    };
    actions.replaceChildren(
      el("button", { type: "button", class: "copy", onclick: async () => {
        try { await navigator.clipboard.writeText(turn.final.ragtune.answer); note.textContent = "Copied."; }
        catch (_) { note.textContent = "Copy is not allowed here."; }
      } }, "Copy answer"),
      el("button", { type: "button", class: "up", onclick: () => send("up") },
        el("span", { "aria-hidden": "true" }, "▲ "), "Helpful"),
      el("button", { type: "button", class: "down", onclick: () => {
        if (comment.hidden) { comment.hidden = false; comment.focus(); } else send("down");
      } }, el("span", { "aria-hidden": "true" }, "▼ "), "Not helpful"),
      comment, note);
    comment.addEventListener("keydown", (e) => { if (e.key === "Enter") send("down"); });
  }

  function redraw() {
    conversation.replaceChildren(...turns.map(turnNode));
  }

  newChat.addEventListener("click", () => { turns = []; saveHistory(turns); redraw(); question.focus(); });
  question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = question.value.trim();
    if (!text) return;
    question.value = "";
    const messages = [];
    for (const t of turns) {
      messages.push({ role: "user", content: t.question });
      if (t.answer) messages.push({ role: "assistant", content: t.answer });
    }
    messages.push({ role: "user", content: text });
    const turn = { question: text, answer: "", final: null, model: select.value };
    turns.push(turn);
    const index = turns.length - 1;
    const node = turnNode(turn, index);
    conversation.append(node);
    const [, answer, cites, actions] = node.children;
    status.textContent = "Answering…";
    form.querySelector("button").disabled = true;
    try {
      turn.final = await streamChat({ model: select.value, messages }, (piece) => {
        turn.answer += piece;
        answer.textContent = turn.answer;
      });
      if (turn.final) turn.answer = turn.final.ragtune.answer;
      status.textContent = turn.final && turn.final.ragtune.refused ? "No answer in the documents." : "Answered.";
    } catch (e) {
      turn.error = e.message;
      status.textContent = "";
    }
    form.querySelector("button").disabled = false;
    fill(turn, index, answer, cites, actions);
    saveHistory(turns);
    question.focus();
  });

  redraw();
  question.focus();
}
