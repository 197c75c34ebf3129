"""Eval sets: validation with file:line errors, BEIR folders, source mapping, synthesis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.errors import InputError
from ragtune.evaluate.evalset import SourceResolver, load_evalset, subset, synth_evalset
from ragtune.finetune.synth import split_documents, synth_examples
from tests.conftest import EXAMPLES, ROOT, write

GOOD = {"id": "q1", "question": "How long?", "answers": ["30 days"], "sources": ["a.md"],
        "answerable": True, "tags": ["policy"]}


def _file(tmp_path: Path, *rows: object) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    return write(tmp_path / "eval.jsonl", "\n".join(lines) + "\n")


def test_loads_the_sample_eval_set() -> None:
    ev = load_evalset(EXAMPLES / "eval" / "kb_eval.jsonl")
    assert len(ev) == 97 and ev.answerable == 82 and ev.unanswerable == 15
    q = ev.questions[0]
    assert q.id == "q001" and q.line == 1 and q.answers[0] == "30 days from the delivery date"
    assert q.sources == ("policies/returns-policy.md",) and not q.retrieval_only
    assert len(ev.sha256) == 64


@pytest.mark.parametrize("row,problem", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({k: v for k, v in GOOD.items() if k != "answers"}, "missing key 'answers'"),
    ({**GOOD, "answerable": "yes"}, "'answerable' must be a bool"),
    ({**GOOD, "answers": []}, "needs at least one reference answer"),
    ({**GOOD, "answers": ["ok", ""]}, "'answers' must hold non-empty strings"),
    ({**GOOD, "sources": [3]}, "'sources' must hold non-empty strings"),
    ({**GOOD, "anwsers": ["x"]}, "unknown key(s) anwsers"),
    ({**GOOD, "question": "  "}, "must not be empty"),
])
def test_bad_lines_name_file_and_line(tmp_path, row, problem) -> None:
    path = _file(tmp_path, GOOD | {"id": "q0"}, "", row)
    with pytest.raises(InputError) as e:
        load_evalset(path)
    assert str(e.value).startswith(f"{path}:3: ") and problem in str(e.value)


def test_duplicate_ids_and_empty_files(tmp_path) -> None:
    with pytest.raises(InputError, match=r"eval.jsonl:2: duplicate id 'q1' \(first on line 1\)"):
        load_evalset(_file(tmp_path, GOOD, GOOD))
    with pytest.raises(InputError, match="no questions"):
        load_evalset(write(tmp_path / "empty.jsonl", "\n\n"))
    with pytest.raises(InputError, match="cannot read"):
        load_evalset(tmp_path / "nope.jsonl")


def test_unanswerable_questions_need_no_answers(tmp_path) -> None:
    ev = load_evalset(_file(tmp_path, {**GOOD, "answerable": False, "answers": [], "sources": []}))
    assert ev.unanswerable == 1 and not ev.questions[0].retrieval_only


def test_beir_folder_is_a_retrieval_only_set() -> None:
    ev = load_evalset(ROOT / "tests" / "data" / "beir_tiny")
    assert len(ev) == 10
    q = next(q for q in ev.questions if q.id == "q01")
    assert q.retrieval_only and set(q.sources) == {"beir:d04", "beir:d03"} and q.tags == ("beir",)


def test_subset_by_tag_and_limit() -> None:
    ev = load_evalset(EXAMPLES / "eval" / "kb_eval.jsonl")
    un = subset(ev, tags=["unanswerable"])
    assert len(un) == 15 and all(not q.answerable for q in un.questions)
    assert [q.id for q in subset(ev, limit=3).questions] == ["q001", "q002", "q003"]
    with pytest.raises(InputError, match="no question left"):
        subset(ev, tags=["no-such-tag"])


def test_every_sample_source_maps_to_one_ingested_document(fake_ws, tmp_path) -> None:
    """The sample KB ingested from a copy elsewhere: suffix matching finds every source."""
    import shutil

    kb = tmp_path / "elsewhere" / "kb"
    shutil.copytree(EXAMPLES / "kb", kb)
    fake_ws.ingest([kb])
    resolver = SourceResolver(fake_ws.store.list_documents(None))
    ev = load_evalset(EXAMPLES / "eval" / "kb_eval.jsonl")
    names = {s for q in ev.questions for s in q.sources}
    resolved = {s: resolver.resolve(s) for s in names}
    assert all(resolved.values()) and resolver.problems == {}
    assert len(set(resolved.values())) == len(names)
    by_id = {d.id: d.source for d in resolver.documents}
    assert by_id[resolved["policies/returns-policy.md"]].endswith("/kb/policies/returns-policy.md")
    assert resolver.gold(ev.questions[0]) == [resolved["policies/returns-policy.md"]]


def test_resolver_reports_ambiguous_and_missing_sources() -> None:
    from ragtune.types import DocumentInfo

    def doc(i: str, source: str) -> DocumentInfo:
        return DocumentInfo(i, source, "t", "default", (), 1, "h", 1, 0.0, 0.0)

    r = SourceResolver([doc("doc_a", "/x/kb/hr/leave.md"), doc("doc_b", "/x/kb/it/leave.md"),
                        doc("doc_c", "C:\\kb\\it\\vpn.md")])
    assert r.resolve("hr/leave.md") == "doc_a"
    assert r.resolve("./it/vpn.md") == "doc_c"  # Windows separators normalised
    assert r.resolve("doc_b") == "doc_b"  # a document id is accepted as is
    assert r.resolve("leave.md") is None and "matches 2 documents" in r.problems["leave.md"]
    assert r.gold(load_q("gone.md")) == ["missing:gone.md"]
    assert "matches no document" in r.problems["gone.md"]


def load_q(source: str):
    from ragtune.evaluate.evalset import EvalQuestion

    return EvalQuestion("q", "?", ("a",), (source,), True)


def test_synth_uses_the_same_document_split_as_data_synth(fake_ws, tmp_path) -> None:
    for i in range(10):
        write(tmp_path / "kb" / f"doc{i}.md",
              f"# Topic {i}\n\n## Rule {i}\n\nThe rule number {i} says that requests are "
              f"answered within {i + 2} business days by the team.\n")
    fake_ws.ingest([tmp_path / "kb"])
    principal = fake_ws.principal(None)
    summary = synth_evalset(fake_ws.store, principal=principal, out=tmp_path / "e.jsonl")
    ev = load_evalset(tmp_path / "e.jsonl")
    assert summary["questions"] == len(ev) > 0
    docs = fake_ws.store.list_documents(principal)
    train_ids, eval_ids = split_documents([d.id for d in docs], 0.2, 0)
    ev_docs = {q.metadata["doc_id"] for q in ev.questions}
    assert ev_docs <= set(eval_ids) and not ev_docs & set(train_ids)
    # and it is the split 'data synth' writes its training file from
    made = synth_examples(fake_ws.store, principal=principal, out_train=tmp_path / "t.jsonl",
                          out_eval=tmp_path / "x.jsonl")
    assert not ev_docs & {d["id"] for d in made["train"]["documents"]}
    q = ev.questions[0]
    assert q.answerable and q.tags == ("synth", "extractive") and "[Source:" not in q.answers[0]
    resolver = SourceResolver(docs)
    assert resolver.resolve(q.sources[0]) == q.metadata["doc_id"]
