"""Settings: one frozen dataclass per area, loaded from ``ragtune.toml`` with overrides.

Precedence (lowest first): defaults, the workspace's ``ragtune.toml``, ``RAGTUNE_<AREA>_<KEY>``
environment variables (``RAGTUNE_RETRIEVAL_TOP_K=8``), explicit overrides from the caller.
Unknown areas or keys (in the file or in a ``RAGTUNE_*`` variable), values of the wrong
type (checked inside tables and lists too) and out-of-range values (``inf``/``nan`` included)
raise :class:`ConfigError` naming the key.

>>> s = Settings.from_dict({"retrieval": {"top_k": 3}})
>>> s.retrieval.top_k
3
>>> Settings.from_dict({"retrieval": {"top_kk": 3}})
Traceback (most recent call last):
...
ragtune.errors.ConfigError: unknown config key 'retrieval.top_kk' (known: ...)
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ragtune.errors import ConfigError


def cache_root() -> Path:
    """Where derived model files live (assembled GGUF, exported ONNX): ``$RAGTUNE_CACHE``,
    else ``~/.cache/ragtune``. Shared by every workspace on the machine.
    """
    root = os.environ.get("RAGTUNE_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "ragtune"


_BACKEND_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


def _help(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


def _field_type(f: dataclasses.Field) -> Any:
    if not isinstance(f.type, str):
        return f.type
    return eval(f.type, vars(typing) | {"__builtins__": __builtins__})


def _describe(typ: Any) -> str:
    """``list[str]`` -> "a list of strings" (for error messages)."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is list:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return f"a table of {_describe(args[1]).removeprefix('a ').removeprefix('an ')}s"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        typ, f"a {getattr(typ, '__name__', typ)}")


def _check_type(key: str, typ: Any, value: Any) -> None:
    """Raise ConfigError unless ``value`` is a ``typ``, checked all the way into tables and
    lists, and numbers are finite.

    >>> _check_type("access.users", dict[str, list[str]], {"ana": "hr"})
    Traceback (most recent call last):
    ...
    ragtune.errors.ConfigError: config key 'access.users.ana' must be a list of strings, got 'hr'
    """
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    ok: bool
    if origin is list:
        ok = isinstance(value, list)
        if ok:
            for i, item in enumerate(value):
                _check_type(f"{key}[{i}]", args[0], item)
    elif origin is dict:
        ok = isinstance(value, dict)
        if ok:
            for k, item in value.items():
                if not isinstance(k, str):
                    raise ConfigError(f"config key '{key}' must have string keys, got {k!r}")
                _check_type(f"{key}.{k}", args[1], item)
    elif typ is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise ConfigError(f"config key '{key}' must be a finite number, got {value!r}")
    elif typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, typ)
    if not ok:
        raise ConfigError(f"config key '{key}' must be {_describe(typ)}, got {value!r}")


def _validated(area: str) -> Any:
    """Class decorator (put it under ``@dataclass``): every field is type-checked before the
    class's own ``__post_init__`` range checks run, however the object was built."""

    def wrap(cls: Any) -> Any:
        own = cls.__dict__.get("__post_init__")

        def __post_init__(self: Any) -> None:
            for f in dataclasses.fields(self):
                _check_type(f"{area}.{f.name}", _field_type(f), getattr(self, f.name))
            if own is not None:
                own(self)

        cls.__post_init__ = __post_init__
        return cls

    return wrap


