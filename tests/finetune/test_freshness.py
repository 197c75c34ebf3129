"""Adapter freshness against a real SQLite store; the adapters CLI marks stale adapters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ragtune.cli.finetune import adapters_app
from ragtune.finetune.adapters import AdapterRegistry
from ragtune.finetune.freshness import adapter_freshness, base_mismatch, registry_freshness
from ragtune.finetune.raft import build_raft, training_lineage
from ragtune.finetune.train import folder_hash

from ..conftest import EXAMPLES

DOCS = ["policies/returns-policy.md", "policies/warranty-policy.md", "shipping/store-pickup.txt",
        "it/vpn-setup.md"]


def fake_adapter(root: Path, name: str, lineage, base: str = "tiny", base_hash: str = "folder:x") -> Path:
    """A registry entry without weights: run.json and adapter_config.json are all it reads."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "run.json").write_text(json.dumps({
        "base_model": base, "base_model_hash": base_hash, "created_at": 1.0,
        "dataset": {"path": "train.jsonl", "examples": 12}, "lineage": lineage}))
    return folder


@pytest.fixture()
def kb(fake_ws, tmp_path: Path):
    kb = tmp_path / "kb"
    for rel in DOCS:
        (kb / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / "kb" / rel, kb / rel)
    fake_ws.ingest([kb / d for d in DOCS[:3]])
    fake_ws.ingest([kb / DOCS[3]], collection="it")
    build_raft(fake_ws.store, fake_ws.retriever, fake_ws.principal(None), None,
               out_train=tmp_path / "raft.jsonl", out_eval=tmp_path / "raft_eval.jsonl",
               k=2, eval_fraction=0.0)
    lineage = training_lineage(tmp_path / "raft.jsonl")
    fake_adapter(fake_ws.adapters_root, "raft", lineage)
    fake_adapter(fake_ws.adapters_root, "handmade", None)
    return fake_ws, kb


def test_fresh_then_changed_then_deleted(kb) -> None:
    ws, kb_dir = kb
    registry = AdapterRegistry(ws.adapters_root)
    f = adapter_freshness(registry.get("raft"), ws.store)
    assert f.tracked and not f.stale and f.documents == 4 and f.summary() == "fresh"
    assert f.principal == "anonymous"
    untracked = adapter_freshness(registry.get("handmade"), ws.store)
    assert not untracked.tracked and not untracked.stale and untracked.summary() == "no lineage"

    shutil.copy(EXAMPLES / "updates" / "returns-policy.md", kb_dir / DOCS[0])
    ws.ingest([kb_dir / DOCS[0]])
    ws.remove(str(kb_dir / DOCS[3]))
    f = adapter_freshness(registry.get("raft"), ws.store)
    returns, vpn = str(kb_dir / DOCS[0]), str(kb_dir / DOCS[3])
    assert f.stale and [c.to_dict() for c in f.changed] == [
        {"source": returns, "trained_version": 1, "current_version": 2, "collection": "default"}]
    assert f.deleted == (vpn,) and f.stale_sources == sorted([returns, vpn])
    assert f.summary() == f"{returns} changed (v1 -> v2); {vpn} deleted"
    # hybrid mode asks per collection; the deleted one recorded its collection ("it")
    assert f.stale_in(["default"]) == [returns] and f.stale_in(["it"]) == [vpn]
    assert f.stale_in(["hr"]) == [] and f.stale_in(None) == f.stale_sources
    assert set(registry_freshness(ws.adapters_root, ws.store)) == {"raft", "handmade"}


def test_synth_style_lineage_without_hashes_uses_versions(fake_ws, tmp_path: Path) -> None:
    doc = tmp_path / "handbook.md"
    doc.write_text("# Handbook\n\nBadges are renewed every two years at the front desk.\n")
    fake_ws.ingest([doc])
    info = AdapterRegistry(fake_ws.adapters_root)
    fake_adapter(fake_ws.adapters_root, "old", {"documents": [{"source": str(doc), "version": 1}]})
    assert not adapter_freshness(info.get("old"), fake_ws.store).stale
    doc.write_text("# Handbook\n\nBadges are renewed every year at the front desk.\n")
    fake_ws.ingest([doc])
    f = adapter_freshness(info.get("old"), fake_ws.store)
    assert f.stale and (f.changed[0].trained_version, f.changed[0].current_version) == (1, 2)


