"""RAG, fine-tuning or hybrid? A rule table over the factors the guides use, and a check
of that advice against a measured bake-off.

>>> a = Answers(data_change="daily", citations=True, format_required=False)
>>> adv = advise(a)
>>> adv.choice, adv.fired[0].id
('rag', 'changes-often')

The factors (:class:`Answers`; ``None`` = not answered, and rules on it do not fire):

========================  ==========================================================
``data_change``           how often the knowledge changes: never, monthly, weekly, daily
``citations``             answers must cite their sources
``format_required``       a required output format, style or tone
``prompt_tokens``         typical prompt length (instructions + context), in tokens
``monthly_queries``       expected queries a month
``access_control``        different users may see different documents
``deletion``              data must be deletable on request (privacy, retention)
``training_budget``       none, small (hours on a laptop), large (GPU days)
``gpu``                   a GPU is available for training
``labelled_examples``     question/answer examples in the wanted style
========================  ==========================================================

Each :class:`Rule` adds points to the approaches it favours and carries the reason that is
printed when it fires; the approach with most points wins (ties: rag, then hybrid, then
finetune — the cheapest to start and to undo first). When no rule fires (nothing answered,
or no answer favours any approach) there is no basis to decide: ``choice`` is None and the
advice says what would give one. Given a ``compare`` report, :func:`reconcile` says whether
the measurements agree and where they do not, and every cost sentence says which way the
measured cost points and whether that agrees with the advice.

>>> advise(Answers()).choice is None
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

APPROACHES = ("rag", "hybrid", "finetune")
LABEL = {"rag": "RAG", "finetune": "fine-tuning", "hybrid": "hybrid (RAG + a fine-tuned adapter)"}
DATA_CHANGE = ("never", "monthly", "weekly", "daily")
BUDGETS = ("none", "small", "large")
# A compare report's system kinds, in the advice's vocabulary.
KIND_TO_APPROACH = {"rag": "rag", "finetuned": "finetune", "hybrid": "hybrid", "raft": "hybrid",
                    "base": "base"}


@dataclass(frozen=True)
class Answers:
    """The questionnaire's answers; ``None`` means not answered."""

    data_change: str | None = None
    citations: bool | None = None
    format_required: bool | None = None
    prompt_tokens: int | None = None
    monthly_queries: int | None = None
    access_control: bool | None = None
    deletion: bool | None = None
    training_budget: str | None = None
    gpu: bool | None = None
    labelled_examples: int | None = None

    def __post_init__(self) -> None:
        from ragtune.errors import InputError

        if self.data_change is not None and self.data_change not in DATA_CHANGE:
            raise InputError("--data-change", f"must be one of {', '.join(DATA_CHANGE)}, got "
                                              f"{self.data_change!r}")
        if self.training_budget is not None and self.training_budget not in BUDGETS:
            raise InputError("--training-budget", f"must be one of {', '.join(BUDGETS)}, got "
                                                  f"{self.training_budget!r}")
        for name in ("prompt_tokens", "monthly_queries", "labelled_examples"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise InputError(f"--{name.replace('_', '-')}", f"must be >= 0, got {v}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def factors() -> list[str]:
        return [f.name for f in fields(Answers)]


@dataclass(frozen=True)
class Rule:
    """When ``test`` holds, add ``points`` to approaches and give ``reason``."""

    id: str
    when: str  # the condition in words, for the rule table
    test: Callable[[Answers], bool]
    points: dict[str, int]
    reason: str


def _is(v: Any) -> bool:
    return v is True


RULES: tuple[Rule, ...] = (
    Rule("changes-often", "data changes daily or weekly",
         lambda a: a.data_change in {"daily", "weekly"}, {"rag": 3, "hybrid": 1, "finetune": -2},
         "The knowledge changes often: RAG answers from the current documents after a re-ingest "
         "of seconds, while a fine-tuned model keeps the old facts until it is retrained."),
    Rule("changes-monthly", "data changes monthly", lambda a: a.data_change == "monthly",
         {"rag": 1, "hybrid": 1}, "Monthly changes favour keeping facts in retrieval rather than "
         "in weights, though a monthly retrain is feasible."),
    Rule("static", "data never changes", lambda a: a.data_change == "never",
         {"finetune": 1, "hybrid": 1}, "Static knowledge can be trained in once without going "
         "stale."),
    Rule("citations", "answers must cite sources", lambda a: _is(a.citations),
         {"rag": 3, "hybrid": 2, "finetune": -3},
         "Answers must cite sources: only retrieval can point to the passage an answer came "
         "from (ragtune checks each citation against it); weights cannot."),
    Rule("format", "a required format, style or tone", lambda a: _is(a.format_required),
         {"finetune": 2, "hybrid": 3}, "A required format or tone is what fine-tuning teaches "
         "reliably; a prompt alone is followed less consistently by small models."),
    Rule("access-control", "users see different documents", lambda a: _is(a.access_control),
         {"rag": 2, "hybrid": 1, "finetune": -3},
         "Per-user access: retrieval filters documents per user in the store query; anything "
         "trained into weights is available to every user of the model."),
    Rule("deletion", "data must be deletable on request", lambda a: _is(a.deletion),
         {"rag": 2, "hybrid": 1, "finetune": -3},
         "Deletion on request: removing a document from the index is one transaction; removing "
         "it from trained weights means retraining without it."),
    Rule("volume-long-prompts", "over 100k queries a month with prompts over 1,500 tokens",
         lambda a: (a.monthly_queries or 0) >= 100_000 and (a.prompt_tokens or 0) >= 1_500,
         {"finetune": 2, "hybrid": 1},
         "High volume with long prompts: a fine-tuned model needs shorter prompts, and at this "
         "volume the saved tokens can pay for training (check the break-even in "
         "'ragtune compare')."),
    Rule("no-training-budget", "no training budget", lambda a: a.training_budget == "none",
         {"finetune": -6, "hybrid": -6}, "No training budget: fine-tuning and hybrid both need "
         "a training run."),
    Rule("cpu-only", "small budget and no GPU",
         lambda a: a.training_budget == "small" and a.gpu is False, {"finetune": -1, "hybrid": -1},
         "Small budget without a GPU: LoRA on CPU works for small models only (minutes to hours)."),
    Rule("training-capacity", "large budget or a GPU",
         lambda a: a.training_budget == "large" or _is(a.gpu), {"finetune": 1, "hybrid": 1},
         "Training capacity is available (a GPU or a large budget)."),
    Rule("few-examples", "fewer than 100 labelled examples",
         lambda a: a.labelled_examples is not None and a.labelled_examples < 100,
         {"finetune": -2, "hybrid": -1}, "Fewer than 100 labelled examples is thin for "
         "fine-tuning ('ragtune data synth' can draft more from the documents; review them)."),
    Rule("many-examples", "1,000 or more labelled examples",
         lambda a: (a.labelled_examples or 0) >= 1_000, {"finetune": 2, "hybrid": 1},
         "1,000+ labelled examples are enough to teach a style or task reliably."),
)

NEXT_STEPS = {
    "rag": ["ragtune ingest DOCS_FOLDER", "ragtune ask \"a question\"",
            "ragtune eval synth --out eval.jsonl   # or write eval.jsonl by hand",
            "ragtune eval qa eval.jsonl --mode rag",
            "ragtune compare --eval eval.jsonl --systems base,rag"],
    "finetune": ["ragtune ingest DOCS_FOLDER", "ragtune data synth",
                 "ragtune finetune train .ragtune/data/synth_train.jsonl --adapter A",
                 "ragtune eval synth --out eval.jsonl",
                 "ragtune compare --eval eval.jsonl --systems base,rag,finetuned:A"],
    "hybrid": ["ragtune ingest DOCS_FOLDER", "ragtune data synth",
               "ragtune finetune train .ragtune/data/synth_train.jsonl --adapter A",
               "ragtune raft build   # RAFT: train the adapter to answer from retrieved sources",
               "ragtune finetune train .ragtune/data/raft_train.jsonl --adapter B",
               "ragtune eval synth --out eval.jsonl",
               "ragtune compare --eval eval.jsonl --systems rag,finetuned:A,hybrid:A,raft:B"],
}


NO_BASIS_STEPS = [
    ("ragtune advise   # in a terminal it asks; or pipe one answer per line; or pass "
     "--data-change, --citations, ..."),
    "ragtune compare --eval eval.jsonl --systems base,rag   # or measure on your own questions",
]


@dataclass
class Advice:
    """The recommendation, every approach's points, the rules that fired and what to run.

    ``choice`` is None when no rule fired: then ``no_basis`` says why there is nothing to
    decide on.
    """

    choice: str | None
    scores: dict[str, int]
    fired: list[Rule]
    unanswered: list[str]
    next_steps: list[str]
    reconciliation: dict[str, Any] | None = field(default=None)
    tied: list[str] = field(default_factory=list)  # approaches with as many points, ceded

    @property
    def no_basis(self) -> str | None:
        if self.choice is not None:
            return None
        if len(self.unanswered) == len(Answers.factors()):
            return (f"none of the {len(self.unanswered)} questions was answered, so there is no "
                    "basis to recommend RAG, fine-tuning or hybrid")
        return ("none of the answers given favours RAG, fine-tuning or hybrid, so there is no "
                "basis to recommend one")

    def to_dict(self) -> dict[str, Any]:
        return {"recommendation": self.choice,
                "label": LABEL[self.choice] if self.choice else None,
                "no_basis": self.no_basis, "scores": self.scores, "tied_with": self.tied,
                "reasons": [{"rule": r.id, "when": r.when, "points": r.points, "reason": r.reason}
                            for r in self.fired],
                "unanswered": self.unanswered, "next_steps": self.next_steps,
                "reconciliation": self.reconciliation}


def advise(answers: Answers) -> Advice:
    """Apply :data:`RULES` to the answers (see module doc for the tie order)."""
    scores = dict.fromkeys(APPROACHES, 0)
    fired = [r for r in RULES if r.test(answers)]
    for r in fired:
        for approach, pts in r.points.items():
            scores[approach] += pts
    unanswered = [f for f in Answers.factors() if getattr(answers, f) is None]
    if not fired:
        return Advice(None, scores, fired, unanswered, list(NO_BASIS_STEPS))
    choice = max(APPROACHES, key=lambda a: (scores[a], -APPROACHES.index(a)))
    tied = [a for a in APPROACHES if a != choice and scores[a] == scores[choice]]
    return Advice(choice, scores, fired, unanswered, list(NEXT_STEPS[choice]), tied=tied)


# ----------------------------------------------------------------------------- reconcile

def _best_of_kind(report: dict[str, Any], approach: str) -> dict[str, Any] | None:
    systems = [s for s in report["systems"] if KIND_TO_APPROACH.get(s["kind"]) == approach
               and s["metrics"].get("token_f1") is not None]
    return max(systems, key=lambda s: s["metrics"]["token_f1"], default=None)


def reconcile(advice: Advice, report: dict[str, Any], answers: Answers) -> dict[str, Any]:
    """Compare the advice with a ``compare`` report's measured recommendation.

    Returns ``{"agree", "tested", "measured", "measured_system", "advised", "notes"}``;
    ``agree`` is None when the report has no system of the advised kind (nothing to
    confirm). Notes name each place where the measurements and the factors pull apart, and
    which should weigh more. Hard constraints
    (citations, access control, deletion) are things a benchmark does not measure; a
    measured winner that breaks one is reported, not silently accepted.
    """
    rec = report.get("recommendation") or {}
    if advice.choice is None:
        return _measurements_only(advice, report, answers)
    measured_system = rec.get("system")
    measured = None
    if measured_system:
        kind = next(s["kind"] for s in report["systems"] if s["name"] == measured_system)
        measured = KIND_TO_APPROACH.get(kind)
    notes: list[str] = []
    n = report.get("eval", {}).get("questions")
    measured_kinds = {KIND_TO_APPROACH.get(s["kind"]) for s in report["systems"]}
    tested = advice.choice in measured_kinds
    headline = rec.get("headline", "")
    if measured is None:
        notes.append("The report makes no measured recommendation (no answer metrics).")
    elif not tested:
        names = ", ".join(s["name"] for s in report["systems"])
        notes.append(f"Not tested: the bake-off compared {names} but no {LABEL[advice.choice]} "
                     f"system, so it can neither confirm nor refute this advice. Its best was "
                     f"{headline}. Add "
                     + {"rag": "rag", "finetune": "finetuned:ADAPTER",
                        "hybrid": "hybrid:ADAPTER or raft:ADAPTER"}[advice.choice]
                     + " to --systems.")
    elif measured == advice.choice:
        notes.append(f"The measurements agree, on {n} questions: {headline}.")
    else:
        notes.append(f"The measurements disagree: the factors point to {LABEL[advice.choice]}, "
                     f"the bake-off on {n} questions to {LABEL.get(measured, measured)}: "
                     f"{headline}.")
        hard = [r for r in advice.fired if r.id in {"citations", "access-control", "deletion"}]
        if measured in {"finetune", "base"} and hard:
            notes.append("Keep retrieval anyway: " + "; ".join(r.when for r in hard) + " — a "
                         "benchmark score cannot lift these constraints. Consider hybrid, which "
                         "keeps retrieval and adds the adapter.")
        else:
            notes.append("The measurement is on your own data and questions; prefer it unless "
                         "a factor it cannot see (data churn, privacy, budget) rules it out.")
    rag = _best_of_kind(report, "rag")
    tuned = _best_of_kind(report, "finetune") or _best_of_kind(report, "hybrid")
    if _is(answers.citations) and rag is not None:
        p = rag["metrics"].get("citation_precision")
        if p is not None and p < 0.8:
            notes.append(f"Citations are required, but {rag['name']}'s citations are only "
                         f"{p:.0%} supported by their sources: improve retrieval or chunking "
                         "before relying on them.")
    if _is(answers.format_required) and tuned is not None and rag is not None:
        ft, fr = tuned["metrics"].get("format_compliance"), rag["metrics"].get("format_compliance")
        if ft is not None and fr is not None and ft <= fr:
            notes.append(f"A format is required, yet {tuned['name']} follows it no more often "
                         f"than {rag['name']} ({ft:.0%} vs {fr:.0%}): the adapter is not "
                         "earning its keep on format.")
    if answers.data_change in {"daily", "weekly"} and measured in {"finetune"}:
        notes.append("The data changes often: a fine-tuned model's score today decays as "
                     "documents change; re-run the comparison after the next update.")
    notes += [cost_note(p, answers.monthly_queries, advice) for p in
              report.get("break_even", {}).get("pairs", [])]
    return {"agree": (measured == advice.choice) if tested and measured else None,
            "tested": tested, "measured": measured,
            "measured_system": measured_system, "advised": advice.choice, "notes": notes}


def _approach_of(system: str) -> str:
    """'finetuned:a' -> 'finetune', 'raft:b' / 'hybrid:a' -> 'hybrid', 'rag' -> 'rag'."""
    return KIND_TO_APPROACH.get(system.split(":", 1)[0], system)


def cost_note(pair: dict[str, Any], monthly_queries: int | None, advice: Advice | None) -> str:
    """One break-even pair in words: which system the measured cost favours (at the user's
    volume when known) and whether that agrees with the advice.

    >>> adv = advise(Answers(citations=True))
    >>> p = {"system": "finetuned:a", "reference": "rag", "volume": 2000.0}
    >>> cost_note(p, 10_000, adv)  # doctest: +NORMALIZE_WHITESPACE
    'Cost: at your 10,000 queries a month finetuned:a costs less than rag (they break even at
    2,000 a month), so on cost alone finetuned:a would win; the recommendation stays RAG for the
    reasons above (answers must cite sources), which cost does not outweigh.'
    """
    t, r, v = pair["system"], pair["reference"], pair.get("volume")
    if v is None:
        fact, favours = f"{t} never becomes cheaper than {r} (no break-even)", r
    elif v == 0:
        fact, favours = f"{t} costs no more than {r} at any volume", t
    elif monthly_queries is None:
        fact = (f"{t} becomes cheaper than {r} above {v:,.0f} queries a month (how many do you "
                "expect? --monthly-queries)")
        favours = None
    elif monthly_queries >= v:
        fact, favours = (f"at your {monthly_queries:,} queries a month {t} costs less than {r} "
                         f"(they break even at {v:,.0f} a month)"), t
    else:
        fact, favours = (f"at your {monthly_queries:,} queries a month {t} costs more than {r} "
                         f"(they break even only at {v:,.0f} a month), so its training does not "
                         "pay back"), r
    text = f"Cost: {fact}"
    if favours is None or advice is None or advice.choice is None:
        return text + "."
    if _approach_of(favours) == advice.choice:
        return text + "; cost agrees with the recommendation."
    why = ", ".join(rule.when for rule in advice.fired
                    if rule.points.get(advice.choice, 0) > 0) or "the factors above"
    return (text + f", so on cost alone {favours} would win; the recommendation stays "
            f"{LABEL[advice.choice]} for the reasons above ({why}), which cost does not outweigh.")


def _measurements_only(advice: Advice, report: dict[str, Any], answers: Answers) -> dict[str, Any]:
    """With no basis in the answers, the report's own recommendation is all there is."""
    rec = report.get("recommendation") or {}
    n = report.get("eval", {}).get("questions")
    measured_system = rec.get("system")
    measured = None
    if measured_system:
        kind = next(s["kind"] for s in report["systems"] if s["name"] == measured_system)
        measured = KIND_TO_APPROACH.get(kind)
    if measured_system:
        notes = [(f"With no answers to weigh, the measurements are the only basis: on {n} "
                  f"questions the bake-off recommends {rec.get('headline', measured_system)}. "
                  "It cannot see data churn, privacy or budget; answer the questions to weigh "
                  "those.")]
    else:
        notes = ["The report makes no measured recommendation (no answer metrics) either."]
    notes += [cost_note(p, answers.monthly_queries, None) for p in
              report.get("break_even", {}).get("pairs", [])]
    return {"agree": None, "tested": False, "measured": measured,
            "measured_system": measured_system, "advised": None, "notes": notes}


def rule_table() -> list[dict[str, Any]]:
    """The rules as rows (for docs and ``advise --rules``)."""
    return [{"rule": r.id, "when": r.when, "points": r.points, "reason": r.reason} for r in RULES]