def _in_range(key: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ConfigError(f"{key} must be {lo:g}..{hi:g}, got {value!r}")


@dataclass(frozen=True)
@_validated("chunking")
class ChunkingSettings:
    max_tokens: int = _help("upper bound of a chunk, in embedding-model tokens", default=400)
    overlap: int = _help("tokens shared by consecutive chunks of one section", default=40)

    def __post_init__(self) -> None:
        if not 128 <= self.max_tokens <= 1024:
            raise ConfigError(f"chunking.max_tokens must be 128..1024, got {self.max_tokens}")
        if not 0 <= self.overlap < self.max_tokens // 2:
            raise ConfigError(
                f"chunking.overlap must be 0..{self.max_tokens // 2 - 1}, got {self.overlap}"
            )


@dataclass(frozen=True)
@_validated("ingest")
class IngestSettings:
    """Limits that refuse a pathological file early, with a reason, instead of letting it
    exhaust memory or time (the rest of the batch still goes in)."""

    max_file_mb: float = _help("files larger than this are refused with a clear error", default=50.0)
    max_pages: int = _help("PDF files with more pages than this are refused", default=5000)
    max_depth: int = _help("deepest nesting of JSON values or HTML elements a file may have",
                           default=128)
    max_unzipped_mb: float = _help("DOCX files that unpack to more than this are refused "
                                   "(zip bombs)", default=500.0)
    max_seconds: float = _help("parsing and chunking one file may take at most this long",
                               default=600.0)
    text_types: list[str] = _help(
        "further file types read as plain text, e.g. [\".rst\", \".adoc\"] (types no loader "
        "reads are skipped and counted, never failed)", default_factory=list)

    def __post_init__(self) -> None:
        if not 0 < self.max_file_mb <= 4096:
            raise ConfigError(f"ingest.max_file_mb must be > 0 and <= 4096, got {self.max_file_mb}")
        _in_range("ingest.max_pages", self.max_pages, 1, 1_000_000)
        _in_range("ingest.max_depth", self.max_depth, 8, 200)
        _in_range("ingest.max_unzipped_mb", self.max_unzipped_mb, 1, 100_000)
        _in_range("ingest.max_seconds", self.max_seconds, 1, 86_400)
        if any(not t.strip(". ") for t in self.text_types):
            raise ConfigError(f"ingest.text_types must be file types like \".rst\", got "
                              f"{self.text_types!r}")
        object.__setattr__(self, "text_types", [  # ".RST", "rst" -> ".rst"
            "." + t.strip().lower().lstrip(".") for t in self.text_types])


@dataclass(frozen=True)
@_validated("store")
class StoreSettings:
    """Where the documents, chunks, vectors and traces live (``ragtune.store.factory``)."""

    backend: str = _help("sqlite (one embedded file, the default); more backends register by "
                         "name (ragtune.stores entry points)", default="sqlite")
    path: str = _help("file or folder of an embedded backend, relative to the workspace "
                      "('' = the backend's default: store.db for sqlite)", default="")
    url: str = _help("address of a database server backend ('' = none)", default="")
    # BM25 lives in the store (terms are analysed at ingest). Defaults chosen by the average
    # nDCG@10 over the public sets of bench/retrieval_sets.py (docs/retrieval-quality.md).
    bm25_stemmer: str = _help("BM25 stemming: snowball (Snowball English, as bm25s) | light "
                              "(plurals, -ing, -ed) | none; a change re-analyses the store",
                              default="snowball")
    bm25_stopwords: str = _help("BM25 stopword list: english | short | none", default="english")
    bm25_k1: float = _help("BM25 term-frequency saturation k1", default=1.2)
    bm25_b: float = _help("BM25 length normalisation b (0..1)", default=0.75)
    quoted_phrases: str = _help("a quoted phrase in a question: boost (rows holding it rank "
                                "first) | filter (only rows holding it)", default="boost")
    postings_in_memory: bool = _help(
        "postgres: BM25 over a copy of the postings in each process (faster on large stores; "
        "~12 bytes per posting of memory, reloaded in the background after writes)",
        default=False)

    def __post_init__(self) -> None:
        if not _BACKEND_NAME.fullmatch(self.backend):
            raise ConfigError(f"store.backend must be a backend name like 'sqlite', got {self.backend!r}")
        if self.bm25_stemmer not in {"snowball", "light", "none"}:
            raise ConfigError(f"store.bm25_stemmer must be snowball, light or none, "
                              f"got {self.bm25_stemmer!r}")
        if self.bm25_stopwords not in {"english", "short", "none"}:
            raise ConfigError(f"store.bm25_stopwords must be english, short or none, "
                              f"got {self.bm25_stopwords!r}")
        if not 0.0 <= self.bm25_k1 <= 10.0:
            raise ConfigError(f"store.bm25_k1 must be 0..10, got {self.bm25_k1}")
        if not 0.0 <= self.bm25_b <= 1.0:
            raise ConfigError(f"store.bm25_b must be 0..1, got {self.bm25_b}")
        if self.quoted_phrases not in {"boost", "filter"}:
            raise ConfigError(f"store.quoted_phrases must be boost or filter, "
                              f"got {self.quoted_phrases!r}")


@dataclass(frozen=True)
@_validated("embedding")
class EmbeddingSettings:
    backend: str = _help("local | http | fake", default="local")
    model: str = _help("model name, folder or packaged model", default="all-MiniLM-L6-v2")
    base_url: str = _help("OpenAI-compatible base URL for the http backend", default="")
    api_key: str = _help("API key for the http backend", default="")
    batch_size: int = _help("texts per embedding batch", default=8)
    runtime: str = _help("onnx | torch: how the local model runs (onnx int8: ~2x plain "
                         "sentence-transformers on CPU, bench/embed_speed.py)", default="onnx")
    quantize: bool = _help("int8 weights for the local model (onnx: -0.002 nDCG@10; "
                           "torch: -0.0065)", default=True)
    dimension: int = _help("vector size of the fake backend", default=384)
    device: str = _help("auto | cpu | cuda: where the local model runs (auto: a CUDA GPU when "
                        "there is one, fp16, batches of 256; runtime/quantize are CPU options)",
                        default="auto")

    def __post_init__(self) -> None:
        if self.device not in {"auto", "cpu", "cuda"}:
            raise ConfigError(f"embedding.device must be auto, cpu or cuda, got {self.device!r}")
        if not _BACKEND_NAME.fullmatch(self.backend):  # known names: ragtune.embed.factory
            raise ConfigError(f"embedding.backend must be a backend name like local, http or "
                              f"fake, got {self.backend!r}")
        if self.batch_size < 1:
            raise ConfigError(f"embedding.batch_size must be >= 1, got {self.batch_size}")
        if self.runtime not in {"onnx", "torch"}:
            raise ConfigError(f"embedding.runtime must be onnx or torch, got {self.runtime!r}")
        _in_range("embedding.batch_size", self.batch_size, 1, 4096)
        _in_range("embedding.dimension", self.dimension, 1, 65_536)


RETRIEVAL_MODES = ("fused", "dense", "lexical")
# 'hybrid' named the dense + BM25 fusion until it was renamed, so that 'hybrid' means one
# thing: the router + adapter answer mode.
RETRIEVAL_MODE_ALIASES = {"hybrid": "fused"}


@dataclass(frozen=True)
@_validated("retrieval")
class RetrievalSettings:
    mode: str = _help("fused (dense + BM25 fused: what other tools call hybrid search) | dense | "
                      "lexical; 'hybrid' is the old name of fused", default="fused")
    top_k: int = _help("chunks given to the model", default=5)
    # Fusion defaults: chosen by the average nDCG@10 over the public sets of
    # bench/retrieval_sets.py (--sweep), never the sample KB; docs/retrieval-quality.md has
    # every set's figures and the variants tried (RRF k 10-100, min-max and z-score weights
    # 0.3-0.8, candidates 20-200). Min-max weighted fusion at 0.5 over 200 candidates per
    # method was best on average; 0.7 over 50 (chosen on the sample KB) was 0.01 lower.
    candidates: int = _help("candidates per method before fusion", default=200)
    fusion: str = _help("how fused mode fuses the two rankings: weighted (min-max normalised "
                        "scores) | zscore (z-scored scores) | rrf (reciprocal ranks)",
                        default="weighted")
    dense_weight: float = _help("weight of the dense score in weighted/zscore fusion (0..1)",
                                default=0.5)
    rrf_k: int = _help("reciprocal-rank-fusion constant", default=60)
    min_similarity: float = _help(
        "relevance floor: if no retrieved chunk has a dense cosine similarity at least this "
        "high, the answer is 'not found in the knowledge base' (no generation). 0.33 from the "
        "best dense cosine of 167 in-scope and 15 off-topic questions on three corpora with the "
        "packaged MiniLM (bench/docs_qa.py --floors, bench/qa_public.py): in-scope minimum 0.380 "
        "(Typer docs), 0.366 (HotpotQA), 0.429 (sample KB); off-topic maximum 0.310 (Typer "
        "docs), 0.305 (HotpotQA). 0.30 let 2 of the 15 off-topic questions through",
        default=0.33,
    )

    def __post_init__(self) -> None:
        if self.mode in RETRIEVAL_MODE_ALIASES:  # the old name keeps working
            object.__setattr__(self, "mode", RETRIEVAL_MODE_ALIASES[self.mode])
        if self.mode not in RETRIEVAL_MODES:
            raise ConfigError(f"retrieval.mode must be fused, dense or lexical, got {self.mode!r}")
        if self.top_k < 1:
            raise ConfigError(f"retrieval.top_k must be greater than 0, got {self.top_k}")
        if self.fusion not in {"weighted", "rrf", "zscore"}:
            raise ConfigError(f"retrieval.fusion must be weighted, rrf or zscore, "
                              f"got {self.fusion!r}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ConfigError(f"retrieval.dense_weight must be 0..1, got {self.dense_weight}")
        if self.candidates < self.top_k:
            raise ConfigError("retrieval.candidates must be >= retrieval.top_k")
        if not -1.0 <= self.min_similarity <= 1.0:
            raise ConfigError(f"retrieval.min_similarity must be -1..1, got {self.min_similarity}")
        _in_range("retrieval.top_k", self.top_k, 1, 10_000)
        _in_range("retrieval.candidates", self.candidates, 1, 100_000)
        _in_range("retrieval.rrf_k", self.rrf_k, 1, 100_000)


@dataclass(frozen=True)
@_validated("generation")
class GenerationSettings:
    backend: str = _help("local (llama.cpp on a GGUF file) | http (OpenAI-compatible) | fake", default="local")
    model: str = _help("GGUF path; 'qwen2.5-0.5b' for the packaged Qwen2.5-Coder-0.5B-Instruct "
                       "(GGUF Q4_K_M), 'qwen2.5-1.5b' for the larger packaged "
                       "Qwen2.5-Coder-1.5B-Instruct (pip install 'ragtune[local-large]'); "
                       "model name for http", default="qwen2.5-0.5b")
    base_url: str = _help("OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1", default="")
    api_key: str = _help("API key for the http backend", default="")
    max_tokens: int = _help("most tokens an answer may have", default=120)
    temperature: float = _help("sampling temperature (0 = greedy)", default=0.0)
    context_tokens: int = _help("model context window used", default=4096)
    source_tokens: int = _help(
        "most tokens of retrieved text put in a prompt (best hits first; at least one). "
        "Prompt processing dominates time-to-first-token on a CPU: ~90 tokens/s for the "
        "packaged 0.5B model on 2 cores. 300 instead of 450 cut the median first token by "
        "~26% on the sample KB with the same answers found (bench/ask_latency.py)", default=300)
    threads: int = _help("CPU threads for local generation (0 = all cores)", default=0)
    timeout_s: float = _help("HTTP timeout", default=120.0)
    adapter_models: dict[str, str] = _help(
        "http backend: adapter -> the model name the server serves it under. Modes finetuned "
        "and hybrid send an adapter's own name as the request's model by default, as vLLM "
        "names adapters loaded with --lora-modules NAME=PATH", default_factory=dict)

    def __post_init__(self) -> None:
        if not _BACKEND_NAME.fullmatch(self.backend):  # known names: ragtune.generate.factory
            raise ConfigError(f"generation.backend must be a backend name like local, http or "
                              f"fake, got {self.backend!r}")
        if self.max_tokens < 1:
            raise ConfigError(f"generation.max_tokens must be >= 1, got {self.max_tokens}")
        if self.source_tokens < 1:
            raise ConfigError(f"generation.source_tokens must be >= 1, got {self.source_tokens}")
        if self.backend == "http" and not self.base_url:
            raise ConfigError("generation.base_url is required when generation.backend = 'http'")
        _in_range("generation.max_tokens", self.max_tokens, 1, 1_000_000)
        _in_range("generation.temperature", self.temperature, 0.0, 10.0)
        _in_range("generation.context_tokens", self.context_tokens, 16, 10_000_000)
        _in_range("generation.source_tokens", self.source_tokens, 1, 10_000_000)
        _in_range("generation.threads", self.threads, 0, 4096)
        if not 0 < self.timeout_s <= 86_400:
            raise ConfigError(f"generation.timeout_s must be > 0 and <= 86400, got {self.timeout_s}")
        for adapter, model in self.adapter_models.items():
            if not model.strip():
                raise ConfigError(f"config key 'generation.adapter_models.{adapter}' is empty: "
                                  "give the model name the server serves the adapter under")


@dataclass(frozen=True)
@_validated("access")
class AccessSettings:
    """Users and their groups. ``[access.users] ana = ["hr"]``."""

    users: dict[str, list[str]] = _help("user -> groups", default_factory=dict)
    admins: list[str] = _help("users who may read everything", default_factory=list)

    def __post_init__(self) -> None:
        # Types are checked already (a string is not a list of groups: "hr" is not h, r).
        for user, groups in self.users.items():
            if not user.strip():
                raise ConfigError("config key 'access.users' has an empty user name")
            if any(not g.strip() for g in groups):
                raise ConfigError(f"config key 'access.users.{user}' has an empty group name")
        if any(not a.strip() for a in self.admins):
            raise ConfigError("config key 'access.admins' has an empty user name")


ANSWER_MODES = ("base", "rag", "finetuned", "hybrid")


@dataclass(frozen=True)
@_validated("answer")
class AnswerSettings:
    """How ``ragtune ask`` answers when no ``--mode``/``--adapter`` is given."""

    mode: str = _help("base (model alone) | rag (retrieve, base model answers) | finetuned "
                      "(adapter alone) | hybrid (route, retrieve if needed, adapter answers)",
                      default="rag")
    adapter: str = _help("LoRA adapter for the finetuned and hybrid modes ('' = none)", default="")
    unsupported: str = _help(
        "what happens to an answer sentence no retrieved source supports: remove (never shown; "
        "the trace keeps it) | flag (shown, listed as unsupported)", default="remove")
    fallback: str = _help(
        "when no sentence of the model's answer is supported: quote (show the source sentence "
        "that answers the question, if one does) | refuse", default="quote")
    max_sentences: int = _help(
        "stop generating once this many supported sentences are shown (0 = no limit): the "
        "prompt asks for one to three sentences; small models ramble past them", default=3)
    min_support: float = _help(
        "share of an answer sentence's content words that one window of 3 sentences of its "
        "source must hold for the sentence to count as supported. 0.7: precision 0.82, recall "
        "0.88 on bench/support_precision.py (0.5: 0.74, 0.88); code names, numbers and "
        "polarity must match whatever the share", default=0.7)
    injections: str = _help(
        "instruction-like text in retrieved sources ('SYSTEM:', 'ignore previous "
        "instructions', hidden comments...): mark (kept, labelled as quoted data) | drop "
        "(replaced by a placeholder) | off (not scanned). Never counted as support unless off",
        default="mark")

    def __post_init__(self) -> None:
        if self.mode not in ANSWER_MODES:
            raise ConfigError(f"answer.mode must be one of {', '.join(ANSWER_MODES)}, "
                              f"got {self.mode!r}")
        if self.max_sentences < 0:
            raise ConfigError(f"answer.max_sentences must be >= 0, got {self.max_sentences}")
        if not 0.0 <= self.min_support <= 1.0:
            raise ConfigError(f"answer.min_support must be 0..1, got {self.min_support}")
        for key, allowed in (("unsupported", ("remove", "flag")), ("fallback", ("quote", "refuse")),
                             ("injections", ("mark", "drop", "off"))):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"answer.{key} must be one of {', '.join(allowed)}, "
                                  f"got {getattr(self, key)!r}")


@dataclass(frozen=True)
@_validated("routing")
class RoutingSettings:
    """The intent router used by hybrid mode. ``[routing.routes] hr = ["hr"]``."""

    router: str = _help("name of a router trained with 'ragtune route train' ('' = no routing: "
                        "every question retrieves)", default="")
    min_confidence: float = _help("below this confidence the question retrieves from every "
                                  "collection the user may read", default=0.5)
    routes: dict[str, list[str]] = _help(
        "domain label -> collections it retrieves from (a label not listed maps to the "
        "collection of the same name)", default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError(f"routing.min_confidence must be 0..1, got {self.min_confidence}")


@dataclass(frozen=True)
@_validated("costs")
class CostSettings:
    """Prices used to report cost per query and set-up cost (``ragtune eval``/``compare``)."""

    compute_per_hour: float = _help("price of one hour of the machine running local models "
                                    "and training (USD)", default=0.10)
    hosted: dict[str, list[float]] = _help(
        "hosted model name -> [USD per million prompt tokens, USD per million completion "
        "tokens]; models not listed are priced by compute time", default_factory=dict)

    def __post_init__(self) -> None:
        if self.compute_per_hour < 0:
            raise ConfigError(f"costs.compute_per_hour must be >= 0, got {self.compute_per_hour}")
        for name, prices in self.hosted.items():
            if len(prices) != 2 or any(p < 0 for p in prices):
                raise ConfigError(f"costs.hosted.{name} must be [prompt_usd_per_mtok, "
                                  f"completion_usd_per_mtok], got {prices!r}")


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, key: str = "duration") -> float:
    """Seconds in a duration like ``90d``, ``12h``, ``2w``, ``30m`` or ``45s``.

    >>> parse_duration("7d"), parse_duration("1.5h")
    (604800.0, 5400.0)
    >>> parse_duration("soon", "monitor.retention")
    Traceback (most recent call last):
    ...
    ragtune.errors.ConfigError: monitor.retention must be a duration like 90d, 12h or 2w, got 'soon'
    """
    m = _DURATION.fullmatch(str(text))
    if not m:
        raise ConfigError(f"{key} must be a duration like 90d, 12h or 2w, got {text!r}")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


# Alert thresholds: a name ending in _min fires below it, one ending in _max above it.
MONITOR_ALERTS = (
    "groundedness_min", "citation_support_min", "refusal_rate_max", "not_found_rate_max",
    "unsupported_rate_max", "thumbs_down_rate_max", "latency_p95_s_max", "stale_documents_max",
    "stale_adapter_answers_max", "gap_questions_max", "question_drift_max",
    "route_share_change_max")


@dataclass(frozen=True)
class MonitorSettings:
    """What is recorded of each answer and what ``ragtune monitor`` checks.

    ``[monitor.max_age] policies = "90d"`` (``"*"``: every other collection);
    ``[monitor.alerts] refusal_rate_max = 0.3``.
    """

    keep_questions: bool = _help("record the question text of each answer (false: no question "
                                 "text is stored; gaps are then named by documents, not "
                                 "questions)", default=True)
    retention: str = _help("answer records older than this are deleted ('' = keep them); "
                           "applied when answers are recorded and by 'ragtune monitor purge'",
                           default="90d")
    period: str = _help("default window of 'ragtune monitor' (compared with the window before)",
                        default="7d")
    max_age: dict[str, str] = _help("collection -> longest a document may go without an "
                                    "update ('*': any collection not listed)",
                                    default_factory=dict)
    idle_after: str = _help("a collection with no document updated for this long is reported "
                            "as idle", default="60d")
    alerts: dict[str, float] = _help(
        f"thresholds 'ragtune monitor check' fails on ({', '.join(MONITOR_ALERTS)})",
        default_factory=lambda: {"groundedness_min": 0.7, "refusal_rate_max": 0.5,
                                 "unsupported_rate_max": 0.2, "thumbs_down_rate_max": 0.3,
                                 "stale_documents_max": 0, "stale_adapter_answers_max": 0})
    min_answers: int = _help("rate alerts and change tests need at least this many answers",
                             default=20)
    alpha: float = _help("significance level of the change and drift tests", default=0.05)
    gap_distance: float = _help(
        "average cosine distance within one knowledge-gap cluster; with MiniLM, paraphrases "
        "of one question are ~0.5 apart and unrelated questions ~0.95", default=0.65)
    webhook: str = _help("URL 'ragtune monitor check' POSTs a JSON alert to ('' = none)",
                         default="")

    def __post_init__(self) -> None:
        for key in ("retention", "period", "idle_after"):
            value = getattr(self, key)
            if value or key != "retention":
                parse_duration(value, f"monitor.{key}")
        for collection, age in self.max_age.items():
            parse_duration(age, f"monitor.max_age.{collection}")
        for name, value in self.alerts.items():
            if name not in MONITOR_ALERTS:
                raise ConfigError(f"unknown alert 'monitor.alerts.{name}' (known: "
                                  f"{', '.join(MONITOR_ALERTS)})")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"monitor.alerts.{name} must be a number, got {value!r}")
        if self.min_answers < 1:
            raise ConfigError(f"monitor.min_answers must be >= 1, got {self.min_answers}")
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"monitor.alpha must be between 0 and 1, got {self.alpha}")
        if not 0.0 < self.gap_distance < 2.0:
            raise ConfigError(f"monitor.gap_distance must be in (0, 2), got {self.gap_distance}")
        if self.webhook and not re.match(r"https?://", self.webhook):
            raise ConfigError(f"monitor.webhook must be an http(s) URL, got {self.webhook!r}")

    @property
    def retention_s(self) -> float | None:
        return parse_duration(self.retention, "monitor.retention") if self.retention else None

    def max_age_s(self, collection: str) -> float | None:
        """The longest ``collection``'s documents may go without an update (None: no limit)."""
        age = self.max_age.get(collection, self.max_age.get("*"))
        return parse_duration(age) if age else None


