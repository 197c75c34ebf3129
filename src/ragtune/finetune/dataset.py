"""Chat fine-tuning data: load, validate, convert, split and hash chat JSONL files.

The format is OpenAI's chat fine-tuning format: one JSON object per line,
``{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}``,
where an assistant message may carry ``"weight": 0`` (do not train on it) or ``1``.
An optional top-level ``"metadata"`` object (lineage: which document a synthetic example
came from) is allowed and ignored by training.

>>> import json, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "d.jsonl"
>>> row = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}
>>> _ = p.write_text("\\n".join(json.dumps(row | {"n": i}) for i in range(2)))
>>> r = validate_dataset(p)
>>> r.ok, [e.code for e in r.errors]
(False, ['unknown_key', 'unknown_key', 'too_few_examples'])

Design choices: exact duplicate conversations are a *warning* naming both lines (they
over-weight one example but do not break training); personal data (emails, phone numbers,
Luhn-valid card numbers) are warnings, because only the user can tell whether a match is real.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import InputError
from ragtune.jsonl import jsonl_lines
from ragtune.types import ChatExample, ChatMessage

ROLES = ("system", "user", "assistant")
TOP_KEYS = frozenset({"messages", "metadata"})
MESSAGE_KEYS = frozenset({"role", "content", "weight", "name"})
MIN_EXAMPLES = 10  # fewer is an error: nothing useful can be learnt or measured
RECOMMENDED_EXAMPLES = 50  # fewer is a warning


@dataclass(frozen=True)
class Issue:
    """One problem found in a dataset. ``line`` is 1-based; None for whole-file problems."""

    line: int | None
    code: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


@dataclass
class ValidationReport:
    """Everything ``validate_dataset`` found. ``ok`` is False when there is any error."""

    path: str
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    token_stats: dict[str, float] = field(default_factory=dict)
    epoch_tokens: int = 0
    token_counter: str = "estimate (characters / 4)"

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "errors": [asdict(e) for e in self.errors],
            "warnings": [asdict(w) for w in self.warnings],
            "counts": dict(self.counts),
            "token_stats": dict(self.token_stats),
            "epoch_tokens": self.epoch_tokens,
            "token_counter": self.token_counter,
        }


# ---------------------------------------------------------------- personal data


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?!\w)")


def luhn_ok(digits: str) -> bool:
    """Luhn checksum of a digit string (card numbers pass it, random digits mostly do not).

    >>> luhn_ok("4111111111111111"), luhn_ok("4111111111111112")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_personal_data(text: str) -> list[tuple[str, str]]:
    """``(kind, masked match)`` for emails, phone numbers and Luhn-valid card numbers.

    >>> find_personal_data("mail ana@example.com or call +1 415-555-0132, card 4111 1111 1111 1111")
    [('email', 'a***@example.com'), ('card', '****1111'), ('phone', '***0132')]
    """
    found: list[tuple[str, str]] = []
    taken: list[tuple[int, int]] = []
    for m in _EMAIL.finditer(text):
        found.append(("email", m.group()[0] + "***@" + m.group().split("@", 1)[1]))
        taken.append(m.span())
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            found.append(("card", "****" + digits[-4:]))
            taken.append(m.span())
    for m in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if not 7 <= len(digits) <= 15 or any(a < m.end() and m.start() < b for a, b in taken):
            continue
        # Dates and versions (2024-01-15, 1.2.3) have groups this short; phones do not.
        if re.fullmatch(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}", m.group()):
            continue
        found.append(("phone", "***" + digits[-4:]))
    return found


# ---------------------------------------------------------------- one line


