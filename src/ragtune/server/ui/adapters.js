// Adapters (admins): what each learned from (lineage) and whether that is still current.
import { api, el, when } from "./api.js";

export async function render(root) {
  const adapters = await api("/api/adapters");
  const rows = adapters.map((a) => {
    const f = a.freshness;
    const state = !f.tracked ? "no lineage" : f.stale ? "STALE" : "fresh";
    return el("tr", { "data-adapter": a.name },
      el("th", { scope: "row" }, a.name), el("td", {}, a.base_model), el("td", {}, when(a.created_at)),
      el("td", {}, `${a.lineage_documents} documents` + (a.built_as ? ` (as ${a.built_as})` : "")),
      el("td", { class: f.stale ? "warn" : "" }, el("strong", {}, state), f.stale ? ` — ${f.summary}` : ""),
      el("td", {}, a.models.join(", ")));
  });
  root.append(el("section", { "aria-labelledby": "adapters-title" },
    el("h1", { id: "adapters-title" }, "Adapters"),
    adapters.length ? el("table", { id: "adapters", class: "grid" },
      el("thead", {}, el("tr", {}, ...["Adapter", "Base model", "Trained", "Lineage", "Freshness", "Models"]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows))
      : el("p", {}, "No adapters yet: ragtune finetune train DATA --adapter NAME.")));
}
