"""The public retrieval sets of bench/retrieval_sets.py: where each file comes from, its
sha256, and the converter that turns it into a BEIR folder (corpus.jsonl, queries.jsonl,
qrels/test.tsv). Provenance and licences: bench/DATASETS.md.

Raw files live in ``$RAGTUNE_BENCH_DATA/raw/<set>/`` (default ``~/.cache/ragtune-bench``),
never in the repository. A missing file is downloaded from the pinned commit when the
machine has network access (``--fetch``); every file's sha256 is checked before use, and
a mismatch stops the run. Converted BEIR folders are cached beside them
(``beir/<set>/``) and rebuilt when the converter version changes.

SciFact, SQuAD and XQuAD are the project's held-out sets: never add them here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CONVERTER_VERSION = 1
HELD_OUT = ("scifact", "squad", "xquad")


@dataclass(frozen=True)
class SourceFile:
    path: str  # inside the repository
    sha256: str
    size: int


@dataclass(frozen=True)
class RetrievalSet:
    name: str
    kind: str
    repo: str
    commit: str
    files: tuple[SourceFile, ...]
    convert: Callable[[Path], tuple[dict, dict, dict]]  # raw dir -> corpus, queries, qrels

    def raw_name(self, f: SourceFile) -> str:
        return Path(f.path).name


def data_root() -> Path:
    root = os.environ.get("RAGTUNE_BENCH_DATA")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "ragtune-bench"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------- SMART-style readers
def _smart_records(text: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Records of the SMART format (``.I id`` then ``.X`` fields) as (id, {field: text})."""
    for block in re.split(r"^\.I\s+", text, flags=re.MULTILINE)[1:]:
        head, _, body = block.partition("\n")
        parts = re.split(r"^\.([A-Z])[ \t]*\n?", body, flags=re.MULTILINE)
        # parts = [before, key1, text1, key2, text2, ...]
        fields: dict[str, str] = {}
        for key, value in zip(parts[1::2], parts[2::2]):
            fields[key] = (fields.get(key, "") + " " + " ".join(value.split())).strip()
        yield head.strip(), fields


def _read(raw: Path, name: str) -> str:
    return (raw / name).read_text(encoding="utf-8", errors="replace")


def _smart_corpus(text: str) -> dict[str, dict[str, str]]:
    return {str(int(i)): {"title": f.get("T", ""), "text": f.get("W", "")}
            for i, f in _smart_records(text)}


def _smart_queries(text: str) -> dict[str, str]:
    return {str(int(i)): f.get("W", "") for i, f in _smart_records(text) if f.get("W")}


def _pair_qrels(text: str, qcol: int, dcol: int) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) > max(qcol, dcol):
            qrels.setdefault(str(int(cols[qcol])), {})[str(int(cols[dcol]))] = 1
    return qrels


def convert_cranfield(raw: Path) -> tuple[dict, dict, dict]:
    """Cranfield: queries are numbered 1..225 in file order in the judgments (the ``.I``
    numbers skip values), and grades run 1 (complete answer) .. 4 (minimal interest);
    5 and -1 mean not relevant. Grade g becomes relevance 5 - g."""
    corpus = _smart_corpus(_read(raw, "cran.all.1400"))
    queries_by_pos = [f.get("W", "") for _, f in _smart_records(_read(raw, "cran.qry"))]
    queries = {str(n): q for n, q in enumerate(queries_by_pos, start=1)}
    qrels: dict[str, dict[str, int]] = {}
    for line in _read(raw, "cranqrel").splitlines():
        cols = line.split()
        if len(cols) >= 3 and 1 <= int(cols[2]) <= 4:
            qrels.setdefault(str(int(cols[0])), {})[str(int(cols[1]))] = 5 - int(cols[2])
    return corpus, queries, qrels


def convert_cisi(raw: Path) -> tuple[dict, dict, dict]:
    """CISI: 1,460 library-science abstracts; 76 of the 112 queries have judgments."""
    return (_smart_corpus(_read(raw, "CISI.ALL")), _smart_queries(_read(raw, "CISI.QRY")),
            _pair_qrels(_read(raw, "CISI.REL"), 0, 1))


def convert_cacm(raw: Path) -> tuple[dict, dict, dict]:
    """CACM: 3,204 computer-science titles (most with an abstract); 52 judged queries."""
    return (_smart_corpus(_read(raw, "cacm.all")), _smart_queries(_read(raw, "query.text")),
            _pair_qrels(_read(raw, "qrels.text"), 0, 1))


def convert_npl(raw: Path) -> tuple[dict, dict, dict]:
    """NPL (Vaswani): 11,429 physics abstracts (lower-cased, no title) and 93 queries."""
    docs = re.findall(r"<DOCNO>\s*(\d+)\s*</DOCNO>(.*?)</DOC>", _read(raw, "doc-text.trec"), re.DOTALL)
    corpus = {str(int(i)): {"title": "", "text": " ".join(t.split())} for i, t in docs}
    tops = re.findall(r"<num>\s*(\d+)\s*</num>\s*<title>(.*?)</title>",
                      _read(raw, "query-text.trec"), re.DOTALL | re.IGNORECASE)
    # The topics are upper case; lower-case them like the documents (a cased model
    # tokenizer would otherwise split them into letters).
    queries = {str(int(i)): " ".join(t.split()).lower() for i, t in tops}
    return corpus, queries, _pair_qrels(_read(raw, "qrels"), 0, 2)


