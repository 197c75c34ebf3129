// Documents (admins): drag-and-drop upload with per-file progress and errors, the list with
// collections, groups, versions and freshness, delete with confirmation.
import { api, basename, el, uploadFile, when } from "./api.js";

export async function render(root) {
  const collection = el("input", { id: "upload-collection", name: "collection", value: "default",
    pattern: "[A-Za-z0-9][A-Za-z0-9._-]*", required: true });
  const groups = el("input", { id: "upload-groups", name: "groups", placeholder: "e.g. hr (empty: everyone)" });
  const picker = el("input", { id: "upload-files", type: "file", multiple: true, class: "sr-only" });
  const drop = el("div", { id: "dropzone", class: "dropzone", role: "button", tabindex: "0",
    "aria-describedby": "drop-help" },
    el("strong", {}, "Drop files here"), " or press Enter to choose files",
    el("p", { id: "drop-help", class: "help" }, "Markdown, text, HTML, PDF, DOCX, JSON. Each file is stored or refused on its own."));
  const progress = el("ul", { id: "upload-progress", class: "progress-list", "aria-live": "polite" });
  const table = el("table", { id: "documents", class: "grid" });
  const versions = el("div", { id: "versions" });
  const dialog = el("dialog", { id: "confirm-delete", "aria-labelledby": "confirm-title" });

  root.append(el("section", { "aria-labelledby": "docs-title" },
    el("h1", { id: "docs-title" }, "Documents"),
    el("div", { class: "upload" },
      el("div", { class: "fields" },
        el("label", { for: "upload-collection" }, "Collection"), collection,
        el("label", { for: "upload-groups" }, "Groups (comma-separated)"), groups,
        el("label", { for: "upload-files", class: "sr-only" }, "Files to upload"), picker),
      drop, progress),
    table, versions, dialog));

  async function refresh() {
    const docs = await api("/api/documents");
    table.replaceChildren(
      el("caption", {}, `${docs.length} documents`),
      el("thead", {}, el("tr", {}, ...["Title", "File", "Collection", "Groups", "Version", "Chunks", "Updated", "On disk", ""]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...docs.map((d) => el("tr", { "data-id": d.id, "data-source": basename(d.source) },
        el("td", {}, d.title), el("td", {}, basename(d.source)), el("td", {}, d.collection),
        el("td", {}, d.groups.join(", ") || "everyone"),
        el("td", {}, el("button", { type: "button", class: "link", "aria-label": `Versions of ${d.title}`,
          onclick: () => showVersions(d) }, `v${d.version}`)),
        el("td", {}, d.chunks), el("td", {}, when(d.updated_at)),
        el("td", { class: d.file === "current" ? "" : "warn" }, d.file),
        el("td", {}, el("button", { type: "button", class: "danger", "aria-label": `Delete ${basename(d.source)}`,
          onclick: () => confirmDelete(d) }, "Delete"))))));
  }

  async function showVersions(d) {
    const full = await api(`/api/documents/${encodeURIComponent(d.id)}`);
    versions.replaceChildren(el("h2", {}, `Versions of ${d.title}`),
      el("ol", {}, ...full.versions.map((v) => el("li", {}, `v${v.version}: ${v.chunks} chunks, ${when(v.ingested_at)}`))));
  }

  function confirmDelete(d) {
    const yes = el("button", { type: "button", id: "confirm-yes", class: "danger" }, "Delete");
    const no = el("button", { type: "button", id: "confirm-no" }, "Cancel");
    dialog.replaceChildren(
      el("h2", { id: "confirm-title" }, `Delete ${basename(d.source)}?`),
      el("p", {}, "Its text, vectors and index entries are removed, and its quotes leave the audit log. This cannot be undone."),
      el("div", { class: "actions" }, no, yes));
    no.addEventListener("click", () => dialog.close());
    yes.addEventListener("click", async () => {
      dialog.close();
      try { await api(`/api/documents/${encodeURIComponent(d.id)}`, { method: "DELETE" }); }
      catch (e) { alertRow(e.message); }
      await refresh();
    });
    dialog.showModal();
    no.focus();
  }

  function alertRow(message) {
    progress.append(el("li", { class: "error", role: "alert" }, message));
  }

  async function send(files) {
    for (const file of files) {
      const bar = el("progress", { max: 1, value: 0, "aria-label": `Uploading ${file.name}` });
      const note = el("span", { class: "result" }, "uploading…");
      const row = el("li", { "data-file": file.name }, el("span", { class: "name" }, file.name), bar, note);
      progress.append(row);
      try {
        const result = await uploadFile(file, { collection: collection.value, groups: groups.value },
          (share) => { bar.value = share; });
        bar.value = 1;
        if (result.status === "failed") {
          row.classList.add("failed");
          note.textContent = `failed: ${result.error}`;
          note.setAttribute("role", "alert");
        } else {
          row.classList.add("ok");
          note.textContent = result.status;
        }
      } catch (e) {
        row.classList.add("failed");
        note.textContent = `failed: ${e.message}`;
        note.setAttribute("role", "alert");
      }
    }
    await refresh();
  }

  drop.addEventListener("click", () => picker.click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); picker.click(); } });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    send([...e.dataTransfer.files]);
  });
  picker.addEventListener("change", () => { send([...picker.files]); picker.value = ""; });
  await refresh();
}
