"""Serving a LoRA adapter on CPU: llama.cpp + GGUF LoRA vs transformers + PEFT.

One RAG-sized prompt (~600 tokens: sources from examples/kb/policies and a question), the
packaged Qwen2.5 0.5B, greedy decoding. The adapter is a rank-8 LoRA on q/k/v/o (the
training defaults) with random non-zero weights, or a trained one with ``--adapter DIR``
(a folder with adapter_config.json, weights and run.json on the packaged base). It is
exported with ``AdapterRegistry.export_gguf`` and served by ``lora_generator``; the PEFT
side is ``HFGenerator.use_adapter``. llama.cpp without the adapter is the reference.

    .venv/bin/python bench/adapter_serving.py [--repeats 3] [--max-tokens 64] [--threads 2]

Writes bench/results/adapter_serving_t<threads>.json. On a shared machine, compare rows of one run
only; the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from ragtune.finetune.adapters import AdapterRegistry
from ragtune.finetune.train import resolve_base_folder
from ragtune.generate.llama_cpp import LlamaCppGenerator, lora_generator
from ragtune.generate.models import resolve_model
from ragtune.generate.prompts import build_rag_messages
from ragtune.types import Chunk, Hit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
QUESTION = "How many days do I have to return a laptop, and who pays for return shipping?"


def rag_messages(count_tokens, target: int = 600) -> list[dict[str, str]]:
    """Sources from the sample policies until the prompt holds about ``target`` tokens."""
    paragraphs = []
    for path in sorted((ROOT / "examples" / "kb" / "policies").glob("*.md")):
        paragraphs += [(path.stem, p.strip()) for p in path.read_text().split("\n\n")
                       if len(p.split()) > 12 and not p.lstrip().startswith("#")]
    hits: list[Hit] = []
    messages = build_rag_messages(QUESTION, hits)
    for n, (doc, text) in enumerate(paragraphs, 1):
        chunk = Chunk(id=f"ch_{n}", doc_id=doc, text=text, section="", ordinal=n, tokens=0)
        trial = hits + [Hit(chunk=chunk, score=1.0 / n, document=f"{doc}.md", title=doc, rank=n)]
        trial_messages = build_rag_messages(QUESTION, trial)
        if count_tokens("\n".join(m["content"] for m in trial_messages)) > target:
            break
        hits, messages = trial, trial_messages
    return messages


def random_adapter(root: Path, name: str) -> None:
    """A rank-8 q/k/v/o LoRA with random A and small random B, registered under ``name``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folder, ident = resolve_base_folder("qwen2.5-0.5b")
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    torch.manual_seed(0)
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, init_lora_weights=False,
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    with torch.no_grad():
        for pname, p in peft.named_parameters():
            if "lora_A" in pname:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
            elif "lora_B" in pname:
                p.copy_(torch.randn_like(p) * 0.01)
    peft.save_pretrained(str(root / name))
    (root / name / "run.json").write_text(json.dumps({
        "name": name, "created_at": time.time(), "base_model": "qwen2.5-0.5b",
        "base_model_path": str(folder), "base_model_hash": ident,
        "config": {"rank": 8, "alpha": 16}}))


def measure(label: str, make, messages, repeats: int, max_tokens: int) -> dict:
    t = time.perf_counter()
    gen = make()
    gen.complete(messages, max_tokens=1)  # load the model and warm up, outside the timings
    load_s = time.perf_counter() - t
    first, tps, texts = [], [], []
    for _ in range(repeats):
        if isinstance(gen, LlamaCppGenerator):
            # llama-cpp-python reuses the KV cache of a repeated prompt prefix; a RAG prompt
            # differs per question, so time the full prefill like transformers does.
            gen.llm.reset()
        c = gen.complete(messages, max_tokens=max_tokens)
        first.append(c.timings["first_token_s"])
        tps.append(c.timings.get("tokens_per_s", 0.0))
        texts.append(c.text)
    row = {"backend": label, "load_and_warmup_s": round(load_s, 2), "prompt_tokens": c.prompt_tokens,
           "completion_tokens": c.completion_tokens,
           "first_token_s_median": round(statistics.median(first), 2),
           "tokens_per_s_median": round(statistics.median(tps), 2), "text": texts[0][:120]}
    print(f"{label:28s} first token {row['first_token_s_median']:6.2f} s  "
          f"{row['tokens_per_s_median']:6.2f} tok/s  (prompt {c.prompt_tokens}, "
          f"load+warmup {load_s:.1f} s)  {texts[0][:60]!r}", flush=True)
    del gen
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--adapter", type=Path, help="a trained adapter folder (default: random LoRA)")
    args = ap.parse_args()
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp()) / "adapters"
    root.mkdir()
    name = "bench-lora"
    if args.adapter:
        shutil.copytree(args.adapter, root / name)
    else:
        random_adapter(root, name)
    registry = AdapterRegistry(root)
    base = resolve_model("qwen2.5-0.5b")
    t = time.perf_counter()
    lora = registry.export_gguf(name)
    export_s = time.perf_counter() - t
    assert registry.gguf_for(name, base) == lora, "adapter.gguf does not match the packaged base"
    reference = LlamaCppGenerator(base, threads=args.threads)
    messages = rag_messages(reference.count_tokens)
    print(f"adapter.gguf {lora.stat().st_size / 1e6:.1f} MB, exported in {export_s:.1f} s; "
          f"load average {load_before[0]:.1f}", flush=True)

    def hf():
        from ragtune.finetune.hf_generator import HFGenerator

        g = HFGenerator("qwen2.5-0.5b", adapters_root=root, threads=args.threads)
        g.use_adapter(name)
        return g

    rows = [
        measure("llama.cpp (base)", lambda: reference, messages, args.repeats, args.max_tokens),
        measure("llama.cpp + GGUF LoRA", lambda: lora_generator(base, lora, threads=args.threads),
                messages, args.repeats, args.max_tokens),
        measure("transformers + PEFT (fp32)", hf, messages, args.repeats, args.max_tokens),
    ]
    out = {"model": base.name, "adapter": str(args.adapter or "random rank-8 q/k/v/o"),
           "adapter_gguf_mb": round(lora.stat().st_size / 1e6, 2), "export_s": round(export_s, 2),
           "threads": args.threads, "max_tokens": args.max_tokens, "repeats": args.repeats,
           "cpu_count": os.cpu_count(), "load_average_before": load_before,
           "load_average_after": os.getloadavg(), "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"adapter_serving_t{args.threads}.json").write_text(json.dumps(out, indent=2))
    print(f"load average after {out['load_average_after'][0]:.1f}; "
          f"wrote {RESULTS / f'adapter_serving_t{args.threads}.json'}")


if __name__ == "__main__":
    main()
