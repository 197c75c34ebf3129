# Two entry points: `make demo` and `make test`. Both build the virtual env first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-fast lint bench clean browser nettools docs

$(STAMP): pyproject.toml scripts/llama_cmake_args.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: it resolves to the local CPU wheel (any other spec pulls CUDA).
	$(BIN)/pip install -q torch==2.13.0
	CMAKE_ARGS="$$(./scripts/llama_cmake_args.sh)" $(BIN)/pip install -q -e '.[local,train,server,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# report.html and the web app are checked in headless Chromium (tests/test_report_browser.py,
# tests/server/test_browser.py): Debian's package, installed when we may (root, as in CI);
# elsewhere those tests say how and skip.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the browser tests will skip (apt-get install chromium)"; }

# pgvector 0.8 for the local PostgreSQL of the store tests (docs/stores.md): ~30 s with gcc.
PGVECTOR := $(VENV)/.pgvector
$(PGVECTOR): $(STAMP) scripts/build_pgvector.sh third_party/pgvector/vector.control
	./scripts/build_pgvector.sh $(BIN)/python
	touch $(PGVECTOR)

# tests/test_no_network.py runs the CLI in a network namespace under strace: Debian's strace
# and iproute2, installed when we may (root, as in CI); elsewhere that test says how and skips.
nettools:
	@command -v strace >/dev/null && command -v ip >/dev/null || { [ "$$(id -u)" = 0 ] \
	  && command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq strace \
	  iproute2 >/dev/null) || echo "strace/ip not installed: the no-network test will skip"; }

test: $(STAMP) browser nettools $(PGVECTOR)
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration and not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

# docs/configuration.md is generated from the settings dataclasses (tests check it is in step)
docs: $(STAMP)
	$(BIN)/python -m ragtune.config_docs docs/configuration.md

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .ragtune bench/results