def _f(path: str, sha: str, size: int) -> SourceFile:
    return SourceFile(path, sha, size)


SETS: tuple[RetrievalSet, ...] = (
    RetrievalSet("cranfield", "aeronautics abstracts, graded judgments",
                 "Chetan-Prasad/IR-Lucene_Cran", "ff1bd825c1781e908fdcb8a20609ef779abb3d2a", (
                     _f("cran.all.1400", "73d33d7e445b884bc32332034e7bc7d07ad5089d9030ead9f1de3493da21da1d", 1644707),
                     _f("cran.qry", "99578ceb88941ef89c14faf7c63c23776a376d8fba319b990f01d0c601d8b03f", 28957),
                     _f("cranqrel", "92e54b58dac0b980152178f350d892fae66c8a239b8a11715b835fb8d2f6bc0e", 19541),
                 ), convert_cranfield),
    RetrievalSet("cisi", "library and information science, long natural-language requests",
                 "Shakiba-Alipour/Information-Retrieval-on-CISI",
                 "7a23c34602e8949d795bb1835004546e00d1d1ba", (
                     _f("CISI.ALL", "c13934ad921234b571e7b424af3461fe39dccb16757cb21954b3aea5250d072e", 2119351),
                     _f("CISI.QRY", "b72de0e0cb8aa5c93ac988e5be0400cc18949d0a94913a248783a37dd97d5470", 66632),
                     _f("CISI.REL", "f7396c92586c61953ccb7ae99ad8d3ac749ac3b989041fc93a9e311568f58997", 77850),
                 ), convert_cisi),
    RetrievalSet("cacm", "computer-science titles and abstracts, author/topic requests",
                 "kavinsan/Information-Retrieval-Project",
                 "feda4806b8d19af85753c580640d40e572f99339", (
                     _f("cacm.all", "0d0eaa9e54987161482a217dcef670a8032d687b1bbe84ba0a8e310b675bd52f", 2187735),
                     _f("query.text", "2fe81273fd7db3beccad1090c84630dea561469b7c19ad03e71370c8c7399cc9", 13689),
                     _f("qrels.text", "da4202b0c70cad7d91c9a028eaf8cbd0a4ca981ebdc3955eb75ba7b6de6f185c", 9948),
                 ), convert_cacm),
    RetrievalSet("npl", "physics abstracts (NPL / Vaswani), short keyword topics",
                 "terrier-org/terrier-core", "3ceec7d89cb943a56e4bf298b00897d4221d0002", (
                     _f("share/vaswani_npl/corpus/doc-text.trec", "117ae7491647cb9725621bad52969a78307de19b1757852a0a2383659a856d36", 3494318),
                     _f("share/vaswani_npl/query-text.trec", "fef998db14818f74a22b2fb2be06425d5fb0dbd83ed9841fa0440e0a5477da7b", 10991),
                     _f("share/vaswani_npl/qrels", "1b3ed6a43752c7a7becb0dbd1614d662791bb7825b60182fd36be24d480ea447", 24863),
                 ), convert_npl),
)

assert not any(h in s.name for s in SETS for h in HELD_OUT), "held-out set in the bench"


def ensure_raw(spec: RetrievalSet, fetch: bool) -> Path:
    """The set's raw folder with every file present and its sha256 checked."""
    raw = data_root() / "raw" / spec.name
    raw.mkdir(parents=True, exist_ok=True)
    for f in spec.files:
        target = raw / spec.raw_name(f)
        if not target.exists():
            url = f"https://raw.githubusercontent.com/{spec.repo}/{spec.commit}/{f.path}"
            if not fetch:
                raise SystemExit(f"{spec.name}: {target} is missing; run with --fetch to download "
                                 f"it from {url}, or copy that file there (bench/DATASETS.md)")
            with urllib.request.urlopen(url, timeout=60) as resp:
                target.write_bytes(resp.read())
        digest = sha256_file(target)
        if digest != f.sha256:
            raise SystemExit(f"{spec.name}: {target} has sha256 {digest}, expected {f.sha256} "
                             f"({spec.repo}@{spec.commit}:{f.path}); delete it and fetch again")
    return raw


def ensure_beir(spec: RetrievalSet, fetch: bool = False) -> Path:
    """The set as a BEIR folder, converted once from the checked raw files."""
    out = data_root() / "beir" / spec.name
    stamp = out / "converted.json"
    want = {"converter": CONVERTER_VERSION, "files": [f.sha256 for f in spec.files]}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return out
    corpus, queries, qrels = spec.convert(ensure_raw(spec, fetch))
    qrels = {q: {d: r for d, r in docs.items() if d in corpus}
             for q, docs in qrels.items() if q in queries}
    qrels = {q: docs for q, docs in qrels.items() if docs}
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for doc_id, doc in corpus.items():
            fh.write(json.dumps({"_id": doc_id, **doc}) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid in qrels:
            fh.write(json.dumps({"_id": qid, "text": queries[qid]}) + "\n")
    with (out / "qrels" / "test.tsv").open("w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, docs in qrels.items():
            for doc_id, rel in docs.items():
                fh.write(f"{qid}\t{doc_id}\t{rel}\n")
    stamp.write_text(json.dumps(want))
    return out
