"""train_adapter launched by torchrun: two CPU processes (gloo) train one adapter.

Only rank 0 writes the adapter folder and run.json; every rank returns the same record;
a refusal on rank 0 (the adapter already exists) stops every rank with its message
instead of leaving them waiting. On GPUs the same code runs with NCCL, one GPU per rank.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

SCRIPT = """
import json, os, sys
from pathlib import Path
from ragtune.finetune.train import TrainConfig, train_adapter
cfg = TrainConfig(base_model=sys.argv[1], max_steps=4, batch_size=4, max_length=96, eval_steps=2,
                  save_steps=2, early_stopping_patience=0, learning_rate=1e-2)
try:
    run = train_adapter(cfg, sys.argv[2], Path(sys.argv[3])).run
except Exception as e:
    Path(sys.argv[4], "error-" + os.environ["RANK"]).write_text(f"{type(e).__name__} {e}")
    sys.exit(3)
# a file per rank: the ranks share one stdout, where two prints can interleave on one line
Path(sys.argv[4], "result-" + os.environ["RANK"]).write_text(json.dumps(run, sort_keys=True))
"""


def _launch(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run *script* on two ranks; each rank leaves ``result-<rank>`` or ``error-<rank>`` in
    the folder given as the last argument."""
    src = str(Path(__file__).resolve().parents[2] / "src")
    # CPU processes with gloo, also on a GPU machine (one GPU cannot host two ranks)
    env = os.environ | {"PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
                        "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", str(free_port()), str(script), *args],
        capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.mark.slow
def test_two_processes_train_one_adapter_and_only_rank0_writes(
        tiny_model_dir: Path, style_data: Path, tmp_path: Path) -> None:
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    out = tmp_path / "adapters" / "ddp"
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    proc = _launch(script, str(tiny_model_dir), str(style_data), str(out), str(first))
    results = {p.name.split("-")[1]: json.loads(p.read_text()) for p in first.glob("result-*")}
    assert proc.returncode == 0 and set(results) == {"0", "1"}, proc.stdout + proc.stderr[-3000:]
    assert results["0"] == results["1"]  # rank 1 returns rank 0's record
    run = json.loads((out / "run.json").read_text())
    assert run == results["0"] and run["processes"] == 2 and run["steps"] == 4
    assert run["device"] == "cpu"
    # each rank trained on its own 4 examples per step: twice the tokens of one process
    from ragtune.finetune.train import TrainConfig, train_adapter

    single = train_adapter(TrainConfig(
        base_model=str(tiny_model_dir), max_steps=4, batch_size=4, max_length=96, eval_steps=2,
        save_steps=2, early_stopping_patience=0, learning_rate=1e-2), style_data, tmp_path / "one").run
    assert single["processes"] == 1
    assert 1.5 * single["train_tokens"] < run["train_tokens"] < 2.5 * single["train_tokens"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["ddp"]  # no .partial left behind
    assert {"adapter_model.safetensors", "adapter_config.json", "loss.png"} <= {
        p.name for p in out.iterdir()}

    again = _launch(script, str(tiny_model_dir), str(style_data), str(out), str(second))
    errors = [p.read_text() for p in second.glob("error-*")]
    assert again.returncode != 0 and len(errors) == 2, again.stdout + again.stderr[-3000:]
    assert all("already exists" in error for error in errors), errors
