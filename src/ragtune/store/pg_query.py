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
from dataclasses import dataclass
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
# for an admin, who reads every ACL), and the ids of those ACLs (postings carry the id).
STATS_SQL = ("SELECT (SELECT value FROM meta WHERE key = 'bm25_analyzer'), "
             "(SELECT coalesce(sum(chunks), 0)::int8 FROM corpus WHERE may_read(acl)), "
             "(SELECT coalesce(sum(terms), 0)::int8 FROM corpus WHERE may_read(acl)), "
             "ARRAY(SELECT id FROM acls WHERE may_read(acl)), "
             "(SELECT value::int8 FROM meta WHERE key = 'postings_generation')")
DF_SQL = ("SELECT term, sum(df) FROM lexicon WHERE term = ANY(%s) AND may_read(acl) "
          "GROUP BY term")


@dataclass(frozen=True)
class ReaderStats:
    """BM25 statistics of the chunks one reader may read, read in their transaction:
    chunk count ``n``, term total, readable ACL ids (None: an admin reads all), the
    document frequency of each query term (terms absent from their chunks left out) and
    the postings' generation (pg_postings: whether a process's copy is current)."""

    n: int
    terms: int
    acls: list[int] | None
    dfs: dict[int, int]
    generation: int = 0

    @property
    def avgdl(self) -> float:
        return max(self.terms / max(self.n, 1), 1e-9)

    def weights(self, qtf: dict[int, int], params: BM25Params) -> dict[int, float]:
        """``qtf * idf * (k1 + 1)`` per query term the reader's chunks hold.

        >>> w = ReaderStats(10, 100, None, {5: 1}).weights({5: 2, 6: 1}, BM25Params())
        >>> list(w), round(w[5], 4)  # 2 * log(1 + 9.5 / 1.5) * 2.2; term 6: in no chunk
        ([5], 8.7667)
        """
        return {t: qtf[t] * math.log(1 + (self.n - df + 0.5) / (df + 0.5)) * (params.k1 + 1)
                for t, df in self.dfs.items() if t in qtf}

    def norm(self, params: BM25Params) -> tuple[float, float]:
        """(c1, c2): a posting scores ``w * tf / (tf + c1 + c2 * length)``."""
        return params.k1 * (1 - params.b), params.k1 * params.b / self.avgdl


def reader_stats(cur: Any, qtf: dict[int, int], *, admin: bool) -> tuple[str | None, ReaderStats]:
    """(the analysis the store's terms were made with, the :class:`ReaderStats` of the
    query terms ``qtf``) in the reader's transaction ``cur`` (a psycopg cursor)."""
    stored, n, total, acls, generation = cur.execute(STATS_SQL).fetchone()
    dfs = {int(t): int(df) for t, df in cur.execute(DF_SQL, (list(qtf),)).fetchall()}
    return stored, ReaderStats(n, total, None if admin else list(acls), dfs, generation or 0)


def lexical_sql(query: str, filters: SearchFilter | None, k: int, params: BM25Params,
                stats: ReaderStats, *, quoted: str = "boost",
                candidates_from: list[int] | None = None) -> tuple[str, dict[str, Any]] | None:
    """BM25 ranking SQL and its parameters, or None when the reader's chunks hold no term
    of the query.

    Each posting scores ``w * tf / (tf + k1 * (1 - b) + k1 * b * length / avgdl)`` with
    its term's weight ``w`` from :meth:`ReaderStats.weights`: the statistics are summed
    before, in the same transaction, so the per-posting work is a few multiplications. A
    posting carries its chunk's length and ACL id (migration 5): a reader's scan reads one
    key range per (term, readable ACL), and the chunk rows are read only for a filter on
    their columns, a quoted phrase, and the top k.

    ``quoted``: what a quoted phrase does, ``boost`` (rows holding it score their BM25
    plus the best BM25 of the rows searched plus 1: they rank first) or ``filter`` (only
    they are returned). ``candidates_from``: score only chunks that hold one of these
    (rare) terms, probing the other terms' postings per candidate instead of reading them
    whole (see :func:`prune_common_terms` for when that is still exact)."""
    weights = stats.weights(query_terms(query, params.analyzer), params)
    if not weights:
        return None
    where, named = filter_sql(filters, admin=True)  # the ACL: by the postings' ACL ids
    chunk_join = "" if where == "true" else " JOIN chunks ch ON ch.n = p.chunk"
    c1, c2 = stats.norm(params)
    named |= {"terms": list(weights), "w": list(weights.values()), "c1": c1, "c2": c2}
    source = "q JOIN postings p ON p.term = q.term"
    if stats.acls is not None:
        named["acls"] = stats.acls
        # one index range per (term, readable ACL), the key's first two columns (a
        # condition `acl = ANY(...)` would filter all of the term's postings instead)
        source = ("q CROSS JOIN unnest(%(acls)s::int4[]) AS ra (id) "
                  "JOIN postings p ON p.term = q.term AND p.acl = ra.id")
    if candidates_from is not None:
        named["rare"] = candidates_from
        readable = "" if stats.acls is None else " AND acl = ANY(%(acls)s)"
        source = (f"(SELECT DISTINCT chunk, acl FROM postings WHERE term = ANY(%(rare)s)"
                  f"{readable}) cand CROSS JOIN q JOIN postings p "
                  "ON p.term = q.term AND p.acl = cand.acl AND p.chunk = cand.chunk")
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
    rows = "s"
    if not phrases:
        # the best k postings' chunks first, then their rows (RLS applies to those too)
        score, final_where = "s.score", ""
        rows = f"(SELECT * FROM s ORDER BY score DESC, chunk LIMIT {int(k)})"
    elif quoted == "filter":
        score, final_where = "s.score", f"WHERE {holds}"
    else:
        score = f"s.score + CASE WHEN {holds} THEN max(s.score) OVER () + 1 ELSE 0 END"
        final_where = ""
    pterms = ("count(*) FILTER (WHERE p.term = ANY(%(pterms)s))" if phrases else "0")
    sql = f"""
        WITH q AS (
            SELECT * FROM unnest(%(terms)s::int4[], %(w)s::float8[]) AS t (term, w)
        ), s AS (
            SELECT p.chunk,
                   sum(q.w * p.tf / (p.tf + %(c1)s + %(c2)s * p.length)) AS score,
                   {pterms} AS pterms
            FROM {source}{chunk_join}
            WHERE {where}
            GROUP BY p.chunk
        )
        SELECT ch.id, {score} AS score FROM {rows} AS s JOIN chunks ch ON ch.n = s.chunk
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
