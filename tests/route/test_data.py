"""Labelled-question files: every bad line named, label counts checked, splits and scores."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ragtune.errors import InputError
from ragtune.route.data import (
    IntentExample,
    check_labels,
    examples_sha256,
    label_kind,
    load_intents,
    score,
    stratified_split,
)

from ..conftest import EXAMPLES

INTENTS = EXAMPLES / "intents" / "intents.jsonl"
HELDOUT = EXAMPLES / "intents" / "intents_heldout.jsonl"


def _file(tmp_path: Path, *lines: str) -> Path:
    p = tmp_path / "intents.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


GOOD = '{"text": "Hi!", "label": "direct"}'


@pytest.mark.parametrize("line, problem", [
    ("not json", "not valid JSON"),
    ('["a", "b"]', "expected an object"),
    ('{"text": "VPN down"}', "missing 'label' (keys: text)"),
    ('{"label": "it"}', "missing 'text'"),
    ('{"text": "   ", "label": "it"}', "'text' is empty"),
    ('{"text": "VPN down", "label": ""}', "'label' is empty"),
    ('{"text": 3, "label": "it"}', "'text' must be a string, got int"),
    ('{"text": "pay", "label": "human resources"}', "contains spaces: use one word such as 'human_resources'"),
])
def test_bad_lines_name_file_line_and_problem(tmp_path: Path, line: str, problem: str) -> None:
    path = _file(tmp_path, GOOD, "", line)  # the blank line is skipped but still counted
    with pytest.raises(InputError) as e:
        load_intents(path)
    assert str(e.value).startswith(f"{path}:3: ") and problem in str(e.value)
    assert e.value.line == 3


def test_missing_empty_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_intents(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="no examples"):
        load_intents(_file(tmp_path, "", "  "))
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="not UTF-8"):
        load_intents(tmp_path / "bin.jsonl")


def test_sample_intents_load_with_enough_examples_per_label() -> None:
    for path in (INTENTS, HELDOUT):
        examples = load_intents(path)
        counts = Counter(e.label for e in examples)
        assert set(counts) == {"hr", "it", "policy", "manuals", "expenses", "direct", "out_of_scope"}
        assert min(counts.values()) >= 8, counts
        assert check_labels(examples) == []  # no warnings: no duplicates, no thin labels
    train = {e.text.lower() for e in load_intents(INTENTS)}
    assert not train & {e.text.lower() for e in load_intents(HELDOUT)}  # truly held out


def test_a_label_with_one_example_is_refused_naming_it_and_its_count() -> None:
    ex = [IntentExample("hi", "direct"), IntentExample("hello", "direct"),
          IntentExample("vpn down", "it"), IntentExample("tent pole", "manuals"),
          IntentExample("stove", "manuals")]
    with pytest.raises(InputError) as e:
        check_labels(ex, "x.jsonl")
    assert str(e.value) == ("x.jsonl: label 'it' has 1 example; every label needs at least 2 "
                            "(one to train, one to validate)")
    with pytest.raises(InputError, match="at least 2 labels, got 1"):
        check_labels([IntentExample("hi", "direct"), IntentExample("yo", "direct")])


def test_warnings_for_thin_labels_duplicates_and_conflicts() -> None:
    ex = [IntentExample("Hi", "direct", 1), IntentExample("hi", "direct", 2),
          IntentExample("vpn down", "it", 3), IntentExample("VPN  down", "hr", 4),
          IntentExample("wifi", "it", 5), IntentExample("pto", "hr", 6)]
    warnings = check_labels(ex)
    assert "label 'direct' has only 2 examples; 5 or more route better" in warnings
    assert "'hi' is repeated (line 2, first on line 1)" in warnings
    assert "'VPN  down' is labelled both 'it' and 'hr' (line 4, first on line 3)" in warnings


def test_split_is_stratified_seeded_and_disjoint() -> None:
    examples = load_intents(INTENTS)
    train, val = stratified_split(examples, 0.2, seed=0)
    assert len(train) + len(val) == len(examples)
    assert {id(e) for e in train}.isdisjoint({id(e) for e in val})
    assert Counter(e.label for e in val) == {label: 4 for label in Counter(e.label for e in examples)}
    again = stratified_split(examples, 0.2, seed=0)
    assert [e.text for e in again[1]] == [e.text for e in val]
    assert [e.text for e in stratified_split(examples, 0.2, seed=1)[1]] != [e.text for e in val]
    # two examples: one each side; no validation at all with 0
    tiny = [IntentExample("a", "x"), IntentExample("b", "x"), IntentExample("c", "y"),
            IntentExample("d", "y")]
    tr, va = stratified_split(tiny, 0.9, seed=0)
    assert Counter(e.label for e in tr) == Counter(e.label for e in va) == {"x": 1, "y": 1}
    assert stratified_split(tiny, 0.0)[1] == []
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(tiny, 1.0)


def test_score_matches_hand_computed_values() -> None:
    truth = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    s = score(["a", "b", "c"], truth, pred)
    assert s["accuracy"] == round(4 / 6, 4)
    # a: P 2/2 R 2/3 F1 .8; b: P 1/2 R 1/2 F1 .5; c: P 1/2 R 1/1 F1 2/3
    assert s["per_label"]["a"] == {"precision": 1.0, "recall": 0.6667, "f1": 0.8, "support": 3}
    assert s["macro_f1"] == round((0.8 + 0.5 + 2 / 3) / 3, 4)
    assert s["confusion"] == {"labels": ["a", "b", "c"], "matrix": [[2, 1, 0], [0, 1, 1], [0, 0, 1]]}


def test_digest_and_kinds() -> None:
    a = [IntentExample("hi", "direct", 1), IntentExample("vpn", "it", 2)]
    b = [IntentExample("hi", "direct", 7), IntentExample("vpn", "it", 9)]
    assert examples_sha256(a) == examples_sha256(b) != examples_sha256(a[::-1])
    assert json.dumps([label_kind(x) for x in ("direct", "out_of_scope", "knowledge", "legal")]) == \
        '["direct", "out_of_scope", "knowledge", "knowledge"]'