def _check_line(obj: Any, line: int) -> tuple[ChatExample | None, list[Issue]]:
    """Parse one decoded JSON value; return the example (None when unusable) and all issues."""
    issues: list[Issue] = []

    def err(code: str, msg: str) -> None:
        issues.append(Issue(line, code, msg))

    if not isinstance(obj, dict):
        err("not_object", f"expected a JSON object, got {type(obj).__name__}")
        return None, issues
    for key in sorted(set(obj) - TOP_KEYS):
        err("unknown_key", f"unknown key {key!r} (allowed: messages, metadata)")
    msgs = obj.get("messages")
    if not isinstance(msgs, list) or not msgs:
        err("no_messages", "'messages' must be a non-empty list")
        return None, issues
    parsed: list[ChatMessage] = []
    for i, m in enumerate(msgs, 1):
        where = f"message {i}"
        if not isinstance(m, dict):
            err("message_not_object", f"{where} is not an object")
            continue
        for key in sorted(set(m) - MESSAGE_KEYS):
            err("unknown_key", f"{where}: unknown key {key!r} (allowed: role, content, weight, name)")
        role, content, weight = m.get("role"), m.get("content"), m.get("weight")
        if "role" not in m:
            err("missing_role", f"{where} has no 'role'")
        elif role not in ROLES:
            err("unknown_role", f"{where}: unknown role {role!r} (allowed: {', '.join(ROLES)})")
        if "content" not in m:
            err("missing_content", f"{where} has no 'content'")
        elif not isinstance(content, str):
            err("bad_content", f"{where}: 'content' must be a string, got {type(content).__name__}")
        elif not content.strip():
            err("empty_content", f"{where} has empty content")
        if "weight" in m:
            if role != "assistant":
                err("bad_weight", f"{where}: 'weight' is only allowed on assistant messages")
            elif weight not in (0, 1) or isinstance(weight, bool):
                err("bad_weight", f"{where}: 'weight' must be 0 or 1, got {weight!r}")
        if isinstance(role, str) and isinstance(content, str):
            parsed.append(ChatMessage(role, content, weight if weight in (0, 1) else None))
    roles = [m.role for m in parsed]
    if len(parsed) == len(msgs) and all(r in ROLES for r in roles):
        if "assistant" not in roles:
            err("no_assistant", "no assistant message: nothing to learn")
        else:
            body = roles[1:] if roles[0] == "system" else roles
            expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(body))]
            if body != expected or body[-1] != "assistant":
                err(
                    "role_order",
                    f"roles out of order: {' > '.join(roles)} (expected an optional system message, "
                    "then user and assistant alternating, ending with assistant)",
                )
    if issues:
        return None, issues
    return ChatExample(messages=tuple(parsed), line=line), issues


def _decode(raw: str, line: int) -> tuple[Any, Issue | None]:
    try:
        return json.loads(raw), None
    except json.JSONDecodeError as e:
        return None, Issue(line, "invalid_json", f"not valid JSON ({e.msg} at column {e.colno})")


def load_chat_jsonl(path: str | Path) -> list[ChatExample]:
    """Read a chat JSONL file; raise :class:`InputError` naming the first bad line.

    Blank lines are skipped. Use :func:`validate_dataset` to see every problem at once.
    """
    path = Path(path)
    out: list[ChatExample] = []
    for n, raw in jsonl_lines(path):
        obj, bad = _decode(raw, n)
        if bad:
            raise InputError(str(path), bad.message, line=n)
        ex, issues = _check_line(obj, n)
        if issues:
            raise InputError(str(path), issues[0].message, line=n)
        assert ex is not None
        out.append(ex)
    return out


# ---------------------------------------------------------------- whole file


def as_dicts(example: ChatExample) -> list[dict[str, str]]:
    """Messages as the dicts a chat template expects (weights dropped)."""
    return [{"role": m.role, "content": m.content} for m in example.messages]


def count_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    """Tokens of a conversation rendered with the tokenizer's chat template."""
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    return len(ids)