@dataclass(frozen=True)
class ServerSettings:
    """``ragtune serve``: the HTTP service (docs/server.md)."""

    host: str = _help("address to listen on (127.0.0.1 = this machine only)", default="127.0.0.1")
    port: int = _help("TCP port", default=8080)
    workers: int = _help("server processes (each loads its own models; see docs/server.md)",
                         default=1)
    max_upload_mb: float = _help("largest request body, uploads included (413 above it)",
                                 default=50.0)
    generation_slots: int = _help(
        "answers generated at once (0 = 1 for the local llama.cpp model, which answers one "
        "request at a time, 4 for an http generation server)", default=0)
    max_waiting: int = _help("questions in progress at once, all users together; more are "
                             "answered 503 with Retry-After", default=64)
    max_waiting_per_user: int = _help("questions in progress at once for one user; more are "
                                      "answered 429 with Retry-After", default=8)
    uploads: str = _help("folder (relative to the workspace) where uploaded files are kept "
                         "and ingested from", default="uploads")
    sync_roots: list[str] = _help("folders an admin may re-sync through the API (empty: any "
                                  "folder the server can read)", default_factory=list)

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"server.port must be 1..65535, got {self.port}")
        if self.workers < 1:
            raise ConfigError(f"server.workers must be >= 1, got {self.workers}")
        if self.max_upload_mb <= 0:
            raise ConfigError(f"server.max_upload_mb must be > 0, got {self.max_upload_mb}")
        if self.generation_slots < 0:
            raise ConfigError(f"server.generation_slots must be >= 0, got {self.generation_slots}")
        if self.max_waiting < 1 or self.max_waiting_per_user < 1:
            raise ConfigError("server.max_waiting and server.max_waiting_per_user must be >= 1")


