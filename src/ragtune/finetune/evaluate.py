"""Base model vs adapter, side by side, on a held-out chat JSONL file.

>>> from ragtune.finetune.hf_generator import HFGenerator                                  # doctest: +SKIP
>>> g = HFGenerator("qwen2.5-0.5b", adapters_root=Path(".ragtune/adapters"))    # doctest: +SKIP
>>> r = evaluate_adapter(g, "support-style", Path("heldout.jsonl"), limit=10)   # doctest: +SKIP
>>> r["metrics"]["adapter"]["format_compliance"], r["metrics"]["base"]["format_compliance"]  # doctest: +SKIP
(1.0, 0.1)

For each example the *reference* is its last assistant message and the *prompt* is every
message before it. Both models are scored on the same loaded weights (the adapter is
switched off for the base, see :class:`~ragtune.finetune.hf_generator.HFGenerator`):

- ``loss``: mean negative log-likelihood per assistant token, over all assistant tokens of
  the file (token-weighted, labels from :func:`ragtune.finetune.train.tokenize_example`, so
  it is the training loss on unseen data); ``perplexity`` is ``exp(loss)``.
- ``exact_match`` and ``token_f1`` (SQuAD definitions) of the greedy generation against the
  reference.
- ``format_compliance``: the share of generations in the required format. With a regex it
  is ``re.search(pattern, output)``: the pattern is anchored exactly as written (add ``^``
  / ``$`` yourself). With a JSON schema the output (a surrounding Markdown code fence is
  removed first) must parse as JSON and pass :func:`check_json_schema` (the ``jsonschema``
  package when installed, else the built-in subset: type, required, properties, enum,
  items). With neither, :data:`DEFAULT_FORMAT_REGEX` (the sample data's citation) is used.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.errors import InputError
from ragtune.finetune.dataset import as_dicts, load_chat_jsonl
from ragtune.textmatch import exact_match, token_f1
from ragtune.types import ChatExample

if TYPE_CHECKING:
    from ragtune.finetune.hf_generator import HFGenerator

DEFAULT_FORMAT_REGEX = r"\[Source: [^\],]+, [^\]]+\]\s*$"
DEFAULT_MAX_LENGTH = 1024  # tokens per example for the loss when the adapter records none

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,),
    "number": (int, float), "boolean": (bool,), "null": (type(None),),
}


def _schema_errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        ok = any(isinstance(value, _TYPES.get(n, ())) and not (
            n in {"integer", "number"} and isinstance(value, bool)) for n in names)
        if not ok:
            return [f"{where}: expected {' or '.join(names)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']!r}")
    if isinstance(value, dict):
        errors += [f"{where}: missing required key {k!r}" for k in schema.get("required", ())
                   if k not in value]
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                errors += _schema_errors(value[key], sub, f"{where}.{key}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += _schema_errors(item, schema["items"], f"{where}[{i}]")
    return errors


def check_json_schema(value: Any, schema: dict[str, Any]) -> list[str]:
    """Problems of ``value`` against ``schema`` (empty list: valid).

    Uses ``jsonschema`` when it is installed; otherwise a hand-written subset of JSON
    Schema: ``type`` (a name or a list), ``enum``, ``required``, ``properties`` and
    ``items``; other keywords are ignored.

    >>> s = {"type": "object", "required": ["answer"], "properties": {"mood": {"enum": ["ok"]}}}
    >>> check_json_schema({"answer": "x", "mood": "ok"}, s)
    []
    >>> len(check_json_schema({"mood": "bad"}, s))  # 'answer' missing, 'bad' not in enum
    2
    """
    if JSONSCHEMA:
        import jsonschema

        validator = jsonschema.validators.validator_for(schema)(schema)
        return [e.message for e in validator.iter_errors(value)]
    return _schema_errors(value, schema)


def _has_jsonschema() -> bool:
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        return False
    return True


JSONSCHEMA = _has_jsonschema()
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?```\s*$", re.DOTALL)


def format_check(text: str, *, regex: str | None = None,
                 schema: dict[str, Any] | None = None) -> tuple[bool, str]:
    """``(ok, why)`` for one generation: regex search, or JSON parse + schema check."""
    if schema is not None:
        m = _FENCE.match(text)
        try:
            value = json.loads(m.group(1) if m else text)
        except json.JSONDecodeError as e:
            return False, f"not JSON ({e.msg})"
        problems = check_json_schema(value, schema)
        return (not problems), "; ".join(problems[:3])
    pattern = DEFAULT_FORMAT_REGEX if regex is None else regex
    return (re.search(pattern, text) is not None), ""


def split_prompt(example: ChatExample) -> tuple[list[dict[str, str]], str]:
    """``(messages before the last assistant message, that message's text)``."""
    msgs = as_dicts(example)
    last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    return msgs[:last], msgs[last]["content"]


def _nll(model: Any, row: dict[str, list[int]]) -> tuple[float, int]:
    """Summed NLL and number of labelled tokens of one tokenised example."""
    import torch
    import torch.nn.functional as F

    ids = torch.tensor([row["input_ids"]], device=model.device)
    labels = torch.tensor(row["labels"][1:], device=model.device)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
    keep = labels != -100
    loss = F.cross_entropy(logits[keep], labels[keep], reduction="sum")
    return float(loss), int(keep.sum())


def _score(generator: HFGenerator, adapter: str | None, examples: list[ChatExample], max_length: int,
           regex: str | None, schema: dict[str, Any] | None) -> tuple[dict[str, Any], list[dict]]:
    from ragtune.finetune.train import tokenize_example

    total_nll, total_tokens = 0.0, 0
    rows: list[dict[str, Any]] = []
    gen_tokens, gen_s = 0, 0.0
    with generator.activated(adapter) as model:
        for ex in examples:
            row = tokenize_example(generator.tokenizer, ex, max_length)
            nll, n = _nll(model, row) if row else (0.0, 0)
            total_nll, total_tokens = total_nll + nll, total_tokens + n
            prompt, reference = split_prompt(ex)
            done = generator.complete(prompt)
            gen_tokens += done.completion_tokens
            gen_s += done.timings.get("total_s", 0.0)
            ok, why = format_check(done.text, regex=regex, schema=schema)
            rows.append({"output": done.text, "loss": round(nll / n, 4) if n else None,
                         "exact_match": exact_match(done.text, [reference]),
                         "token_f1": round(token_f1(done.text, [reference]), 4),
                         "format_ok": ok, **({"format_problem": why} if why else {})})
    n = len(rows)
    loss = total_nll / total_tokens if total_tokens else None
    metrics = {
        "loss": None if loss is None else round(loss, 4),
        "perplexity": None if loss is None else round(math.exp(min(loss, 50.0)), 3),
        "exact_match": round(sum(r["exact_match"] for r in rows) / n, 4),
        "token_f1": round(sum(r["token_f1"] for r in rows) / n, 4),
        "format_compliance": round(sum(r["format_ok"] for r in rows) / n, 4),
        "mean_completion_tokens": round(gen_tokens / n, 1),
        "tokens_per_s": round(gen_tokens / gen_s, 2) if gen_s else None,
    }
    return metrics, rows


def evaluate_adapter(generator: HFGenerator, adapter: str, data_path: Path, *,
                     format_regex: str | None = None, json_schema: dict[str, Any] | None = None,
                     limit: int | None = None) -> dict[str, Any]:
    """Score the base model and ``adapter`` on ``data_path``; see the module doc for metrics.

    Returns ``{"adapter", "data", "examples", "format", "metrics": {"base", "adapter",
    "delta"}, "per_example": [...]}`` where ``delta`` is adapter minus base.
    """
    data_path = Path(data_path)
    if format_regex is not None and json_schema is not None:
        raise InputError("--format-regex/--json-schema", "give a regex or a JSON schema, not both")
    if format_regex is not None:
        try:
            re.compile(format_regex)
        except re.error as e:
            raise InputError("--format-regex", f"not a valid regular expression: {e}") from None
    if limit is not None and limit < 1:
        raise InputError("--limit", f"must be >= 1, got {limit}")
    examples = load_chat_jsonl(data_path)[:limit]
    if not examples:
        raise InputError(str(data_path), "no examples")
    generator.use_adapter(adapter)  # fail early (unknown adapter, other base) before any work
    from ragtune.finetune.adapters import AdapterRegistry

    folder = AdapterRegistry(generator.adapters_root).get(adapter).path
    run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    max_length = int((run.get("config") or {}).get("max_length") or DEFAULT_MAX_LENGTH)
    base_m, base_rows = _score(generator, None, examples, max_length, format_regex, json_schema)
    ad_m, ad_rows = _score(generator, adapter, examples, max_length, format_regex, json_schema)
    delta = {k: (None if ad_m[k] is None or base_m[k] is None else round(ad_m[k] - base_m[k], 4))
             for k in ("loss", "exact_match", "token_f1", "format_compliance")}
    per_example = []
    for ex, b, a in zip(examples, base_rows, ad_rows, strict=True):
        prompt, reference = split_prompt(ex)
        question = next((m["content"] for m in reversed(prompt) if m["role"] == "user"), "")
        per_example.append({"line": ex.line, "question": question, "reference": reference,
                            "base": b, "adapter": a})
    if json_schema is not None:
        fmt = {"kind": "json_schema",
               "validator": "jsonschema" if JSONSCHEMA else "built-in subset (type, required, "
                            "properties, enum, items)"}
    else:
        fmt = {"kind": "regex", "pattern": format_regex or DEFAULT_FORMAT_REGEX, "match": "re.search"}
    return {"adapter": adapter, "base_model": generator.base_model, "data": str(data_path),
            "examples": len(examples), "max_length": max_length, "format": fmt,
            "metrics": {"base": base_m, "adapter": ad_m, "delta": delta},
            "per_example": per_example}
