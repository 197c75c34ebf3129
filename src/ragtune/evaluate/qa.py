"""Run one answering system over an eval set: per-question records and their aggregate.

>>> # from ragtune.workspace import Workspace
>>> # ws = Workspace.open()
>>> # ev = QAEvaluator(ws, load_evalset("examples/eval/kb_eval.jsonl"))
>>> # run = ev.run(SystemSpec.parse("rag"), out=Path("answers-rag.jsonl"))
>>> # run.metrics["token_f1"], run.metrics["citation_precision"]

Each question is answered with ``Workspace.ask(question, user, mode=..., adapter=...)`` and
scored with :mod:`ragtune.evaluate.qa_metrics`. Every record is appended to the output
JSONL as soon as it is scored (flushed and fsynced), so an interrupted run resumes where it
stopped: records already in the file for this system are kept and their questions skipped.
A file written for another eval set (a question id whose text differs) is refused rather
than mixed in.

Retrieval metrics (recall@k, MRR@10, nDCG@10) score the workspace retriever's own top-10
ranking for the question, computed once per question and shared by every system that
retrieves; ``context_recall`` scores what each system actually put in its prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.errors import InputError, ModelError
from ragtune.evaluate import qa_metrics as m
from ragtune.evaluate.costs import query_cost
from ragtune.evaluate.evalset import EvalQuestion, EvalSet, SourceResolver
from ragtune.types import Answer, ProgressFn

if TYPE_CHECKING:
    from ragtune.answer.service import AnswerService


SYSTEM_KINDS = ("base", "rag", "finetuned", "hybrid", "raft")
# Part of every record's fingerprint: bump it when scoring changes, so that a resumed run
# does not mix records scored the old way with new ones.
RECORD_VERSION = 2
_NEEDS_ADAPTER = {"finetuned", "hybrid", "raft"}


@dataclass(frozen=True)
class SystemSpec:
    """One system of a bake-off: how ``Workspace.ask`` is called for it.

    >>> SystemSpec.parse("raft:support-v2")
    SystemSpec(name='raft:support-v2', kind='raft', mode='rag', adapter='support-v2')
    >>> SystemSpec.parse("finetuned")
    Traceback (most recent call last):
    ...
    ragtune.errors.InputError: --systems: 'finetuned' needs an adapter: write finetuned:NAME
    """

    name: str
    kind: str
    mode: str
    adapter: str | None

    @classmethod
    def parse(cls, text: str) -> SystemSpec:
        """``base``, ``rag``, ``rag:A`` (= ``raft:A``), ``finetuned:A``, ``hybrid:A``, ``raft:A``."""
        kind, _, adapter = text.strip().partition(":")
        kind, adapter = kind.strip().lower(), adapter.strip()
        if kind not in SYSTEM_KINDS:
            raise InputError("--systems", f"unknown system {text.strip()!r} (known: base, rag, "
                                          "finetuned:ADAPTER, hybrid:ADAPTER, raft:ADAPTER)")
        if kind == "rag" and adapter:
            kind = "raft"
        if kind in _NEEDS_ADAPTER and not adapter:
            raise InputError("--systems", f"'{kind}' needs an adapter: write {kind}:NAME")
        if kind == "base" and adapter:
            raise InputError("--systems", "'base' is the model alone; use finetuned:NAME for an "
                                          "adapter")
        mode = {"raft": "rag"}.get(kind, kind)
        name = f"{kind}:{adapter}" if adapter else kind
        return cls(name, kind, mode, adapter or None)

    @classmethod
    def from_mode(cls, mode: str, adapter: str | None) -> SystemSpec:
        """The system ``ragtune ask --mode MODE --adapter A`` would be."""
        if mode == "rag" and adapter:
            return cls.parse(f"raft:{adapter}")
        return cls.parse(f"{mode}:{adapter}" if adapter else mode)

    @property
    def retrieves(self) -> bool:
        return self.mode in {"rag", "hybrid"}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "mode": self.mode, "adapter": self.adapter}


@dataclass
class QARun:
    """One system's records (in eval-set order), aggregate metrics and notes."""

    system: SystemSpec
    records: list[dict[str, Any]]
    metrics: dict[str, Any]
    out: Path | None
    resumed: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"system": self.system.to_dict(), "metrics": self.metrics,
                "answers_file": str(self.out) if self.out else None, "resumed": self.resumed,
                "warnings": self.warnings}


# ----------------------------------------------------------------------------- the file