def test_adapters_list_and_show_mark_stale_adapters(kb) -> None:
    ws, kb_dir = kb
    app = typer.Typer()
    app.add_typer(adapters_app, name="adapters")
    runner = CliRunner()

    def listing() -> str:
        r = runner.invoke(app, ["adapters", "list", "-w", str(ws.root)], env={"COLUMNS": "300"})
        assert r.exit_code == 0, r.output
        return r.output

    out = listing()
    assert "fresh" in out and "STALE" not in out
    shutil.copy(EXAMPLES / "updates" / "returns-policy.md", kb_dir / DOCS[0])
    ws.ingest([kb_dir / DOCS[0]])
    out = listing()
    raft_line = next(line for line in out.splitlines() if "raft" in line)
    assert "STALE" in raft_line and "returns-policy.md changed (v1 -> v2)" in raft_line
    handmade = next(line for line in out.splitlines() if "handmade" in line)
    assert "STALE" not in handmade
    r = runner.invoke(app, ["adapters", "list", "-w", str(ws.root), "--json"])
    by_name = {a["name"]: a["freshness"] for a in json.loads(r.stdout)}
    assert by_name["raft"]["stale"] and not by_name["handmade"]["tracked"]
    r = runner.invoke(app, ["adapters", "show", "raft", "-w", str(ws.root)])
    shown = json.loads(r.stdout)
    assert shown["freshness"]["changed"][0]["current_version"] == 2
    assert shown["lineage"]["kind"] == "raft"


def test_base_mismatch_names_both_models(tiny_model_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(cfg | {"hidden_size": 32}))
    root = tmp_path / "adapters"
    fake_adapter(root, "mine", None, base=str(tiny_model_dir),
                 base_hash="folder:" + folder_hash(tiny_model_dir))
    info = AdapterRegistry(root).get("mine")
    assert base_mismatch(info, str(tiny_model_dir)) is None
    copy = tmp_path / "same-weights"  # another path to the same model: same identity
    shutil.copytree(tiny_model_dir, copy)
    assert base_mismatch(info, str(copy)) is None
    msg = base_mismatch(info, str(other))
    assert msg and "adapter 'mine' was trained on base model" in msg
    assert str(tiny_model_dir) in msg and str(other) in msg and "retrain" in msg
    assert "no such model folder" in base_mismatch(info, str(tmp_path / "missing"))


def test_raft_build_train_then_stale_end_to_end(kb, tiny_model_dir: Path, tmp_path: Path) -> None:
    """raft build --as ana -> finetune train (real LoRA, tiny model) -> run.json lineage ->
    adapters list goes STALE when a trained-on document changes."""
    from ragtune.cli.finetune import finetune_app
    from ragtune.cli.raft import raft_app

    ws, kb_dir = kb
    long_ctx = tmp_path / "tiny-long"  # RoPE: the position limit is only a config number
    shutil.copytree(tiny_model_dir, long_ctx)
    cfg = json.loads((long_ctx / "config.json").read_text())
    (long_ctx / "config.json").write_text(json.dumps(cfg | {"max_position_embeddings": 4096}))
    app = typer.Typer()
    for sub, name in ((raft_app, "raft"), (finetune_app, "finetune"), (adapters_app, "adapters")):
        app.add_typer(sub, name=name)
    runner = CliRunner()
    r = runner.invoke(app, ["raft", "build", "-w", str(ws.root), "--as", "ana", "--k", "1",
                            "--limit", "12", "--eval-fraction", "0", "--json"])
    assert r.exit_code == 0, r.output
    train_file = json.loads(r.stdout)["train_path"]
    r = runner.invoke(app, ["finetune", "train", train_file, "--adapter", "raft-ana", "-w", str(ws.root),
                            "--base", str(long_ctx), "--max-steps", "2", "--batch-size", "2",
                            "--max-length", "3072", "--rank", "2", "--json"])
    assert r.exit_code == 0, r.output
    run = json.loads((ws.adapters_root / "raft-ana" / "run.json").read_text())
    assert run["lineage"]["kind"] == "raft" and run["lineage"]["principal"]["user"] == "ana"
    assert run["dataset"]["train_examples"] + run["dataset"]["val_examples"] == 12
    assert run["dataset"]["dropped_no_assistant_tokens_after_truncation"] == 0
    shutil.copy(EXAMPLES / "updates" / "returns-policy.md", kb_dir / DOCS[0])
    ws.ingest([kb_dir / DOCS[0]])
    r = runner.invoke(app, ["adapters", "list", "-w", str(ws.root), "--json"])
    listed = {a["name"]: a["freshness"] for a in json.loads(r.stdout)}
    assert listed["raft-ana"]["stale"] and listed["raft-ana"]["principal"] == "ana"
    assert [c["source"] for c in listed["raft-ana"]["changed"]] == [str(kb_dir / DOCS[0])]
