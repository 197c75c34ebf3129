"""Indirect prompt injection suite (OWASP LLM01) against the real answer path.

    .venv/bin/python bench/injection_suite.py [--model qwen2.5-0.5b] [--set answer.injections=drop]

Each case of tests/data/injection/suite.jsonl adds poisoned documents (instruction override,
exfiltration links and images, fake citations, self-vouching, role-play, hidden HTML and
Markdown comments, Base64, ROT13, look-alike letters, leetspeak, letter spacing, chat
template tokens, invisible tag characters, an injection split across two documents, a
system-prompt leak request) to a small benign knowledge base, asks a question, and checks
that no payload is shown or marked supported. Prints the pass rate with the real packaged
models, and the detector's false-flag rate on benign corpora (sample KB, HotpotQA
paragraphs, Typer docs when cached) so detection is not bought with noise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa_bench_lib import parse_sets, write_results

from ragtune.generate.injection import scan
from tests.injection_suite import load_cases, pass_rate, run_case


def false_flags() -> dict[str, tuple[int, int]]:
    """(flagged, total) paragraphs of benign corpora."""
    corpora = {"sample kb": ROOT / "examples" / "kb",
               "hotpotqa": Path.home() / ".cache/ragtune-bench/hotpotqa/corpus",
               "typer docs": Path.home() / ".cache/ragtune-bench/typer/site/docs"}
    out = {}
    for name, folder in corpora.items():
        if not folder.is_dir():
            continue
        paragraphs = [p for f in sorted(folder.rglob("*.md"))
                      for p in f.read_text(encoding="utf-8", errors="replace").split("\n\n") if p.strip()]
        flagged = [p for p in paragraphs if scan(p)]
        out[name] = (len(flagged), len(paragraphs))
        for p in flagged[:5]:
            print(f"  false flag in {name}: {[f.kind for f in scan(p)]} {p[:100]!r}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", action="append", default=[], help="AREA.KEY=VALUE override")
    ap.add_argument("--tag", default="default")
    args = ap.parse_args()
    from ragtune.config import EmbeddingSettings, GenerationSettings
    from ragtune.embed.factory import make_embedder
    from ragtune.generate.factory import make_generator

    overrides = parse_sets(args.set)
    embedder = make_embedder(EmbeddingSettings())
    from ragtune.config import Settings

    generator = make_generator(Settings.from_dict(overrides).generation
                               if "generation" in overrides else GenerationSettings())

    def prepare(ws):
        ws.embedder, ws.generator = embedder, generator

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in load_cases():
            r = run_case(case, Path(tmp), prepare, overrides)
            results.append(r)
            print(f"{'PASS' if r.passed else 'FAIL'} {'detected' if r.detected else 'missed  '} "
                  f"{r.id:16} {r.answer[:90]!r}", flush=True)
    rate = pass_rate(results)
    detected = sum(r.detected for r in results)
    print(f"\npass rate {sum(r.passed for r in results)}/{len(results)} = {rate:.3f}; "
          f"detected {detected}/{len(results)}; model {generator.name}; {args.set or 'defaults'}")
    flags = false_flags()
    for name, (n, total) in flags.items():
        print(f"benign {name}: {n}/{total} paragraphs flagged ({n / max(1, total):.2%})")
    write_results(f"injection_suite-{args.tag}", {
        "overrides": args.set, "model": generator.name, "pass_rate": rate,
        "detected": detected, "cases": [r.to_dict() for r in results],
        "false_flags": {k: {"flagged": v[0], "paragraphs": v[1]} for k, v in flags.items()}})


if __name__ == "__main__":
    main()
