"""The task names (:data:`TASKS`), and a helper for library callers that fix a request's task
instead of letting the classifier decide.

:func:`override_task` reads the three places a request can name its task:

* the header ``x-router-task: reasoning|expression``;
* request metadata ``{"metadata": {"router_task": "reasoning"}}`` (also ``task``);
* the virtual models ``auto:reasoning`` and ``auto:expression``.

A bad value raises ``ValueError``. The gateway does not call it: it reads the header and
``metadata.router_task`` itself (:func:`router.policy.request.parse_task_header`, via
``router.pipeline._task_override``, a bad value being a 400), and the virtual models are routes
of the policy (:mod:`router.policy.schema`). This module is for code that uses the classifier as
a library (``from router.classify import classify, override_task``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Task = Literal["reasoning", "expression"]
TASKS: tuple[Task, Task] = ("reasoning", "expression")

HEADER = "x-router-task"
METADATA_KEYS = ("router_task", "task")
VIRTUAL_PREFIX = "auto:"
_ALIASES: dict[str, Task] = {"reasoning": "reasoning", "reason": "reasoning",
                             "expression": "expression", "express": "expression"}


def parse_task(value: object) -> Task:
    """``"reasoning"`` or ``"expression"`` (case and spaces ignored), else ``ValueError``."""
    if isinstance(value, str):
        task = _ALIASES.get(value.strip().lower())
        if task is not None:
            return task
    raise ValueError(f"task must be one of {', '.join(TASKS)}, got {value!r}")


def _header(headers: Mapping[str, Any] | None) -> Any:
    if not headers:
        return None
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == HEADER:
            return value
    return None


def override_task(model: object = None, headers: Mapping[str, Any] | None = None,
                  metadata: object = None) -> Task | None:
    """The task a request fixes for itself, or ``None`` to let the classifier decide.

    Precedence: the virtual model, then the header, then metadata. Raises ``ValueError`` for
    ``auto:<something else>`` or a header/metadata value that is not a task.
    """
    if isinstance(model, str) and model.lower().startswith(VIRTUAL_PREFIX):
        return parse_task(model[len(VIRTUAL_PREFIX):])
    value = _header(headers)
    if value is not None and str(value).strip():
        return parse_task(value)
    if isinstance(metadata, Mapping):
        for key in METADATA_KEYS:
            if metadata.get(key) is not None:
                return parse_task(metadata[key])
    return None
