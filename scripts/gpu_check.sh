#!/usr/bin/env bash
# Every GPU check of ragtune in one go (docs/finetuning.md, "Tests on a GPU"):
#   1. the CLI commands of issue 15: LoRA and QLoRA training of the tiny test model on CUDA;
#   2. the tests marked gpu (training, resume, serving, GGUF export, GPU embedding);
#   3. bench/gpu_train.py (LoRA/QLoRA tokens/s and peak memory vs plain PEFT + Trainer) and
#      bench/embed_gpu.py (chunks/s);
#   4. the rest of tests/finetune (not integration: the packaged models are CPU-machine ones),
#      which now runs its training on the GPU too.
# Each step runs even when an earlier one failed; the summary at the end lists failures.
#
#   bash scripts/gpu_check.sh [OUT_DIR]        # OUT_DIR default: $OUT, else /tmp/ragtune-gpu-check
#   bash scripts/gpu_check.sh --cpu-dry-run    # no GPU: check the script's own plumbing on CPU
#
# BUDGET_S (default 1800) bounds the whole run: each step gets at most its own share and
# what is left, so a hang cannot eat a lease of device time.
# Wheels in .whl/ (bitsandbytes, gguf, ... for a machine that lacks them and has no index)
# are installed into /tmp/site first. Logs and results go to OUT_DIR: log, cli_runs.json,
# junit-gpu.xml, junit-finetune.xml, gpu_train.json, embed_gpu.json.
set -u -o pipefail
DRY=0
if [ "${1:-}" = "--cpu-dry-run" ]; then DRY=1; shift; fi
OUT_DIR=${1:-${OUT:-/tmp/ragtune-gpu-check}}
mkdir -p "$OUT_DIR"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
exec > >(tee -a "$OUT_DIR/log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
T0=$(date +%s)
FAILED=()
step() { echo; echo "=== [$(( $(date +%s) - T0 )) s] $*"; }
BUDGET=${BUDGET_S:-1800}
# check NAME MAX_S CMD...: run CMD for at most MAX_S seconds and what the budget has left
check() {
  local name=$1 most=$2; shift 2
  local left=$(( BUDGET - ($(date +%s) - T0) ))
  [ "$most" -lt "$left" ] && left=$most
  if [ "$left" -lt 10 ]; then FAILED+=("$name (not run: out of time)"); return 0; fi
  timeout -k 5 "$left" "$@"; local rc=$?
  [ $rc -eq 0 ] || FAILED+=("$name (exit $rc$([ $rc -eq 124 ] && echo ", timed out after ${left} s"))")
  return 0
}

step "CUDA"
if ! $PY -c "import sys, torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO GPU'); sys.exit(0 if torch.cuda.is_available() else 1)"; then
  if [ $DRY -eq 0 ]; then
    echo "FAIL: torch sees no CUDA GPU here: these are GPU checks (use --cpu-dry-run to test the script)"
    exit 2
  fi
  echo "dry run on the CPU: steps that need CUDA are expected to fail or skip"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null

step "wheels"
export PYTHONPATH=$ROOT/src
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$ROOT/src
fi
export PYTHONPATH=$PYTHONPATH:$ROOT
$PY - <<'EOF'
import importlib
for name in ("transformers", "peft", "accelerate", "bitsandbytes", "gguf", "sentence_transformers"):
    try:
        print(f"{name} {getattr(importlib.import_module(name), '__version__', 'importable')}")
    except Exception as e:  # noqa: BLE001
        print(f"{name}: not importable ({type(e).__name__}: {e})")
EOF

W=$(mktemp -d /tmp/ragtune-gpu-XXXX)
step "tiny model and data in $W"
$PY - "$W" <<'EOF' || exit 4
import sys
from pathlib import Path
sys.path.insert(0, "tests/finetune")
import conftest  # the test suite's tiny model builder

w = Path(sys.argv[1])
class Factory:
    def mktemp(self, name: str) -> Path:
        (w / name).mkdir()
        return w / name
print(conftest.tiny_model_dir.__wrapped__(Factory()))
conftest.write_jsonl(w / "train.jsonl", conftest.style_examples(120, seed=1))
EOF

STEPS=60
[ $DRY -eq 1 ] && STEPS=4
export RAGTUNE_HOME=$W/ws
step "CLI: ragtune init"
check "ragtune init" 60 $PY -m ragtune.cli init >/dev/null
for mode in lora qlora; do
  flag=""; [ $mode = qlora ] && flag="--qlora"
  step "CLI: ragtune finetune train train.jsonl --adapter $mode --base <tiny> --max-steps $STEPS $flag"
  check "CLI $mode" 90 $PY -m ragtune.cli finetune train "$W/train.jsonl" --adapter $mode --base "$W/tiny-llama" --max-steps $STEPS $flag
done
$PY - "$W/ws/adapters" "$OUT_DIR/cli_runs.json" <<'EOF'
import json, sys
from pathlib import Path
runs = {}
for d in sorted(Path(sys.argv[1]).glob("*")):
    if (d / "run.json").exists():
        r = json.loads((d / "run.json").read_text())
        runs[d.name] = {k: r.get(k) for k in ("device", "device_name", "dtype", "steps", "batching",
                        "train_tokens_per_s", "peak_gpu_mb", "val_loss", "notes")}
        runs[d.name]["loss_first_last"] = [r["loss_curve"][0][1], r["loss_curve"][-1][1]]
print(json.dumps(runs, indent=1))
Path(sys.argv[2]).write_text(json.dumps(runs, indent=1))
EOF

step "pytest -m gpu"
check "pytest -m gpu" 300 $PY -m pytest -q -p no:cacheprovider -rs -m gpu --junitxml="$OUT_DIR/junit-gpu.xml" \
  tests/finetune tests/embed/test_local_cuda.py

step "bench/gpu_train.py"
if [ $DRY -eq 0 ]; then
  check "bench gpu_train" 400 $PY bench/gpu_train.py --steps 20 --out "$OUT_DIR/gpu_train.json"
  step "bench/embed_gpu.py"
  check "bench embed_gpu" 90 $PY bench/embed_gpu.py --chunks 8192 --cpu-chunks 512 --out "$OUT_DIR/embed_gpu.json"
fi

step "pytest tests/finetune -m 'not integration and not gpu' (training on the GPU)"
XDIST=""
$PY -c "import xdist" 2>/dev/null && XDIST="-n 6"
check "pytest finetune" 600 $PY -m pytest -q -p no:cacheprovider -rs $XDIST -m "not integration and not gpu" \
  --junitxml="$OUT_DIR/junit-finetune.xml" tests/finetune tests/embed/test_local_cuda.py

step "done"
if [ ${#FAILED[@]} -eq 0 ]; then echo "ALL GPU CHECKS PASSED"; else printf 'FAILED: %s\n' "${FAILED[@]}"; exit 1; fi
