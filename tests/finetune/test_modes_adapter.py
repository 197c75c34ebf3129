"""finetuned and hybrid modes through Workspace.ask with a real LoRA adapter (tiny model).

The base generator is the fake one; the adapter side runs the real transformers + PEFT
generator on the tiny random Llama, so these tests check the wiring: which generator
answers, with or without retrieval, and what the trace records.
"""

from __future__ import annotations

import json
import shutil

import pytest

from ragtune.types import Route
from tests.conftest import FAKE, write
from tests.finetune.conftest import MARKER

pytestmark = pytest.mark.slow


@pytest.fixture
def ws(tmp_path, adapters_root):
    from ragtune.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", overrides=FAKE | {"generation": {"backend": "fake",
                                                                          "max_tokens": 24}})
    shutil.copytree(adapters_root, ws.adapters_root)
    # The shared fixture's lineage names a handbook.md this store never had (= deleted,
    # which makes the adapter stale everywhere); start from an adapter with no lineage.
    set_run(ws, lineage=None)
    ws.ingest([write(tmp_path / "kb" / "refunds.md",
                     "# Refunds\n\nTo request a refund, ask the office within 14 days.\n")],
              collection="policy")
    return ws


def set_run(ws, **changes) -> None:
    run = ws.adapters_root / "style" / "run.json"
    data = json.loads(run.read_text())
    for key, value in changes.items():
        if key == "system_prompt":
            data["dataset"]["system_prompt"] = value
        else:
            data[key] = value
    run.write_text(json.dumps(data))


def test_finetuned_mode_answers_with_the_adapter_alone(ws):
    answer = ws.ask("How do I request my refund? (case 1)", mode="finetuned", adapter="style")
    assert answer.trace.mode == "finetuned" and answer.trace.adapter == "style"
    assert answer.trace.retrieved == [] and answer.trace.model != "fake"
    assert MARKER in answer.text  # the style the adapter was trained on
    base = ws.ask("How do I request my refund? (case 1)", mode="base")
    assert base.trace.model == "fake" and MARKER not in base.text


def test_rag_mode_with_an_adapter_generates_from_retrieved_context(ws):
    answer = ws.ask("How do I request a refund?", mode="rag", adapter="style")
    assert answer.trace.retrieved and answer.trace.adapter == "style"
    assert "<source " in answer.trace.prompt  # the retrieved sources, fenced


def test_hybrid_without_a_router_retrieves_everything_readable(ws):
    answer = ws.ask("How do I request a refund?", mode="hybrid", adapter="style")
    assert answer.trace.route["kind"] == "knowledge"
    assert "no router configured" in answer.trace.route["reason"]
    assert answer.trace.retrieved and answer.trace.adapter == "style"


def test_hybrid_answers_stale_topics_with_the_base_model(ws, monkeypatch):
    # The adapter's lineage names refunds.md; the document in the store is a newer version.
    doc = ws.store.get_document(str((ws.root.parent / "kb" / "refunds.md").resolve()))
    assert doc is not None
    set_run(ws, lineage={"documents": [{"source": doc.source, "version": doc.version,
                                        "content_hash": "0" * 64}]})
    monkeypatch.setattr(ws, "routing", lambda q, p: Route("policy", "knowledge", 0.9, ("policy",),
                                                        "test"))
    answer = ws.ask("How do I request a refund?", mode="hybrid", adapter="style")
    assert answer.trace.adapter is None and answer.trace.model == "fake"
    assert any("stale" in n for n in answer.trace.notes)


def test_the_adapters_own_system_prompt_is_used_without_retrieval(ws):
    set_run(ws, system_prompt="You are the Acme office helper.")
    answer = ws.ask("How do I renew my badge?", mode="finetuned", adapter="style")
    assert "You are the Acme office helper." in answer.trace.prompt
