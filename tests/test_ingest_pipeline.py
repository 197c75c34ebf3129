"""The ingest pipeline end to end on a real SQLite store: idempotency, updates, sync, bad input, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ragtune.embed.fake import FakeEmbedder
from ragtune.errors import StoreError
from ragtune.ingest import sync
from ragtune.store.sqlite import SQLiteStore
from ragtune.types import Principal
from tests.conftest import write

ADMIN = Principal("root", admin=True)


class CountingEmbedder(FakeEmbedder):
    """The fake embedder, counting the passages it is asked to embed."""

    def __init__(self) -> None:
        super().__init__(dimension=64)
        self.calls = 0

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.calls += len(texts)
        return super().embed_documents(texts)


def corpus(root: Path, n: int = 6) -> Path:
    for i in range(n):
        write(root / f"doc{i}.md", f"# Policy {i}\n\n## Scope\n\nRule {i} applies to widgets.\n\n"
                                   f"## Details\n\nWidget {i} must be returned within {10 + i} days.\n")
    return root


def ingest(store, embedder, *paths, **kw):
    from ragtune.ingest.sync import ingest_paths

    return ingest_paths(list(paths), store=store, embedder=embedder, **kw)


def test_reingest_unchanged_embeds_nothing(tmp_path):
    docs = corpus(tmp_path / "kb")
    store, emb = SQLiteStore(tmp_path / "s.db"), CountingEmbedder()
    first = ingest(store, emb, docs)
    assert len(first.added) == 6 and first.ok and emb.calls == first.chunks_embedded > 0
    emb.calls = 0
    second = ingest(store, emb, docs)
    assert (len(second.unchanged), second.added, second.updated, emb.calls) == (6, [], [], 0)
    assert store.count_documents() == 6
    assert store.stats()["chunks"] == first.chunks_written


def test_changed_file_replaces_chunks_and_reuses_unchanged_vectors(tmp_path):
    docs = corpus(tmp_path / "kb", 2)
    store, emb = SQLiteStore(tmp_path / "s.db"), CountingEmbedder()
    ingest(store, emb, docs)
    emb.calls = 0
    text = (docs / "doc0.md").read_text().replace("within 10 days", "within 45 days")
    (docs / "doc0.md").write_text(text)
    report = ingest(store, emb, docs)
    assert [Path(s).name for s in report.updated] == ["doc0.md"]
    assert 0 < emb.calls < report.chunks_written + 1
    info = store.get_document(str((docs / "doc0.md").resolve()))
    assert info.version == 2
    texts = [h.chunk.text for h in store.lexical_search("widget days", 20, ADMIN)]
    assert any("45 days" in t for t in texts) and not any("within 10 days" in t for t in texts)
    assert store.integrity_check() == []


def test_sync_removes_documents_whose_files_are_gone(tmp_path):
    docs = corpus(tmp_path / "kb", 3)
    store, emb = SQLiteStore(tmp_path / "s.db"), CountingEmbedder()
    ingest(store, emb, docs)
    (docs / "doc1.md").unlink()
    assert ingest(store, emb, docs).removed == []  # without --sync nothing is removed
    report = ingest(store, emb, docs, sync=True)
    assert [Path(s).name for s in report.removed] == ["doc1.md"]
    assert store.count_documents() == 2


def test_bad_files_are_reported_and_the_rest_goes_in(tmp_path):
    docs = corpus(tmp_path / "kb", 2)
    (docs / "empty.md").write_text("")
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02garbage\x00" * 50)
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (docs / "image.xyz").write_bytes(b"abc")
    (docs / "latin1.txt").write_bytes("Café crème policy: résumé required.".encode("latin-1"))
    (docs / "utf16.txt").write_bytes("Unicode policy: naïve coöperation.".encode("utf-16"))
    store, emb = SQLiteStore(tmp_path / "s.db"), CountingEmbedder()
    report = ingest(store, emb, docs, tmp_path / "missing.md")
    failed = {Path(p).name: msg for p, msg in report.failed}
    assert set(failed) == {"empty.md", "binary.txt", "corrupt.pdf", "image.xyz", "missing.md"}
    assert "empty" in failed["empty.md"]
    assert "binary" in failed["binary.txt"]
    assert "PDF" in failed["corrupt.pdf"]
    assert "unsupported" in failed["image.xyz"]
    assert "no such file" in failed["missing.md"]
    assert store.count_documents() == 4  # 2 markdown + latin-1 + utf-16
    assert store.lexical_search("crème", 3, ADMIN)[0].chunk.text.startswith("Café crème")
    assert store.lexical_search("coöperation", 3, ADMIN)
    assert len(store.ingest_log(100)) >= 9


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    from ragtune.config import IngestSettings

    big = tmp_path / "big.txt"
    with big.open("wb") as f:  # sparse 100 MB file: cheap to make, refused by size
        f.truncate(100 * 1024 * 1024)
    store, emb = SQLiteStore(tmp_path / "s.db"), CountingEmbedder()
    report = ingest(store, emb, big, ingest=IngestSettings(max_file_mb=50))
    assert len(report.failed) == 1 and "100.0 MB" in report.failed[0][1]
    assert emb.calls == 0


SLOW_INGEST = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ragtune.embed.fake import FakeEmbedder
    from ragtune.ingest.sync import ingest_paths
    from ragtune.store.sqlite import SQLiteStore

    class Slow(FakeEmbedder):
        def embed_documents(self, texts):
            time.sleep(0.05 * len(texts))
            return super().embed_documents(texts)

    ingest_paths([Path(sys.argv[2])], store=SQLiteStore(sys.argv[1]), embedder=Slow(dimension=64))
""")


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_a_consistent_store(tmp_path):
    docs = tmp_path / "kb"
    for i in range(60):  # big enough that the embedder is flushed several times
        write(docs / f"d{i:02}.md", f"# Doc {i}\n\n" + "\n\n".join(
            f"## Part {j}\n\nDocument {i} part {j} says item {i * 100 + j} costs {j} dollars." for j in range(8)))
    db = tmp_path / "s.db"
    script = tmp_path / "slow_ingest.py"
    script.write_text(SLOW_INGEST)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(docs)], env=env)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until some, but not all, documents are committed
        time.sleep(0.2)
        if db.exists():
            try:
                n = SQLiteStore(db).count_documents()
            except StoreError:  # the writer is still creating the schema
                continue
            if 0 < n:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = SQLiteStore(db)
    partial = store.count_documents()
    assert 0 < partial < 60
    assert store.integrity_check() == []
    report = ingest(store, CountingEmbedder(), docs)
    assert len(report.unchanged) == partial and len(report.added) == 60 - partial
    assert store.count_documents() == 60
    assert store.integrity_check() == []
    ids = [c.id for c in store.iter_chunks()]
    assert len(ids) == len(set(ids))


