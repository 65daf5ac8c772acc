"""Outcome files: per-prompt scores of real models, one JSON object a line.

A row says how well each of several models answered one prompt, so routing can be replayed
without calling any model (see docs/evaluation.md for the format and how to make your own)::

    {"id": "q1", "prompt": "What is 2 + 2?", "scores": {"small": 1.0, "big": 1.0},
     "output_tokens": {"small": 12, "big": 9}}

``prompt`` (the user's text) or ``messages`` (a chat-completions messages array) is required, and
``scores`` (model -> number in [0, 1]). Optional: ``id`` (unique in its file), ``dataset``,
``category``, ``responses`` (model -> answer text, counted for output tokens) and
``output_tokens`` (model -> count). Reading is strict: every problem is reported as
``file:line: message``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.evaluate.errors import EvalInputError

#: Problems reported before giving up on a file (the rest are counted).
MAX_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One graded prompt."""

    file: str
    line: int
    id: str
    messages: tuple[Mapping[str, Any], ...]
    scores: Mapping[str, float]
    dataset: str | None = None
    category: str | None = None
    #: Output tokens per model, when the row gives them (``output_tokens``).
    output_tokens: Mapping[str, int] | None = None
    #: Answer text per model (``responses``), counted with the model's tokenizer.
    responses: Mapping[str, str] | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def text(self) -> str:
        """The last user turn's text (for features and display)."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, str):
                    return c
                if isinstance(c, list):
                    return "\n".join(p.get("text", "") for p in c
                                     if isinstance(p, dict) and isinstance(p.get("text"), str))
        return ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _messages(obj: Mapping[str, Any]) -> tuple[tuple[Mapping[str, Any], ...] | None, str | None]:
    prompt, messages = obj.get("prompt"), obj.get("messages")
    if messages is not None:
        if not isinstance(messages, list) or not messages:
            return None, "'messages' must be a non-empty array of chat messages"
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                return None, f"messages[{i}] must be an object with a 'role'"
        return tuple(messages), None
    if isinstance(prompt, str) and prompt.strip():
        return ({"role": "user", "content": prompt},), None
    if prompt is None:
        return None, "needs 'prompt' (text) or 'messages' (a chat messages array)"
    return None, "'prompt' must be a non-empty string"


def _row(obj: Any, file: str, line: int) -> OutcomeRow | str:
    """The row, or what is wrong with it."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    messages, problem = _messages(obj)
    if problem is not None or messages is None:
        return problem or "no prompt"
    raw = obj.get("scores")
    if not isinstance(raw, dict) or not raw:
        return "no scores: needs 'scores', an object of model -> score in [0, 1]"
    scores: dict[str, float] = {}
    for model, value in raw.items():
        v = _number(value)
        if v is None or not 0.0 <= v <= 1.0:
            return f"scores[{model!r}] must be a number in [0, 1], got {value!r}"
        scores[str(model)] = v
    out_tokens: dict[str, int] | None = None
    if obj.get("output_tokens") is not None:
        ot = obj["output_tokens"]
        if not isinstance(ot, dict):
            return "'output_tokens' must be an object of model -> token count"
        out_tokens = {}
        for model, value in ot.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                return f"output_tokens[{model!r}] must be a non-negative integer, got {value!r}"
            out_tokens[str(model)] = value
    responses: dict[str, str] | None = None
    if obj.get("responses") is not None:
        rs = obj["responses"]
        if not isinstance(rs, dict) or not all(isinstance(v, str) for v in rs.values()):
            return "'responses' must be an object of model -> answer text"
        responses = {str(k): v for k, v in rs.items()}
    rid = obj.get("id", f"{Path(file).name}:{line}")
    for key in ("dataset", "category"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            return f"'{key}' must be a string"
    return OutcomeRow(file, line, str(rid), messages, scores, obj.get("dataset"),
                      obj.get("category"), out_tokens, responses)


def read_outcomes(path: str | Path) -> list[OutcomeRow]:
    """Every row of one outcome file; raises :class:`EvalInputError` naming file and line."""
    p = Path(path)
    problems: list[str] = []
    rows: list[OutcomeRow] = []
    seen: dict[str, int] = {}
    extra = 0
    try:
        fh = p.open(encoding="utf-8")
    except OSError as exc:
        raise EvalInputError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    with fh:
        try:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    got: OutcomeRow | str = f"not JSON ({exc})"
                else:
                    got = _row(obj, str(p), n)
                if isinstance(got, OutcomeRow) and got.id in seen:
                    got = f"duplicate id {got.id!r} (first on line {seen[got.id]})"
                if isinstance(got, str):
                    if len(problems) < MAX_PROBLEMS:
                        problems.append(f"{p}:{n}: {got}")
                    else:
                        extra += 1
                    continue
                seen[got.id] = n
                rows.append(got)
        except UnicodeDecodeError:
            raise EvalInputError([f"{p}: not UTF-8 text"]) from None
    if problems:
        if extra:
            problems.append(f"{p}: ... and {extra} more problems")
        raise EvalInputError(problems)
    if not rows:
        raise EvalInputError([f"{p}: no rows"])
    return rows


def read_all(paths: Sequence[str | Path]) -> list[OutcomeRow]:
    """Rows of several files, in order."""
    rows: list[OutcomeRow] = []
    for path in paths:
        rows.extend(read_outcomes(path))
    return rows


def models_in(rows: Iterable[OutcomeRow]) -> dict[str, OutcomeRow]:
    """Each model any row scores, with the first row that scores it."""
    out: dict[str, OutcomeRow] = {}
    for r in rows:
        for m in r.scores:
            out.setdefault(m, r)
    return out
