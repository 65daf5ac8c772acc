"""Which catalogue models this gateway can call, said at start-up and in "nothing callable" errors.

A model is callable when its key variable is set (or it needs none). A keyless model on this
machine (a vLLM on loopback) is not checked at start-up (start-up never touches the network):
its first request finds out, and a refused connection makes it not callable like a missing key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from router.upstream.base import Target

DEMO_HINT = "or run `router demo` to see the gateway work with simulated models"


def _or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def missing_keys(targets: Mapping[str, Target], models: Iterable[str] | None = None) -> list[str]:
    """The unset key variables of ``models`` (default: every model), in catalogue order."""
    names = targets if models is None else [m for m in models if m in targets]
    return list(dict.fromkeys(k for m in names if (k := targets[m].missing_key)))


def key_hint(targets: Mapping[str, Target], models: Iterable[str] = ()) -> str | None:
    """What to set so that something becomes callable: the key variables of ``models``, else
    those of the whole catalogue; None when no key is missing."""
    keys = missing_keys(targets, models) or missing_keys(targets)
    if not keys:
        return None
    return f"Set {_or(keys)} in the gateway's environment and restart it, {DEMO_HINT}."


def startup_lines(targets: Mapping[str, Target]) -> list[tuple[int, str]]:
    """Log lines (level, text) saying which models are callable and which key makes the others."""
    ready = [n for n, t in targets.items() if not t.missing_key and not t.local_keyless]
    local = [f"{n} (at {t.api_base}: not checked until its first request)"
             for n, t in targets.items() if not t.missing_key and t.local_keyless]
    by_key: dict[str, list[str]] = {}
    for name, t in targets.items():
        if t.missing_key:
            by_key.setdefault(t.missing_key, []).append(name)
    lines: list[tuple[int, str]] = []
    if ready or local:
        lines.append((logging.INFO, "callable models: " + ", ".join(ready + local)))
    if by_key:
        lines.append((logging.INFO, "not callable, key unset: " + "; ".join(
            f"{', '.join(models)} (set {key})" for key, models in by_key.items())))
    if not ready and by_key:
        only = f" only {', '.join(local)} can be called;" if local else ""
        lines.append((logging.WARNING, f"no provider key is set:{only} set {_or(list(by_key))} "
                      f"in the gateway's environment, {DEMO_HINT}"))
    return lines