def _stats(values: Sequence[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "mean": 0.0, "p95": 0, "max": 0, "total": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return {
        "min": ordered[0],
        "mean": round(sum(ordered) / len(ordered), 1),
        "p95": p95,
        "max": ordered[-1],
        "total": sum(ordered),
    }


def validate_dataset(
    path: str | Path, *, tokenizer: Any = None, max_tokens: int | None = None
) -> ValidationReport:
    """Check a chat JSONL file and collect every problem with its line number.

    With a ``tokenizer`` (the base model's), lengths are counted with its chat template;
    otherwise they are estimated as characters / 4. ``max_tokens`` (the training
    ``max_length``) turns longer examples into ``too_long`` errors; ``epoch_tokens`` is what
    one epoch costs, counting each example at most ``max_tokens``.
    """
    path = Path(path)
    report = ValidationReport(path=str(path))
    if tokenizer is not None:
        report.token_counter = f"{type(tokenizer).__name__} chat template"
    seen: dict[str, int] = {}
    lengths: list[int] = []
    n_lines = n_examples = n_assistant = n_trained = 0
    for n, raw in jsonl_lines(path):
        n_lines += 1
        obj, bad = _decode(raw, n)
        if bad:
            report.errors.append(bad)
            continue
        ex, issues = _check_line(obj, n)
        report.errors.extend(issues)
        if ex is None:
            continue
        n_examples += 1
        msgs = as_dicts(ex)
        n_assistant += sum(m.role == "assistant" for m in ex.messages)
        n_trained += sum(m.role == "assistant" and m.weight != 0 for m in ex.messages)
        key = json.dumps(msgs, sort_keys=True, ensure_ascii=False)
        if key in seen:
            report.warnings.append(
                Issue(n, "duplicate", f"exact duplicate of line {seen[key]}", "warning")
            )
        else:
            seen[key] = n
        for kind, masked in find_personal_data("\n".join(m["content"] for m in msgs)):
            report.warnings.append(
                Issue(n, f"pii_{kind}", f"looks like personal data ({kind}: {masked})", "warning")
            )
        if tokenizer is not None:
            length = count_tokens(tokenizer, msgs)
        else:
            length = max(1, sum(len(m["content"]) + 8 for m in msgs) // 4)
        lengths.append(length)
        if max_tokens is not None and length > max_tokens:
            report.errors.append(
                Issue(n, "too_long", f"{length} tokens, more than the context of {max_tokens}")
            )
    if n_examples < MIN_EXAMPLES:
        report.errors.append(
            Issue(None, "too_few_examples",
                  f"{n_examples} valid examples; at least {MIN_EXAMPLES} are needed")
        )
    elif n_examples < RECOMMENDED_EXAMPLES:
        report.warnings.append(
            Issue(None, "few_examples",
                  f"{n_examples} examples; {RECOMMENDED_EXAMPLES}+ are recommended", "warning")
        )
    report.errors.sort(key=lambda i: (i.line is None, i.line or 0))
    report.counts = {
        "lines": n_lines,
        "examples": n_examples,
        "invalid_lines": len({e.line for e in report.errors if e.line is not None}),
        "assistant_messages": n_assistant,
        "trained_assistant_messages": n_trained,
        "duplicates": sum(w.code == "duplicate" for w in report.warnings),
    }
    report.token_stats = _stats(lengths)
    cap = max_tokens if max_tokens is not None else None
    report.epoch_tokens = sum(min(x, cap) if cap else x for x in lengths)
    return report


# ---------------------------------------------------------------- conversion


_SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "chatgpt": "assistant", "model": "assistant", "system": "system",
}


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line or item number, value)`` from JSONL or from one JSON array."""
    text = path.read_text(encoding="utf-8") if path.exists() else None
    if text is None:
        raise InputError(str(path), "file not found")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(str(path), f"not valid JSON ({e.msg})", line=e.lineno) from None
        yield from enumerate(items, 1)
        return
    for n, raw in enumerate(text.splitlines(), 1):
        if raw.strip():
            obj, bad = _decode(raw, n)
            if bad:
                raise InputError(str(path), bad.message, line=n)
            yield n, obj


def _detect(obj: Any) -> str:
    if isinstance(obj, dict):
        if "messages" in obj:
            return "chat"
        if "conversations" in obj:
            return "sharegpt"
        if "instruction" in obj:
            return "alpaca"
    return "unknown"


def _from_alpaca(obj: Any) -> list[dict[str, str]]:
    if not isinstance(obj, dict):
        raise TypeError("expected an object with instruction/input/output")
    for key in ("instruction", "output"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise ValueError(f"Alpaca record needs a non-empty string {key!r}")
    user = obj["instruction"].strip()
    extra = obj.get("input") or ""
    if not isinstance(extra, str):
        raise TypeError("'input' must be a string")
    if extra.strip():
        user += "\n\n" + extra.strip()
    msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": obj["output"].strip()}]
    system = obj.get("system")
    if isinstance(system, str) and system.strip():
        msgs.insert(0, {"role": "system", "content": system.strip()})
    return msgs


def _from_sharegpt(obj: Any) -> list[dict[str, str]]:
    conv = obj.get("conversations") if isinstance(obj, dict) else None
    if not isinstance(conv, list) or not conv:
        raise ValueError("ShareGPT record needs a non-empty 'conversations' list")
    msgs = []
    for i, turn in enumerate(conv, 1):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise TypeError(f"turn {i} needs 'from' and a string 'value'")
        role = _SHAREGPT_ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            raise ValueError(f"turn {i}: unknown speaker {turn.get('from')!r} (expected human, gpt or system)")
        msgs.append({"role": role, "content": turn["value"]})
    if isinstance(obj.get("system"), str) and obj["system"].strip() and msgs[0]["role"] != "system":
        msgs.insert(0, {"role": "system", "content": obj["system"]})
    return msgs


def convert_file(src: str | Path, dst: str | Path, fmt: str = "auto") -> dict[str, Any]:
    """Convert Alpaca or ShareGPT data (JSONL or a JSON array) to chat JSONL.

    ``fmt`` is ``auto`` (decided by the first record's keys), ``alpaca``, ``sharegpt`` or
    ``chat`` (re-validated and normalised). Each converted conversation passes the same
    checks as :func:`load_chat_jsonl`; the first bad record raises :class:`InputError` with
    its line (or item) number and nothing is written. Returns
    ``{"format": ..., "examples": n, "dst": ...}``.
    """
    src, dst = Path(src), Path(dst)
    if fmt not in {"auto", "alpaca", "sharegpt", "chat"}:
        raise InputError(str(src), f"unknown format {fmt!r} (expected auto, alpaca, sharegpt or chat)")
    rows: list[str] = []
    for n, obj in _records(src):
        if fmt == "auto":
            fmt = _detect(obj)
            if fmt == "unknown":
                raise InputError(str(src), "cannot tell the format: expected 'messages', "
                                 "'conversations' or 'instruction' keys", line=n)
        try:
            msgs = {"alpaca": _from_alpaca, "sharegpt": _from_sharegpt,
                    "chat": lambda o: o.get("messages") if isinstance(o, dict) else None}[fmt](obj)
        except (ValueError, TypeError) as e:
            raise InputError(str(src), str(e), line=n) from None
        _, issues = _check_line({"messages": msgs}, n)
        if issues:
            raise InputError(str(src), issues[0].message, line=n)
        rows.append(json.dumps({"messages": msgs}, ensure_ascii=False))
    if not rows:
        raise InputError(str(src), "no records")
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=dst.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    os.replace(tmp, dst)
    return {"format": fmt, "examples": len(rows), "dst": str(dst)}


# ---------------------------------------------------------------- split and hash


def split_examples(
    examples: Sequence[ChatExample], val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[ChatExample], list[ChatExample]]:
    """Deterministic shuffled split into (train, validation).

    At least one validation example when ``val_fraction > 0`` and there are two or more.

    >>> ex = [ChatExample(messages=(), line=i) for i in range(10)]
    >>> tr, va = split_examples(ex, 0.2, seed=1)
    >>> len(tr), len(va), split_examples(ex, 0.2, seed=1) == (tr, va)
    (8, 2, True)
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = 0
    if val_fraction > 0 and len(examples) >= 2:
        n_val = min(len(examples) - 1, max(1, round(len(examples) * val_fraction)))
    val = sorted(order[:n_val])
    train = sorted(order[n_val:])
    return [examples[i] for i in train], [examples[i] for i in val]


def dataset_hash(path: str | Path) -> str:
    """sha256 of the file's bytes (hex): the dataset identity recorded in an adapter."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        raise InputError(str(path), "file not found") from None
    return h.hexdigest()
