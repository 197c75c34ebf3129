"""build_raft on a real SQLite store (fake embedder): hard negatives, quotes, split, lineage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ragtune.cli.raft import raft_app
from ragtune.errors import InputError, NotFound
from ragtune.finetune.dataset import validate_dataset
from ragtune.finetune.raft import (
    build_raft,
    lineage_path,
    load_questions,
    training_lineage,
)
from ragtune.finetune.raft_quotes import BEGIN_QUOTE, END_QUOTE, final_answer, pick_quote, quotes_in
from ragtune.finetune.synth import split_documents, synth_examples
from ragtune.generate.prompts import NOT_FOUND_TEXT, build_rag_messages
from ragtune.store.base import SearchFilter
from ragtune.types import Hit


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _build(ws, tmp_path: Path, user: str | None = None, questions=None, **kw):
    tr, ev = tmp_path / "out" / "raft_train.jsonl", tmp_path / "out" / "raft_eval.jsonl"
    report = build_raft(ws.store, ws.retriever, ws.principal(user), questions,
                        out_train=tr, out_eval=ev, **kw)
    return report, _rows(tr), _rows(ev)


def _hits(ws, row: dict) -> list[Hit]:
    """The prompt's sources rebuilt from the store, in prompt order."""
    docs = {d.id: d for d in ws.store.list_documents(None)}
    chunks = {c.id: c for c in ws.store.iter_chunks()}
    return [Hit(chunks[c], 0.0, docs[chunks[c].doc_id].source, docs[chunks[c].doc_id].title)
            for c in row["metadata"]["sources"]]


def test_examples_use_the_served_prompt_quote_the_oracle_and_cite_its_number(kb_ws, tmp_path) -> None:
    ws, _ = kb_ws
    report, train, held = _build(ws, tmp_path)
    assert report.train_examples == len(train) > 30 and report.eval_examples == len(held) > 0
    assert validate_dataset(Path(report.train_path)).ok
    assert report.with_oracle == round(0.8 * len(train))  # exactly the share p
    chunks = {c.id: c for c in ws.store.iter_chunks()}
    numbers = set()
    for row in train + held:
        meta, (system, user, assistant) = row["metadata"], row["messages"]
        # the prompt is exactly what `ragtune ask` serves in rag mode over these hits
        assert [system, user] == build_rag_messages(meta["question"], _hits(ws, row))
        if meta["oracle_included"]:
            n = meta["oracle_n"]
            numbers.add(n)
            assert meta["sources"][n - 1] == meta["chunk_id"]
            assert 2 <= len(meta["sources"]) <= 5  # oracle + up to k=4 distractors
            (quote,) = quotes_in(assistant["content"])
            assert quote and quote in chunks[meta["chunk_id"]].text  # verbatim
            assert assistant["content"].startswith("Reasoning: source [") and BEGIN_QUOTE in assistant["content"]
            assert re.search(rf"\[{n}\]\.?$", final_answer(assistant["content"]))
        else:
            assert assistant["content"] == NOT_FOUND_TEXT
            assert meta["chunk_id"] not in meta["sources"] and len(meta["sources"]) >= 2
    assert len(numbers) >= 3  # shuffled: the oracle is not always [1]
    assert all(r["metadata"]["oracle_included"] for r in held)  # eval always shows the oracle
    first = Path(report.train_path).read_bytes()
    _build(ws, tmp_path)
    assert Path(report.train_path).read_bytes() == first  # deterministic


def test_distractors_are_the_retrievers_top_hits_on_the_same_side(kb_ws, tmp_path) -> None:
    ws, _ = kb_ws
    report, train, held = _build(ws, tmp_path, k=3)
    principal = ws.principal(None)
    for side, rows in (("train", train), ("eval", held)):
        docs = tuple(d["doc_id"] for d in getattr(report, f"{side}_documents"))
        for row in rows[:6]:
            meta = row["metadata"]
            ranked = [h.chunk.id for h in ws.retriever.search(
                meta["question"], principal, k=10,
                filters=SearchFilter(documents=docs)).hits if h.chunk.id != meta["chunk_id"]]
            distractors = [c for c in meta["sources"] if c != meta["chunk_id"]]
            # hard negatives: the best-ranked non-oracle chunks (prompt order is shuffled)
            assert set(distractors) == set(ranked[:len(distractors)]), meta["question"]
            assert len(distractors) == (3 if meta["oracle_included"] else 4)


