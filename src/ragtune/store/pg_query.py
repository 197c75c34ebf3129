"""SQL for the PostgreSQL store's searches: filters, filtered HNSW search, BM25 in SQL.

Kept apart from :mod:`ragtune.store.postgres` (connections, transactions, writes) so the
queries can be read, and benchmarked, on their own.

Dense search. pgvector's HNSW index filters *after* the graph walk: at ``ef_search = 40``
a filter that keeps 10% of the rows returns about 4 rows instead of 10. pgvector 0.8 adds
iterative index scans, which keep walking until ``k`` rows pass the filter (bounded by
``hnsw.max_scan_tuples``). :func:`dense_sql` uses them where the server has them and, when a
filtered search still returns fewer than ``k`` rows, the store runs the same query as an
exact scan (``ORDER BY`` an expression the index cannot serve), so top-k holds under any
ACL or filter. A filter on named documents goes to the exact scan at once: the document
index finds their few rows faster than any graph walk.

Lexical search is Okapi BM25 with the statistics in the ``lexicon`` and ``corpus`` tables
(the terms of :mod:`ragtune.store.bm25`, so SQLite and PostgreSQL score alike):
``idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl))`` summed over the
query's distinct terms. Quoted phrases must occur verbatim (regular expressions over the
candidate rows only).

>>> filter_sql(None)
('may_read(ch.acl)', {})
>>> phrase_regex("E-4012")
'\\\\mE\\\\W+4012\\\\M'
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ragtune.store.base import SearchFilter
from ragtune.store.bm25 import term_hashes

K1, B = 1.2, 0.75
_PHRASE = re.compile(r'"([^"]+)"')


def signed_terms(hashes: np.ndarray) -> np.ndarray:
    """uint32 term hashes as the int4 values stored in PostgreSQL (same bits).

    >>> signed_terms(np.array([1, 2**32 - 1], dtype=np.uint32)).tolist()
    [1, -1]
    """
    return np.asarray(hashes, dtype=np.uint32).view(np.int32)


def query_terms(query: str) -> list[int]:
    """The distinct int4 term hashes of a query."""
    return sorted({int(t) for t in signed_terms(term_hashes(query))})


def filter_sql(filters: SearchFilter | None, alias: str = "ch", *,
               admin: bool = False) -> tuple[str, dict[str, Any]]:
    """WHERE condition on a chunks alias for the ACL (repeating the RLS policy, so the planner
    sees it; an admin reads everything) and ``filters``, with its named parameters."""
    clauses = [] if admin else [f"may_read({alias}.acl)"]
    params: dict[str, Any] = {}
    if filters:
        if filters.collections:
            clauses.append(f"{alias}.collection = ANY(%(collections)s)")
            params["collections"] = list(filters.collections)
        if filters.documents:
            clauses.append(f"{alias}.doc_id IN (SELECT id FROM documents "
                           "WHERE id = ANY(%(documents)s) OR source = ANY(%(documents)s))")
            params["documents"] = list(filters.documents)
        if filters.since is not None:
            clauses.append(f"{alias}.updated_at >= %(since)s")
            params["since"] = filters.since
        if filters.until is not None:
            clauses.append(f"{alias}.updated_at <= %(until)s")
            params["until"] = filters.until
    return " AND ".join(clauses) or "true", params


def dense_sql(filters: SearchFilter | None, k: int, *, exact: bool,
              admin: bool = False) -> tuple[str, dict[str, Any]]:
    """Best ``k`` chunks by inner product (the vector is parameter ``q``); ``exact`` scans
    instead of walking the index (pgvector's ``<#>`` is the negated inner product)."""
    where, params = filter_sql(filters, admin=admin)
    order = "(ch.embedding <#> %(q)s) + 0" if exact else "ch.embedding <#> %(q)s"
    return (f"SELECT ch.id, -(ch.embedding <#> %(q)s) AS score FROM chunks ch "
            f"WHERE {where} ORDER BY {order} LIMIT {int(k)}"), params


def phrase_regex(phrase: str) -> str | None:
    """POSIX regex for a quoted phrase: its words in order, separated by non-word characters
    (the tokens SQLite's FTS5 matches)."""
    words = re.findall(r"\w+", phrase)
    return r"\m" + r"\W+".join(words) + r"\M" if words else None


def lexical_sql(query: str, filters: SearchFilter | None, k: int, *, admin: bool = False,
                candidates_from: list[int] | None = None) -> tuple[str, dict[str, Any]] | None:
    """BM25 ranking SQL and its parameters, or None when the query has no indexed term.

    ``candidates_from``: score only chunks that hold one of these (rare) terms, probing
    the other terms' postings per candidate instead of reading them whole (see
    :func:`prune_common_terms` for when that is still exact)."""
    terms = query_terms(query)
    if not terms:
        return None
    where, named = filter_sql(filters, admin=admin)
    named |= {"terms": terms, "k1": K1, "b": B}
    source = "q JOIN postings p ON p.term = q.term"
    if candidates_from is not None:
        named["rare"] = candidates_from
        source = ("(SELECT DISTINCT chunk FROM postings WHERE term = ANY(%(rare)s)) cand "
                  "CROSS JOIN q JOIN postings p ON p.term = q.term AND p.chunk = cand.chunk")
    for i, phrase in enumerate(_PHRASE.findall(query)):
        rx = phrase_regex(phrase)
        if rx:
            named[f"rx{i}"] = rx
            where += (f" AND (ch.text ~* %(rx{i})s OR ch.section ~* %(rx{i})s "
                      f"OR ch.title ~* %(rx{i})s)")
    sql = f"""
        WITH q AS (
            SELECT l.term,
                   ln(1 + (c.chunks - l.df + 0.5) / (l.df + 0.5)) AS idf,
                   greatest(c.terms::float8 / greatest(c.chunks, 1), 1e-9) AS avgdl
            FROM lexicon l CROSS JOIN corpus c
            WHERE l.term = ANY(%(terms)s)
        ), s AS (
            SELECT p.chunk,
                   sum(q.idf * p.tf * (%(k1)s + 1)
                       / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * ch.length / q.avgdl))) AS score
            FROM {source} JOIN chunks ch ON ch.n = p.chunk
            WHERE {where}
            GROUP BY p.chunk
        )
        SELECT ch.id, s.score FROM s JOIN chunks ch ON ch.n = s.chunk
        ORDER BY s.score DESC, s.chunk LIMIT {int(k)}"""
    return sql, named


PRUNE_MIN_CHUNKS = 2000
PRUNE_SHARE = 0.02


def prune_common_terms(dfs: dict[int, int], n: int) -> tuple[list[int], float] | None:
    """(rare terms, score bound of the common ones) when a query can skip reading the
    postings of its common terms, else None.

    MaxScore: a term in more than 2% of the chunks has a small idf, and it adds less than
    ``idf * (k1 + 1)`` to any chunk's score. Chunks that hold none of the rare terms score
    below the sum of those bounds; when the k-th best chunk among those that hold a rare
    term scores at least that much, it is the exact top k. (The store checks the k-th
    score and falls back to the full query otherwise.)

    >>> prune_common_terms({1: 5, 2: 900}, 10_000)[0]
    [1]
    >>> prune_common_terms({1: 5}, 10_000) is None  # nothing common to skip
    True
    """
    if n < PRUNE_MIN_CHUNKS:
        return None
    common = [t for t, df in dfs.items() if df > n * PRUNE_SHARE]
    rare = sorted(t for t in dfs if t not in common)
    if not common or not rare:
        return None
    bound = sum(math.log(1 + (n - dfs[t] + 0.5) / (dfs[t] + 0.5)) for t in common) * (K1 + 1)
    return rare, bound
