"""Coverage-guided fuzzing of the loaders for a bounded time (issue 17).

Runs tests/fuzz/fuzz_loaders.py (atheris/libFuzzer) for ``RAGTUNE_TEST_FUZZ_SECONDS``
(default 60) seconds from a seed corpus of one small valid file per format. The run fails
on the first input that makes a loader or the chunker raise anything but InputError, break
a chunk bound or store a NUL or a lone surrogate; libFuzzer writes that input beside the
corpus, and the failure message shows its path so it can be replayed:

    python tests/fuzz/fuzz_loaders.py path/to/crash-<sha1>
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).with_name("fuzz_loaders.py")
ROOT = FUZZ.parents[2]

SEEDS = {
    ".md": b"---\ntitle: T\n---\n# Title\n\n## Part\n\nSome *text*.\n\n```\ncode\n```\n\nSetext\n===\n",
    ".txt": b"TITLE\n\nA paragraph.\n\n2.1 Numbered\n\nMore text.\n\nUnder\n-----\n",
    ".html": (b"<html><head><title>T</title><style>x{}</style></head><body><h1>H</h1><p>a<b>b"
              b"</b><br>c</p><ul><li>x</li></ul><pre>code</pre><table><tr><th>1</th><td>2</td>"
              b"</tr></table></body></html>"),
    ".json": b'{"title": "t", "faq": [{"question": "q?", "answer": "a."}], "n": {"k": [1, 2]}}',
    ".jsonl": b'{"q": "a?", "a": "b"}\n{"name": "n", "x": [1, 2]}\n',
}


def _seed_corpus(folder: Path) -> None:
    sys.path.insert(0, str(FUZZ.parent))
    from tests.ingest.hostile import docx_bytes, pdf_bytes

    exts = sorted([".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx", ".json",
                   ".jsonl"])  # loaders.SUPPORTED_EXTENSIONS, in the target's order
    seeds = dict(SEEDS, **{".pdf": pdf_bytes(2), ".docx": docx_bytes()})
    folder.mkdir(parents=True)
    for ext, data in seeds.items():
        (folder / f"seed{ext}").write_bytes(bytes([exts.index(ext)]) + data)


@pytest.mark.slow
def test_loaders_survive_coverage_guided_fuzzing(tmp_path):
    pytest.importorskip("atheris", reason="atheris (pip install 'ragtune[dev]') runs the fuzz "
                                          "target; it has wheels for CPython 3.8-3.12 on Linux")
    from ragtune.ingest.loaders import SUPPORTED_EXTENSIONS

    assert len(SUPPORTED_EXTENSIONS) == 9, "update the extension list in _seed_corpus"
    corpus = tmp_path / "corpus"
    _seed_corpus(corpus)
    seconds = int(os.environ.get("RAGTUNE_TEST_FUZZ_SECONDS", "60"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
    p = subprocess.run(
        [sys.executable, str(FUZZ), f"-max_total_time={seconds}", "-timeout=60",
         "-rss_limit_mb=3000", "-max_len=65536", "-print_final_stats=1",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True, text=True, env=env, timeout=seconds + 900, check=False)
    log = p.stdout + p.stderr
    crashes = sorted(str(c) for c in tmp_path.glob("crash-*")) + sorted(
        str(c) for c in tmp_path.glob("timeout-*"))
    assert p.returncode == 0 and not crashes, f"fuzzing found {crashes}:\n{log[-4000:]}"
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    assert runs and int(runs.group(1)) > 50, log[-2000:]
    print(f"\nfuzzed the loaders for {seconds} s: {runs.group(1)} inputs, no crash")
