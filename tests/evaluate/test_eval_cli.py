"""eval qa / eval synth / compare as a user runs them, with fake models.

Commands run in-process through Typer's CliRunner (a subprocess costs ~3 s of interpreter
start-up and imports each); one test runs the real ``python -m ragtune.cli`` to check that
a bad eval file is one error line with exit code 2.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from tests.conftest import FAKE, write
from tests.evaluate.conftest import KB, QUESTIONS
from tests.test_cli import run as run_subprocess

ENV = {"RAGTUNE_EMBEDDING_BACKEND": "fake", "RAGTUNE_GENERATION_BACKEND": "fake",
       "RAGTUNE_RETRIEVAL_MIN_SIMILARITY": "0.15", "COLUMNS": "200"}


def run(*args: str, home, check: bool = True) -> SimpleNamespace:
    from ragtune.cli import app

    r = CliRunner().invoke(app, list(args), env={**ENV, "RAGTUNE_HOME": str(home)})
    if check and r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    if check and r.exit_code != 0:
        raise AssertionError(f"exit {r.exit_code}\n{r.output}")
    return SimpleNamespace(returncode=r.exit_code, stdout=r.stdout, stderr=r.stderr,
                           exception=r.exception)


@pytest.fixture
def home(tmp_path):
    from ragtune.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", overrides=FAKE)
    for rel, text in KB.items():
        write(tmp_path / "kb" / rel, text)
    ws.ingest([tmp_path / "kb"])
    return ws.root


@pytest.fixture
def evalset(tmp_path):
    return write(tmp_path / "eval.jsonl", "".join(json.dumps(q) + "\n" for q in QUESTIONS))


def test_eval_qa_report_and_regression_gate(home, evalset, tmp_path) -> None:
    out = json.loads(run("eval", "qa", str(evalset), "--mode", "rag", "--report",
                         str(tmp_path / "rep"), "--json", home=home).stdout)
    assert out["system"]["name"] == "rag" and out["metrics"]["questions"] == 6
    assert out["metrics"]["recall@5"] == 1.0 and out["failures"] == []
    answers = [json.loads(x) for x in Path(out["answers_file"]).read_text().splitlines()]
    assert len(answers) == 6 and answers[0]["citations"]
    assert (tmp_path / "rep" / "report.html").exists()

    # quality gate: an impossible floor fails with exit 1 and says which metric
    p = run("eval", "qa", str(evalset), "--mode", "rag", "--fail-under", "token_f1=0.99",
            home=home, check=False)
    assert p.returncode == 1 and "FAIL token_f1" in p.stdout and "below 0.99" in p.stdout
    assert "6 resumed" in p.stdout  # answers of the first run were reused

    # against the stored baseline: same answers, no drop
    p = run("eval", "qa", str(evalset), "--mode", "rag", "--baseline",
            str(tmp_path / "rep" / "report.json"), "--fail-under", "token_f1=baseline",
            "--fail-over", "unsupported_claims_rate=0.5", home=home)
    assert "ok token_f1" in p.stdout and "ok unsupported_claims_rate" in p.stdout

    # a worse system against that baseline (base refuses everything): exit 1
    p = run("eval", "qa", str(evalset), "--mode", "base", "--baseline",
            str(tmp_path / "rep" / "report.json"), home=home, check=False)
    assert p.returncode == 1 and "FAIL token_f1" in p.stdout


def test_eval_qa_bad_file_is_one_line_with_file_and_line(home, tmp_path) -> None:
    bad = write(tmp_path / "bad.jsonl", json.dumps(QUESTIONS[0]) + "\n{\"id\": \"x\"}\n")
    p: subprocess.CompletedProcess = run_subprocess("eval", "qa", str(bad), home=home, check=False)
    assert p.returncode == 2 and f"{bad}:2: missing key 'question'" in p.stderr
    assert "Traceback" not in p.stderr


def test_compare_writes_three_reports_and_recommends(home, evalset, tmp_path) -> None:
    out_dir = tmp_path / "bake"
    p = run("compare", "--eval", str(evalset), "--systems", "base,rag", "--out", str(out_dir),
            home=home)
    assert "Recommendation:" in p.stdout and "rag (RAG)" in p.stdout
    assert "Sample: 6 questions" in p.stdout
    for name in ("report.md", "report.html", "report.json", "answers-base.jsonl",
                 "answers-rag.jsonl"):
        assert (out_dir / name).exists(), name
    data = json.loads((out_dir / "report.json").read_text())
    assert [s["name"] for s in data["systems"]] == ["base", "rag"]
    again = json.loads(run("compare", "--eval", str(evalset), "--systems", "base,rag", "--out",
                           str(out_dir), "--json", home=home).stdout)
    assert again["recommendation"]["system"] == data["recommendation"]["system"]
    p = run("compare", "--eval", str(evalset), "--systems", "rag,finetuned", home=home, check=False)
    assert "needs an adapter" in str(p.exception)


def test_eval_synth_writes_a_loadable_set(home, tmp_path) -> None:
    out = json.loads(run("eval", "synth", "--out", str(tmp_path / "s.jsonl"), "--eval-fraction",
                         "0.5", "--json", home=home).stdout)
    assert out["questions"] >= 1 and out["split"]["by"] == "document"
    from ragtune.evaluate.evalset import load_evalset

    assert len(load_evalset(tmp_path / "s.jsonl")) == out["questions"]
