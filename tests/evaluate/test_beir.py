"""load_beir on the shipped tiny set and on good and bad folders built in tmp_path."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ragtune.errors import InputError
from ragtune.evaluate.beir import BeirDataset, load_beir

TINY = Path(__file__).resolve().parents[1] / "data" / "beir_tiny"
HEADER = "query-id\tcorpus-id\tscore\n"


def _write(
    folder: Path, corpus: str, queries: str, qrels: str, qrels_name: str = "qrels/test.tsv"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text(corpus, encoding="utf-8")
    (folder / "queries.jsonl").write_text(queries, encoding="utf-8")
    path = folder / qrels_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(qrels, encoding="utf-8")
    return folder


def _jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


GOOD_CORPUS = _jsonl(
    {"_id": "d1", "title": "Returns", "text": "Refunds within 30 days."},
    {"_id": 2, "text": "Numeric id, no title."},
)
GOOD_QUERIES = _jsonl({"_id": "q1", "text": "refund window?"}, {"_id": "q2", "text": "unjudged"})
GOOD_QRELS = HEADER + "q1\td1\t2\nq1\t2\t0\n"


def test_tiny_dataset_loads() -> None:
    ds = load_beir(TINY)
    assert isinstance(ds, BeirDataset)
    assert ds.name == "beir_tiny"
    assert len(ds.corpus) == 30 and len(ds.queries) == 10
    assert "q99" not in ds.queries  # present in queries.jsonl, but unjudged
    assert ds.qrels["q01"] == {"d04": 2, "d03": 1}
    assert ds.corpus["d04"]["title"] == "VPN error E-4012"
    judged_docs = {d for rels in ds.qrels.values() for d in rels}
    assert judged_docs <= set(ds.corpus)


def test_good_folder(tmp_path: Path) -> None:
    ds = load_beir(_write(tmp_path / "set", GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS))
    assert ds.corpus == {
        "d1": {"title": "Returns", "text": "Refunds within 30 days."},
        "2": {"title": "", "text": "Numeric id, no title."},
    }
    assert ds.queries == {"q1": "refund window?"}
    assert ds.qrels == {"q1": {"d1": 2, "2": 0}}


def test_flat_qrels_tsv_gzip_and_blank_lines(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "flat", GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS + "\n\n", qrels_name="qrels.tsv"
    )
    (folder / "corpus.jsonl").unlink()
    with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(GOOD_CORPUS)
    ds = load_beir(folder)
    assert set(ds.corpus) == {"d1", "2"} and ds.qrels == {"q1": {"d1": 2, "2": 0}}


def test_split_selects_the_qrels_file(tmp_path: Path) -> None:
    folder = _write(tmp_path / "s", GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS)
    (folder / "qrels" / "dev.tsv").write_text(HEADER + "q2\td1\t1\n", encoding="utf-8")
    assert load_beir(folder, split="dev").queries == {"q2": "unjudged"}


def test_header_is_optional(tmp_path: Path) -> None:
    ds = load_beir(_write(tmp_path / "h", GOOD_CORPUS, GOOD_QUERIES, "q1\td1\t1\n"))
    assert ds.qrels == {"q1": {"d1": 1}}


def test_missing_files_are_listed(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "queries.jsonl").write_text(GOOD_QUERIES, encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_beir(folder)
    message = str(err.value)
    assert "corpus.jsonl" in message and "qrels/test.tsv (or qrels.tsv)" in message
    assert "queries.jsonl" not in message.split("missing", 1)[1]


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        load_beir(tmp_path / "nope")


BAD_CASES = [
    # (corpus, queries, qrels, expected message)
    (GOOD_CORPUS + "{not json\n", GOOD_QUERIES, GOOD_QRELS, r"^corpus\.jsonl:3: not valid JSON"),
    (
        GOOD_CORPUS + '{"title": "x", "text": "y"}\n',
        GOOD_QUERIES,
        GOOD_QRELS,
        r'^corpus\.jsonl:3: missing "_id"',
    ),
    (
        GOOD_CORPUS + "[1, 2]\n",
        GOOD_QUERIES,
        GOOD_QRELS,
        r"^corpus\.jsonl:3: expected a JSON object",
    ),
    (
        GOOD_CORPUS + '{"_id": "d1", "text": "again"}\n',
        GOOD_QUERIES,
        GOOD_QRELS,
        r"^corpus\.jsonl:3: duplicate document id 'd1'",
    ),
    (
        GOOD_CORPUS + '{"_id": "d3", "title": "no text"}\n',
        GOOD_QUERIES,
        GOOD_QRELS,
        r'^corpus\.jsonl:3: document \'d3\' has no "text"',
    ),
    (
        GOOD_CORPUS + '{"_id": "d3", "text": 5}\n',
        GOOD_QUERIES,
        GOOD_QRELS,
        r'^corpus\.jsonl:3: "text" must be a string',
    ),
    (GOOD_CORPUS, '{"text": "no id"}\n', GOOD_QRELS, r'^queries\.jsonl:1: missing "_id"'),
    (
        GOOD_CORPUS,
        '{"_id": "q1", "text": ""}\n',
        GOOD_QRELS,
        r"^queries\.jsonl:1: query 'q1' has no",
    ),
    (
        GOOD_CORPUS,
        GOOD_QUERIES,
        HEADER + "q1\td1\n",
        r"^qrels/test\.tsv:2: expected 3 tab-separated columns .* got 2",
    ),
    (
        GOOD_CORPUS,
        GOOD_QUERIES,
        HEADER + "q1\td1\thigh\n",
        r"^qrels/test\.tsv:2: score 'high' is not an integer",
    ),
    (
        GOOD_CORPUS,
        GOOD_QUERIES,
        HEADER + "q1\td1\t1\nq1\td1\t2\n",
        r"^qrels/test\.tsv:3: conflicting scores",
    ),
    (
        GOOD_CORPUS,
        GOOD_QUERIES,
        HEADER + "q7\td1\t1\n",
        r"^qrels/test\.tsv: 1 judged queries are not in queries\.jsonl: 'q7'",
    ),
]


@pytest.mark.parametrize(("corpus", "queries", "qrels", "expected"), BAD_CASES)
def test_bad_input_names_file_and_line(
    tmp_path: Path, corpus: str, queries: str, qrels: str, expected: str
) -> None:
    with pytest.raises(InputError, match=expected):
        load_beir(_write(tmp_path / "bad", corpus, queries, qrels))


def test_non_utf8_file(tmp_path: Path) -> None:
    folder = _write(tmp_path / "enc", GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS)
    (folder / "corpus.jsonl").write_bytes(b'{"_id": "d1", "text": "caf\xe9"}\n')
    with pytest.raises(InputError, match="not UTF-8"):
        load_beir(folder)