def read_records(path: Path, evalset: EvalSet, system: str,
                 fingerprint: str | None = None) -> tuple[dict[str, dict[str, Any]], bool]:
    """Finished records of ``system`` in ``path`` by question id, and whether the file needs
    rewriting (a partial last line from an interrupted write, unparsable lines, or records of
    this system made under another ``fingerprint``: other settings, documents or adapter).

    Raises :class:`InputError` if a record's question differs from the eval set's.
    """
    if not path.exists():
        return {}, False
    by_id = {q.id: q for q in evalset.questions}
    done: dict[str, dict[str, Any]] = {}
    dirty = False
    text = path.read_text(encoding="utf-8", errors="replace")
    if text and not text.endswith("\n"):
        dirty = True
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            dirty = True
            continue
        if not isinstance(rec, dict) or "id" not in rec or "system" not in rec:
            dirty = True
            continue
        q = by_id.get(rec["id"])
        if rec["system"] != system or q is None:
            continue
        if rec.get("question") != q.question:
            raise InputError(str(path), f"written for a different eval set: question "
                                        f"{rec['id']!r} differs from {evalset.path}; delete the "
                                        "file or write the answers elsewhere (--out)", number)
        if fingerprint is not None and rec.get("fingerprint") != fingerprint:
            dirty = True  # made under other settings, documents or adapter: answer again
            continue
        if rec.get("error"):
            continue  # failed last time: ask again
        done[rec["id"]] = rec
    return done, dirty


def _rewrite(path: Path, keep: Sequence[str]) -> None:
    """Drop broken lines from ``path`` (atomically), keeping ``keep`` lines as they are."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
    os.replace(tmp, path)


def _valid_lines(path: Path, system: str, fingerprint: str) -> list[str]:
    """Lines worth keeping: parsable records, minus this system's stale ones."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and not (rec.get("system") == system
                                          and rec.get("fingerprint") != fingerprint):
            out.append(line)
    return out


# ----------------------------------------------------------------------------- evaluator

