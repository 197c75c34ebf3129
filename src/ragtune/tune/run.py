"""One ``tune retriever`` run: resumable stages in ``<workspace>/embedders/<name>/``.

Stages, each skipped when its file is already there (run the same command again, or
``--resume``, to continue an interrupted run):

1. ``split.json``      documents (capped by ``max_docs``) split into train / held-out, with
                       the lineage of each (id, source, version, content hash, collection)
2. ``questions.jsonl`` (``queries = "questions"``, the default) a question the chat model
                       wrote for each chosen chunk (held-out ones for the judge, train ones
                       for training), appended as they come, so a resumed run asks none twice
   ``train.jsonl``     pseudo-queries of train chunks (those questions, or ICT sentences)
   ``eval.json``       with hard negatives mined by the workspace's retriever (dense and
                       BM25 in turn); pseudo-queries of held-out chunks and their corpus
                       (for ICT, the query sentences taken out)
3. ``baseline.json``   the current embedder on the held-out pseudo-queries
4. ``model/``          the fine-tuned sentence-transformers folder (``training.json``;
                       checkpoints in ``checkpoint/`` while it trains)
5. ``export.json``     the model loaded the way the workspace will run it (int8 ONNX by
                       default, :mod:`ragtune.embed.onnx`: exported once, cached)
6. ``adapted.json``    the adapted embedder on the same held-out queries
7. ``decision.json``   kept only if its held-out nDCG@10 beats the current one by ``min_gain``
8. ``activated.json``  (kept, ``activate``) every chunk of the store re-embedded with it
                       (``Store.replace_vectors``, one write) and ``[embedding] model`` set to
                       ``model/`` in ragtune.toml
9. ``tune.json``       the report: both embedders' scores, the decision, timings, lineage

``max_minutes`` caps the whole run: training stops early to leave time for what follows
(estimated from the embedding speed measured in stage 3).

>>> # report = ws.tune_retriever(TuneOptions(name="adapted", max_minutes=45))
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ragtune.embed.base import Embedder
from ragtune.errors import InputError, NotFound
from ragtune.evaluate.qa_metrics import paired_bootstrap
from ragtune.finetune.freshness import Freshness, adapter_freshness
from ragtune.ingest.chunking import chunk_embedding_text
from ragtune.jsonl import read_json_object, read_jsonl, write_jsonl_atomic, write_text_atomic
from ragtune.store.base import Store
from ragtune.tune.data import (
    Example,
    Passage,
    PseudoQuery,
    cap_documents,
    held_out_corpus,
    ict_queries,
    mine_negatives,
    pick_passages,
    split_documents,
)
from ragtune.tune.evaluate import dense_scores, embed_all
from ragtune.tune.questions import Ask, QuestionLog
from ragtune.tune.train import EmbedderTrainConfig, train_embedder
from ragtune.types import DocumentInfo, Principal, ProgressFn

OPERATOR = Principal("ragtune-tune", admin=True)  # training reads every document
_EXPORT_S = 60.0  # budgeted for loading + exporting the model to ONNX int8
QUERY_KINDS = ("questions", "ict")
MakeEmbedder = Callable[[str], Embedder]  # model folder or name -> embedder as configured
Activate = Callable[[str], None]  # sets [embedding] model in the workspace's settings


@dataclass(frozen=True)
class TuneOptions:
    """What ``ragtune tune retriever`` was asked for."""

    name: str = ""
    held_out: float = 0.2
    seed: int = 0
    max_docs: int | None = None
    max_minutes: float | None = None
    min_gain: float = 0.005
    queries: str = "questions"  # or "ict": sentences taken out of chunks, no model needed
    questions: int = 480  # train chunks the chat model writes a question for (~1-2 s each)
    eval_questions: int = 150  # held-out chunks it writes one for, to judge with
    eval_queries: int = 500  # ICT: held-out sentences to judge with
    min_eval_queries: int = 20
    activate: bool = True
    train: EmbedderTrainConfig = field(default_factory=EmbedderTrainConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.held_out < 1.0:
            raise InputError("--held-out", f"must be between 0 and 1, got {self.held_out}")
        if self.max_docs is not None and self.max_docs < 2:
            raise InputError("--max-docs", f"must be at least 2, got {self.max_docs}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise InputError("--max-minutes", f"must be positive, got {self.max_minutes}")
        if self.queries not in QUERY_KINDS:
            raise InputError("--queries", f"must be one of {', '.join(QUERY_KINDS)}, got {self.queries!r}")
        if self.questions < 2 or self.eval_questions < 1:
            raise InputError("--questions", f"must be at least 2 and --eval-questions at least 1, "
                             f"got {self.questions} and {self.eval_questions}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TuneOptions:
        return cls(**{**d, "train": EmbedderTrainConfig(**d.get("train", {}))})


def _lineage(info: DocumentInfo) -> dict[str, Any]:
    return {"doc_id": info.id, "source": info.source, "version": info.version,
            "content_hash": info.content_hash, "collection": info.collection}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


class TuneRun:
    """The stages of one run over a workspace's store, its current embedder and a run folder."""

    def __init__(self, folder: Path, store: Store, embedder: Embedder,
                 make_embedder: MakeEmbedder, activate: Activate, options: TuneOptions,
                 progress: ProgressFn | None = None, ask: Ask | None = None) -> None:
        self.folder, self.store, self.embedder = folder, store, embedder
        self.ask = ask
        self.make_embedder, self.activate_model = make_embedder, activate
        self.options, self.progress = options, progress
        self.deadline = (time.monotonic() + options.max_minutes * 60
                         if options.max_minutes else None)
        self.resumed: list[str] = []

    # ------------------------------------------------------------------ helpers
    def _tick(self, stage: str) -> Callable[[int, int], None]:
        def tick(done: int, total: int) -> None:
            if self.progress:
                self.progress(done, total, stage)
        return tick

    def _stage(self, file: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = self.folder / file
        if path.exists():
            self.resumed.append(file)
            return read_json_object(path)
        data = build()
        _write_json(path, data)
        return data

    def _passages(self, doc_ids: set[str] | None = None) -> list[Passage]:
        titles = {d.id: d.title for d in self.store.list_documents(None)}
        out = []
        for c in self.store.iter_chunks():
            if doc_ids is not None and c.doc_id not in doc_ids:
                continue
            full = chunk_embedding_text(c, titles.get(c.doc_id, ""))
            head = full[: len(full) - len(c.text)].rstrip("\n")
            out.append(Passage(c.id, c.doc_id, head, c.text))
        return out

    # ------------------------------------------------------------------ stages
    def split(self) -> dict[str, Any]:
        def build() -> dict[str, Any]:
            docs = {d.id: d for d in self.store.list_documents(None) if d.chunks}
            if len(docs) < 2:
                raise InputError("tune retriever", f"needs at least 2 ingested documents, the "
                                 f"store has {len(docs)}: ingest the team's documents first")
            chosen = cap_documents(sorted(docs), self.options.max_docs, self.options.seed)
            s = split_documents(chosen, held_out=self.options.held_out, seed=self.options.seed)
            return {"documents_in_store": len(docs), "capped_to": len(chosen),
                    "train": [_lineage(docs[d]) for d in s.train],
                    "held_out": [_lineage(docs[d]) for d in s.held_out]}
        return self._stage("split.json", build)

    def data(self, split: dict[str, Any]) -> tuple[list[Example], dict[str, Any]]:
        o = self.options
        train_path = self.folder / "train.jsonl"
        if train_path.exists() and (self.folder / "eval.json").exists():
            self.resumed += ["train.jsonl", "eval.json"]
            return ([Example(**row) for _, row in read_jsonl(train_path)],
                    read_json_object(self.folder / "eval.json"))
        train_ids = {d["doc_id"] for d in split["train"]}
        held_ids = {d["doc_id"] for d in split["held_out"]}
        train_passages = {p.chunk_id: p for p in self._passages(train_ids)}
        held = self._passages(held_ids)
        limit = o.train.max_steps * o.train.batch_size if not o.train.steps else \
            o.train.steps * o.train.batch_size
        if o.queries == "questions":
            held_queries, queries = self._questions(held, list(train_passages.values()),
                                                    min(limit, o.questions))
            corpus = {p.chunk_id: (p.doc_id, p.embedding_text()) for p in held}
        else:
            held_queries = ict_queries(held, seed=o.seed, keep_sentence=0.0, limit=o.eval_queries)
            corpus = held_out_corpus(held, held_queries)
            queries = ict_queries(train_passages.values(), seed=o.seed, limit=limit)
        evaluation = {"kind": o.queries, "queries": {q.chunk_id: q.query for q in held_queries},
                      "qrels": {q.chunk_id: {q.doc_id: 1} for q in held_queries},
                      "corpus": corpus}
        if not queries:
            raise InputError("tune retriever", (
                "no training queries: the train documents have no sentence of 5-40 words with "
                "enough text around it" if o.queries == "ict" else
                "no training queries: the chat model wrote no usable question for the train "
                "chunks; pass --queries ict to use their sentences"))
        vectors = dict(zip([q.query for q in queries],
                           embed_all(self.embedder, [q.query for q in queries],
                                     self._tick("embed queries"))))

        def dense(q: str) -> list[str]:
            return [c for c, _ in self.store.dense_ranking(vectors[q], 30, OPERATOR)]

        def lexical(q: str) -> list[str]:
            return [c for c, _ in self.store.lexical_ranking(q, 30, OPERATOR)]

        examples = mine_negatives(queries, [dense, lexical], train_passages, seed=o.seed,
                                  progress=self._tick("mine negatives"))
        if not examples:
            raise InputError("tune retriever", "no hard negatives found: it needs several train "
                             "documents the retriever can confuse")
        write_jsonl_atomic(train_path, (e.to_dict() for e in examples))
        _write_json(self.folder / "eval.json", evaluation)
        return examples, evaluation

    def _questions(self, held: list[Passage], train: list[Passage],
                   limit: int) -> tuple[list[PseudoQuery], list[PseudoQuery]]:
        """Questions for held-out chunks (the judge: all of them, it decides the run), then for
        train chunks until ``limit``, or until half the time left under ``max_minutes``."""
        if self.ask is None:
            raise InputError("tune retriever", "queries = 'questions' needs a chat model to "
                             "write them; pass --queries ict to use sentences of the chunks")
        o, log = self.options, QuestionLog(self.folder / "questions.jsonl")
        judge = log.queries(pick_passages(held, o.eval_questions, seed=o.seed), self.ask,
                            progress=self._tick("write questions to judge with"))
        until = (None if self.deadline is None
                 else time.monotonic() + (self.deadline - time.monotonic()) / 2)
        train_queries = log.queries(
            pick_passages(train, limit, seed=o.seed), self.ask,
            stop=lambda: until is not None and time.monotonic() > until,
            progress=self._tick("write questions to train on"))
        return judge, train_queries

    def _score(self, embedder: Embedder, evaluation: dict[str, Any], stage: str) -> dict[str, Any]:
        corpus = {k: (v[0], v[1]) for k, v in evaluation["corpus"].items()}
        return dense_scores(embedder, evaluation["queries"], evaluation["qrels"], corpus,
                            self._tick(stage))

    def _train_deadline(self, evaluation: dict[str, Any], speed: float, chunks: int) -> float | None:
        """When training must stop so that export, evaluation and re-embedding still fit."""
        if self.deadline is None:
            return None
        after = len(evaluation["corpus"]) + len(evaluation["queries"])
        after += chunks if self.options.activate else 0
        return self.deadline - _EXPORT_S - after / max(speed, 1e-3)

    def run(self) -> dict[str, Any]:
        """Every stage not yet done; returns the report (also ``tune.json``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        split = self.split()
        examples, evaluation = self.data(split)
        base = self._stage("baseline.json", lambda: {
            "embedder": self.embedder.name, **self._score(self.embedder, evaluation, "evaluate current")})
        model_dir = self.folder / "model"
        training_file = self.folder / "training.json"
        if training_file.exists():
            self.resumed.append("model")
            training = read_json_object(training_file)
        else:
            chunks = self.store.stats().get("chunks", 0)
            until = self._train_deadline(evaluation, float(base["passages_per_s"]), int(chunks))
            training = train_embedder(examples, model_dir, self.options.train,
                                      checkpoint=self.folder / "checkpoint", deadline=until,
                                      progress=self._tick("fine-tune"))
            _write_json(training_file, training)
        adapted_embedder = self.make_embedder(str(model_dir.resolve()))

        def export() -> dict[str, Any]:
            t0 = time.perf_counter()
            self._tick("export")(0, 1)
            adapted_embedder.embed_documents(["warm up"])  # builds the ONNX int8 cache
            self._tick("export")(1, 1)
            runtime = getattr(adapted_embedder, "active_runtime", "?")
            return {"model": str(model_dir.resolve()), "runtime": runtime,
                    "seconds": round(time.perf_counter() - t0, 1)}

        exported = self._stage("export.json", export)
        adapted = self._stage("adapted.json", lambda: {
            "embedder": adapted_embedder.name,
            **self._score(adapted_embedder, evaluation, "evaluate adapted")})
        decision = self._stage("decision.json", lambda: decide(base, adapted, self.options))
        activated: dict[str, Any] | None = None
        if decision["kept"] and self.options.activate:
            def activate() -> dict[str, Any]:
                t0 = time.perf_counter()
                n = reembed_store(self.store, adapted_embedder, self._tick("re-embed store"))
                self.activate_model(str(model_dir.resolve()))
                return {"chunks": n, "model": str(model_dir.resolve()),
                        "seconds": round(time.perf_counter() - t0, 1)}
            activated = self._stage("activated.json", activate)
        report = {"name": self.folder.name, "options": self.options.to_dict(),
                  "documents": {"in_store": split["documents_in_store"],
                                "used": split["capped_to"], "train": len(split["train"]),
                                "held_out": len(split["held_out"])},
                  "examples": len(examples), "current": base, "adapted": adapted,
                  "decision": decision, "training": training, "export": exported,
                  "activated": activated, "resumed": self.resumed,
                  "seconds_this_run": round(time.perf_counter() - started, 1),
                  "lineage": {"documents": split["train"], "held_out": split["held_out"]}}
        _write_json(self.folder / "tune.json", report)
        return report


def decide(current: dict[str, Any], adapted: dict[str, Any], options: TuneOptions) -> dict[str, Any]:
    """Keep the adapted embedder only when its held-out nDCG@10 beats the current one's by
    ``options.min_gain``, on at least ``options.min_eval_queries`` queries.

    >>> o = TuneOptions()
    >>> decide({"ndcg@10": 0.5, "queries": 100}, {"ndcg@10": 0.53, "queries": 100}, o)["kept"]
    True
    >>> decide({"ndcg@10": 0.5, "queries": 100}, {"ndcg@10": 0.502, "queries": 100}, o)["reason"]
    'held-out nDCG@10 0.5020 vs 0.5000 (gain +0.0020 < 0.005): the current embedder stays'
    """
    gain = round(float(adapted["ndcg@10"]) - float(current["ndcg@10"]), 4)
    line = (f"held-out nDCG@10 {adapted['ndcg@10']:.4f} vs {current['ndcg@10']:.4f} "
            f"(gain {gain:+.4f}")
    both = sorted(set(current.get("per_query", {})) & set(adapted.get("per_query", {})))
    if both:  # how sure: the paired bootstrap interval of the gain, reported beside it
        _, lo, hi = paired_bootstrap([adapted["per_query"][q] for q in both],
                                     [current["per_query"][q] for q in both])
        interval = {"gain_ci95": [round(lo, 4), round(hi, 4)]}
    else:
        interval = {}
    if int(current["queries"]) < options.min_eval_queries:
        return {"kept": False, "gain": gain, **interval,
                "reason": f"only {current['queries']} held-out pseudo-queries (fewer than "
                          f"{options.min_eval_queries}): too few to judge; the current embedder stays"}
    if gain >= options.min_gain:
        return {"kept": True, "gain": gain, **interval,
                "reason": f"{line} >= {options.min_gain}): adapted kept"}
    return {"kept": False, "gain": gain, **interval,
            "reason": f"{line} < {options.min_gain}): the current embedder stays"}


def reembed_store(store: Store, embedder: Embedder, progress: Callable[[int, int], None] | None = None,
                  ) -> int:
    """Embed every stored chunk with ``embedder`` and replace the store's vectors in one write.

    Vectors are computed first, outside the lock; under the write lock, chunks ingested in
    the meantime are embedded too, so no chunk keeps a vector of the other model.
    """
    def texts_of(wanted: set[str] | None) -> dict[str, str]:
        titles = {d.id: d.title for d in store.list_documents(None)}
        return {c.id: chunk_embedding_text(c, titles.get(c.doc_id, ""))
                for c in store.iter_chunks() if wanted is None or c.id not in wanted}

    texts = texts_of(None)
    vectors = dict(zip(texts, embed_all(embedder, list(texts.values()), progress)))
    with store.write_lock():
        late = texts_of(set(vectors))
        vectors.update(zip(late, embed_all(embedder, list(late.values()))))
        return store.replace_vectors(vectors)


# ------------------------------------------------------------------ the workspace's runs
def run_folders(root: Path) -> list[Path]:
    """Run folders under ``root`` (``<workspace>/embedders``), oldest first."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if (p / "options.json").exists()),
                  key=lambda p: (p / "options.json").stat().st_mtime)


