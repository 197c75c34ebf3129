"""Label masking with the chat template, and exactness of padding-free packing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.finetune.train import packing_is_exact, tokenize_example
from ragtune.types import ChatExample, ChatMessage


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_labels_cover_exactly_the_trained_assistant_turns(tiny_tokenizer) -> None:
    tok = tiny_tokenizer
    ex = ChatExample(messages=(
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "How do I renew my badge?"),
        ChatMessage("assistant", "Ask the office.", weight=0),
        ChatMessage("user", "And my laptop?"),
        ChatMessage("assistant", "Ask the office within 3 days. [Source: Acme handbook]"),
    ))
    row = tokenize_example(tok, ex, max_length=512)
    # The template is "<|role|>\n{content}<|end|>\n" per message; special tokens split the
    # text, so rendering piece by piece gives the same ids as rendering the whole.
    expected_ids: list[int] = []
    expected_labels: list[int] = []
    for i, m in enumerate(ex.messages):
        head = _ids(tok, f"<|{m.role}|>\n")
        body = _ids(tok, f"{m.content}<|end|>\n")
        expected_ids += head + body
        trained = m.role == "assistant" and m.weight != 0
        expected_labels += [-100] * len(head) + (body if trained else [-100] * len(body))
    assert row["input_ids"] == expected_ids
    assert row["labels"] == expected_labels
    learnt = tok.decode([t for t in row["labels"] if t != -100])
    assert learnt == "Ask the office within 3 days. [Source: Acme handbook]<|end|>\n"


def test_truncation_and_nothing_left_to_learn(tiny_tokenizer) -> None:
    ex = ChatExample(messages=(ChatMessage("user", "word " * 100), ChatMessage("assistant", "ok")))
    assert tokenize_example(tiny_tokenizer, ex, max_length=20) is None
    row = tokenize_example(tiny_tokenizer, ex, max_length=1000)
    cut = tokenize_example(tiny_tokenizer, ChatExample(messages=(
        ChatMessage("user", "hi"), ChatMessage("assistant", "word " * 100))), max_length=30)
    assert row is not None and cut is not None and len(cut["input_ids"]) == 30


def test_packed_rows_do_not_attend_across_examples(tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, DataCollatorWithFlattening

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    assert packing_is_exact(model)
    # The training path: the collator's batch gives the same per-example logits.
    rows = [{"input_ids": list(range(5, 5 + n)), "labels": list(range(5, 5 + n))} for n in (6, 11, 4)]
    batch = DataCollatorWithFlattening()(rows)
    assert batch["input_ids"].shape == (1, 21)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       use_cache=False).logits[0]
        alone = torch.cat([model(input_ids=torch.tensor([r["input_ids"]]), use_cache=False).logits[0]
                           for r in rows])
    assert torch.allclose(packed, alone, atol=1e-4)
    # First label of every example is masked: no example learns from its neighbour.
    starts = [0, 6, 17]
    assert [int(batch["labels"][0, s]) for s in starts] == [-100, -100, -100]


@pytest.mark.parametrize("packing", [True, False])
def test_sparse_loss_equals_the_standard_loss(tiny_model_dir: Path, tiny_tokenizer, packing: bool) -> None:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForSeq2Seq,
        DataCollatorWithFlattening,
        TrainingArguments,
    )

    from ragtune.finetune.train import make_trainer_class

    from .conftest import style_examples

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    exs = [ChatExample(messages=tuple(ChatMessage(**m) for m in r["messages"]))
           for r in style_examples(4)]
    rows = [tokenize_example(tiny_tokenizer, e, 128) for e in exs]
    if packing:
        batch = DataCollatorWithFlattening()([{k: r[k] for k in ("input_ids", "labels")} for r in rows])
    else:
        batch = DataCollatorForSeq2Seq(tiny_tokenizer, padding="longest")(rows)
    trainer = make_trainer_class()(model=model, args=TrainingArguments(
        output_dir=str(tiny_model_dir / "unused"), report_to="none", use_cpu=True))
    with torch.no_grad():
        ours = trainer.compute_loss(model, dict(batch))
        reference = model(**batch, use_cache=False).loss
    assert torch.allclose(ours, reference, atol=1e-5)
