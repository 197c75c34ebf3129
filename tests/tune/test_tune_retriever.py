"""tune retriever end to end with the real packaged MiniLM: train a few steps, export to int8
ONNX, judge on held-out documents, re-embed the store, lineage and staleness, resume."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from ragtune.errors import ConfigError
from ragtune.ingest.chunking import chunk_embedding_text
from ragtune.tune.run import TuneOptions, TuneRun
from ragtune.tune.train import EmbedderTrainConfig
from ragtune.workspace import Workspace
from tests.conftest import write

TOPICS = {
    "glaciers": "ice moraine crevasse meltwater firn ablation",
    "bakery": "dough yeast oven crust proofing flour",
    "compilers": "parser lexer bytecode register optimizer grammar",
    "sailing": "mainsail jib tack keel rudder halyard",
    "beekeeping": "hive queen nectar comb swarm smoker",
    "volcanoes": "magma caldera lava ash vent eruption",
    "payroll": "salary deduction overtime payslip bonus pension",
    "orchids": "petal epiphyte pollinator bulb greenhouse humidity",
    "railways": "locomotive sleeper signal gauge junction timetable",
    "cheese": "curd rennet rind brine cave ripening",
    "astronomy": "telescope nebula parallax quasar orbit eclipse",
    "plumbing": "valve pipe washer drain pressure solder",
}
VERBS = ["affects", "changes", "controls", "depends on", "protects", "measures", "limits"]


def corpus(root, seed: int = 0) -> None:
    rnd = random.Random(seed)
    for topic, words in TOPICS.items():
        w = words.split()
        sections = []
        for part in ("Basics", "Practice", "Problems"):
            sentences = [f"The {rnd.choice(w)} {rnd.choice(VERBS)} the {rnd.choice(w)} when the "
                         f"{rnd.choice(w)} is {rnd.choice(['cold', 'new', 'wet', 'heavy', 'old'])}."
                         for _ in range(4)]
            sections.append(f"## {part}\n\n" + " ".join(sentences))
        write(root / f"{topic}.md", f"# {topic.title()}\n\n" + "\n\n".join(sections) + "\n")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    corpus(root / "kb")
    ws = Workspace.init(root / "ws")
    ws.ingest([root / "kb"])
    chunk_ids = [c.id for c in ws.store.iter_chunks()]
    before = ws.store.existing_embeddings(chunk_ids)
    options = TuneOptions(name="t", held_out=0.25, min_gain=-1.0, min_eval_queries=3,
                          train=EmbedderTrainConfig(steps=3, batch_size=4, learning_rate=5e-4,
                                            checkpoint_every=1))

    def interrupt(done: int, total: int, stage: str) -> None:
        if stage == "evaluate adapted":
            raise Stop  # as if the process died after export

    with pytest.raises(Stop):
        ws.tune_retriever(options, progress=interrupt)
    assert not (ws.embedders_root / "t" / "tune.json").exists()
    report = ws.tune_retriever(TuneOptions(name="t"))  # same name: resumes with its options
    return root, report, before


pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_resume_skips_finished_stages(tuned) -> None:
    _, report, _ = tuned
    assert {"split.json", "train.jsonl", "eval.json", "baseline.json", "model",
            "export.json"} <= set(report["resumed"])
    assert "adapted.json" not in report["resumed"]
    assert report["training"]["steps"] == 3 and report["options"]["min_gain"] == -1.0


def test_report_and_decision_follow_the_measurement(tuned) -> None:
    _, report, _ = tuned
    d = report["documents"]
    assert d["train"] + d["held_out"] == d["used"] == len(TOPICS) and d["held_out"] >= 1
    held = {x["doc_id"] for x in report["lineage"]["held_out"]}
    assert held.isdisjoint(x["doc_id"] for x in report["lineage"]["documents"])
    gain = report["adapted"]["ndcg@10"] - report["current"]["ndcg@10"]
    assert report["decision"]["gain"] == pytest.approx(gain, abs=1e-4)
    assert report["decision"]["kept"] is (gain >= -1.0)
    assert report["export"]["runtime"] == "onnx"  # served as int8 ONNX, like the base model
    folder = tuned[0] / "ws" / "embedders" / "t"
    examples = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    used = {e["doc_id"] for e in examples} | {e["negative_doc"] for e in examples}
    assert examples and not held & used
    # the default pseudo-queries: questions the packaged chat model wrote, kept for a resume
    asked = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines()]
    assert report["options"]["queries"] == "questions" and len(asked) >= 6
    assert sum(1 for r in asked if r["question"]) >= len(asked) // 2
    assert {e["query"] for e in examples} <= {r["question"] for r in asked}
    assert all(q.endswith("?") for q in json.loads((folder / "eval.json").read_text())["queries"].values())


def test_kept_embedder_re_embeds_the_store_and_is_configured(tuned) -> None:
    root, report, before = tuned
    ws = Workspace.open(root / "ws")
    model = report["export"]["model"]
    assert ws.settings.embedding.model == model and report["activated"]["chunks"] == len(before)
    titles = {d.id: d.title for d in ws.store.list_documents(None)}
    chunks = list(ws.store.iter_chunks())[:6]
    stored = ws.store.existing_embeddings([c.id for c in chunks])
    fresh = ws.embedder.embed_documents([chunk_embedding_text(c, titles[c.doc_id]) for c in chunks])
    for c, v in zip(chunks, fresh):
        assert cosine(stored[c.id], v) > 0.98
        assert cosine(stored[c.id], before[c.id]) < cosine(stored[c.id], v)
    hits = ws.search("when is the magma in the caldera heavy", mode="dense").hits
    assert hits and hits[0].document.endswith("volcanoes.md")


def test_rejected_run_changes_nothing(tuned) -> None:
    root, _, _ = tuned
    ws = Workspace.open(root / "ws")
    src, dst = ws.embedders_root / "t", ws.embedders_root / "r"
    shutil.copytree(src, dst)
    for f in ("decision.json", "activated.json", "tune.json"):
        (dst / f).unlink()
    options = TuneOptions.from_dict({**json.loads((dst / "options.json").read_text()),
                                     "name": "r", "min_gain": 1.0})
    vectors = ws.store.existing_embeddings([c.id for c in ws.store.iter_chunks()])
    report = TuneRun(dst, ws.store, ws.embedder, ws.local_embedder, lambda m: pytest.fail(m),
                     options).run()
    assert not report["decision"]["kept"] and report["activated"] is None
    assert "current embedder stays" in report["decision"]["reason"]
    after = ws.store.existing_embeddings(list(vectors))
    assert all(np.array_equal(vectors[k], after[k]) for k in vectors)
    runs = {r["name"]: r for r in Workspace.open(root / "ws").tune_runs()}
    assert runs["t"]["active"] and runs["t"]["kept"] and not runs["r"]["active"]


def test_lineage_goes_stale_when_a_trained_on_document_changes(tuned) -> None:
    root, report, _ = tuned
    ws = Workspace.open(root / "ws")
    assert ws.tune_runs()[0]["stale"] is False
    held = report["lineage"]["held_out"][0]["source"]
    trained = report["lineage"]["documents"][0]["source"]
    write(root / "kb" / held.rsplit("/", 1)[1], "# Changed\n\nA held-out document changed here.\n")
    ws.ingest([root / "kb"])
    assert ws.tune_runs()[0]["stale"] is False  # it never learned from held-out documents
    write(root / "kb" / trained.rsplit("/", 1)[1], "# Changed\n\nA trained-on document changed.\n")
    ws.ingest([root / "kb"])
    run = {r["name"]: r for r in ws.tune_runs()}["t"]
    assert run["stale"] and trained.rsplit("/", 1)[1] in run["freshness"]
    from ragtune.cli.app import app

    out = CliRunner().invoke(app, ["tune", "status", "-w", str(root / "ws"), "--json"])
    assert out.exit_code == 0, out.output
    assert {r["name"]: r["stale"] for r in json.loads(out.output)["runs"]}["t"] is True


@pytest.mark.integration
def test_tune_needs_the_local_embedder(fake_ws) -> None:
    with pytest.raises(ConfigError, match="local embedder"):
        fake_ws.tune_retriever(TuneOptions())
    assert not fake_ws.embedders_root.exists()


def test_readme_tune_commands(tuned) -> None:
    """The README's tune block through the real CLI (fewer steps than a user would run)."""
    from ragtune.cli.app import app

    root = tuned[0]
    ws = ["-w", str(root / "ws")]
    run = CliRunner().invoke(app, ["tune", "retriever", "--name", "cli", "--steps", "1",
                                   "--batch-size", "4", "--held-out", "0.25", "--max-minutes", "30",
                                   "--questions", "8", "--eval-questions", "4",
                                   *ws])
    assert run.exit_code == 0, run.output
    assert "held-out documents" in run.output and "not kept" in run.output  # too few queries
    status = CliRunner().invoke(app, ["tune", "status", *ws])
    assert status.exit_code == 0 and "cli" in status.output
    use = CliRunner().invoke(app, ["tune", "use", "base", *ws])
    assert use.exit_code == 0, use.output
    assert Workspace.open(root / "ws").settings.embedding.model == "all-MiniLM-L6-v2"
