"""Read a retrieval benchmark in BEIR format: corpus, queries and relevance judgments.

A BEIR folder holds::

    corpus.jsonl      {"_id": "d1", "title": "...", "text": "..."}   one document a line
    queries.jsonl     {"_id": "q1", "text": "..."}                   one query a line
    qrels/test.tsv    query-id <TAB> corpus-id <TAB> score            header line first
                      (or qrels/<split>.tsv, or qrels.tsv beside the corpus)

``.jsonl.gz`` files are read too. Only queries that appear in the qrels are kept, as
BEIR's own loader does. Judgments may name documents absent from the corpus: they stay,
as relevant documents no retriever can find (the official evaluation counts them too).

>>> ds = load_beir(Path("tests/data/beir_tiny"))          # doctest: +SKIP
>>> len(ds.corpus), len(ds.queries), ds.qrels["q01"]       # doctest: +SKIP
(30, 10, {'d04': 2, 'd03': 1})
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ragtune.errors import InputError


@dataclass(frozen=True)
class BeirDataset:
    """A loaded BEIR benchmark.

    ``corpus`` maps doc id to ``{"title": str, "text": str}``, ``queries`` maps query id
    to its text, ``qrels`` maps query id to ``{doc id: graded relevance}``.
    """

    name: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _open(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline); blank lines are skipped."""
    try:
        with _open(path) as fh:
            for number, line in enumerate(fh, start=1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield number, line
    except UnicodeDecodeError as exc:
        raise InputError(path.name, f"not UTF-8 text ({exc.reason})") from exc
    except (OSError, EOFError) as exc:  # a truncated or corrupt .gz
        raise InputError(path.name, f"cannot read: {exc}") from exc


def _json_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    where = path.name
    for number, line in _lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(where, f"not valid JSON ({exc.msg})", line=number) from exc
        if not isinstance(record, dict):
            raise InputError(where, "expected a JSON object", line=number)
        doc_id = record.get("_id")
        if doc_id is None or str(doc_id).strip() == "":
            raise InputError(where, 'missing "_id"', line=number)
        yield number, record


def _text_field(record: dict[str, Any], key: str, where: str, number: int) -> str:
    value = record.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(where, f'"{key}" must be a string, got {type(value).__name__}', number)
    return value


def _read_corpus(path: Path) -> dict[str, dict[str, str]]:
    corpus: dict[str, dict[str, str]] = {}
    for number, record in _json_records(path):
        doc_id = str(record["_id"])  # some BEIR sets store numeric ids
        if doc_id in corpus:
            raise InputError(path.name, f"duplicate document id {doc_id!r}", line=number)
        if "text" not in record:
            raise InputError(path.name, f'document {doc_id!r} has no "text"', line=number)
        corpus[doc_id] = {
            "title": _text_field(record, "title", path.name, number),
            "text": _text_field(record, "text", path.name, number),
        }
    return corpus


def _read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for number, record in _json_records(path):
        qid = str(record["_id"])
        if qid in queries:
            raise InputError(path.name, f"duplicate query id {qid!r}", line=number)
        text = _text_field(record, "text", path.name, number)
        if not text.strip():
            raise InputError(path.name, f'query {qid!r} has no "text"', line=number)
        queries[qid] = text
    return queries


def _read_qrels(path: Path, where: str) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    first = True  # the first row may be a header; any later non-integer score is an error
    for number, line in _lines(path):
        cols = line.split("\t")
        if len(cols) != 3:
            raise InputError(
                where,
                f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(cols)}",
                line=number,
            )
        qid, doc_id, score = (c.strip() for c in cols)
        try:
            rel = int(score)
        except ValueError:
            if first:
                first = False
                continue  # the header line "query-id corpus-id score"
            raise InputError(where, f"score {score!r} is not an integer", line=number) from None
        first = False
        if not qid or not doc_id:
            raise InputError(where, "empty query-id or corpus-id", line=number)
        judged = qrels.setdefault(qid, {})
        if doc_id in judged and judged[doc_id] != rel:
            raise InputError(
                where,
                f"conflicting scores for ({qid!r}, {doc_id!r}): {judged[doc_id]} and {rel}",
                line=number,
            )
        judged[doc_id] = rel
    return qrels


def _qrels_path(folder: Path, split: str) -> Path | None:
    return _find(folder / "qrels", f"{split}.tsv") or _find(folder, "qrels.tsv")


def load_beir(folder: Path | str, split: str = "test") -> BeirDataset:
    """Load the BEIR dataset in ``folder``, judged by ``qrels/<split>.tsv`` (or ``qrels.tsv``).

    Raises :class:`~ragtune.errors.InputError` naming the file (and line) for a missing
    file, a line that is not JSON, a record without ``"_id"``, a qrels row without three
    columns, a non-integer score, duplicate ids, or judgments for an unknown query.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(str(folder), "not a folder (expected a BEIR dataset folder)")
    corpus_path = _find(folder, "corpus.jsonl")
    queries_path = _find(folder, "queries.jsonl")
    qrels_path = _qrels_path(folder, split)
    missing = [
        label
        for label, found in (
            ("corpus.jsonl", corpus_path),
            ("queries.jsonl", queries_path),
            (f"qrels/{split}.tsv (or qrels.tsv)", qrels_path),
        )
        if found is None
    ]
    if missing or corpus_path is None or queries_path is None or qrels_path is None:
        raise InputError(str(folder), "not a BEIR dataset: missing " + ", ".join(missing))

    qrels_where = str(qrels_path.relative_to(folder))
    corpus = _read_corpus(corpus_path)
    all_queries = _read_queries(queries_path)
    qrels = _read_qrels(qrels_path, qrels_where)
    unknown = sorted(set(qrels) - set(all_queries))
    if unknown:
        shown = ", ".join(repr(q) for q in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise InputError(
            qrels_where, f"{len(unknown)} judged queries are not in {queries_path.name}: {shown}"
        )
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    return BeirDataset(name=folder.name, corpus=corpus, queries=queries, qrels=qrels)
