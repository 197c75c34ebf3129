"""Chat JSONL loading, validation (every problem kind), conversion, split and hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.errors import InputError
from ragtune.finetune.dataset import (
    convert_file,
    dataset_hash,
    find_personal_data,
    load_chat_jsonl,
    split_examples,
    validate_dataset,
)

from .conftest import style_examples, write_jsonl

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}

# (line content, expected error code) — one per kind of bad line
BAD_LINES = [
    ("{not json", "invalid_json"),
    ("[1, 2]", "not_object"),
    (json.dumps({"messages": "hi"}), "no_messages"),
    (json.dumps({"messages": []}), "no_messages"),
    (json.dumps({"messages": ["hi"]}), "message_not_object"),
    (json.dumps(GOOD | {"extra": 1}), "unknown_key"),
    (json.dumps({"messages": [{"role": "user", "content": "a", "mood": "x"},
                              {"role": "assistant", "content": "b"}]}), "unknown_key"),
    (json.dumps({"messages": [{"content": "a"}, {"role": "assistant", "content": "b"}]}), "missing_role"),
    (json.dumps({"messages": [{"role": "user"}, {"role": "assistant", "content": "b"}]}), "missing_content"),
    (json.dumps({"messages": [{"role": "robot", "content": "a"},
                              {"role": "assistant", "content": "b"}]}), "unknown_role"),
    (json.dumps({"messages": [{"role": "user", "content": "  "},
                              {"role": "assistant", "content": "b"}]}), "empty_content"),
    (json.dumps({"messages": [{"role": "user", "content": 5},
                              {"role": "assistant", "content": "b"}]}), "bad_content"),
    (json.dumps({"messages": [{"role": "user", "content": "a"}]}), "no_assistant"),
    (json.dumps({"messages": [{"role": "assistant", "content": "a"},
                              {"role": "user", "content": "b"}]}), "role_order"),
    (json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                              {"role": "assistant", "content": "c"}]}), "role_order"),
    (json.dumps({"messages": [{"role": "user", "content": "a"},
                              {"role": "assistant", "content": "b", "weight": 2}]}), "bad_weight"),
    (json.dumps({"messages": [{"role": "user", "content": "a", "weight": 1},
                              {"role": "assistant", "content": "b"}]}), "bad_weight"),
]


def _file(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


@pytest.mark.parametrize(("line", "code"), BAD_LINES)
def test_each_bad_line_kind_is_reported_with_its_line(tmp_path: Path, line: str, code: str) -> None:
    good = [json.dumps(r) for r in style_examples(12)]
    path = _file(tmp_path, good[:5] + [line] + good[5:])
    report = validate_dataset(path)
    assert not report.ok
    assert [(e.line, e.code) for e in report.errors] == [(6, code)]
    with pytest.raises(InputError) as err:
        load_chat_jsonl(path)
    assert err.value.line == 6 and str(path) in str(err.value)


def test_all_problems_are_collected_in_one_report(tmp_path: Path) -> None:
    good = [json.dumps(r) for r in style_examples(60)]
    lines = good + [line for line, _ in BAD_LINES]
    report = validate_dataset(_file(tmp_path, lines))
    assert sorted(e.code for e in report.errors) == sorted(c for _, c in BAD_LINES)
    assert report.counts["examples"] == 60 and report.counts["lines"] == 60 + len(BAD_LINES)
    d = report.to_dict()
    assert d["ok"] is False and len(d["errors"]) == len(BAD_LINES)
    json.dumps(d)  # serialisable for --json


def test_counts_duplicates_pii_and_sizes(tmp_path: Path) -> None:
    rows = style_examples(12)
    rows[3] = rows[1]
    rows[4]["messages"][0]["content"] += " Mail me at jane.doe@example.com or +44 20 7946 0958."
    rows[5]["messages"][1]["content"] += " Card 4111 1111 1111 1111, not 4111 1111 1111 1112."
    report = validate_dataset(_file(tmp_path, [json.dumps(r) for r in rows]))
    assert report.ok
    warnings = {(w.line, w.code) for w in report.warnings}
    assert warnings == {(4, "duplicate"), (5, "pii_email"), (5, "pii_phone"), (6, "pii_card"),
                        (None, "few_examples")}
    dup = next(w for w in report.warnings if w.code == "duplicate")
    assert "line 2" in dup.message
    assert "jane" not in str(report.to_dict())  # personal data is masked in the report

    few = validate_dataset(_file(tmp_path, [json.dumps(r) for r in rows[:9]]))
    assert [e.code for e in few.errors] == ["too_few_examples"]


def test_dates_and_plain_numbers_are_not_personal_data() -> None:
    assert find_personal_data("On 2024-01-15 we sold 1234 units for 99.50 EUR (v1.2.3).") == []


def test_token_stats_with_the_model_tokenizer(tmp_path: Path, tiny_tokenizer) -> None:
    rows = style_examples(12)
    rows[7]["messages"][1]["content"] = "word " * 300
    path = _file(tmp_path, [json.dumps(r) for r in rows])
    report = validate_dataset(path, tokenizer=tiny_tokenizer, max_tokens=128)
    lengths = [len(tiny_tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=False))
               for r in rows]
    assert [(e.line, e.code) for e in report.errors] == [(8, "too_long")]
    assert report.token_stats["max"] == max(lengths) and report.token_stats["min"] == min(lengths)
    assert report.token_stats["total"] == sum(lengths)
    assert report.epoch_tokens == sum(min(n, 128) for n in lengths)
    assert "chat template" in report.token_counter


def test_weights_and_system_messages_load(tmp_path: Path) -> None:
    row = {"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b", "weight": 0}, {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d", "weight": 1}]}
    (ex,) = load_chat_jsonl(_file(tmp_path, [json.dumps(row)]))
    assert [m.weight for m in ex.messages] == [None, None, 0, None, 1] and ex.line == 1


def test_convert_alpaca_jsonl_and_array(tmp_path: Path) -> None:
    src = tmp_path / "alpaca.json"
    src.write_text(json.dumps([
        {"instruction": "Summarise", "input": "A long text.", "output": "Short."},
        {"instruction": "Greet", "input": "", "output": "Hello!", "system": "Be kind."},
    ]))
    counts = convert_file(src, tmp_path / "out.jsonl")
    assert counts["format"] == "alpaca" and counts["examples"] == 2
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows[0]["messages"] == [{"role": "user", "content": "Summarise\n\nA long text."},
                                   {"role": "assistant", "content": "Short."}]
    assert rows[1]["messages"][0] == {"role": "system", "content": "Be kind."}
    load_chat_jsonl(tmp_path / "out.jsonl")

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "x", "output": "y"}) + "\n"
                   + json.dumps({"instruction": "x"}) + "\n")
    with pytest.raises(InputError, match="output") as err:
        convert_file(bad, tmp_path / "never.jsonl", fmt="alpaca")
    assert err.value.line == 2 and not (tmp_path / "never.jsonl").exists()


def test_convert_sharegpt(tmp_path: Path) -> None:
    src = tmp_path / "sg.jsonl"
    src.write_text(json.dumps({"conversations": [
        {"from": "system", "value": "S"}, {"from": "human", "value": "Q1"},
        {"from": "gpt", "value": "A1"}, {"from": "human", "value": "Q2"},
        {"from": "gpt", "value": "A2"}]}) + "\n")
    assert convert_file(src, tmp_path / "o.jsonl")["format"] == "sharegpt"
    (ex,) = load_chat_jsonl(tmp_path / "o.jsonl")
    assert [m.role for m in ex.messages] == ["system", "user", "assistant", "user", "assistant"]

    src.write_text(json.dumps({"conversations": [{"from": "human", "value": "Q"}]}) + "\n"
                   + json.dumps({"conversations": [{"from": "alien", "value": "Q"}]}) + "\n")
    with pytest.raises(InputError) as err:
        convert_file(src, tmp_path / "o2.jsonl", fmt="sharegpt")
    assert err.value.line == 1 and "no assistant" in str(err.value)


def test_split_is_deterministic_and_disjoint(tmp_path: Path) -> None:
    examples = load_chat_jsonl(write_jsonl(tmp_path / "d.jsonl", style_examples(50)))
    train, val = split_examples(examples, 0.1, seed=3)
    assert (train, val) == split_examples(examples, 0.1, seed=3)
    assert len(val) == 5 and len(train) == 45
    assert {e.line for e in train}.isdisjoint({e.line for e in val})
    assert split_examples(examples, 0.1, seed=4)[1] != val
    assert split_examples(examples, 0.0)[1] == []


def test_dataset_hash_tracks_content(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", style_examples(3))
    b = write_jsonl(tmp_path / "b.jsonl", style_examples(3))
    assert dataset_hash(a) == dataset_hash(b) and len(dataset_hash(a)) == 64
    write_jsonl(b, style_examples(4))
    assert dataset_hash(a) != dataset_hash(b)
