"""Peak memory and time of ingesting one large file, against a plain reference, same run.

Two generated inputs (issue 17): a 40 MB plain-text file of prose paragraphs, and a 5 MB
text file that is a single line. Each is ingested by ragtune in a fresh process (so the
peak RSS is that file's alone) into a new SQLite store, and handled by a plain reference
in another fresh process: read the file, decode it, cut it into 2,000-character pieces
with a trivial splitter and hash each piece. The table gives time and peak RSS of both,
and ragtune's as a ratio to the reference.

Embedders (``--embedder``):
- ``tokenizer`` (default): vectors from the fake hashing embedder, token counts from the
  packaged MiniLM's real tokenizer: measures our pipeline (load, chunk with exact counts,
  embed bookkeeping, store) without the model's compute.
- ``fake``: the fake embedder throughout (regex token counts).
- ``local``: the real int8 ONNX MiniLM (40 MB takes many minutes on 2 cores).

    python bench/ingest_memory.py                 # both files, tokenizer embedder
    python bench/ingest_memory.py --mb 40 --single-line-mb 5 --embedder local

Writes bench/results/ingest_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = ["policy", "return", "window", "refund", "item", "customer", "order", "shipping",
         "days", "warranty", "product", "store", "receipt", "exchange", "damaged", "package",
         "delivery", "support", "account", "payment", "invoice", "manager", "approval",
         "request", "form", "holiday", "leave", "salary", "band", "review", "team"]


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 22))]
    words.append(str(rng.randint(1, 9999)))
    return " ".join(words).capitalize() + "."


def make_prose(path: Path, mb: float, seed: int = 0) -> None:
    """Paragraphs of 3-8 sentences separated by blank lines, ``mb`` MB in all."""
    rng, target, size = random.Random(seed), int(mb * 1024 * 1024), 0
    with path.open("w", encoding="utf-8") as f:
        while size < target:
            para = " ".join(_sentence(rng) for _ in range(rng.randint(3, 8))) + "\n\n"
            f.write(para)
            size += len(para)


def make_single_line(path: Path, mb: float, seed: int = 1) -> None:
    """One line of sentences, no newline at all."""
    rng, target, size = random.Random(seed), int(mb * 1024 * 1024), 0
    with path.open("w", encoding="utf-8") as f:
        while size < target:
            s = _sentence(rng) + " "
            f.write(s)
            size += len(s)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_ragtune(path: Path, embedder_kind: str) -> dict[str, float]:
    from ragtune.config import IngestSettings
    from ragtune.embed.fake import FakeEmbedder
    from ragtune.ingest.sync import ingest_paths
    from ragtune.store.sqlite import SQLiteStore

    if embedder_kind == "local":
        from ragtune.config import EmbeddingSettings
        from ragtune.embed.factory import make_embedder

        embedder = make_embedder(EmbeddingSettings())
    elif embedder_kind == "tokenizer":
        from ragtune.embed.local import resolve_model_path
        from ragtune.embed.onnx import _fast_tokenizer

        tok = _fast_tokenizer(Path(resolve_model_path("all-MiniLM-L6-v2")))

        class TokenizerCounted(FakeEmbedder):
            def count_tokens(self, text: str) -> int:
                return len(tok.encode(text, add_special_tokens=False).ids)

        embedder = TokenizerCounted(dimension=384)
    else:
        embedder = FakeEmbedder(dimension=384)
    before = _peak_mb()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "store.db")
        started = time.perf_counter()
        report = ingest_paths([path], store=store, embedder=embedder,
                              ingest=IngestSettings(max_file_mb=50))
        seconds = time.perf_counter() - started
        store.close()
    if report.failed:
        raise SystemExit(f"ingest failed: {report.failed}")
    return {"seconds": seconds, "peak_rss_mb": _peak_mb(), "baseline_rss_mb": before,
            "chunks": report.chunks_written}


def child_reference(path: Path) -> dict[str, float]:
    import hashlib

    before = _peak_mb()
    started = time.perf_counter()
    text = path.read_bytes().decode("utf-8")
    pieces = [text[i:i + 2000] for i in range(0, len(text), 2000)]
    digests = [hashlib.sha256(p.encode()).hexdigest() for p in pieces]
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": _peak_mb(), "baseline_rss_mb": before,
            "chunks": len(digests)}


def run_child(kind: str, path: Path, embedder: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(path), "--embedder", embedder],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} on {path.name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=40.0, help="size of the prose file")
    ap.add_argument("--single-line-mb", type=float, default=5.0, help="size of the one-line file")
    ap.add_argument("--embedder", choices=["tokenizer", "fake", "local"], default="tokenizer")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, path = args.child
        fn = child_reference if kind == "reference" else None
        result = fn(Path(path)) if fn else child_ragtune(Path(path), args.embedder)
        print(json.dumps(result))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = [(f"{args.mb:g} MB prose", Path(tmp) / "big.txt", make_prose, args.mb),
                 (f"{args.single_line_mb:g} MB single line", Path(tmp) / "line.txt",
                  make_single_line, args.single_line_mb)]
        for label, path, make, mb in files:
            make(path, mb)
            ref = run_child("reference", path, args.embedder)
            ours = run_child("ragtune", path, args.embedder)
            rows.append({"input": label, "bytes": path.stat().st_size, "embedder": args.embedder,
                         "ragtune": ours, "reference": ref,
                         "time_ratio": ours["seconds"] / max(ref["seconds"], 1e-9),
                         "rss_ratio": ours["peak_rss_mb"] / max(ref["peak_rss_mb"], 1e-9)})
    print(f"{'input':22} {'ragtune s':>10} {'ref s':>8} {'x time':>8} "
          f"{'ragtune MB':>11} {'ref MB':>8} {'x RSS':>6} {'chunks':>7}")
    for r in rows:
        o, f = r["ragtune"], r["reference"]
        print(f"{r['input']:22} {o['seconds']:10.1f} {f['seconds']:8.2f} {r['time_ratio']:8.0f} "
              f"{o['peak_rss_mb']:11.0f} {f['peak_rss_mb']:8.0f} {r['rss_ratio']:6.1f} "
              f"{o['chunks']:7.0f}")
    out = ROOT / "bench" / "results" / "ingest_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
