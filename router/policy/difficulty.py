"""The policy's difficulty rule: how a prompt's estimated difficulty moves the bar of its task.

A bar is the chance (in %) that a model does a typical prompt of the class well; capabilities
are on the same scale. For a prompt of difficulty ``z`` (log-odds of failure against a typical
prompt, :mod:`router.difficulty.model`), the bar becomes::

    moved = ceil(100 * sigmoid(logit(bar / 100) + weight * z))

never below ``floor`` (unless the bar itself is), and 0 and 100 stay put. It is monotone in
both ``bar`` and ``z``: a harder prompt never gets a lower bar, and a higher ``bar_shift``
never a cheaper choice. The estimator (the shipped one, or the policy's ``difficulty.model``)
is loaded on first use: loading a policy stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class DifficultyGuess(Protocol):
    """What the engine needs of an estimate (:class:`router.difficulty.model.Difficulty`)."""

    @property
    def logit(self) -> float: ...

    @property
    def value(self) -> float: ...

    @property
    def band(self) -> str: ...


#: A last user turn shorter than this (characters) is read with its context.
SHORT_FOLLOW_UP = 24


def move_bar(bar: float, z: float, weight: float, floor: int | None) -> int:
    """The bar for a prompt of difficulty ``z`` (see the module docstring); ``bar`` may have
    a fraction (a route's ``bar_shift``), the result is a whole capability."""
    if bar <= 0 or bar >= 100 or weight == 0.0:
        return math.ceil(bar - 1e-9)
    t = math.log(bar / (100 - bar)) + weight * z
    p = 1.0 / (1.0 + math.exp(-t)) if t > -40 else 0.0
    moved = min(100, math.ceil(100 * p - 1e-9))
    if floor is not None and moved < floor:
        return min(math.ceil(bar - 1e-9), floor)
    return moved


def check_model_file(path: Path) -> str | None:
    """Why ``path`` is not a usable difficulty model (None: it is). Cheap: JSON only."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    except ValueError as exc:
        return f"{path} is not JSON: {exc}"
    if not isinstance(data, dict) or data.get("object") != "router.difficulty":
        return f"{path} is not a difficulty model (router eval calibrate --difficulty-out)"
    from router.difficulty.model import FEATURE_VERSION

    if data.get("feature_version") != FEATURE_VERSION:
        return (f"{path} was made for feature version {data.get('feature_version')}; this "
                f"gateway reads {FEATURE_VERSION}: refit it")
    return None


def file_digest(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


@dataclass(frozen=True)
class DifficultyRule:
    """``difficulty:`` of a loaded policy."""

    weight: float
    floor: Mapping[str, int]
    #: The policy's own model file, or None for the shipped estimate.
    model_path: Path | None = None
    _loaded: list[Any] = field(default_factory=list, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def on(self) -> bool:
        return self.weight > 0

    @property
    def source(self) -> str:
        return str(self.model_path) if self.model_path is not None else "shipped"

    def bar(self, task: str, bar: float, z: float) -> int:
        return move_bar(bar, z, self.weight, self.floor.get(task))

    def estimator(self) -> Any:
        """The :class:`~router.difficulty.model.DifficultyModel` (loaded once)."""
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    from router.difficulty.model import DEFAULT, DifficultyModel

                    model = (DifficultyModel.load(self.model_path) if self.model_path is not None
                             else DEFAULT.load())
                    self._loaded.append(model)
        return self._loaded[0]

    def estimate(self, text: str) -> DifficultyGuess:
        est: DifficultyGuess = self.estimator().estimate(text)
        return est

    def estimate_messages(self, messages: Any, parsed: Any = None) -> DifficultyGuess:
        """The difficulty of a chat request: of its last user turn, read with the turn before
        when the last one is a short follow-up ("ok", "why?", "continue"). ``parsed``: the
        last turn as the classifier tokenised it (``Classification.parsed``), reused."""
        from router.classify.messages import extract

        ex = extract(messages)
        text = ex.main
        if len(text) < SHORT_FOLLOW_UP and ex.context:
            return self.estimate(f"{ex.context}\n{text}")
        if parsed is not None:
            est: DifficultyGuess = self.estimator().estimate_parsed(parsed)
            return est
        return self.estimate(text)


def estimate_request(rule: DifficultyRule | None, messages: Any,
                     classification: Any) -> DifficultyGuess | None:
    """Steps 2's difficulty for a request: None when the policy has no (or a zero-weight)
    difficulty rule; the classification's tokenisation is reused when it carries one."""
    if rule is None or not rule.on:
        return None
    return rule.estimate_messages(messages, getattr(classification, "parsed", None))
