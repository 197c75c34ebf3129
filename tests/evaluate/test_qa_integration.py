"""The bake-off with the real packaged models (MiniLM embeddings, Qwen2.5-0.5B on llama.cpp)
on a handful of sample questions: base vs RAG, scored, reported.

Slow on a CPU (a minute or more per answer on a loaded 2-core machine), hence three
questions and a 60-token answer cap. Greedy decoding makes the answers repeatable.
"""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_base_vs_rag_with_real_models(tmp_path) -> None:
    from ragtune.evaluate.compare import parse_systems, run_compare
    from ragtune.evaluate.evalset import load_evalset, subset
    from ragtune.evaluate.report import write_reports
    from ragtune.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", overrides={"generation": {"max_tokens": 60}})
    ws.ingest([EXAMPLES / "kb" / "policies", EXAMPLES / "kb" / "it"])
    ev = subset(load_evalset(EXAMPLES / "eval" / "kb_eval.jsonl"), ids=["q007", "q046", "q084"])
    data = run_compare(ws, ev, parse_systems("base,rag"), tmp_path / "out")
    base, rag = (s["metrics"] for s in data["systems"])
    # retrieval finds both gold documents; RAG beats the model alone on the answers
    assert rag["recall@5"] == 1.0 and rag["mrr@10"] > 0.5
    assert rag["token_f1"] > base["token_f1"]
    assert rag["groundedness"] is not None and rag["citation_precision"] is not None
    assert base["groundedness"] is None and base["citation_precision"] is None
    assert rag["prompt_tokens_mean"] > 3 * base["prompt_tokens_mean"]  # the sources cost tokens
    assert rag["latency_p50_s"] > 0 and rag["cost_per_query_usd"] > 0
    q007 = data["questions"][0]["systems"]["rag"]
    assert "3 years" in q007["answer"]
    assert any(c["document"].endswith("policies/warranty-policy.md") for c in q007["citations"])
    assert data["recommendation"]["system"] == "rag"
    paths = write_reports(data, tmp_path / "out")
    assert "rag (RAG)" in paths["md"].read_text()