def open_run(root: Path, options: TuneOptions, *, resume: bool) -> tuple[Path, TuneOptions]:
    """The run folder and the options to run with: a new run, or (``resume``, or a ``name``
    whose run is unfinished) the earlier run with its own options (``max_minutes`` from now)."""
    if resume and not options.name:
        unfinished = [p for p in run_folders(root) if not (p / "tune.json").exists()]
        if not unfinished:
            raise NotFound(f"no unfinished tune run in {root} to resume")
        folder = unfinished[-1]
    else:
        name = options.name or time.strftime("adapted-%Y%m%d-%H%M%S")
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise InputError("--name", f"may hold letters, digits, '-', '_' and '.', got {name!r}")
        folder = root / name
    if (folder / "tune.json").exists():
        raise InputError(f"tune run '{folder.name}'", f"already finished ({folder / 'tune.json'}); "
                         "pass another --name")
    if (folder / "options.json").exists():
        earlier = TuneOptions.from_dict(read_json_object(folder / "options.json"))
        return folder, replace(earlier, max_minutes=options.max_minutes)
    if resume and not options.name:
        raise NotFound(f"no unfinished tune run in {root} to resume")
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "options.json", replace(options, name=folder.name).to_dict())
    return folder, replace(options, name=folder.name)


def freshness(folder: Path, store: Store) -> Freshness:
    """Which documents a run trained on changed or went since (its lineage vs the store)."""
    report = folder / "tune.json"
    if not report.exists():
        raise NotFound(f"tune run '{folder.name}' has not finished ({folder})")
    lineage = read_json_object(report).get("lineage")
    return adapter_freshness(SimpleNamespace(name=folder.name, lineage=lineage), store)


def summaries(root: Path, store: Store, active_model: str) -> list[dict[str, Any]]:
    """Every run: finished or not, its scores and decision, whether the workspace uses it,
    and its freshness."""
    out = []
    for folder in run_folders(root):
        model = str((folder / "model").resolve())
        row: dict[str, Any] = {"name": folder.name, "finished": (folder / "tune.json").exists(),
                               "active": active_model == model}
        if row["finished"]:
            r = read_json_object(folder / "tune.json")
            f = freshness(folder, store)
            row |= {"current_ndcg@10": r["current"]["ndcg@10"],
                    "adapted_ndcg@10": r["adapted"]["ndcg@10"], "kept": r["decision"]["kept"],
                    "reason": r["decision"]["reason"], "documents": r["documents"],
                    "stale": f.stale, "freshness": f.summary()}
        out.append(row)
    return out
