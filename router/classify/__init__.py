"""Task classifier: is a chat request about reasoning or expression?

``classify(messages)`` sorts an OpenAI-style chat request in tens of microseconds on the CPU,
with a linear model over hashed word/character n-grams and explicit signals whose weights ship
in this package (``weights.bin`` + ``model.json``, rebuilt by ``python -m router.classify.train``).

Usage::

    from router.classify import classify
    c = classify([{"role": "user", "content": "Prove that sqrt(2) is irrational."}])
    c.task, c.confidence, c.signals   # "reasoning", 0.99, ("maths verb (+1.20)", ...)

Importing this package is cheap: numpy and the weights load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from router.classify.overrides import TASKS, Task, override_task, parse_task

if TYPE_CHECKING:
    from router.classify.model import Classification, Classifier

__all__ = ["TASKS", "Classification", "Classifier", "Task", "classify", "default_classifier",
           "override_task", "parse_task"]


def classify(messages: Any, explain: bool = True) -> Classification:
    """Classify OpenAI chat ``messages`` with the shipped model (loaded once, on first use).

    Never raises on odd message shapes; a request with no text is "expression" at 0.5.
    ``explain=False`` skips building ``signals`` (a few microseconds).
    """
    from router.classify.model import DEFAULT

    return DEFAULT.classify(messages, explain=explain)


def default_classifier() -> Classifier:
    from router.classify.model import DEFAULT

    return DEFAULT


def __getattr__(name: str) -> Any:
    if name in ("Classification", "Classifier"):
        from router.classify import model

        return getattr(model, name)
    raise AttributeError(name)
