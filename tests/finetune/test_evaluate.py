"""evaluate_adapter on the tiny model: base vs adapter, loss, EM/F1, format compliance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.errors import InputError
from ragtune.finetune.dataset import load_chat_jsonl, split_examples
from ragtune.finetune.evaluate import (
    DEFAULT_FORMAT_REGEX,
    _schema_errors,
    check_json_schema,
    evaluate_adapter,
    format_check,
)
from ragtune.finetune.hf_generator import HFGenerator

from .conftest import style_examples, write_jsonl


@pytest.fixture()
def gen(tiny_model_dir: Path, adapters_root: Path) -> HFGenerator:
    return HFGenerator(str(tiny_model_dir), adapters_root=adapters_root, max_tokens=40)


def test_adapter_beats_base_on_held_out_data(gen: HFGenerator, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "held.jsonl", style_examples(8, seed=777))
    r = evaluate_adapter(gen, "style", data, format_regex=r"\[Source: Acme handbook\]$")
    base, ad = r["metrics"]["base"], r["metrics"]["adapter"]
    assert r["examples"] == 8 and len(r["per_example"]) == 8
    assert ad["format_compliance"] == 1.0 and base["format_compliance"] == 0.0
    assert ad["loss"] < base["loss"] - 1.0 and ad["perplexity"] < base["perplexity"]
    assert ad["token_f1"] > base["token_f1"] and r["metrics"]["delta"]["format_compliance"] == 1.0
    first = r["per_example"][0]
    assert first["line"] == 1 and first["question"].startswith("How do I")
    assert first["adapter"]["output"].endswith("[Source: Acme handbook]")
    assert ad["token_f1"] == pytest.approx(
        sum(p["adapter"]["token_f1"] for p in r["per_example"]) / 8, abs=1e-3)
    assert r["format"] == {"kind": "regex", "pattern": r"\[Source: Acme handbook\]$",
                           "match": "re.search"}
    assert gen.adapter == "style"  # evaluation leaves the adapter it was asked about active
    json.dumps(r)


def test_loss_matches_the_training_validation_loss(gen: HFGenerator, trained_adapter,
                                                   style_data: Path, tmp_path: Path) -> None:
    result, _ = trained_adapter
    cfg = result.run["config"]
    _, val = split_examples(load_chat_jsonl(style_data), cfg["val_fraction"], cfg["seed"])
    rows = [json.loads(style_data.read_text().splitlines()[e.line - 1]) for e in val]
    data = write_jsonl(tmp_path / "val.jsonl", rows)
    r = evaluate_adapter(gen, "style", data, limit=4)
    assert r["examples"] == 4 and r["max_length"] == cfg["max_length"]
    full = evaluate_adapter(gen, "style", data)
    # Trainer averages per-batch means, we average per token: close, not identical.
    assert full["metrics"]["adapter"]["loss"] == pytest.approx(result.run["val_loss"], rel=0.1)


def test_json_schema_and_default_regex(gen: HFGenerator, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "held.jsonl", style_examples(3, seed=5))
    r = evaluate_adapter(gen, "style", data, json_schema={"type": "object"})
    assert r["metrics"]["adapter"]["format_compliance"] == 0.0  # it writes prose, not JSON
    assert r["per_example"][0]["adapter"]["format_problem"].startswith("not JSON")
    assert r["format"]["kind"] == "json_schema"
    with pytest.raises(InputError, match="not both"):
        evaluate_adapter(gen, "style", data, format_regex="x", json_schema={})
    with pytest.raises(InputError, match="regular expression"):
        evaluate_adapter(gen, "style", data, format_regex="[")


def test_format_checks() -> None:
    good = "Labels cost $7.95. [Source: Returns Policy, Online and phone orders]"
    assert format_check(good) == (True, "")
    assert not format_check(good + " Thanks!")[0]
    # Titles hold no comma: the title ends at the first ", " and the section takes the rest.
    assert format_check("[Source: Returns, Policy, Refunds]")[0]
    assert not format_check("[Source: Returns Policy]")[0]  # no section
    assert format_check("[Source: A]", regex=r"Source")[0]
    assert DEFAULT_FORMAT_REGEX.endswith(r"\s*$")
    schema = {"type": "object", "required": ["answer", "confidence"],
              "properties": {"answer": {"type": "string"},
                             "confidence": {"type": "number"},
                             "tags": {"type": "array", "items": {"enum": ["a", "b"]}}}}
    assert format_check('```json\n{"answer": "x", "confidence": 0.5}\n```', schema=schema)[0]
    ok, why = format_check('{"answer": 3, "tags": ["a", "c"]}', schema=schema)
    assert not ok and why
    assert check_json_schema({"answer": "x", "confidence": 1}, schema) == []
    assert _schema_errors({"answer": 3, "tags": ["a", "c"]}, schema) == [
        "$: missing required key 'confidence'", "$.answer: expected string, got int",
        "$.tags[1]: 'c' is not one of ['a', 'b']"]
    assert _schema_errors(True, {"type": "integer"}) == ["$: expected integer, got bool"]
    assert _schema_errors(None, {"type": ["string", "null"]}) == []
