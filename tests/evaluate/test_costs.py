"""Cost per query, set-up cost and break-even: hand-computed values and the real store log."""

from __future__ import annotations

import itertools
import json

import pytest

from ragtune.config import CostSettings
from ragtune.evaluate import costs as c
from tests.conftest import write

PRICES = CostSettings(compute_per_hour=1.8, hosted={"gpt-x": [2.5, 10.0]})


def test_local_models_are_priced_by_compute_seconds() -> None:
    got = c.query_cost(model="qwen2.5-0.5b", seconds=4.0, prompt_tokens=900, completion_tokens=50,
                       costs=PRICES)
    assert got == c.QueryCost(usd=pytest.approx(4.0 * 1.8 / 3600), basis="compute")


def test_hosted_models_are_priced_per_million_tokens() -> None:
    got = c.query_cost(model="gpt-x", seconds=99.0, prompt_tokens=1000, completion_tokens=200,
                       costs=PRICES)
    assert got.usd == pytest.approx(1000 * 2.5 / 1e6 + 200 * 10.0 / 1e6)  # 0.0045
    assert got.basis == "hosted:gpt-x"
    assert c.query_cost(model="gpt-x", seconds=1, prompt_tokens=None, completion_tokens=None,
                        costs=PRICES).usd == 0.0


def test_index_time_from_log_bursts() -> None:
    # two ingest runs: 10 s (3 entries) and 4 s (2 entries); a lone entry adds nothing
    ts = [1000.0, 1004.0, 1010.0, 5000.0, 5004.0, 9000.0]
    assert c.index_seconds_from_log(ts) == pytest.approx(14.0)
    assert c.index_seconds_from_log([]) == 0.0
    assert c.index_seconds_from_log(list(reversed(ts))) == pytest.approx(14.0)


def test_index_setup_reads_the_real_ingest_log(fake_ws, tmp_path) -> None:
    assert c.index_setup(fake_ws.store).seconds is None  # nothing ingested yet
    for i in range(3):
        write(tmp_path / "kb" / f"d{i}.md", f"# Doc {i}\n\nText number {i} about returns.\n")
    fake_ws.ingest([tmp_path / "kb"])
    est = c.index_setup(fake_ws.store)
    assert est.seconds is not None and 0.0 <= est.seconds < 60 and "ingest-log" in est.basis
    assert c.index_setup(fake_ws.store, measured_s=12.5) == c.SetupTime(12.5, "measured")


def test_training_setup_from_run_json(tmp_path) -> None:
    write(tmp_path / "a" / "run.json", json.dumps({"duration_s": 321.5}))
    assert c.training_setup(tmp_path / "a") == c.SetupTime(321.5, "run.json duration_s")
    assert c.training_setup(None) == c.SetupTime(0.0, "no training")
    assert c.training_setup(tmp_path / "missing").seconds is None
    write(tmp_path / "b" / "run.json", "{}")
    assert c.training_setup(tmp_path / "b").seconds is None


def test_break_even_volume_by_hand() -> None:
    # fine-tuned: $24 set-up over 12 months = $2/month, $0.001/query; RAG: $0, $0.003/query
    assert c.break_even_volume((24.0, 0.001), (0.0, 0.003), 12) == pytest.approx(1000.0)
    cost_ft = c.monthly_cost(24.0, 0.001, 1000, 12)
    cost_rag = c.monthly_cost(0.0, 0.003, 1000, 12)
    assert cost_ft == pytest.approx(cost_rag) == pytest.approx(3.0)
    assert c.break_even_volume((24.0, 0.003), (0.0, 0.003), 12) is None  # same per query, dearer set-up
    assert c.break_even_volume((24.0, 0.004), (0.0, 0.003), 12) is None
    assert c.break_even_volume((0.0, 0.001), (10.0, 0.003), 12) == 0.0  # cheaper everywhere


def test_break_even_sentences_are_honest() -> None:
    systems = {
        "rag": {"kind": "rag", "setup_usd": 0.01, "per_query_usd": 0.0004},
        "finetuned:a": {"kind": "finetuned", "setup_usd": 1.2, "per_query_usd": 0.0001},
        "hybrid:a": {"kind": "hybrid", "setup_usd": 1.21, "per_query_usd": 0.0006},
        "base": {"kind": "base", "setup_usd": 0.0, "per_query_usd": 0.0001},
    }
    be = c.break_even(systems, amortise_months=12)
    pairs = {p["system"]: p for p in be["pairs"]}
    assert set(pairs) == {"finetuned:a", "hybrid:a"}  # trained systems vs RAG only
    assert pairs["finetuned:a"]["volume"] == pytest.approx((1.2 - 0.01) / 12 / 0.0003)
    assert "above 331 queries a month" in pairs["finetuned:a"]["text"]
    assert pairs["hybrid:a"]["volume"] is None
    assert pairs["hybrid:a"]["text"].startswith("no break-even")
    assert be["max_volume"] >= 10 * pairs["finetuned:a"]["volume"]


def test_volume_grid_is_log_spaced() -> None:
    g = c.volume_grid(1e5, points=5)
    assert g[0] == pytest.approx(10.0) and g[-1] == pytest.approx(1e5)
    ratios = [b / a for a, b in itertools.pairwise(g)]
    assert max(ratios) == pytest.approx(min(ratios))
