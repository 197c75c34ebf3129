"""The data builders of tune retriever: split, ICT queries, hard negatives, held-out corpus."""

from __future__ import annotations

import random

import pytest

from ragtune.tune.data import (
    Passage,
    cap_documents,
    held_out_corpus,
    ict_queries,
    mine_negatives,
    split_documents,
)
from ragtune.tune.run import TuneOptions, decide
from ragtune.tune.train import EmbedderTrainConfig, _order

TEXT = ("Swept wings delay the drag rise at high subsonic speed. The effect was measured in a "
        "wind tunnel at several Mach numbers. Boundary layer transition moved forward with sweep. "
        "The results agree with the simple sweep theory.")


def passages(n_docs: int = 6, per_doc: int = 3) -> list[Passage]:
    return [Passage(f"c{d}-{i}", f"d{d}", f"Doc {d} > Part {i}",
                    TEXT.replace("wings", f"wings{d}{i}")) for d in range(n_docs) for i in range(per_doc)]


def test_split_is_deterministic_disjoint_and_covers_every_document() -> None:
    ids = [f"doc_{i}" for i in range(200)]
    a = split_documents(ids, held_out=0.3, seed=4)
    b = split_documents(list(reversed(ids)) + ids[:5], held_out=0.3, seed=4)  # order, repeats
    assert a == b
    assert not set(a.train) & set(a.held_out)
    assert set(a.train) | set(a.held_out) == set(ids)
    assert 35 < len(a.held_out) < 85
    # adding documents never moves an existing one to the other side
    c = split_documents(ids + [f"new_{i}" for i in range(50)], held_out=0.3, seed=4)
    assert set(a.held_out) <= set(c.held_out) and set(a.train) <= set(c.train)
    assert split_documents(ids, held_out=0.3, seed=5) != a


def test_split_keeps_both_sides_for_two_documents() -> None:
    s = split_documents(["a", "b"], held_out=0.01)
    assert len(s.train) == 1 and len(s.held_out) == 1
    with pytest.raises(ValueError):
        split_documents(["a", "b"], held_out=1.0)


def test_cap_is_stable_and_bounded() -> None:
    ids = [f"d{i}" for i in range(100)]
    assert cap_documents(ids, 10) == cap_documents(list(reversed(ids)), 10)
    assert len(cap_documents(ids, 10)) == 10 and cap_documents(ids, 1000) == ids


def test_ict_query_is_a_sentence_taken_out_of_its_positive() -> None:
    ps = passages()
    queries = ict_queries(ps, seed=1, keep_sentence=0.0)
    assert len(queries) == len(ps)
    by_id = {p.chunk_id: p for p in ps}
    for q in queries:
        p = by_id[q.chunk_id]
        assert q.query in p.text and q.query not in q.positive
        assert q.positive.startswith(p.head) and q.doc_id == p.doc_id
    kept = ict_queries(ps, seed=1, keep_sentence=1.0)
    assert all(q.query in q.positive for q in kept)
    assert ict_queries(ps, seed=1, limit=5) == ict_queries(ps, seed=1, limit=5)
    assert len(ict_queries(ps, seed=1, limit=5)) == 5


def test_ict_skips_chunks_without_a_usable_sentence() -> None:
    short = Passage("c", "d", "", "Too short. Also short.")
    code = Passage("k", "d", "", "```\nx = compute(a, b, c, d, e, f)\n```")
    assert ict_queries([short, code]) == []


def test_negatives_come_from_other_training_documents_only() -> None:
    ps = passages()
    train = {p.chunk_id: p for p in ps if p.doc_id != "d5"}  # d5 is held out
    queries = ict_queries(train.values(), seed=0)
    every = [p.chunk_id for p in ps]

    def ranker(q: str) -> list[str]:  # ranks everything, the query's own chunks first
        return sorted(every, key=lambda c: random.Random(q + c).random())

    examples = mine_negatives(queries, [ranker], train, depth=50, seed=0)
    assert len(examples) == len(queries)
    for e in examples:
        assert e.negative_doc != e.doc_id and e.negative_id != e.chunk_id
        assert e.negative_doc != "d5" and e.negative_id in train
        assert e.negative == train[e.negative_id].embedding_text()
    # a ranker that finds only the query's own document gives no example
    assert mine_negatives(queries[:1], [lambda q: [queries[0].chunk_id]], train) == []


def test_held_out_corpus_removes_query_sentences_from_the_whole_document() -> None:
    ps = [Passage("a1", "a", "A", TEXT), Passage("a2", "a", "A", TEXT),
          Passage("b1", "b", "B", TEXT)]
    queries = ict_queries(ps[:1], seed=0, keep_sentence=0.0)
    corpus = held_out_corpus(ps, queries)
    assert queries[0].query not in corpus["a1"][1] and queries[0].query not in corpus["a2"][1]
    assert queries[0].query in corpus["b1"][1]  # another document keeps its text
    assert corpus["a1"][0] == "a"


def test_batches_are_fixed_passes() -> None:
    order = _order(10, 5, 4, seed=3)
    assert order == _order(10, 5, 4, seed=3) and all(len(set(b)) == 4 for b in order)
    assert sorted(i for b in order[:2] for i in b)[:8] == sorted(order[0] + order[1])
    assert EmbedderTrainConfig(steps=0, max_steps=5).planned_steps(10_000) == 5
    with pytest.raises(ValueError):
        EmbedderTrainConfig(batch_size=1)


def test_decision_follows_the_measured_gain() -> None:
    o = TuneOptions(min_gain=0.01, min_eval_queries=10)
    assert decide({"ndcg@10": 0.40, "queries": 50}, {"ndcg@10": 0.42, "queries": 50}, o)["kept"]
    assert not decide({"ndcg@10": 0.40, "queries": 50}, {"ndcg@10": 0.405, "queries": 50}, o)["kept"]
    few = decide({"ndcg@10": 0.1, "queries": 5}, {"ndcg@10": 0.9, "queries": 5}, o)
    assert not few["kept"] and "too few" in few["reason"]
