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

Lexical search is Okapi BM25 with the store's analysis (:class:`~ragtune.store.bm25.BM25Params`,
the same terms and formula as SQLite): ``qtf * idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b +
b * length / avgdl))`` summed over the query's terms, ``qtf`` being how often the query says
the term. The statistics are the reader's: ``lexicon`` and ``corpus`` hold document
frequencies and totals per ACL, and a query sums the rows of the ACLs its principal may read,
so a restricted document moves nobody else's scores (issue 17). Quoted phrases (regular
expressions, tried only on rows that hold all of the phrases' terms) rank first, or filter.

>>> filter_sql(None)
('may_read(ch.acl)', {})
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ragtune.store.analysis import Analyzer, quoted_phrases
from ragtune.store.base import SearchFilter
from ragtune.store.bm25 import BM25Params


def signed_terms(hashes: np.ndarray) -> np.ndarray:
    """uint32 term hashes as the int4 values stored in PostgreSQL (same bits).

    >>> signed_terms(np.array([1, 2**32 - 1], dtype=np.uint32)).tolist()
    [1, -1]
    """
    return np.asarray(hashes, dtype=np.uint32).view(np.int32)


def query_terms(query: str, analyzer: Analyzer) -> dict[int, int]:
    """The int4 term hashes of a query, each with how often the query says it.

    >>> list(query_terms("router reset router", Analyzer()).values())
    [2, 1]
    """
    terms, counts = np.unique(signed_terms(analyzer.term_hashes(query)), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {int(terms[i]): int(counts[i]) for i in order}


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


def phrase_regex(words: list[str]) -> str:
    r"""POSIX regex for a quoted phrase's words: in order, separated by non-word characters
    (the tokens SQLite's FTS5 matches).

    >>> phrase_regex(["E", "4012"])
    '\\mE\\W+4012\\M'
    """
    return r"\m" + r"\W+".join(words) + r"\M"


# The reader's statistics: sums over the ACLs they may read (may_read repeats the policy
# for an admin, who reads every ACL).
STATS_SQL = ("SELECT (SELECT value FROM meta WHERE key = 'bm25_analyzer'), "
             "(SELECT coalesce(sum(chunks), 0)::int8 FROM corpus WHERE may_read(acl))")
DF_SQL = ("SELECT term, sum(df) FROM lexicon WHERE term = ANY(%s) AND may_read(acl) "
          "GROUP BY term")


def lexical_sql(query: str, filters: SearchFilter | None, k: int, params: BM25Params, *,
                admin: bool = False, quoted: str = "boost",
                candidates_from: list[int] | None = None) -> tuple[str, dict[str, Any]] | None:
    """BM25 ranking SQL and its parameters, or None when the query has no indexed term.

    ``quoted``: what a quoted phrase does, ``boost`` (rows holding it score their BM25
    plus the best BM25 of the rows searched plus 1: they rank first) or ``filter`` (only
    they are returned). ``candidates_from``: score only chunks that hold one of these
    (rare) terms, probing the other terms' postings per candidate instead of reading them
    whole (see :func:`prune_common_terms` for when that is still exact)."""
    terms = query_terms(query, params.analyzer)
    if not terms:
        return None
    # a posting carries its chunk's length and ACL id (migration 5): the chunk rows are read
    # only for a filter on their columns, a quoted phrase, and the top k
    where, named = filter_sql(filters, admin=True)
    chunk_join = "" if where == "true" else " JOIN chunks ch ON ch.n = p.chunk"
    if not admin:
        # the readable ACLs' ids, computed once (an InitPlan), not a join per posting
        where += " AND p.acl = ANY(ARRAY(SELECT id FROM acls WHERE may_read(acl)))"
    named |= {"terms": list(terms), "qtf": list(terms.values()),
              "k1": params.k1, "b": params.b}
    source = "q JOIN postings p ON p.term = q.term"
    if candidates_from is not None:
        named["rare"] = candidates_from
        source = ("(SELECT DISTINCT chunk FROM postings WHERE term = ANY(%(rare)s)) cand "
                  "CROSS JOIN q JOIN postings p ON p.term = q.term AND p.chunk = cand.chunk")
    phrases = quoted_phrases(query)
    holds = "true"
    if phrases:
        # Regular expressions only on rows holding every term of the phrases.
        phrase_terms = sorted({t for words in phrases
                               for t in query_terms(" ".join(words), params.analyzer)})
        named |= {"pterms": phrase_terms, "npterms": len(phrase_terms)}
        holds = "s.pterms = %(npterms)s"
        chunk_join = " JOIN chunks ch ON ch.n = p.chunk"
        for i, words in enumerate(phrases):
            named[f"rx{i}"] = phrase_regex(words)
            holds += (f" AND (ch.text ~* %(rx{i})s OR ch.section ~* %(rx{i})s "
                      f"OR ch.title ~* %(rx{i})s)")
    top = "s"
    if not phrases:
        # the best k postings' chunks first, then their rows (RLS applies to those too)
        score, final_where = "s.score", ""
        top = f"(SELECT * FROM s ORDER BY score DESC, chunk LIMIT {int(k)})"
    elif quoted == "filter":
        score, final_where = "s.score", f"WHERE {holds}"
    else:
        score = f"s.score + CASE WHEN {holds} THEN max(s.score) OVER () + 1 ELSE 0 END"
        final_where = ""
    pterms = ("count(*) FILTER (WHERE p.term = ANY(%(pterms)s))" if phrases else "0")
    sql = f"""
        WITH st AS (
            SELECT coalesce(sum(chunks), 0)::float8 AS n,
                   greatest(coalesce(sum(terms), 0)::float8
                            / greatest(coalesce(sum(chunks), 0), 1), 1e-9) AS avgdl
            FROM corpus WHERE may_read(acl)
        ), q AS (
            SELECT t.term, t.qtf, st.avgdl,
                   ln(1 + (st.n - l.df + 0.5) / (l.df + 0.5)) AS idf
            FROM unnest(%(terms)s::int4[], %(qtf)s::int4[]) AS t (term, qtf)
            JOIN (SELECT term, sum(df)::float8 AS df FROM lexicon
                  WHERE term = ANY(%(terms)s) AND may_read(acl) GROUP BY term) l
              ON l.term = t.term
            CROSS JOIN st
        ), s AS (
            SELECT p.chunk,
                   sum(q.qtf * q.idf * p.tf * (%(k1)s + 1)
                       / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.length / q.avgdl))) AS score,
                   {pterms} AS pterms
            FROM {source}{chunk_join}
            WHERE {where}
            GROUP BY p.chunk
        )
        SELECT ch.id, {score} AS score FROM {top} AS s JOIN chunks ch ON ch.n = s.chunk
        {final_where}
        ORDER BY 2 DESC, s.chunk LIMIT {int(k)}"""
    return sql, named


PRUNE_MIN_CHUNKS = 2000
PRUNE_SHARE = 0.02


def prune_common_terms(dfs: dict[int, int], n: int, qtf: dict[int, int],
                       params: BM25Params) -> tuple[list[int], float] | None:
    """(rare terms, score bound of the common ones) when a query can skip reading the
    postings of its common terms, else None. ``dfs`` and ``n`` are the reader's statistics,
    ``qtf`` how often the query says each term.

    MaxScore: a term in more than 2% of the chunks has a small idf, and it adds less than
    ``qtf * idf * (k1 + 1)`` to any chunk's score. Chunks that hold none of the rare terms
    score below the sum of those bounds; when the k-th best chunk among those that hold a
    rare term scores at least that much, it is the exact top k. (The store checks the k-th
    score and falls back to the full query otherwise.)

    >>> prune_common_terms({1: 5, 2: 900}, 10_000, {1: 1, 2: 1}, BM25Params())[0]
    [1]
    >>> prune_common_terms({1: 5}, 10_000, {1: 1}, BM25Params()) is None  # nothing to skip
    True
    """
    if n < PRUNE_MIN_CHUNKS:
        return None
    common = [t for t, df in dfs.items() if df > n * PRUNE_SHARE]
    rare = sorted(t for t in dfs if t not in common)
    if not common or not rare:
        return None
    bound = sum(qtf.get(t, 1) * math.log(1 + (n - dfs[t] + 0.5) / (dfs[t] + 0.5))
                for t in common) * (params.k1 + 1)
    return rare, bound
