"""Questions written by the chat model as pseudo-queries: cleaning, the resumable log, and
the data stage of a run that uses them (a fake chat model; the packaged one runs in
test_tune_retriever.py)."""

from __future__ import annotations

import json

import pytest

from ragtune.errors import InputError
from ragtune.generate.fake import FakeGenerator
from ragtune.tune.data import Passage, pick_passages
from ragtune.tune.questions import QuestionLog, asker, clean_question
from ragtune.tune.run import TuneOptions, TuneRun


@pytest.mark.parametrize("reply, question", [
    ("What limits the jib tack?", "What limits the jib tack?"),
    ('  "What limits the jib tack?"  \n\nThe halyard does.', "What limits the jib tack?"),
    ("Question: How is rennet used in cheese?", "How is rennet used in cheese?"),
    ("1. Why do glaciers calve?", "Why do glaciers calve?"),
    ("Here is a question about the text:", None),  # a preamble, not a question
    ("", None),
    ("Why?", None),  # too short to search with
    ("What " + "very " * 45 + "long?", None),
])
def test_clean_question(reply: str, question: str | None) -> None:
    assert clean_question(reply) == question


def passages(n: int) -> list[Passage]:
    return [Passage(f"c{i}", f"d{i % 3}", f"Doc {i % 3}",
                    f"Passage {i} says that the valve {i} limits the pressure in pipe {i}.")
            for i in range(n)]


class Asker:
    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.asked: list[str] = []
        self.fail = fail

    def __call__(self, p: Passage) -> str | None:
        self.asked.append(p.chunk_id)
        return None if p.chunk_id in self.fail else f"What does valve {p.chunk_id[1:]} limit?"


def test_log_asks_each_chunk_once_and_survives_a_restart(tmp_path) -> None:
    path = tmp_path / "questions.jsonl"
    ask = Asker(fail={"c2"})
    got = QuestionLog(path).queries(passages(4), ask)
    assert ask.asked == ["c0", "c1", "c2", "c3"]
    assert [q.chunk_id for q in got] == ["c0", "c1", "c3"]  # no question: left out
    assert got[0].query == "What does valve 0 limit?"
    assert got[0].positive == passages(1)[0].embedding_text()  # the whole passage
    with path.open("a") as f:
        f.write('{"chunk_id": "c4", "quest')  # a line cut by a killed process
    again = Asker()
    got = QuestionLog(path).queries(passages(6), again)
    assert again.asked == ["c4", "c5"]  # c2's empty answer is remembered, c4's cut line is not
    assert [q.chunk_id for q in got] == ["c0", "c1", "c3", "c4", "c5"]


def test_log_stops_asking_when_told(tmp_path) -> None:
    ask = Asker()
    calls = iter([False, False, True])
    got = QuestionLog(tmp_path / "q.jsonl").queries(passages(5), ask, stop=lambda: next(calls))
    assert ask.asked == ["c0", "c1"] and len(got) == 2


def test_asker_sends_the_passage_and_cleans_the_reply() -> None:
    gen = FakeGenerator(reply="Question: What limits the pressure in pipe 0?\nMore text.")
    assert asker(gen)(passages(1)[0]) == "What limits the pressure in pipe 0?"
    sent = gen.calls[-1]
    assert "valve 0 limits the pressure" in sent[-1]["content"]


def test_pick_passages_is_stable_and_skips_short_chunks() -> None:
    ps = passages(30) + [Passage("short", "d9", "", "too short")]
    first = pick_passages(ps, 10, seed=1)
    assert len(first) == 10 and all(p.chunk_id != "short" for p in first)
    assert [p.chunk_id for p in pick_passages(list(reversed(ps)), 10, seed=1)] == \
        [p.chunk_id for p in first]


def test_options_are_checked() -> None:
    with pytest.raises(InputError, match="--queries"):
        TuneOptions(queries="llm")
    with pytest.raises(InputError, match="--questions"):
        TuneOptions(questions=1)
    with pytest.raises(InputError, match="--held-out"):  # raised TypeError before (one argument)
        TuneOptions(held_out=1.5)


def test_question_run_without_a_chat_model_says_how_to_go_on(tmp_path, fake_ws) -> None:
    from tests.tune.test_tune_retriever import corpus

    corpus(tmp_path / "kb")
    fake_ws.ingest([tmp_path / "kb"])
    run = TuneRun(tmp_path / "run", fake_ws.store, fake_ws.embedder, lambda m: fake_ws.embedder,
                  lambda m: None, TuneOptions(name="run"))
    (tmp_path / "run").mkdir()
    with pytest.raises(InputError, match="--queries ict"):
        run.data(run.split())


def test_question_run_judges_and_trains_on_written_questions(tmp_path, fake_ws) -> None:
    from tests.tune.test_tune_retriever import corpus

    corpus(tmp_path / "kb")
    fake_ws.ingest([tmp_path / "kb"])
    ask = Asker()
    options = TuneOptions(name="run", held_out=0.25, questions=6, eval_questions=4)
    (tmp_path / "run").mkdir()
    run = TuneRun(tmp_path / "run", fake_ws.store, fake_ws.embedder, lambda m: fake_ws.embedder,
                  lambda m: None, options, ask=ask)
    split = run.split()
    examples, evaluation = run.data(split)
    held = {d["doc_id"] for d in split["held_out"]}
    chunk_doc = {c.id: c.doc_id for c in fake_ws.store.iter_chunks()}
    judged = set(evaluation["queries"])
    assert evaluation["kind"] == "questions" and 1 <= len(judged) <= 4
    assert all(chunk_doc[c] in held for c in judged)  # the judge asks about held-out chunks
    assert all(q.startswith("What does valve") for q in evaluation["queries"].values())
    assert set(evaluation["corpus"]) == {c for c, d in chunk_doc.items() if d in held}
    assert 1 <= len(examples) <= 6 and all(e.query.startswith("What does valve") for e in examples)
    assert not held & ({e.doc_id for e in examples} | {e.negative_doc for e in examples})
    rows = [json.loads(line) for line in (tmp_path / "run" / "questions.jsonl").read_text().splitlines()]
    assert len(rows) == len(ask.asked) == len(set(ask.asked))