@dataclass(frozen=True)
class AuthSettings:
    """Who may call ``ragtune serve``: API keys, single sign-on, anonymous (docs/server.md)."""

    anonymous: bool = _help("requests without credentials read public documents (off: 401)",
                            default=False)
    keys_file: str = _help("API key hashes, relative to the workspace ('ragtune keys')",
                           default="keys.json")
    oidc_issuer: str = _help("OpenID Connect issuer whose ID tokens are accepted as Bearer "
                             "tokens ('' = off)", default="")
    oidc_audience: str = _help("the client id the ID tokens must be issued to", default="")
    oidc_jwks: str = _help("the issuer's signing keys: a JWKS URL, a JWKS or PEM file ('' = "
                           "the jwks_uri of the issuer's discovery document)", default="")
    user_claim: str = _help("ID token claim naming the user (falls back to email, then sub)",
                            default="preferred_username")
    groups_claim: str = _help("ID token claim listing the user's groups", default="groups")
    group_map: dict[str, str] = _help(
        "identity-provider group -> ragtune group; groups not listed keep their name",
        default_factory=dict)
    admin_groups: list[str] = _help("identity-provider groups whose members are admins",
                                    default_factory=list)
    proxy_user_header: str = _help("header a trusted reverse proxy sets to the signed-in user "
                                   "('' = off), e.g. X-Forwarded-User", default="")
    proxy_groups_header: str = _help("header with that user's groups, comma-separated",
                                     default="X-Forwarded-Groups")
    trusted_proxies: list[str] = _help("client addresses whose proxy headers are believed",
                                       default_factory=lambda: ["127.0.0.1", "::1"])

    def __post_init__(self) -> None:
        if self.oidc_issuer and not self.oidc_audience:
            raise ConfigError("auth.oidc_audience is required when auth.oidc_issuer is set "
                              "(the client id your identity provider issues tokens to)")