class SlowThreadedEmbedder(CountingEmbedder):
    """Embeds slowly and records which threads embedded and how many calls overlapped."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.lock, self.running, self.most, self.threads = threading.Lock(), 0, 0, set()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        import threading

        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.get_ident())
        time.sleep(0.05)
        try:
            return super().embed_documents(texts)
        finally:
            with self.lock:
                self.running -= 1


def test_background_flushes_write_every_document_with_its_own_vectors(tmp_path, monkeypatch):
    """Flushes embed off the calling thread, two at a time; writes stay in order and complete."""
    import threading

    monkeypatch.setattr(sync, "_FLUSH_CHUNKS", 4)
    store = SQLiteStore(tmp_path / "s.db")
    emb = SlowThreadedEmbedder()
    report = ingest(store, emb, corpus(tmp_path / "kb", n=24))
    assert report.ok and len(report.added) == 24 and report.chunks_embedded == emb.calls
    assert threading.get_ident() not in emb.threads and emb.most == 2
    chunks = list(store.iter_chunks())
    assert len(chunks) == report.chunks_written == emb.calls
    titles = {d.id: d.title for d in store.list_documents()}
    stored = store.existing_embeddings([c.id for c in chunks])
    want = FakeEmbedder(dimension=64).embed_documents(
        [sync.chunk_embedding_text(c, titles[c.doc_id]) for c in chunks])
    np.testing.assert_allclose(np.stack([stored[c.id] for c in chunks]), want, atol=1e-6)
    assert ingest(store, emb, tmp_path / "kb").chunks_embedded == 0


def test_an_embedding_error_in_the_background_reaches_the_caller(tmp_path, monkeypatch):
    class Broken(CountingEmbedder):
        def embed_documents(self, texts: list[str]) -> np.ndarray:
            raise RuntimeError("embedding server said 503")

    monkeypatch.setattr(sync, "_FLUSH_CHUNKS", 4)
    store = SQLiteStore(tmp_path / "s.db")
    with pytest.raises(RuntimeError, match="503"):
        ingest(store, Broken(), corpus(tmp_path / "kb", n=6))
    assert store.count_documents() == 0  # nothing half-written
    import threading  # and no embedding thread is left running

    assert not [t for t in threading.enumerate() if t.name.startswith("ragtune-ingest")]


# --------------------------------------------------------------------------- issue 17

def _without_root_powers() -> list[str]:
    """A command prefix under which permission bits apply, also to root (CI runs as root):
    setpriv drops the capabilities that let root read any file."""
    if os.geteuid() != 0:
        return []
    import shutil

    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a folder unreadable")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def _cli(home: Path, *args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    """The ragtune CLI in a subprocess; ``init`` also makes "root" an admin (status and
    docs --all are the operator's view)."""
    env = dict(os.environ, RAGTUNE_HOME=str(home), RAGTUNE_EMBEDDING_BACKEND="fake",
               RAGTUNE_GENERATION_BACKEND="fake", COLUMNS="200",
               PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([*(prefix or []), sys.executable, "-m", "ragtune.cli", *args],
                       env=env, capture_output=True, text=True, timeout=300, check=False)
    if args[:1] == ("init",):
        cfg = home / "ragtune.toml"
        cfg.write_text(cfg.read_text().replace("admins = []", 'admins = ["root"]', 1))
    return p


def test_an_unreadable_folder_is_a_failure_and_sync_keeps_its_documents(tmp_path):
    import json

    kb = corpus(tmp_path / "kb", 2)
    write(kb / "secret" / "plans.md", "# Plans\n\nThe secret plan is widget 7.\n")
    home = tmp_path / "ws"
    assert _cli(home, "init").returncode == 0
    assert _cli(home, "ingest", str(kb)).returncode == 0
    (kb / "secret").chmod(0)
    try:
        p = _cli(home, "ingest", str(kb), "--sync", "--json", prefix=_without_root_powers())
    finally:
        (kb / "secret").chmod(0o755)
    report = json.loads(p.stdout)
    assert p.returncode == 1, p.stderr
    assert report["removed"] == [], "--sync took an unreadable folder for deleted files"
    [failure] = report["failed"]
    assert failure["path"].endswith("secret") and "permission denied" in failure["error"].lower()
    assert "kept" in failure["error"]
    docs = json.loads(_cli(home, "docs", "--all", "--as", "root", "--json").stdout)
    assert any(d["source"].endswith("plans.md") for d in docs)
    status = json.loads(_cli(home, "status", "--as", "root", "--json").stdout)
    assert any(f["source"].endswith("secret") for f in status["recent_failures"])
    # once readable again, a file really gone is still removed
    (kb / "secret" / "plans.md").unlink()
    again = json.loads(_cli(home, "ingest", str(kb), "--sync", "--json").stdout)
    assert [Path(s).name for s in again["removed"]] == ["plans.md"]


def _bytes_on_disk(db: Path, needle: bytes) -> int:
    """Copies of ``needle`` in the store's files, counted by another process: opening and
    closing a file here would drop this process's SQLite locks on it (POSIX locks)."""
    code = ("import sys, pathlib; db = pathlib.Path(sys.argv[1]); print(sum("
            "p.read_bytes().count(sys.argv[2].encode()) for p in db.parent.glob(db.name + '*') "
            "if p.is_file() and not p.name.endswith('.lock')))")
    out = subprocess.run([sys.executable, "-c", code, str(db), needle.decode()],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.slow
def test_rm_under_a_long_read_says_the_text_remains_then_erases_it(tmp_path):
    import sqlite3

    needle = b"ZORKMIDSECRET"
    write(tmp_path / "kb" / "salary.md", "# Salary\n\n" + "ZORKMIDSECRET band 9. " * 20)
    write(tmp_path / "kb" / "other.md", "# Other\n\nNothing secret here.\n")
    home = tmp_path / "ws"
    _cli(home, "init")
    assert _cli(home, "ingest", str(tmp_path / "kb")).returncode == 0
    db = home / "store.db"
    reader = sqlite3.connect(db)  # another process's long read: a snapshot held open
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM chunks").fetchone()
    try:
        p = _cli(home, "rm", str(tmp_path / "kb" / "salary.md"))
        on_disk = _bytes_on_disk(db, needle)
        assert on_disk > 0  # SQLite cannot erase what the reader may still see...
        assert p.returncode == 3 and "still on disk" in p.stdout, p.stdout + p.stderr
        assert "removed" in p.stdout  # ... and rm says so instead of "removed", exit 0
        search = _cli(home, "search", "ZORKMIDSECRET", "--json", "--mode", "lexical")
        assert "ZORKMIDSECRET" not in search.stdout.split('"hits"')[1]
        assert '"erasure_pending": true' in _cli(home, "status", "--as", "root", "--json").stdout
    finally:
        reader.execute("COMMIT")
        reader.close()
    status = _cli(home, "status", "--as", "root", "--json")  # the next command finishes the erasure
    assert '"erasure_pending": false' in status.stdout
    assert _bytes_on_disk(db, needle) == 0


def test_rm_without_readers_erases_before_it_says_removed(tmp_path):
    write(tmp_path / "kb" / "salary.md", "# Salary\n\n" + "ZORKMIDSECRET band 9. " * 20)
    home = tmp_path / "ws"
    _cli(home, "init")
    _cli(home, "ingest", str(tmp_path / "kb"))
    p = _cli(home, "rm", str(tmp_path / "kb" / "salary.md"))
    assert p.returncode == 0 and "erased from disk" in p.stdout
    assert _bytes_on_disk(home / "store.db", b"ZORKMIDSECRET") == 0


def test_chunking_never_counts_more_than_a_few_chunks_of_text_at_once():
    """Linear chunking: no token count sees a whole large section (the real tokenizer held
    every token of a 40 MB file at once: 6 GB), and the work per input byte is constant."""
    from ragtune.ingest.chunking import split_text

    seen = {"max": 0, "total": 0}

    def count(text: str) -> int:
        seen["max"] = max(seen["max"], len(text))
        seen["total"] += len(text)
        return FakeEmbedder().count_tokens(text)

    sentence = "Widget returns are accepted within thirty days of delivery. "
    ratios = []
    for n, shape in ((20_000, "lines"), (80_000, "lines"), (20_000, "one line"),
                     (80_000, "one line"), (60_000, "words"), (240_000, "words")):
        seen.update(max=0, total=0)
        if shape == "lines":
            text = "\n\n".join(sentence * 5 for _ in range(n // 5))
        elif shape == "one line":
            text = sentence * n
        else:
            text = "widget " * n  # no full stop anywhere: a single sentence of words
        chunks = split_text(text, 400, 40, count)
        assert all(t <= 400 for _, t in chunks)
        assert seen["max"] <= 400 * 32 + 100, f"{shape}: counted {seen['max']} characters at once"
        ratios.append(seen["total"] / len(text))
    for small, big in zip(ratios[::2], ratios[1::2]):
        assert big <= small * 1.2 + 0.1, ratios  # 4x the input, not more than 4x the work
    assert max(ratios) < 6, ratios


@pytest.mark.slow
def test_a_40_mb_text_file_ingests_within_the_memory_bound(tmp_path):
    """Peak RSS of a fresh process ingesting a 40 MB text file stays under 1.5 GB."""
    import json

    script = tmp_path / "mem.py"
    script.write_text(textwrap.dedent("""
        import json, resource, sys
        from pathlib import Path
        from ragtune.embed.fake import FakeEmbedder
        from ragtune.ingest.sync import ingest_paths
        from ragtune.store.sqlite import SQLiteStore
        ticks = []
        report = ingest_paths([Path(sys.argv[2])], store=SQLiteStore(sys.argv[1]),
                              embedder=FakeEmbedder(dimension=384),
                              progress=lambda done, total, name: ticks.append((done, total)))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"peak_mb": peak, "failed": report.failed, "chunks": report.chunks_written,
                          "ticks": len(ticks), "last": ticks[-1]}))
    """))
    big = tmp_path / "big.txt"
    para = ("Widget returns are accepted within thirty days of delivery when the receipt is "
            "kept. Refunds go back to the original payment method within ten working days. ")
    with big.open("w") as f:
        k = 0
        while f.tell() < 40 * 1024 * 1024:
            f.write(f"Section {k}. " + para * 6 + "\n\n")
            k += 1
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, str(script), str(tmp_path / "s.db"), str(big)],
                       capture_output=True, text=True, env=env, timeout=1500, check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"\n40 MB text file: peak RSS {result['peak_mb']:.0f} MB, {result['chunks']} chunks")
    assert result["failed"] == [] and result["chunks"] > 10_000
    assert result["peak_mb"] < 1536
    assert result["ticks"] > 20, "progress did not move while the file was ingested"
    assert result["last"][0] == result["last"][1] == big.stat().st_size


@pytest.mark.slow
def test_kill_9_at_many_points_never_leaves_the_store_inconsistent(tmp_path):
    """Kill the ingest at several moments (parsing, embedding, writing); after each the store
    is consistent, and the next run finishes the batch with every fact findable."""
    import random

    docs = tmp_path / "kb"
    for i in range(40):
        write(docs / f"d{i:02}.md", f"# Doc {i}\n\n" + "\n\n".join(
            f"## Part {j}\n\nDocument {i} part {j} says item{i}x{j} costs {j} dollars."
            for j in range(6)))
    db = tmp_path / "s.db"
    script = tmp_path / "slow_ingest.py"
    script.write_text(SLOW_INGEST)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    rng = random.Random(17)
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(db), str(docs)], env=env)
        time.sleep(rng.uniform(0.8, 4.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        store = SQLiteStore(db)
        assert store.integrity_check() == []
        store.close()
    assert kills >= 3
    store = SQLiteStore(db)
    report = ingest(store, CountingEmbedder(), docs)
    assert report.ok and store.count_documents() == 40 and store.integrity_check() == []
    ids = [c.id for c in store.iter_chunks()]
    assert len(ids) == len(set(ids))
    for i in rng.sample(range(40), 8):
        j = rng.randrange(6)
        hits = store.lexical_search(f'"item{i}x{j}"', 3, ADMIN)
        assert hits and f"item{i}x{j}" in hits[0].chunk.text


@pytest.mark.slow
def test_a_second_ingest_and_searches_during_an_ingest_all_succeed(tmp_path):
    """Concurrency: while one process ingests (slowly), a second ingest waits for the lock
    and succeeds, and searches from a third party never fail."""
    first, second = tmp_path / "first", tmp_path / "second"
    for i in range(30):
        write(first / f"a{i:02}.md", f"# A{i}\n\nAlpha document {i} mentions gadget{i}.\n")
    for i in range(5):
        write(second / f"b{i}.md", f"# B{i}\n\nBeta document {i} mentions sprocket{i}.\n")
    db = tmp_path / "s.db"
    script = tmp_path / "slow_ingest.py"
    script.write_text(SLOW_INGEST)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    a = subprocess.Popen([sys.executable, str(script), str(db), str(first)], env=env)
    time.sleep(1.0)
    b = subprocess.Popen([sys.executable, str(script), str(db), str(second)], env=env)
    reader = SQLiteStore(db)
    searched = 0
    while a.poll() is None or b.poll() is None:
        reader.lexical_search("document gadget sprocket", 5, ADMIN)
        reader.dense_search(np.ones(64, dtype=np.float32) / 8, 5, ADMIN)
        searched += 1
        time.sleep(0.05)
    assert a.returncode == 0 and b.returncode == 0 and searched >= 20
    assert reader.count_documents() == 35 and reader.integrity_check() == []
