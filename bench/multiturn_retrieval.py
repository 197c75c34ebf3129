"""Follow-up questions: does retrieval find the passage that answers them?

26 short conversations on the sample knowledge base (``bench/data/followups.jsonl``,
written for this bench: an earlier question and answer, then a follow-up; 8 follow-ups
change the topic). For each, the passage that answers the follow-up is identified by a
phrase it contains. Three ways to retrieve, top 1/3/5:

- ``alone``: the follow-up as it is;
- ``joined``: the recent earlier user questions, then the follow-up (one search);
- ``ragtune``: what the answer pipeline does (``answer.conversation.conversation_search``):
  both searches, rankings fused by reciprocal rank.

    .venv/bin/python bench/multiturn_retrieval.py [--workspace DIR]

Builds a workspace with the sample KB and the packaged embedder when none is given
(about two minutes). Prints a table and writes bench/results/multiturn_retrieval.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ragtune.answer.conversation import Turn, conversation_search, retrieval_query
from ragtune.types import Principal
from ragtune.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data" / "followups.jsonl"
RESULTS = ROOT / "bench" / "results"


def rank_of(hits: list, phrase: str) -> int | None:
    for i, h in enumerate(hits, 1):
        if phrase.lower() in h.chunk.text.lower():
            return i
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path)
    args = ap.parse_args()
    if args.workspace and (args.workspace / "ragtune.toml").exists():
        ws = Workspace.open(args.workspace)
    else:
        ws = Workspace.init(args.workspace or Path(tempfile.mkdtemp()) / "ws")
        for folder in sorted((ROOT / "examples" / "kb").iterdir()):
            if folder.is_dir() and folder.name != "restricted":
                ws.ingest([folder], collection=folder.name)
    rows = [json.loads(x) for x in DATA.read_text().splitlines() if x.strip()]
    who = Principal.anonymous()
    k = 5
    ranks: dict[str, list[int | None]] = {"alone": [], "joined": [], "ragtune": []}
    for r in rows:
        history = [Turn("user" if i % 2 == 0 else "assistant", t)
                   for i, t in enumerate(r["history"])]
        q = r["question"]
        ranks["alone"].append(rank_of(ws.retriever.search(q, who, k=k).hits, r["expect"]))
        joined = ws.retriever.search(retrieval_query(q, history), who, k=k)
        ranks["joined"].append(rank_of(joined.hits, r["expect"]))
        fused = conversation_search(ws.retriever, q, history, who, k=k)
        ranks["ragtune"].append(rank_of(fused.hits, r["expect"]))
    switches = [i for i, r in enumerate(rows) if r.get("topic_change")]
    result = {"conversations": len(rows), "topic_changes": len(switches), "k": k}
    print(f"{'retrieval':10s} {'top1':>6s} {'top3':>6s} {'top5':>6s}   topic changes top3")
    for name, rs in ranks.items():
        hit = {n: sum(1 for x in rs if x is not None and x <= n) for n in (1, 3, 5)}
        sw = sum(1 for i in switches if rs[i] is not None and rs[i] <= 3)
        result[name] = {**{f"top{n}": v for n, v in hit.items()}, "topic_changes_top3": sw}
        print(f"{name:10s} {hit[1]:>4d}/{len(rows)} {hit[3]:>4d}/{len(rows)} {hit[5]:>4d}/{len(rows)}"
              f"   {sw}/{len(switches)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "multiturn_retrieval.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