class QAEvaluator:
    """Scores systems on one eval set in one workspace, as one user.

    ``judge`` is an optional Generator (e.g. :class:`~ragtune.generate.http.HttpGenerator` on
    any OpenAI-compatible endpoint) asked whether each answer is correct. ``format_regex`` /
    ``format_schema`` define format compliance (see
    :func:`ragtune.finetune.evaluate.format_check`); without them it is not measured.
    """

    def __init__(self, ws: AnswerService, evalset: EvalSet, *, user: str | None = None,
                 k: int | None = None, judge: Any = None, format_regex: str | None = None,
                 format_schema: dict[str, Any] | None = None,
                 embedding_similarity: bool = True) -> None:
        self.ws = ws
        self.evalset = evalset
        self.user = user
        self.principal = ws.principal(user)
        self.k = k or ws.settings.retrieval.top_k
        self.judge = judge
        self.format_regex = format_regex
        self.format_schema = format_schema
        self.embedding_similarity = embedding_similarity
        self.resolver = SourceResolver(ws.store.list_documents(None))
        self._ranking: dict[str, list[str]] = {}
        self.gold = {q.id: self.resolver.gold(q) for q in evalset.questions}
        self.warnings = self._source_warnings()

    def _source_warnings(self) -> list[str]:
        problems = self.resolver.problems
        questions = self.evalset.questions
        if problems and all(q.retrieval_only for q in questions) and not any(
                self.resolver.resolve(s) for q in questions for s in q.sources):
            raise InputError(self.evalset.path, "none of this BEIR set's documents are in the "
                             "workspace: 'ragtune eval retrieval --beir FOLDER' indexes the "
                             "corpus itself")
        out = []
        by_problem: dict[str, list[str]] = {}
        for name, problem in sorted(problems.items()):
            by_problem.setdefault(problem, []).append(name)
        for problem, names in by_problem.items():
            shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
            out.append(f"{len(names)} eval source(s) {problem} ({shown}); their questions keep "
                       "a gold document no retriever can find")
        readable = {d.id for d in self.ws.store.list_documents(self.principal)}
        hidden = [q.id for q in self.evalset.questions
                  if any(g in self.resolver.documents_by_id and g not in readable
                         for g in self.gold[q.id])]
        if hidden:
            out.append(f"{len(hidden)} question(s) have gold sources that user "
                       f"'{self.principal.user}' may not read ({', '.join(hidden[:5])}"
                       f"{', ...' if len(hidden) > 5 else ''}): run as a user who may (--as)")
        return out

    # -------------------------------------------------------------- per question
    def ranking(self, q: EvalQuestion) -> list[str]:
        """The retriever's document ranking for ``q`` (top 10 chunks' documents), cached."""
        if q.id not in self._ranking:
            result = self.ws.search(q.question, self.user, k=max(10, self.k))
            self._ranking[q.id] = [self.resolver.doc_id(h.document) for h in result.hits]
        return self._ranking[q.id]

    def adapter_documents(self, adapter: str) -> set[str]:
        """Document ids an adapter's lineage says it was trained on (empty if unknown)."""
        lineage = self.ws.registry.get(adapter).lineage
        docs = (lineage or {}).get("documents") if isinstance(lineage, dict) else None
        ids: set[str] = set()
        for d in docs or []:
            if isinstance(d, dict):
                ident = d.get("doc_id") or d.get("id")
                if ident is None and d.get("source"):
                    ident = self.resolver.resolve(str(d["source"]))
                if ident:
                    ids.add(str(ident))
        return ids

    def _similarity(self, text: str, references: Sequence[str]) -> float:
        vecs = self.ws.embedder.embed_documents([text, *references])
        return m.cosine_max(vecs[0], vecs[1:])

    def _judge(self, q: EvalQuestion, answer: Answer) -> float | None:
        if answer.refused:
            return 0.0
        reply = self.judge.complete(m.judge_messages(q.question, q.answers, answer.text),
                                    max_tokens=5, temperature=0.0)
        return m.parse_judgement(reply.text)

    def score(self, q: EvalQuestion, answer: Answer | None, system: SystemSpec,
              error: str | None = None) -> dict[str, Any]:
        """The record of one answered question (see :func:`ragtune.evaluate.qa_metrics.aggregate`)."""
        gold = self.gold[q.id]
        text = answer.text if answer else ""
        refused = bool(answer.refused) if answer else False
        trace = answer.trace if answer else None
        retrieved = trace.retrieved if trace else []
        has_context = system.retrieves and (system.mode == "rag" or bool(retrieved))
        scores: dict[str, Any] = {}
        if q.answerable and q.answers:
            scores.update(m.answer_scores(text, q.answers, refused))
            if self.embedding_similarity:
                scores["embedding_similarity"] = (0.0 if refused or not text
                                                  else self._similarity(text, q.answers))
            if self.judge is not None and answer is not None:
                scores["judge_correct"] = self._judge(q, answer)
        if system.retrieves and q.answerable and gold:
            scores.update(m.retrieval_scores(self.ranking(q), gold, self.k))
            scores["context_recall"] = m.context_recall(
                [self.resolver.doc_id(h["document"]) for h in retrieved], gold)
        citations = answer.citations if answer else []
        if has_context:
            supported = [s.supported for s in answer.sentences] if answer else []
            cited = [c.supported for c in citations]
            scores["groundedness"] = m.groundedness(supported)
            scores["citation_precision"] = m.citation_precision(cited)
            if q.answerable and gold:
                scores["citation_recall"] = (
                    m.citation_recall([self.resolver.doc_id(c.document) for c in citations], gold)
                    if not refused else 0.0)
        else:
            supported = cited = None  # type: ignore[assignment]
        scores["unsupported_claim"] = (m.unsupported_claim(
            answerable=q.answerable, refused=refused, f1=scores.get("token_f1"),
            any_supported_citation=any(c.supported for c in citations), has_text=bool(text),
            contains=bool(scores.get("contains_answer")))
            if answer is not None and not q.retrieval_only else None)
        if self.format_regex is not None or self.format_schema is not None:
            from ragtune.finetune.evaluate import format_check

            scores["format_ok"] = (format_check(text, regex=self.format_regex,
                                                schema=self.format_schema)[0]
                                   if answer is not None else False)
        timings = {k: round(v, 4) for k, v in (trace.timings if trace else {}).items()}
        tokens = dict(trace.tokens) if trace else {}
        cost = query_cost(model=trace.model if trace else "", seconds=timings.get("total_s", 0.0),
                          prompt_tokens=tokens.get("prompt"),
                          completion_tokens=tokens.get("completion"),
                          costs=self.ws.settings.costs) if trace else None
        return {
            "id": q.id, "system": system.name, "question": q.question,
            "answerable": q.answerable, "tags": list(q.tags), "references": list(q.answers),
            "gold_sources": list(q.sources), "gold_documents": gold,
            "answer": text, "refused": refused,
            "citations": [c.to_dict() for c in citations],
            "sentences": [{"text": s.text, "cited": list(s.cited), "supported": s.supported,
                           "score": s.score} for s in (answer.sentences if answer else [])],
            "sentences_supported": supported, "citations_supported": cited,
            "retrieved": [{k: h.get(k) for k in ("rank", "document", "title", "section",
                                                  "chunk_id", "score")} for h in retrieved],
            "scores": scores, "timings": timings, "tokens": tokens,
            "cost_usd": cost.usd if cost else None, "cost_basis": cost.basis if cost else None,
            "mode": trace.mode if trace else system.mode, "model": trace.model if trace else None,
            "adapter": trace.adapter if trace else system.adapter,
            "route": trace.route if trace else None, "notes": list(trace.notes) if trace else [],
            "reply": trace.reply if trace else "", "removed": list(trace.removed) if trace else [],
            "error": error,
        }

    def ask(self, q: EvalQuestion, system: SystemSpec) -> tuple[Answer | None, str | None]:
        """Answer ``q`` with ``system``; a model failure becomes an error string, not a crash."""
        if q.retrieval_only:
            return None, None
        try:
            return self.ws.ask(q.question, self.user, mode=system.mode,
                               adapter=system.adapter, origin="eval"), None
        except ModelError as e:
            return None, f"model error: {e}"

    # -------------------------------------------------------------- a whole run
    def fingerprint(self, system: SystemSpec) -> str:
        """Hash of everything that shapes a record besides the question: the settings that
        answer and score, the documents (ids and content hashes), the adapter's run, the user,
        k, the judge and the format rule. A resumed run reuses only records with the same."""
        settings = self.ws.settings.to_dict()
        parts: dict[str, Any] = {
            "record_version": RECORD_VERSION, "system": system.to_dict(), "user": self.principal.user, "k": self.k,
            "settings": {a: settings[a] for a in ("chunking", "embedding", "retrieval",
                                                   "generation", "routing") if a in settings},
            "documents": sorted((d.id, d.content_hash) for d in self.resolver.documents),
            "judge": getattr(self.judge, "name", None) if self.judge is not None else None,
            "format": [self.format_regex, self.format_schema],
            "embedding_similarity": self.embedding_similarity,
        }
        if system.adapter:
            parts["adapter_run"] = self.ws.registry.run_digest(system.adapter)
        for key in ("api_key",):  # never hash secrets into files
            for area in ("embedding", "generation"):
                parts["settings"].get(area, {}).pop(key, None)
        blob = json.dumps(parts, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def check_system(self, system: SystemSpec) -> None:
        """Fail before the first question if the system cannot run (unknown adapter...)."""
        if system.adapter:
            self.ws.registry.get(system.adapter)

    def run(self, system: SystemSpec, out: Path | None = None,
            progress: ProgressFn | None = None) -> QARun:
        """Answer and score every question, appending records to ``out`` (resumable)."""
        self.check_system(system)
        fingerprint = self.fingerprint(system)
        done: dict[str, dict[str, Any]] = {}
        if out is not None:
            out = Path(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            done, dirty = read_records(out, self.evalset, system.name, fingerprint)
            if dirty:
                _rewrite(out, _valid_lines(out, system.name, fingerprint))
        resumed = len(done)
        questions = self.evalset.questions
        total = len(questions)
        if progress:
            progress(len(done), total, "")
        handle = out.open("a", encoding="utf-8") if out is not None else None
        try:
            for q in questions:
                if q.id in done:
                    continue
                answer, error = self.ask(q, system)
                rec = self.score(q, answer, system, error)
                rec["fingerprint"] = fingerprint
                done[q.id] = rec
                if handle is not None:
                    handle.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                if progress:
                    progress(len(done), total, q.id)
        finally:
            if handle is not None:
                handle.close()
        records = [done[q.id] for q in questions]
        metrics = m.aggregate(records, k=self.k)
        warnings = list(self.warnings)
        if system.adapter:
            seen = self.adapter_documents(system.adapter)
            overlap = [r for r in records if seen & set(r["gold_documents"])]
            metrics["questions_on_training_documents"] = len(overlap)
            if overlap:
                unseen = [r for r in records if not seen & set(r["gold_documents"])]
                metrics["token_f1_unseen_documents"] = m.aggregate(unseen, k=self.k)["token_f1"] \
                    if unseen else None
                warnings.append(
                    f"{system.name}: {len(overlap)} of {total} questions ask about documents "
                    f"adapter '{system.adapter}' was trained on; its scores there may reflect "
                    "memorisation (token_f1_unseen_documents scores the rest). Build eval sets "
                    "with 'ragtune eval synth' to keep the split.")
        errors = [r for r in records if r.get("error")]
        if errors:
            warnings.append(f"{system.name}: {len(errors)} question(s) failed "
                            f"({errors[0]['error']}); they score as wrong answers")
        return QARun(system, records, metrics, out, resumed, warnings)


# ----------------------------------------------------------------------------- regression

DEFAULT_GUARDED = ("token_f1", "citation_precision", "groundedness", "correct_refusal_rate")


def baseline_metrics(report: dict[str, Any], system: str) -> dict[str, Any]:
    """The metrics of ``system`` in a report.json (or of its only system)."""
    systems = report.get("systems") or []
    for s in systems:
        if s.get("name") == system:
            return s["metrics"]
    if len(systems) == 1:
        return systems[0]["metrics"]
    names = ", ".join(s.get("name", "?") for s in systems) or "none"
    raise InputError("--baseline", f"the baseline report has no system {system!r} (it has: {names})")


def _threshold(spec: str, option: str, baseline: dict[str, Any] | None) -> tuple[str, float, str]:
    metric, sep, value = spec.partition("=")
    metric, value = metric.strip(), value.strip().replace(" ", "")
    if not sep or not metric or not value:
        raise InputError(option, f"expected METRIC=VALUE, got {spec!r}")
    if value.startswith("baseline"):
        if baseline is None:
            raise InputError(option, f"{spec!r} refers to the baseline: pass --baseline report.json")
        base = baseline.get(metric)
        if base is None:
            raise InputError(option, f"the baseline has no value for {metric!r}")
        rest = value[len("baseline"):]
        try:
            offset = float(rest) if rest else 0.0
        except ValueError:
            raise InputError(option, f"expected baseline, baseline-X or baseline+X, got {value!r}") from None
        return metric, float(base) + offset, value
    try:
        return metric, float(value), value
    except ValueError:
        raise InputError(option, f"{value!r} is not a number (or 'baseline[-X]')") from None


def regression_check(metrics: dict[str, Any], fail_under: Sequence[str] = (),
                     fail_over: Sequence[str] = (), *, baseline: dict[str, Any] | None = None,
                     system: str = "", tolerance: float = 0.02) -> tuple[list[str], list[dict[str, Any]]]:
    """Check ``metrics`` against thresholds; returns (failure texts, every check).

    ``fail_under`` items are ``METRIC=VALUE`` (fail if below), ``fail_over`` fail if above;
    VALUE is a number, ``baseline`` or ``baseline-0.02`` (the baseline report's value for
    the same system, plus an offset). With a baseline and no thresholds, each of
    :data:`DEFAULT_GUARDED` that both runs measured may drop at most ``tolerance``. A metric
    this run did not measure fails: a check that cannot run must not pass silently.

    >>> regression_check({"token_f1": 0.4}, ["token_f1=0.5"])[0]
    ['token_f1 = 0.4 is below 0.5']
    >>> regression_check({"token_f1": 0.49}, [], baseline={"systems": [{"name": "rag",
    ...     "metrics": {"token_f1": 0.5}}]}, system="rag")[0]
    []
    """
    base = baseline_metrics(baseline, system) if baseline is not None else None
    rules: list[tuple[str, str, float, str]] = []  # (metric, direction, limit, as written)
    for option, items, direction in (("--fail-under", fail_under, "under"),
                                     ("--fail-over", fail_over, "over")):
        for spec in items:
            metric, limit, written = _threshold(spec, option, base)
            better = m.higher_is_better(metric)
            if better is None and metric not in metrics:
                known = ", ".join(k for k, v in metrics.items() if isinstance(v, int | float))
                raise InputError(option, f"unknown metric {metric!r} (known: {known})")
            rules.append((metric, direction, limit, written))
    if base is not None and not rules:
        for metric in DEFAULT_GUARDED:
            if base.get(metric) is not None and metrics.get(metric) is not None:
                rules.append((metric, "under", float(base[metric]) - tolerance,
                              f"baseline-{tolerance:g}"))
    failures, checks = [], []
    for metric, direction, limit, written in rules:
        value = metrics.get(metric)
        if value is None:
            ok, text = False, f"{metric} was not measured in this run (needed for {written})"
        elif direction == "under":
            ok = value >= limit
            text = f"{metric} = {value:.4g} is {'not below' if ok else 'below'} {limit:.4g}"
        else:
            ok = value <= limit
            text = f"{metric} = {value:.4g} is {'not above' if ok else 'above'} {limit:.4g}"
        if written.startswith("baseline") and value is not None:
            text += f" ({written})"
        checks.append({"metric": metric, "value": value, "limit": limit, "direction": direction,
                       "ok": ok, "text": text})
        if not ok:
            failures.append(text)
    return failures, checks