_AREAS = {
    "store": StoreSettings,
    "chunking": ChunkingSettings,
    "ingest": IngestSettings,
    "embedding": EmbeddingSettings,
    "retrieval": RetrievalSettings,
    "generation": GenerationSettings,
    "access": AccessSettings,
    "answer": AnswerSettings,
    "routing": RoutingSettings,
    "costs": CostSettings,
    "monitor": MonitorSettings,
    "server": ServerSettings,
    "auth": AuthSettings,
}


def _coerce(area: str, f: dataclasses.Field, value: Any) -> Any:
    """Convert a TOML/env value to the field's type, or raise naming ``area.key``."""
    key = f"{area}.{f.name}"
    typ = _field_type(f)
    if typing.get_origin(typ) in (dict, list) or isinstance(typ, types.GenericAlias):
        _check_type(key, typ, value)  # names the exact entry: 'access.users.ana'
        return value
    try:
        if typ is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in {"1", "0", "true", "false", "yes", "no"}:
                    raise ValueError(value)
                return low in {"1", "true", "yes"}
            if not isinstance(value, bool):
                raise ValueError(value)
            return value
        if typ is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        if typ in (int, float) and isinstance(value, bool):
            raise ValueError(value)
        converted = typ(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key '{key}' must be {_describe(typ)}, got {value!r}") from None
    if typ is float and not math.isfinite(converted):
        raise ConfigError(f"config key '{key}' must be a finite number, got {value!r}")
    return converted


# ``RAGTUNE_*`` variables that are not settings. Every other ``RAGTUNE_<AREA>_<KEY>`` must
# name a setting: a typo (RAGTUNE_RETREIVAL_TOP_K) is an error, not silently ignored.
ENV_NOT_SETTINGS = frozenset({"RAGTUNE_HOME", "RAGTUNE_CACHE", "RAGTUNE_CHROMIUM",
                              "RAGTUNE_JUDGE_API_KEY"})
_ENV_OTHER_PREFIXES = ("RAGTUNE_TEST_",)  # test-suite switches


def _env_setting(name: str) -> tuple[str, str] | None:
    """``RAGTUNE_RETRIEVAL_TOP_K`` -> ("retrieval", "top_k"); None for variables that are not
    settings; ConfigError for a ``RAGTUNE_`` variable that names no area.

    >>> _env_setting("RAGTUNE_RETRIEVAL_TOP_K"), _env_setting("PATH"), _env_setting("RAGTUNE_HOME")
    (('retrieval', 'top_k'), None, None)
    >>> _env_setting("RAGTUNE_RETREIVAL_TOP_K")
    Traceback (most recent call last):
    ...
    ragtune.errors.ConfigError: environment variable RAGTUNE_RETREIVAL_TOP_K names no config section (known: ...
    """
    if (not name.startswith("RAGTUNE_") or name in ENV_NOT_SETTINGS
            or name.startswith(_ENV_OTHER_PREFIXES)):
        return None
    rest = name[len("RAGTUNE_"):].lower()
    for area in _AREAS:
        if rest.startswith(area + "_") and len(rest) > len(area) + 1:
            key = rest[len(area) + 1:]
            if area == "access" or key in {"routes", "hosted", "max_age", "alerts", "group_map"}:
                raise ConfigError(f"environment variable {name}: tables (users, groups, routes, "
                                  "prices, age limits, alerts, group_map) can only be set in "
                                  "ragtune.toml")
            return area, key
    raise ConfigError(
        f"environment variable {name} names no config section (known: "
        f"{', '.join('RAGTUNE_' + a.upper() + '_<KEY>' for a in _AREAS)}; "
        f"not settings: {', '.join(sorted(ENV_NOT_SETTINGS))})")


@dataclass(frozen=True)
class Settings:
    """All settings. ``Settings.load(workspace_dir)`` is what the workspace uses."""

    store: StoreSettings = field(default_factory=StoreSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    costs: CostSettings = field(default_factory=CostSettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Settings:
        areas: dict[str, Any] = {}
        for area, values in data.items():
            if area not in _AREAS:
                raise ConfigError(f"unknown config section '{area}' in {source} (known: {', '.join(_AREAS)})")
            if not isinstance(values, dict):
                raise ConfigError(f"config section '{area}' must be a table, got {values!r}")
            klass = _AREAS[area]
            fields = {f.name: f for f in dataclasses.fields(klass)}
            kwargs = {}
            for key, value in values.items():
                if key not in fields:
                    raise ConfigError(
                        f"unknown config key '{area}.{key}' (known: {', '.join(fields)})"
                    )
                kwargs[key] = _coerce(area, fields[key], value)
            areas[area] = klass(**kwargs)
        return cls(**areas)

    @classmethod
    def load(cls, path: Path | None = None, env: dict[str, str] | None = None,
             overrides: dict[str, dict[str, Any]] | None = None) -> Settings:
        """Load ``path`` (a ragtune.toml; missing is fine), then env, then overrides."""
        data: dict[str, dict[str, Any]] = {}
        if path is not None and path.exists():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"{path}: not valid TOML: {e}") from None
        env = os.environ if env is None else env
        for name, value in env.items():
            if area_key := _env_setting(name):
                data.setdefault(area_key[0], {})[area_key[1]] = value
        for area, values in (overrides or {}).items():
            data.setdefault(area, {}).update(values)
        return cls.from_dict(data, source=str(path) if path else "config")

    def to_dict(self) -> dict[str, Any]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in _AREAS}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def replace(self, area: str, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{area: dataclasses.replace(getattr(self, area), **changes)})
