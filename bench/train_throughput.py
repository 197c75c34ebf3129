"""Training throughput: ragtune's LoRA path vs a plain PEFT + Trainer run.

Baseline: PEFT LoRA with ``transformers.Trainer``, batches padded to their longest example
(``DataCollatorForSeq2Seq``), random order, full-vocabulary loss. ragtune: ``train_adapter``
(padding-free packed batches with per-example position ids, logits only at labelled
positions). Both use the same data, split, labels, LoRA options, seed and steps. Each runs in
its own subprocess so peak RSS is per path. Reports non-padding training tokens per second
over optimizer steps (evaluation excluded), final validation loss and peak RSS; each path
runs ``--rounds`` times in alternating order and its best round counts (shared machines).

    python bench/train_throughput.py --model tiny --steps 60
    python bench/train_throughput.py --model qwen --steps 8 --max-length 256

Writes bench/results/train_throughput.json. Timings on shared machines drift; never gate CI.
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
WORDS = ["policy", "refund", "invoice", "laptop", "badge", "office", "travel", "expense", "approval", "manager", "days", "request", "form", "team", "holiday", "security", "access", "printer", "contract", "budget"]


def make_data(path: Path, n: int, seed: int = 0) -> Path:
    """RAG-like chat examples of very different lengths (context 10..220 words)."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        context = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(10, 220)))
        answer = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(5, 60)))
        rows.append({"messages": [
            {"role": "system", "content": "Answer from the context and cite it."},
            {"role": "user", "content": f"Context: {context}\n\nQuestion {i}: what applies?"},
            {"role": "assistant", "content": f"{answer}. [Source: handbook]"}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tiny_model(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests" / "finetune"))
    import conftest  # the test suite's tiny model builder

    class Factory:
        def mktemp(self, name: str) -> Path:
            return Path(tempfile.mkdtemp(prefix=name, dir=folder))

    return conftest.tiny_model_dir.__wrapped__(Factory())


def qwen_folder() -> str:
    from ragtune.generate.models import packaged_model_path

    return str(packaged_model_path())  # the GGUF; train's loader converts and caches it


def run_ragtune(opts: dict) -> dict:
    from ragtune.finetune.train import TrainConfig, train_adapter

    cfg = TrainConfig(**opts["config"])
    out = Path(tempfile.mkdtemp()) / "bench"
    run = train_adapter(cfg, opts["data"], out).run
    return {"tokens": run["train_tokens"], "train_s": run["train_time_s"],
            "tokens_per_s": run["train_tokens_per_s"], "val_loss": run["val_loss"],
            "batching": run["batching"]}


def run_baseline(opts: dict) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    from ragtune.finetune.dataset import load_chat_jsonl, split_examples
    from ragtune.finetune.train import TrainConfig, load_base_model, tokenize_example

    cfg = TrainConfig(**opts["config"])
    base = load_base_model(cfg.base_model, qlora=cfg.qlora)  # bf16 on CUDA, 4-bit with qlora
    tok = base.tokenizer
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    train_ex, val_ex = split_examples(load_chat_jsonl(opts["data"]), cfg.val_fraction, cfg.seed)
    train = [r for r in (tokenize_example(tok, e, cfg.max_length) for e in train_ex) if r]
    val = [r for r in (tokenize_example(tok, e, cfg.max_length) for e in val_ex) if r]
    set_seed(cfg.seed)
    model = base.model
    if cfg.qlora:  # the standard QLoRA recipe, without gradient checkpointing (as ragtune's)
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(model, LoraConfig(
        r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules), task_type="CAUSAL_LM"))
    pad = DataCollatorForSeq2Seq(tok, padding="longest", label_pad_token_id=-100)
    counted = {"tokens": 0, "padded": 0, "train_s": 0.0, "t": 0.0, "training": True}

    def collate(features):
        batch = pad(features)
        if counted["training"]:
            counted["tokens"] += int(batch["attention_mask"].sum())
            counted["padded"] += int(batch["attention_mask"].numel())
        return batch

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            counted["t"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            counted["train_s"] += time.perf_counter() - counted["t"]

    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(), max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        logging_steps=1, report_to="none", disable_tqdm=True, save_strategy="no", seed=cfg.seed,
        use_cpu=not torch.cuda.is_available(), remove_unused_columns=False,
        bf16=torch.cuda.is_available(), dataloader_pin_memory=False)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      data_collator=collate, callbacks=[Timer()])
    trainer.train()
    counted["training"] = False
    val_loss = trainer.evaluate()["eval_loss"]
    return {"tokens": counted["tokens"], "padded_tokens": counted["padded"],
            "train_s": round(counted["train_s"], 3),
            "tokens_per_s": round(counted["tokens"] / counted["train_s"], 1), "val_loss": val_loss,
            "batching": "padded to longest, random order"}


def child(which: str, opts: dict) -> None:
    import torch

    if opts["threads"]:
        torch.set_num_threads(opts["threads"])
    result = (run_ragtune if which == "ragtune" else run_baseline)(opts)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("RESULT " + json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", help="tiny | qwen | a model folder or .gguf")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per path, alternating order; best counts")
    ap.add_argument("--no-packing", action="store_true", help="ragtune path with length-grouped padding")
    ap.add_argument("--fp32-base", action="store_true",
                    help="ragtune path without the int8 frozen-base forward (CPU default: first 75%% of steps)")
    ap.add_argument("--child", choices=["ragtune", "baseline"], help=argparse.SUPPRESS)
    ap.add_argument("--opts", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, json.loads(a.opts))
        return
    work = Path(tempfile.mkdtemp(prefix="ragtune-bench-"))
    model = {"tiny": lambda: str(tiny_model(work)), "qwen": qwen_folder}.get(a.model, lambda: a.model)()
    data = make_data(work / "data.jsonl", a.examples)
    config = {"base_model": model, "max_steps": a.steps, "batch_size": a.batch_size,
              "max_length": a.max_length, "eval_steps": max(a.steps, 1), "save_steps": max(a.steps, 1),
              "early_stopping_patience": 0, "packing": not a.no_packing, "int8_base": not a.fp32_base,
              "learning_rate": 2e-4 if a.model != "tiny" else 1e-2}
    opts = {"config": config, "data": str(data), "threads": a.threads}
    runs: dict[str, list[dict]] = {"baseline": [], "ragtune": []}
    for r in range(a.rounds):  # alternating order: a load spike does not favour one path
        for which in (("baseline", "ragtune") if r % 2 == 0 else ("ragtune", "baseline")):
            t = time.time()
            proc = subprocess.run([sys.executable, __file__, "--child", which, "--opts", json.dumps(opts)],
                                  capture_output=True, text=True, check=False)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{which} failed:\n{proc.stderr[-3000:]}")
            runs[which].append(json.loads(line[-1][7:]) | {"wall_s": round(time.time() - t, 1)})
            print(f"round {r + 1} {which:<9}{runs[which][-1]['tokens_per_s']:>8.1f} tokens/s", flush=True)
    results = {name: max(rs, key=lambda x: x["tokens_per_s"]) for name, rs in runs.items()}
    speedup = results["ragtune"]["tokens_per_s"] / results["baseline"]["tokens_per_s"]
    print(f"{'path':<10}{'tokens/s':>10}{'train s':>9}{'tokens':>9}{'val loss':>10}{'peak MB':>9}  (best of {a.rounds})")
    for name, r in results.items():
        print(f"{name:<10}{r['tokens_per_s']:>10.1f}{r['train_s']:>9.1f}{r['tokens']:>9}"
              f"{r['val_loss']:>10.4f}{r['peak_rss_mb']:>9.0f}")
    base = results["baseline"]
    print(f"baseline batches: {base['padded_tokens']} token slots for {base['tokens']} tokens "
          f"({100 * (1 - base['tokens'] / base['padded_tokens']):.0f}% padding)")
    print(f"validation loss: ragtune / baseline = {results['ragtune']['val_loss'] / base['val_loss']:.4f} (target within 5%)")
    print(f"speed-up (non-padding tokens/s): {speedup:.2f}x")
    out = ROOT / "bench" / "results" / "train_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": a.model, "steps": a.steps, "batch_size": a.batch_size,
                               "max_length": a.max_length, "examples": a.examples,
                               "threads": a.threads, "rounds": runs, "results": results,
                               "speedup": round(speedup, 3), "measured_at": time.time()}, indent=2))


if __name__ == "__main__":
    main()
