// Reports (admins): the latest bake-off report one click away, the others listed.
import { api, el, when } from "./api.js";

export async function render(root) {
  const reports = await api("/api/reports");
  const frame = el("iframe", { id: "report-frame", title: "Report", class: "report", hidden: true });
  async function open(r) {
    frame.srcdoc = await api(`/api/reports/${r.name}/html`);  // self-contained HTML
    frame.hidden = false;
    frame.focus();
  }
  const latest = reports.find((r) => r.html);
  root.append(el("section", { "aria-labelledby": "reports-title" },
    el("h1", { id: "reports-title" }, "Reports"),
    latest ? el("p", {}, el("button", { type: "button", id: "open-latest", onclick: () => open(latest) },
      "Open the latest bake-off report"), latest.headline ? ` — ${latest.headline}` : "")
      : el("p", {}, "No reports yet: ragtune compare --eval EVAL.jsonl --systems rag,base,…"),
    el("ul", { id: "reports" }, ...reports.map((r) => el("li", {},
      el("strong", {}, r.name), ` (${when(r.created_at)}; ${r.systems.join(", ")}) `,
      r.html ? el("button", { type: "button", class: "link", onclick: () => open(r) }, "open") : ""))),
    frame));
}
