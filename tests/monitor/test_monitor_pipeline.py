"""Every figure of a monitor report, on traffic driven through the real answer pipeline
(tests/monitor/conftest.py: the sample KB, fake models, a test clock).

Expected values are computed here from the :class:`Answer` objects the pipeline returned
(and from the files on disk), not from the monitor's own columns.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ks_2samp, norm

from ragtune.evaluate.evalset import load_evalset
from ragtune.monitor.gaps import export_gaps
from ragtune.monitor.health import monitor_report
from tests.monitor.conftest import DAY, FINETUNED, NONSENSE, WARRANTY, Scenario


def report_for(sc: Scenario, principal=None):
    return monitor_report(sc.ws, since=sc.until - 7 * DAY, until=sc.until, principal=principal)


@pytest.fixture(scope="module")
def result(scenario):
    return report_for(scenario)


def retrieves(a) -> bool:
    return bool(a.trace.retrieved) or a.trace.best_similarity is not None or a.trace.not_found


def written(a) -> list[bool]:
    """Support of every sentence the model wrote: shown, or removed by the support check."""
    return [s.supported for s in a.sentences] + [False] * len(a.trace.removed)


def expected_rates(answers, ratings: dict[str, int]) -> dict[str, tuple[float | None, int]]:
    """(value, answers counted) of every quality metric, straight from the answers."""
    claims = [a for a in answers if retrieves(a) and (not a.refused or a.trace.removed)]
    sentences = [s for a in claims for s in written(a)]
    citations = [c.supported for a in claims for c in a.citations]
    retrieving = [a for a in answers if retrieves(a)]
    rated = [ratings[a.trace.id] for a in answers if a.trace.id in ratings]

    def share(flags, n):
        return (sum(flags) / n if n else None), n

    return {
        "groundedness": ((sum(sentences) / len(sentences)) if sentences else None,
                         sum(1 for a in claims if written(a))),
        "citation_support": ((sum(citations) / len(citations)) if citations else None,
                             sum(1 for a in claims if a.citations)),
        "refusal_rate": share([a.refused for a in answers], len(answers)),
        "not_found_rate": share([a.trace.not_found for a in retrieving], len(retrieving)),
        "unsupported_rate": share([not all(written(a)) for a in claims],
                                  len(claims)),
        "thumbs_down_rate": share([r < 0 for r in rated], len(rated)),
    }


def ratings_of(sc: Scenario) -> dict[str, int]:
    return {f.trace_id: f.rating for f in sc.ws.store.feedback()}


def collection(a) -> str:
    if not a.trace.retrieved:
        return "(no retrieval)"
    return Path(a.trace.retrieved[0]["document"]).parent.name


def test_traffic_and_the_scenario_did_what_it_says(scenario, result) -> None:
    report, _, _ = result
    t = report["traffic"]
    assert t["answers"] == len(scenario.live("current")) == 66
    assert t["previous_answers"] == len(scenario.live("previous")) == 40
    assert t["eval_answers"] == 4 and t["askers"] == 2 and t["rated"] == 8
    cur = scenario.current
    assert all(a.trace.not_found for a in cur["not_found"])
    # the invented claim is not shown (answer.unsupported = "remove"), the trace keeps it
    assert all(a.trace.removed and not a.unsupported for a in cur["unsupported"])
    assert all(a.refused and not a.trace.retrieved for a in cur["finetuned"])
    assert all(a.trace.adapter is None and any("stale" in n for n in a.trace.notes)
               for a in cur["hybrid_policy"])
    assert all(a.trace.adapter == "style" for a in cur["hybrid_it"])


@pytest.mark.parametrize("window", ["current", "previous"])
def test_overall_quality_matches_the_answers(scenario, result, window) -> None:
    report, _, _ = result
    overall = report["quality"]["overall"]
    ratings = ratings_of(scenario)
    for name, (value, n) in expected_rates(scenario.live(window), ratings).items():
        key = ("value", "n") if window == "current" else ("previous", "previous_n")
        assert overall[name][key[0]] == pytest.approx(value), name
        assert overall[name][key[1]] == n, name
    assert overall["refusal_rate"]["value"] == pytest.approx(9 / 66)
    assert overall["thumbs_down_rate"]["value"] == pytest.approx(3 / 8)


def test_change_is_tested_against_the_previous_window(scenario, result) -> None:
    report, _, _ = result
    refusal = report["quality"]["overall"]["refusal_rate"]
    now = np.array([a.refused for a in scenario.live("current")], float)
    before = np.array([a.refused for a in scenario.live("previous")], float)
    se = np.sqrt(now.var(ddof=1) / len(now) + before.var(ddof=1) / len(before))
    p = 2 * norm.sf(abs(now.mean() - before.mean()) / se)
    assert refusal["change"] == pytest.approx(now.mean() - before.mean())
    assert refusal["p_value"] == pytest.approx(p) and refusal["significant"] is True
    # no feedback before: nothing to compare
    td = report["quality"]["overall"]["thumbs_down_rate"]
    assert td["previous"] is None and td["p_value"] is None and not td["significant"]


def test_quality_per_collection_mode_and_day(scenario, result) -> None:
    report, _, records = result
    q = report["quality"]
    ratings = ratings_of(scenario)
    live = scenario.live("current")
    for name in {collection(a) for a in live}:
        group = [a for a in live if collection(a) == name]
        for metric, (value, n) in expected_rates(group, ratings).items():
            assert q["by_collection"][name][metric]["value"] == pytest.approx(value), (name, metric)
            assert q["by_collection"][name][metric]["n"] == n
    modes = {"rag": 43, "hybrid:style": 10, "hybrid": 10, "finetuned:style": 3}
    assert {m: q["by_mode"][m]["refusal_rate"]["n"] for m in modes} == modes
    assert q["by_mode"]["finetuned:style"]["refusal_rate"]["value"] == 1.0
    assert q["by_mode"]["finetuned:style"]["groundedness"]["value"] is None  # no sources
    assert q["by_mode"]["hybrid:style"]["refusal_rate"]["previous_n"] == 10
    days = {}
    for ts in records.ts:
        day = datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")
        days[day] = days.get(day, 0) + 1
    assert {d["day"]: d["answers"] for d in q["by_day"]} == days
    assert sum(d["answers"] for d in q["by_day"]) == 66
    stages = q["latency"]["stages"]
    totals = [a.trace.timings["total_s"] for a in live]
    assert stages["total_s"]["p50"] == pytest.approx(np.percentile(totals, 50), abs=1e-3)
    assert {"retrieve_s", "generate_s", "first_token_s"} <= set(stages)


def test_freshness(scenario, result) -> None:
    f = result[0]["freshness"]
    docs = scenario.ws.store.list_documents(None)
    problems = {d["source"]: d["problems"] for d in f["documents"]}
    expenses = {d.source for d in docs if d.collection == "expenses"}
    assert problems == {scenario.changed: ["changed"], scenario.vanished: ["vanished"],
                        **{s: ["too_old"] for s in expenses}}
    assert (f["changed"], f["vanished"], f["too_old"]) == (1, 1, len(expenses))
    assert f["stale_documents"] == 2 + len(expenses) and f["checked_documents"] == len(docs)
    assert {c["collection"] for c in f["collections"]} == {d.collection for d in docs}
    assert not any(c["idle"] for c in f["collections"])  # idle_after 60d; all 2 days old
    (adapter,) = f["adapters"]
    assert adapter["adapter"] == "style" and adapter["stale"]
    assert [c["source"] for c in adapter["changed"]] == [scenario.stale_source]
    answered = [a for a in scenario.live("current") if a.trace.adapter == "style"]
    assert adapter["live_answers"] == adapter["live_answers_while_stale"] == len(answered) == 13
    assert f["stale_adapter_answers"] == 13


def test_knowledge_gaps(scenario, result, tmp_path) -> None:
    report, clusters, records = result
    g = report["gaps"]
    gaps = [a for a in scenario.live("current") if a.refused or not all(written(a))
            or ratings_of(scenario).get(a.trace.id, 0) < 0]
    assert g["questions"] == len(gaps) == 6 + 5 + 3 + 3
    by_questions = {frozenset(c.central): c for c in clusters}
    nonsense = next(c for c in clusters if set(c.central) <= set(NONSENSE))
    assert nonsense.size == 6 and nonsense.reasons == {"not_found": 6}
    assert "nothing in the knowledge base answers them" in nonsense.headline
    warranty = next(c for c in clusters if set(c.central) <= set(WARRANTY))
    assert warranty.size == 5 and warranty.reasons == {"unsupported": 5}
    refused = next(c for c in clusters if set(c.central) <= set(FINETUNED))
    assert refused.size == 3 and refused.reasons == {"refused": 3}
    assert [c.rank for c in clusters[:3]] == [1, 2, 3] and clusters[0].size == 6
    assert sorted(c.size for c in clusters) == [1, 1, 1, 3, 5, 6] and len(by_questions) == 6
    down = [c for c in clusters if c.reasons == {"thumbs_down": 1}]
    assert len(down) == 3 and g["clusters"][0]["askers"] == 1
    assert any("wrong answer" in c["comments"] for c in g["clusters"])
    out = tmp_path / "gaps.jsonl"
    assert export_gaps(clusters, records, out, [nonsense.rank]) == 6
    stub = load_evalset(out)  # the format ragtune eval qa reads
    assert sorted(q.question for q in stub.questions) == sorted(NONSENSE)
    assert all(not q.answerable and f"gap-{nonsense.rank}" in q.tags for q in stub.questions)
    assert export_gaps(clusters, records, out) == 6 + 5 + 3 + 3


def test_drift(scenario, result) -> None:
    d = result[0]["drift"]
    routes = {r["route"]: r for r in d["routes"]}
    assert routes["it"]["share"] == [0.5, 1.0] and routes["it"]["answers"] == [10, 10]
    assert routes["policy"]["share"] == [0.5, 0.0] and routes["policy"]["flagged"]
    assert routes["it"]["flagged"] and routes["it"]["p_value"] < 0.05
    best = {w: np.array([round(a.trace.best_similarity, 6) for a in scenario.live(w)
                         if a.trace.best_similarity is not None]) for w in ("current", "previous")}
    c = d["corpus"]
    assert c["questions"] == [len(best["current"]), len(best["previous"])]
    assert c["median_distance"][0] == pytest.approx(1 - np.median(best["current"]))
    assert c["beyond_floor"][0] == pytest.approx((best["current"] < 0.15).mean())
    assert c["beyond_floor"][1] == 0.0
    test = ks_2samp(best["current"], best["previous"])
    assert c["ks"] == pytest.approx(test.statistic) and c["p_value"] == pytest.approx(test.pvalue)
    # MMD² of the question embeddings, computed here from the answers' own vectors
    x = np.stack([a.trace.vector for a in scenario.live("current") if a.trace.vector is not None])
    y = np.stack([a.trace.vector for a in scenario.live("previous") if a.trace.vector is not None])
    z = np.vstack([x, y]).astype(np.float64)
    sq = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    k = np.exp(-sq / np.median(sq[np.triu_indices(len(z), 1)]))
    m, n = len(x), len(y)
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    mmd = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
           - 2 * kxy.mean())
    q = d["questions"]
    assert q["questions"] == [m, n] and q["mmd"] == pytest.approx(mmd, abs=2e-3)  # float16 storage
    assert 0.0 <= q["p_value"] <= 1.0


def test_alerts(result) -> None:
    alerts = {a["name"]: a for a in result[0]["alerts"]}
    assert set(alerts) == {"refusal_rate_max", "stale_documents_max"}
    assert alerts["refusal_rate_max"]["value"] == pytest.approx(9 / 66)
    assert alerts["stale_documents_max"]["value"] == 8


def test_a_user_sees_only_their_own_records(scenario) -> None:
    ws = scenario.ws
    bob, _, bob_records = report_for(scenario, ws.principal("bob"))
    assert bob["traffic"]["answers"] == 2 and set(bob_records.principals) == {"bob"}
    assert bob["viewer"] == "bob" and bob["traffic"]["previous_answers"] == 0
    ana, _, _ = report_for(scenario, ws.principal("ana"))
    assert ana["traffic"]["answers"] == 64
    root, _, _ = report_for(scenario, ws.principal("root"))
    assert root["traffic"]["answers"] == 66


def test_deleting_a_document_strips_it_from_the_records_but_keeps_the_figures(scenario, result):
    # Runs last in this module: it removes a document from the shared scenario.
    ws = scenario.ws
    before = result[0]["quality"]["overall"]
    cited = next(a for a in scenario.current["hybrid_policy"]
                 if a.citations and a.citations[0].document == scenario.stale_source)
    quote = cited.citations[0].quote
    assert quote and quote in json.dumps(ws.store.trace(cited.trace.id).answer)
    ws.remove(scenario.stale_source)
    record = ws.store.trace(cited.trace.id)
    assert quote not in json.dumps(record.answer, ensure_ascii=False)
    assert record.answer["citations"][0]["chunk_id"] == cited.citations[0].chunk_id
    after = report_for(scenario)[0]["quality"]
    assert after["overall"] == before
    assert "(deleted document)" in after["by_collection"]
