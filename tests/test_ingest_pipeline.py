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
    assert [h.chunk.text for h in store.lexical_search("crème", 3, ADMIN)][0].startswith("Café crème")
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
            except Exception:
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

    from ragtune.ingest import sync

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
    from ragtune.ingest import sync

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
