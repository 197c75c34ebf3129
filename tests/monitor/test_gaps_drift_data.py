"""Gap clustering (the exact and the sampled path), drift tests, and training-data health."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragtune.embed.fake import FakeEmbedder
from ragtune.errors import InputError
from ragtune.monitor.data_health import training_data_health
from ragtune.monitor.drift import mmd_test, route_drift
from ragtune.monitor.gaps import cluster_vectors, find_gaps
from ragtune.monitor.records import Records, parse_since
from tests.conftest import write


def topic_vectors(rng, centres: np.ndarray, per: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(len(centres)), per)
    v = centres[labels] + noise * rng.normal(size=(len(labels), centres.shape[1]))
    return v / np.linalg.norm(v, axis=1, keepdims=True), labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = {(int(x), int(y)) for x, y in zip(a, b)}
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_clusters_follow_topics_exactly_and_when_sampled() -> None:
    rng = np.random.default_rng(3)
    centres = np.eye(6, 32)
    v, truth = topic_vectors(rng, centres, 40, 0.05)
    exact = cluster_vectors(v, distance=0.5)
    assert same_partition(exact, truth)
    sampled = cluster_vectors(v, distance=0.5, max_fit=60)  # 60 fitted, 180 assigned
    assert (sampled >= 0).all() and same_partition(sampled, truth)
    far = np.vstack([v, np.eye(1, 32, 31)])  # a vector near no centroid joins no cluster
    assert cluster_vectors(far, distance=0.5, max_fit=60)[-1] == -1
    assert cluster_vectors(v[:1], distance=0.5).tolist() == [0]


def test_questions_without_vectors_are_embedded_or_counted() -> None:
    emb = FakeEmbedder(64)
    qs = ["pets at work policy", "pets at work rules", "stock ticker symbol", None]
    rows = [{"question": q, "retrieved": False, "refused": True} for q in qs]
    r = Records.of([f"t{i}" for i in range(4)], np.arange(4.0), ["ana"] * 4, ["base"] * 4,
                [None] * 4, ["ask"] * 4, rows, np.zeros((4, 0), np.float32), np.zeros(4, bool))
    clusters, counts = find_gaps(r, distance=0.5, embed=emb.embed_documents)
    assert counts == {"questions": 4, "clustered": 3, "unclustered": 0, "without_vector": 1}
    assert [sorted(c.central) for c in clusters] == [["pets at work policy", "pets at work rules"],
                                                     ["stock ticker symbol"]]
    assert clusters[0].reasons == {"refused": 2}
    _, none = find_gaps(r, distance=0.5, embed=None)
    assert none["without_vector"] == 4


def test_mmd_separates_shifted_samples() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(80, 8)), rng.normal(size=(80, 8))
    assert mmd_test(a, b)["p_value"] > 0.05
    shifted = mmd_test(a, b + 0.8)
    assert shifted["p_value"] < 0.01 and shifted["mmd"] > 0.05
    big = mmd_test(rng.normal(size=(900, 8)), rng.normal(size=(700, 8)))
    assert big["samples"] == [500, 500]  # sampled


def test_route_shares() -> None:
    def recs(routes):
        n = len(routes)
        return Records.of([str(i) for i in range(n)], np.zeros(n), ["a"] * n, ["hybrid"] * n,
                       [None] * n, ["ask"] * n, [{"route": r} for r in routes],
                       np.zeros((n, 0), np.float32), np.zeros(n, bool))

    now = recs(["hr"] * 30 + ["it"] * 30 + [None] * 5)
    before = recs(["hr"] * 50 + ["it"] * 10)
    rows = {r["route"]: r for r in route_drift(now, before, alpha=0.05, min_change=0.2,
                                                min_answers=20)}
    assert rows["hr"]["share"] == [0.5, pytest.approx(5 / 6)] and rows["hr"]["flagged"]
    steady = {r["route"]: r for r in route_drift(now, now, alpha=0.05, min_change=0.2,
                                                  min_answers=20)}
    assert not steady["hr"]["flagged"] and steady["hr"]["change"] == 0


def test_since_parsing() -> None:
    assert parse_since("2d", now=200000.0) == 200000.0 - 172800
    with pytest.raises(InputError, match="--since"):
        parse_since("yesterday-ish")


def chat(user: str, reply: str, source: str | None = None) -> str:
    row = {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}
    if source:
        row["metadata"] = {"source": source}
    return json.dumps(row) + "\n"


def test_training_data_health(tmp_path) -> None:
    words = ("anchor bramble cobalt dune ember fjord garnet harbor iris juniper kelp lichen "
             "marble nectar onyx pebble quartz russet saffron tundra umber velvet willow yarrow "
             "zephyr amber basalt cedar delta estuary fern glacier heron indigo jasper kestrel")
    w = words.split()
    prompts = [f"How do I set up the {w[3 * i]} {w[3 * i + 1]} {w[3 * i + 2]}?" for i in range(12)]
    lines = [chat(q, f"Open panel {i}.", "a.md") for i, q in enumerate(prompts)]
    lines += [chat(prompts[3], "Open panel 3.", "a.md"),  # exact duplicate of line 4
              chat(prompts[4], "Call the vendor support line and wait for an engineer.",
                   "b.md"),  # same prompt as line 5, another answer
              chat("What is the capital of Peru?", "Lima.", "c.md")]
    train = write(tmp_path / "train.jsonl", "".join(lines))
    evalf = write(tmp_path / "eval.jsonl", json.dumps(
        {"id": "q1", "question": prompts[7], "answers": ["x"],
         "sources": [], "answerable": True, "tags": []}) + "\n" + json.dumps(
        {"id": "q2", "question": "Which river flows through Lima?", "answers": ["Rimac"],
         "sources": [], "answerable": True, "tags": []}) + "\n")
    h = training_data_health(train, FakeEmbedder(256).embed_documents, eval_path=evalf)
    assert h["examples"] == 15
    pairs = {tuple(p["lines"]) for p in h["near_duplicate_pairs"]}
    assert pairs == {(4, 13), (5, 14)}  # exact and near (same prompt, other answer)
    assert h["label_conflicts"] == 1 and h["label_conflict_pairs"][0]["lines"] == [5, 14]
    assert h["eval"]["overlapping"] == 1 and h["eval"]["pairs"][0]["eval_line"] == 1
    assert h["eval"]["pairs"][0]["train_line"] == 8
    b = h["balance"]
    assert b["counts"] == {"a.md": 13, "b.md": 1, "c.md": 1} and b["flagged"]
    with pytest.raises(InputError):
        training_data_health(write(tmp_path / "empty.jsonl", ""), FakeEmbedder(8).embed_documents)
