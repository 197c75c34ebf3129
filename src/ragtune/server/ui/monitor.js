// Monitor (admins): the `ragtune monitor` report of the last period, in the page.
import { api, el } from "./api.js";

const PERIODS = [["1d", "last day"], ["7d", "last 7 days"], ["30d", "last 30 days"]];

export async function render(root) {
  const frame = el("iframe", { id: "monitor-frame", title: "Monitor report", class: "report" });
  const status = el("p", { id: "monitor-status", role: "status" }, "Computing the report…");
  async function load(since) {
    status.textContent = "Computing the report…";
    frame.srcdoc = await api(`/api/monitor/html?since=${encodeURIComponent(since)}`);  // self-contained HTML
    status.textContent = `Answers of the ${PERIODS.find((p) => p[0] === since)[1]}, compared with the period before.`;
  }
  const picker = el("select", { id: "monitor-since", "aria-label": "Period",
    onchange: () => load(picker.value) },
    ...PERIODS.map(([v, label]) => el("option", { value: v, selected: v === "7d" }, label)));
  root.append(el("section", { "aria-labelledby": "monitor-title" },
    el("h1", { id: "monitor-title" }, "Monitor"),
    el("p", {}, "Freshness, answer quality with tested changes, knowledge gaps and drift. ", picker),
    status, frame));
  await load("7d");
}