def test_split_by_document_matches_synth_and_no_document_feeds_both_sides(kb_ws, tmp_path) -> None:
    ws, _ = kb_ws
    report, train, held = _build(ws, tmp_path, eval_fraction=0.34, seed=3)
    assert report.options["eval_fraction"] == 0.34
    train_docs = {d for r in train for d in r["metadata"]["source_docs"]}
    eval_docs = {d for r in held for d in r["metadata"]["source_docs"]}
    chunk_doc = {c.id: c.doc_id for c in ws.store.iter_chunks()}
    assert {chunk_doc[c] for r in train for c in r["metadata"]["sources"]} <= train_docs
    assert {chunk_doc[c] for r in held for c in r["metadata"]["sources"]} <= eval_docs
    assert train_docs and eval_docs and not train_docs & eval_docs
    readable = sorted(d.id for d in ws.store.list_documents(ws.principal(None)))
    expected_train, expected_eval = split_documents(readable, 0.34, 3)
    assert eval_docs <= set(expected_eval) and train_docs <= set(expected_train)
    synth = synth_examples(ws.store, principal=ws.principal(None), out_train=tmp_path / "s.jsonl",
                           out_eval=tmp_path / "se.jsonl", eval_fraction=0.34, seed=3)
    assert {d["id"] for d in synth["eval"]["documents"]} == eval_docs  # same held-out documents


def test_principal_scopes_documents_and_is_recorded_in_the_lineage(kb_ws, tmp_path) -> None:
    ws, _ = kb_ws
    anon, train, held = _build(ws, tmp_path, k=2)
    assert "salary" not in json.dumps(train + held).lower()
    lineage = training_lineage(anon.train_path)
    assert lineage["kind"] == "raft" and lineage["principal"]["user"] == "anonymous"
    assert (lineage["p"], lineage["k"], lineage["seed"]) == (0.8, 2, 0)
    prompt_docs = {d for r in train for d in r["metadata"]["source_docs"]}
    assert {d["doc_id"] for d in lineage["documents"]} == prompt_docs  # oracles and distractors
    assert all(d["version"] == 1 and len(d["content_hash"]) == 64 for d in lineage["documents"])

    ana, train, held = _build(ws, tmp_path, user="ana", eval_fraction=0.0)
    assert "salary" in json.dumps(train).lower() and ana.principal == "ana"
    lineage = json.loads(lineage_path(ana.train_path).read_text())
    assert lineage["principal"] == {"user": "ana", "groups": ["hr"], "admin": False}
    assert any(d["collection"] == "hr" for d in lineage["documents"])
    # an edited file no longer matches its sidecar: fall back to the per-line metadata
    Path(ana.train_path).write_text(Path(ana.train_path).read_text().splitlines()[0] + "\n")
    fallback = training_lineage(ana.train_path)
    assert "kind" not in fallback and len(fallback["documents"]) == 1


