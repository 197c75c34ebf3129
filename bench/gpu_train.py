"""GPU training throughput: ragtune's LoRA and QLoRA against plain PEFT + Trainer, one run.

Models: the test suite's tiny Llama (2 layers, hidden 64) and ``qwen2-0.5b-random``, a
randomly initialised Qwen2-architecture model with Qwen2.5-0.5B's shapes (24 layers, hidden
896, 14 heads / 2 KV heads, vocabulary 151,936, tied embeddings: 494M parameters), built
offline on the GPU in seconds and saved in bf16 with the tiny byte-level tokenizer. Random
weights train at the speed of real ones.

For each model and mode (LoRA on a bf16 base; QLoRA on a 4-bit NF4 base, bf16 compute) the
baseline (``bench/train_throughput.py``'s plain PEFT + ``transformers.Trainer`` run: padded
batches, full-vocabulary loss; QLoRA with PEFT's ``prepare_model_for_kbit_training``) and
ragtune's ``train_adapter`` (padding-free packing, causal attention per example, logits only
at labelled positions) run on the same data, split, LoRA options, seed and steps, in
alternating order inside one process, after an unrecorded warm-up run. Reported: non-padding
training tokens/s over the optimizer steps (evaluation excluded), peak GPU memory
(``torch.cuda.max_memory_allocated`` from model load to the end), final validation loss.

    python bench/gpu_train.py                                # all of it (~2 min on an H200)
    python bench/gpu_train.py --models tiny --modes lora --steps 20

Needs CUDA (and bitsandbytes for QLoRA); exits with a clear message without them. Writes
bench/results/gpu_train.json. Never gates CI.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import train_throughput as tt  # the baseline and the data live there


def qwen2_random(folder: Path, tokenizer_from: Path) -> tuple[Path, int]:
    """A random Qwen2 with Qwen2.5-0.5B's shapes, saved in bf16; ``(folder, parameters)``."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_from)
    config = Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
        tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    with torch.device("cuda"):  # initialising 494M parameters on the GPU takes a second
        model = Qwen2ForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    model.to(torch.bfloat16).save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    return folder, params


def measure(which: str, opts: dict) -> dict:
    import torch

    gc.collect()
    torch.cuda.empty_cache()
    left = torch.cuda.memory_allocated() / 2**20
    torch.cuda.reset_peak_memory_stats()
    t = time.time()
    result = (tt.run_ragtune if which == "ragtune" else tt.run_baseline)(opts)
    result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    result["allocated_before_mb"] = round(left, 1)
    result["wall_s"] = round(time.time() - t, 1)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny,qwen2-0.5b-random")
    ap.add_argument("--modes", default="lora,qlora")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--examples", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=1, help="runs per path, alternating order; best counts")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_train.json")
    a = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("bench/gpu_train.py needs a CUDA GPU; torch sees none "
                 "(bench/train_throughput.py measures the CPU)")
    modes = a.modes.split(",")
    if "qlora" in modes:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            sys.exit("QLoRA needs bitsandbytes: pip install 'ragtune[gpu]' (or --modes lora)")
    work = Path(tempfile.mkdtemp(prefix="ragtune-gpu-bench-"))
    tiny = tt.tiny_model(work)
    models: dict[str, str] = {}
    params: dict[str, int] = {}
    for name in a.models.split(","):
        if name == "tiny":
            models[name] = str(tiny)
        elif name == "qwen2-0.5b-random":
            t = time.time()
            folder, params[name] = qwen2_random(work / "qwen2-0.5b-random", tiny)
            models[name] = str(folder)
            print(f"built {name}: {params[name] / 1e6:.0f}M parameters in {time.time() - t:.1f} s", flush=True)
        else:
            models[name] = name  # a local model folder
    data = tt.make_data(work / "data.jsonl", a.examples)
    gpu = torch.cuda.get_device_name(0)
    print(f"{gpu}; torch {torch.__version__}; {a.steps} steps of {a.batch_size} examples, "
          f"max_length {a.max_length}", flush=True)

    def opts(model: str, qlora: bool, steps: int) -> dict:
        return {"data": str(data), "threads": 0, "config": {
            "base_model": model, "max_steps": steps, "batch_size": a.batch_size,
            "max_length": a.max_length, "eval_steps": steps, "save_steps": steps,
            "early_stopping_patience": 0, "qlora": qlora,
            "learning_rate": 1e-2 if model == str(tiny) else 2e-4}}

    measure("ragtune", opts(str(tiny), False, 5))  # warm-up: CUDA context, cuBLAS, kernels
    rows = []
    for name, model in models.items():
        for mode in modes:
            o = opts(model, mode == "qlora", a.steps)
            runs: dict[str, list[dict]] = {"baseline": [], "ragtune": []}
            for r in range(a.rounds):
                for which in (("baseline", "ragtune") if r % 2 == 0 else ("ragtune", "baseline")):
                    runs[which].append(measure(which, o))
            best = {w: max(rs, key=lambda x: x["tokens_per_s"]) for w, rs in runs.items()}
            row = {"model": name, "mode": mode, "runs": runs, "best": best,
                   "speedup": round(best["ragtune"]["tokens_per_s"] / best["baseline"]["tokens_per_s"], 3),
                   "memory_ratio": round(best["ragtune"]["peak_gpu_mb"] / best["baseline"]["peak_gpu_mb"], 3)}
            rows.append(row)
            for w in ("baseline", "ragtune"):
                b = best[w]
                print(f"{name:<20}{mode:<6}{w:<9}{b['tokens_per_s']:>11.0f} tok/s{b['peak_gpu_mb']:>10.0f} MB"
                      f"  val {b['val_loss']:.4f}  ({b['batching']})", flush=True)
            print(f"{name:<20}{mode:<6}speed-up {row['speedup']:.2f}x, peak memory "
                  f"{row['memory_ratio']:.2f}x of the baseline", flush=True)
    print(f"\n{'model':<20}{'mode':<7}{'baseline tok/s':>15}{'ragtune tok/s':>15}{'speed-up':>10}"
          f"{'base MB':>9}{'ours MB':>9}")
    for row in rows:
        b, r = row["best"]["baseline"], row["best"]["ragtune"]
        print(f"{row['model']:<20}{row['mode']:<7}{b['tokens_per_s']:>15.0f}{r['tokens_per_s']:>15.0f}"
              f"{row['speedup']:>9.2f}x{b['peak_gpu_mb']:>9.0f}{r['peak_gpu_mb']:>9.0f}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"gpu": gpu, "torch": torch.__version__, "steps": a.steps,
                                 "batch_size": a.batch_size, "max_length": a.max_length,
                                 "examples": a.examples, "parameters": params, "rows": rows,
                                 "measured_at": time.time()}, indent=2))


if __name__ == "__main__":
    main()
