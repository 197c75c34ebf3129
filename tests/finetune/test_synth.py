"""synth_examples: extractive and LLM examples from a real ingested KB, split by document."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ragtune.errors import InputError, NotFound
from ragtune.finetune.dataset import validate_dataset
from ragtune.finetune.evaluate import DEFAULT_FORMAT_REGEX
from ragtune.finetune.synth import (
    citation,
    extractive_pairs,
    lineage_from_file,
    split_documents,
    synth_examples,
)
from ragtune.generate.fake import FakeGenerator
from ragtune.types import Chunk

from ..conftest import EXAMPLES
from .conftest import PUBLIC


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_extractive_examples_split_by_document(kb_ws, tmp_path: Path) -> None:
    ws, _ = kb_ws
    tr, ev = tmp_path / "out" / "train.jsonl", tmp_path / "out" / "eval.jsonl"
    r = synth_examples(ws.store, principal=ws.principal(None), out_train=tr, out_eval=ev)
    train, held = _rows(tr), _rows(ev)
    assert r["method"] == "extractive" and r["train"]["examples"] == len(train) > 20
    assert r["eval"]["examples"] == len(held) > 0 and len(r["eval"]["documents"]) == 1  # 6 docs * 0.2
    train_docs = {x["metadata"]["doc_id"] for x in train}
    eval_docs = {x["metadata"]["doc_id"] for x in held}
    assert train_docs and eval_docs and not train_docs & eval_docs
    assert len(train_docs | eval_docs) == len(PUBLIC)  # anonymous never sees salary bands
    assert not any("salary" in json.dumps(x).lower() for x in train + held)
    for x in train + held:
        answer = x["messages"][-1]["content"]
        assert re.search(DEFAULT_FORMAT_REGEX, answer), answer
        assert x["metadata"]["version"] == 1 and len(x["metadata"]["content_hash"]) == 64
    faq = [x for x in train + held if x["metadata"]["source"].endswith("helpdesk-faq.json")]
    assert any(x["messages"][1]["content"] == "How do I connect to the office Wi-Fi?" for x in faq)
    assert validate_dataset(tr).ok
    first = tr.read_bytes()
    synth_examples(ws.store, principal=ws.principal(None), out_train=tr, out_eval=ev)
    assert tr.read_bytes() == first  # deterministic
    assert {d["id"] for d in r["train"]["documents"]} == train_docs

    hr = synth_examples(ws.store, principal=ws.principal("ana"), out_train=tmp_path / "a.jsonl",
                        out_eval=tmp_path / "b.jsonl", per_chunk=2)
    assert "salary" in (tmp_path / "a.jsonl").read_text().lower() + (tmp_path / "b.jsonl").read_text().lower()
    assert hr["train"]["examples"] + hr["eval"]["examples"] > len(train) + len(held)


def test_lineage_records_document_versions(kb_ws, tmp_path: Path) -> None:
    ws, kb = kb_ws
    shutil.copy(EXAMPLES / "updates" / "returns-policy.md", kb / "policies" / "returns-policy.md")
    ws.ingest([kb / "policies" / "returns-policy.md"])
    tr, ev = tmp_path / "t.jsonl", tmp_path / "e.jsonl"
    r = synth_examples(ws.store, principal=ws.principal(None), out_train=tr, out_eval=ev,
                       eval_fraction=0.0)
    assert not ev.read_text() and r["eval"]["examples"] == 0
    lineage = lineage_from_file(tr)
    assert lineage is not None and lineage["examples_with_metadata"] == r["train"]["examples"]
    versions = {d["source"].rsplit("/", 1)[-1]: d["version"] for d in lineage["documents"]}
    assert versions["returns-policy.md"] == 2 and versions["warranty-policy.md"] == 1
    assert "45 days" in tr.read_text()  # v2's return window, not v1's 30
    assert lineage_from_file(EXAMPLES / "finetune" / "support_style.jsonl") is None


def test_llm_examples_and_fallback(kb_ws, tmp_path: Path) -> None:
    ws, _ = kb_ws

    def reply(messages):
        text = messages[-1]["content"]
        if "Wi-Fi" in text:
            return "Sorry, I cannot."  # not JSON: the extractive example is used instead
        return ('```json\n[{"question": "Q about this?", "answer": "It is covered. '
                '[Source: Wrong, Place]"}]\n```')

    gen = FakeGenerator(reply=reply, name="fake-llm")
    tr, ev = tmp_path / "t.jsonl", tmp_path / "e.jsonl"
    r = synth_examples(ws.store, principal=ws.principal(None), out_train=tr, out_eval=ev,
                       generator=gen, limit_chunks=8)
    rows = _rows(tr) + _rows(ev)
    assert r["method"] == "llm" and r["generator"] == "fake-llm" and r["chunks_used"] == 8
    assert len({x["metadata"]["doc_id"] for x in rows}) == len(PUBLIC)  # round-robin coverage
    llm = [x for x in rows if x["metadata"]["method"] == "llm"]
    assert llm and all(x["messages"][-1]["content"].startswith("It is covered. [Source: ")
                       and "Wrong" not in x["messages"][-1]["content"] for x in llm)
    assert "Text:\n" in gen.calls[0][-1]["content"]  # the chunk is in the prompt
    assert r["llm_fallbacks"] == sum(x["metadata"]["method"] == "extractive" for x in rows) >= 1


def test_split_documents_is_stable_and_bounded() -> None:
    ids = [f"doc_{i:03d}" for i in range(50)]
    train, held = split_documents(ids, 0.2, seed=3)
    assert len(held) == 10 and sorted(train + held) == ids
    assert split_documents(list(reversed(ids)), 0.2, seed=3) == (train, held)
    assert split_documents(ids, 0.2, seed=4) != (train, held)
    assert split_documents(["a", "b"], 0.01)[1] and split_documents(["a", "b"], 0.99)[0]
    assert split_documents(["a"], 0.5) == (["a"], []) and split_documents(ids, 0.0)[1] == []
    with pytest.raises(InputError, match="eval_fraction"):
        split_documents(ids, 1.0)


def test_citation_and_extractive_pairs(fake_ws, tmp_path: Path) -> None:
    assert citation("BUY ONLINE, PICK UP IN STORE", "WHAT TO BRING") == \
        "[Source: BUY ONLINE PICK UP IN STORE, WHAT TO BRING]"
    chunk = Chunk("c1", "d1", "Refunds\n\nShort one. Refunds go to the original card in 5 days. "
                  "Store credit is issued at once for gift receipts.\n| a | b |", "Returns > Refunds", 0, 30)
    (q, a), = extractive_pairs(chunk, "Returns", 1)
    assert q == "What does the Returns say about Refunds?"
    assert a == ("Refunds go to the original card in 5 days. "
                 "Store credit is issued at once for gift receipts.")
    assert extractive_pairs(chunk, "Returns", 3) == [(q, a)]  # no third sentence left
    with pytest.raises(NotFound, match="ingest some"):
        synth_examples(fake_ws.store, principal=fake_ws.principal(None),
                       out_train=tmp_path / "t", out_eval=tmp_path / "e")