def test_questions_file_drops_and_counts_what_cannot_be_verified(kb_ws, tmp_path) -> None:
    ws, _ = kb_ws
    lines = [
        {"id": "ok", "question": "How many days do I have to return an item I ordered online?",
         "answers": ["30 days from the delivery date", "30 days"],
         "sources": ["policies/returns-policy.md"]},
        {"question": "Return window?", "answer": "30 days",
         "source": "policies/returns-policy.md", "quote": "Returns within 45 days."},
        {"question": "Gift card refunds?", "answer": "a new electronic gift card",
         "source": "policies/returns-policy.md", "quote": "is issued as a new electronic gift card"},
        {"question": "Zebra policy?", "answer": "Zebras are welcome", "source": "nope/zebra.md"},
        {"question": "Pay band L3?", "answer": "$87,360", "source": "restricted/salary-bands-2025.md"},
        {"question": "Price of the moon?", "answer": "The knowledge base does not say.",
         "sources": [], "answerable": False},
        {"question": "How do I get a quantum refund?", "answer": "Quantum refunds need form Q-77",
         "source": "policies/returns-policy.md"},
    ]
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps(x) + "\n" for x in lines))
    report, train, held = _build(ws, tmp_path, questions=load_questions(qfile), eval_fraction=0.0)
    assert report.dropped == {"answer_not_in_oracle": 1, "quote_not_verbatim": 1,
                              "source_not_found": 2, "unanswerable_question": 1}
    row, given = train + held
    assert row["metadata"]["question_id"] == "ok" and "30 days" in row["metadata"]["quote"]
    assert given["metadata"]["quote"] == "is issued as a new electronic gift card"  # found in a later chunk
    # the hidden salary document is dropped exactly like a missing one: nothing leaks
    ana, _, _ = _build(ws, tmp_path, user="ana", questions=load_questions(qfile), eval_fraction=0.0)
    assert ana.dropped["source_not_found"] == 1 and ana.train_examples == 3

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x?", "answer": "y", "source": "a.md"}\n{oops\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: not valid JSON"):
        load_questions(bad)
    bad.write_text('{"question": "x?", "source": "a.md"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: needs 'answer'"):
        load_questions(bad)
    bad.write_text('{"question": "x?", "answer": "y"}\n')
    with pytest.raises(InputError, match="needs 'chunk_id' or 'source'"):
        load_questions(bad)
    with pytest.raises(InputError, match="--p: must be in"):
        _build(ws, tmp_path, p=1.5)
    with pytest.raises(InputError, match="--k"):
        _build(ws, tmp_path, k=0)


def test_synth_output_is_a_question_source(kb_ws, tmp_path) -> None:
    ws, _ = kb_ws
    synth_examples(ws.store, principal=ws.principal(None), out_train=tmp_path / "s.jsonl",
                   out_eval=tmp_path / "se.jsonl", eval_fraction=0.0, limit_chunks=8)
    questions = load_questions(tmp_path / "s.jsonl")
    assert len(questions) == 8 and all(q.chunk_id and "[Source:" not in q.answers[0] for q in questions)
    report, train, _ = _build(ws, tmp_path, questions=questions, eval_fraction=0.0)
    assert report.train_examples == 8 and not report.dropped
    assert {r["metadata"]["chunk_id"] for r in train} == {q.chunk_id for q in questions}


def test_no_retriever_hits_is_a_clear_error(fake_ws, tmp_path) -> None:
    doc = tmp_path / "one.md"
    doc.write_text("# Parking\n\nVisitors park in lot B behind the main building every day.\n")
    fake_ws.ingest([doc])
    with pytest.raises(NotFound, match="returned no chunk other than the oracle") as e:
        _build(fake_ws, tmp_path, eval_fraction=0.0)
    assert "anonymous" in str(e.value) and "distractor" in str(e.value)
    with pytest.raises(NotFound, match="no documents that 'ana' may read"):
        empty = type(fake_ws).init(tmp_path / "empty", overrides={"embedding": {"backend": "fake"},
                                                                  "access": {"users": {"ana": []}}})
        _build(empty, tmp_path, user="ana")


def test_pick_quote_prefers_the_supporting_sentence() -> None:
    text = ("Free on orders of $75 or more. The threshold is measured after discounts.\n"
            "Hawaii pays a flat $19.95 and the $75 threshold does not apply.")
    assert pick_quote(text, ["No, commercial use voids it"]) == ("", 0.0)
    quote, score = pick_quote(text, ["$75 after discounts", "$75"], "What is the minimum order?")
    assert score == 1.0 and quote.startswith("Free on orders") and quote in text
    assert pick_quote(text, ["Yes, a flat $19.95"])[0].startswith("Hawaii")
    assert final_answer(f"x {BEGIN_QUOTE}y{END_QUOTE}\nAnswer: 30 days [2]") == "30 days [2]"


def test_cli_build_as_a_user(kb_ws, tmp_path) -> None:
    ws, _ = kb_ws
    app = typer.Typer()
    app.add_typer(raft_app, name="raft")
    runner = CliRunner()
    r = runner.invoke(app, ["raft", "build", "-w", str(ws.root), "--as", "ana", "--k", "2", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["principal"] == "ana" and out["train_path"] == str(ws.root / "data" / "raft_train.jsonl")
    assert Path(out["lineage_path"]).is_file() and out["options"]["k"] == 2
    r = runner.invoke(app, ["raft", "build", "-w", str(ws.root), "--limit", "5"])
    assert r.exit_code == 0, r.output
    assert "with the oracle" in r.output and "lineage ->" in r.output
    r = runner.invoke(app, ["raft", "build", "-w", str(ws.root), "--p", "2"])
    assert isinstance(r.exception, InputError) and "--p" in str(r.exception)
