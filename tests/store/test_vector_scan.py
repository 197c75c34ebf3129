"""The int8 scan + exact rescoring used by large stores: recall against the exact scan."""

from __future__ import annotations

import numpy as np

from ragtune.store.vector_scan import Int8Scanner


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def exact(matrix: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[int]:
    s = matrix @ q
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    return [int(i) for i in np.argsort(-s, kind="stable")[:k]]


def test_recall_at_10_against_the_exact_scan():
    m = unit_rows(20_000, 384, 0)
    scanner = Int8Scanner(m)
    queries = unit_rows(20, 384, 1)
    recall = []
    for q in queries:
        rows, scores = scanner.top(m, q, 10)
        want = exact(m, q, 10)
        recall.append(len(set(rows.tolist()) & set(want)) / 10)
        assert np.allclose(scores, m[rows] @ q, atol=1e-6)  # scores are exact fp32
        assert list(scores) == sorted(scores, reverse=True)
    assert np.mean(recall) >= 0.98
    # the int8 scores alone are close to the exact ones
    approx = scanner.scores(queries[0])
    assert np.max(np.abs(approx - m @ queries[0])) < 0.02


def test_masked_rows_are_never_returned_and_few_allowed_rows_are_fine():
    m = unit_rows(5_000, 64, 2)
    scanner = Int8Scanner(m)
    mask = np.zeros(len(m), dtype=bool)
    mask[::1000] = True  # 5 readable rows
    q = m[3000]
    rows, _ = scanner.top(m, q, 10, mask)
    assert sorted(rows.tolist()) == [0, 1000, 2000, 3000, 4000]
    assert rows[0] == 3000
    rows, _ = scanner.top(m, q, 10, np.zeros(len(m), dtype=bool))
    assert len(rows) == 0
