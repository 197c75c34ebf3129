"""Every fenced ``ragtune`` command in the README runs as written, in order, on a fresh
workspace and the sample knowledge base (examples/kb), through the real entry point.

What is swapped, and why (nothing else is):

- the models: the fake embedder and generator (``RAGTUNE_*_BACKEND=fake``, as the other CLI
  tests) answer in milliseconds; the output is what is checked, not the answers' quality.
  ``generation.model`` is a tiny random Llama (tests/finetune/conftest.py's recipe, with a
  tokenizer trained on the sample data so that RAFT examples fit ``--max-length 1024`` as
  they do for the packaged model) so that ``finetune train`` really trains LoRA adapters,
  ``adapters export`` really writes a GGUF LoRA and ``--mode finetuned/hybrid`` really
  generate with one (transformers + PEFT).
  ``route train`` trains the real intent router (the packaged MiniLM).
- one placeholder: ``path/to/beir-folder`` is the small BEIR set of the tests
  (:data:`PLACEHOLDERS`).
- two blocks are left to their own tests (:data:`OWN_TEST`): the PostgreSQL quick start
  under "Store backends" starts a database server in the background and needs the
  ``postgres`` extra (tests/store/test_store_cli.py runs it), and "Serve it to your team"
  runs ``ragtune serve`` until stopped (tests/server/test_faults.py runs it).

Commands run in a temporary folder holding ``examples`` (a link to the repository's), so
the default workspace ``./.ragtune`` is fresh and the README's relative paths
(``examples/...``, ``.ragtune/data/...``) mean what they say. Input is empty (not a
terminal): ``ragtune advise`` then has nothing answered and says so.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, FAKE, ROOT
from tests.finetune.conftest import build_tiny_model

pytestmark = pytest.mark.slow

PLACEHOLDERS = {"path/to/beir-folder": str(ROOT / "tests" / "data" / "beir_tiny")}
# README sections whose bash blocks another test runs (see the module doc).
OWN_TEST = {"## Store backends (`[store]`)":
            "tests/store/test_store_cli.py::test_readme_quick_start_with_a_local_postgres",
            "## Serve it to your team":  # `ragtune serve` runs until stopped
            "tests/server/test_faults.py::test_readme_serve_quick_start",
            "## Adapt the retriever to your documents":  # needs the real embedder to train
            "tests/tune/test_tune_retriever.py::test_readme_tune_commands"}
OWN_MARK = {"## Store backends (`[store]`)": "ragtune store local-postgres",
            "## Serve it to your team": "ragtune serve",
            "## Adapt the retriever to your documents": "ragtune tune retriever"}


def readme_commands(text: str) -> list[list[str]]:
    """The ``ragtune`` commands of the README's bash blocks, in order; ``a && b`` gives two.
    Blocks in the sections of :data:`OWN_TEST` are left out.

    >>> readme_commands("```bash\\nragtune init   # make it\\nmake x\\nragtune a 'b c' && ragtune d\\n```")
    [['ragtune', 'init'], ['ragtune', 'a', 'b c'], ['ragtune', 'd']]
    """
    sections = re.split(r"^(?=## )", text, flags=re.MULTILINE)
    text = "".join(s for s in sections if s.splitlines()[0] not in OWN_TEST) if sections else text
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            while words:
                part = words[: words.index("&&")] if "&&" in words else words
                words = words[len(part) + 1:]
                if part and part[0] == "ragtune":
                    commands.append(part)
    return commands


@pytest.fixture(scope="module")
def readme_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama whose tokenizer knows the sample data's words (~4 characters a token,
    as the packaged model's) and whose positions reach the README's --max-length 1024."""
    corpus = [p.read_text(encoding="utf-8") for p in sorted((EXAMPLES / "kb").rglob("*"))
              if p.suffix in {".md", ".txt", ".html", ".json", ".jsonl"}]
    corpus += [p.read_text(encoding="utf-8") for p in sorted((EXAMPLES / "finetune").glob("*.jsonl"))]
    return build_tiny_model(tmp_path_factory.mktemp("readme-llama"), corpus, vocab_size=4000,
                            max_positions=2048)


def test_the_blocks_left_to_other_tests_exist_and_are_run_there() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for heading, where in OWN_TEST.items():
        section = readme.split(heading, 1)[1].split("\n## ", 1)[0]
        assert OWN_MARK[heading] in section  # the block the other test runs
        path, name = where.split("::")
        assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8")


def test_the_readme_has_the_commands_a_newcomer_runs() -> None:
    commands = [" ".join(c[:2]) for c in readme_commands((ROOT / "README.md").read_text())]
    for expected in ("ragtune init", "ragtune ingest", "ragtune ask", "ragtune users",
                     "ragtune compare", "ragtune advise", "ragtune finetune", "ragtune route"):
        assert expected in commands


def test_every_readme_command_runs_as_written(tmp_path, readme_model_dir) -> None:
    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    cwd = tmp_path / "here"
    cwd.mkdir()
    (cwd / "examples").symlink_to(ROOT / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGTUNE_")
           or k == "RAGTUNE_CACHE"}
    env.update(PYTHONPATH=str(ROOT / "src"), COLUMNS="80",
               RAGTUNE_EMBEDDING_BACKEND=FAKE["embedding"]["backend"],
               RAGTUNE_GENERATION_BACKEND=FAKE["generation"]["backend"],
               RAGTUNE_RETRIEVAL_MIN_SIMILARITY=str(FAKE["retrieval"]["min_similarity"]),
               RAGTUNE_GENERATION_MODEL=str(readme_model_dir),
               # the tiny model's answers are noise: a few tokens show it generates
               RAGTUNE_GENERATION_MAX_TOKENS="8",
               # one thread: on a shared 2-core machine two OpenMP threads made tiny-model
               # steps ~10x slower (tests/finetune/conftest.py)
               OMP_NUM_THREADS="1")
    ran = []
    for words in commands:
        args = [PLACEHOLDERS.get(w, w) for w in words[1:]]
        started = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "ragtune.cli", *args], cwd=cwd, env=env,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=1200, check=False)
        shown = " ".join(words)
        assert p.returncode == 0, f"{shown}\nexit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        assert "Traceback" not in p.stderr, shown
        ran.append((shown, p))
        print(f"{time.monotonic() - started:6.1f} s  {shown}")  # pytest -s shows the costs
    assert (cwd / ".ragtune" / "ragtune.toml").exists()
    assert (cwd / ".ragtune" / "adapters" / "support-style" / "adapter.gguf").exists() or any(
        (cwd / ".ragtune" / "adapters" / "support-style").glob("*.gguf"))
    assert (cwd / ".ragtune" / "routers" / "intents").is_dir()
    advise = next(p for cmd, p in ran if cmd.startswith("ragtune advise"))
    assert "No basis to decide" in advise.stdout
    compare = next(p for cmd, p in ran if cmd.startswith("ragtune compare"))
    assert re.search(r"compare: \d+/388 .*ETA", compare.stderr)  # 97 questions x 4 systems
    assert "Recommendation" in compare.stdout
    ask = next(p for cmd, p in ran if cmd == "ragtune ask How long is the return window?")
    assert "[1]" in ask.stdout and "fake" in ask.stdout.splitlines()[-1]  # the timing line
