"""Session-scoped tiny models for the fine-tuning tests (built in well under a second).

A byte-level BPE tokenizer trained on the synthetic corpus, wrapped with a small Jinja chat
template, and a randomly initialised 2-layer Llama. Both are saved to a session temp folder
so tests exercise the real loading path (``load_base_model(folder)``).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIALS = ["<pad>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
MARKER = "[Source: Acme handbook]"
ITEMS = ["refund", "laptop", "badge", "parking", "holiday", "printer", "expense", "visa",
         "badge photo", "desk", "locker", "train pass", "phone", "monitor", "chair", "wifi"]
VERBS = ["request", "return", "renew", "replace", "report", "book"]


def style_examples(n: int, seed: int = 0) -> list[dict]:
    """Chat examples whose answers all end with the fixed source marker."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        item, verb = rnd.choice(ITEMS), rnd.choice(VERBS)
        days = rnd.randint(1, 30)
        rows.append({"messages": [
            {"role": "user", "content": f"How do I {verb} my {item}? (case {i})"},
            {"role": "assistant",
             "content": f"To {verb} your {item}, ask the office within {days} days. {MARKER}"},
        ]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    # One thread: on a shared 2-core machine, two OpenMP threads contending with other
    # work made tiny-model steps 10x slower (530 ms vs 49 ms per step, measured).
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("tiny-llama")
    corpus = [m["content"] for r in style_examples(400, seed=99) for m in r["messages"]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<|end|>",
        additional_special_tokens=SPECIALS[2:])
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
        pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id,
        bos_token_id=fast.eos_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    # Random init gives logits of about +-1 (lm_head std 0.02 on RMS-normed states), so
    # no adapter could make this model confident: cross-entropy stayed at 4.9 nats over
    # 400 tokens, and greedy decoding of the trained style hung on margins so thin that
    # any change to the forward (the int8 training base) flipped tokens into loops. A
    # 10x output head lets training reach ~0.6 nats with real margins.
    with torch.no_grad():
        model.lm_head.weight.mul_(10)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def style_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("style-data")
    return write_jsonl(folder / "train.jsonl", style_examples(120, seed=1))


ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# 120 steps left 1 of 12 held-out answers cut short on an AMD EPYC host (int8 forward;
# fp32 was 12/12): greedy decoding of a tiny model is sensitive to the CPU's int8 kernels.
# 160 steps gave 12/12 there for int8 and fp32 alike (200 too), for ~8 s more.
STYLE_STEPS = 160


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the 160-step LoRA run (directly or through another fixture) is
    ``slow``: it still runs in CI, but ``make test-fast`` leaves it out."""
    for item in items:
        if "trained_adapter" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def trained_adapter(tiny_model_dir: Path, style_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real LoRA run shared by the tests that inspect a finished adapter."""
    from ragtune.finetune.train import TrainConfig, train_adapter

    root = tmp_path_factory.mktemp("adapters")
    steps: list[tuple] = []
    config = TrainConfig(
        base_model=str(tiny_model_dir), target_modules=ALL_LINEAR, rank=16, alpha=32,
        max_steps=STYLE_STEPS, learning_rate=2e-2, batch_size=8, max_length=128,
        eval_steps=40, save_steps=40, early_stopping_patience=0)
    result = train_adapter(config, style_data, root / "style", on_step=lambda *a: steps.append(a),
                           lineage={"documents": [{"source": "handbook.md", "version": 3}]})
    return result, steps


@pytest.fixture(scope="session")
def adapters_root(trained_adapter, tiny_model_dir: Path, style_data: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry folder with two adapters on the tiny base: ``style`` (the shared 160-step
    run, answers end with MARKER) and ``other`` (6 steps: different weights, same base)."""
    import shutil

    from ragtune.finetune.train import TrainConfig, train_adapter

    root = tmp_path_factory.mktemp("registry")
    shutil.copytree(trained_adapter[0].adapter_dir, root / "style")
    config = TrainConfig(base_model=str(tiny_model_dir), max_steps=6, batch_size=4, max_length=96,
                         learning_rate=1e-2, early_stopping_patience=0, seed=7)
    train_adapter(config, style_data, root / "other")
    return root


PUBLIC = ["policies/returns-policy.md", "policies/warranty-policy.md", "it/helpdesk-faq.json",
          "shipping/store-pickup.txt", "it/vpn-setup.md", "hr/remote-work.md"]


@pytest.fixture()
def kb_ws(fake_ws, tmp_path: Path):
    """A fake-model workspace with six public sample documents and one restricted to hr
    (collection hr); returns (workspace, the copied kb folder)."""
    import shutil

    from tests.conftest import EXAMPLES

    kb = tmp_path / "kb"
    for rel in PUBLIC + ["restricted/salary-bands-2025.md"]:
        (kb / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / "kb" / rel, kb / rel)
    fake_ws.ingest([kb / p for p in PUBLIC])
    fake_ws.ingest([kb / "restricted"], groups=["hr"], collection="hr")
    return fake_ws, kb
