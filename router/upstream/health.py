"""Passive health per model: a circuit breaker fed by the dispatcher's own attempts.

No probes of its own and no I/O: every upstream attempt reports how it went. ``failure_threshold``
consecutive failures of a model (no HTTP answer: refused, reset, timed out; or a 5xx) open its
circuit for ``cooldown_s``: routes and fallback chains pass over the model (it shows in
``AppState.unavailable``, hence in ``POST /v1/route``), and the dispatcher skips it. When the
cool-down is over, the next request that would use the model is let through as a probe
(half-open) while the others still skip it: a probe that gets an HTTP answer below 500 closes the
circuit; a failed probe opens it again for twice as long, up to ``max_cooldown_s``. Any HTTP
answer below 500 (4xx included: the model is up, the request or key is the problem) resets the
count.

State is per process: each worker of each replica learns about a dead upstream from its own
attempts (``failure_threshold`` of them), which bounds the wasted attempts per process, not per
fleet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class CircuitState(IntEnum):
    """Also the value of the ``router_upstream_circuit_state`` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(slots=True)
class _Circuit:
    """A circuit that is not closed."""

    reason: str  # what the last failure was
    failures: int  # consecutive failures that opened it
    cooldown_s: float
    until: float  # when a probe may go
    probing: bool = False


#: Called on every change of a model's state (the metrics), with whether failures opened it.
OnChange = Callable[[str, CircuitState, bool], None]


class Health:
    def __init__(self, failure_threshold: int, cooldown_s: float, max_cooldown_s: float, *,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: OnChange | None = None) -> None:
        self.threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.clock = clock
        self.on_change = on_change
        self._failures: dict[str, int] = {}  # consecutive failures of closed circuits
        self._open: dict[str, _Circuit] = {}  # circuits open or half-open

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    def _changed(self, model: str, state: CircuitState, opened: bool = False) -> None:
        if self.on_change is not None:
            self.on_change(model, state, opened)

    # ------------------------------------------------------------------ the dispatcher's side

    def acquire(self, model: str) -> bool:
        """Whether an attempt on ``model`` may go now; a half-open circuit lets one through
        (the probe), whose outcome must then be reported (or :meth:`released`)."""
        c = self._open.get(model)
        if c is None:
            return True
        if c.probing or self.clock() < c.until:
            return False
        c.probing = True
        self._changed(model, CircuitState.HALF_OPEN)
        return True

    def succeeded(self, model: str) -> None:
        """An attempt got an HTTP answer below 500."""
        if self._failures:
            self._failures.pop(model, None)
        if self._open and self._open.pop(model, None) is not None:
            self._changed(model, CircuitState.CLOSED)

    def failed(self, model: str, reason: str) -> None:
        """An attempt got no HTTP answer, or a 5xx."""
        if not self.enabled:
            return
        now = self.clock()
        c = self._open.get(model)
        if c is not None:
            if c.probing:  # the probe failed: open again, for longer
                c.probing = False
                c.cooldown_s = min(2 * c.cooldown_s, self.max_cooldown_s)
                c.until = now + c.cooldown_s
                c.reason = reason
                c.failures += 1
                self._changed(model, CircuitState.OPEN, opened=True)
            return  # an attempt that began before the circuit opened
        n = self._failures.get(model, 0) + 1
        if n < self.threshold:
            self._failures[model] = n
            return
        self._failures.pop(model, None)
        self._open[model] = _Circuit(reason, n, self.cooldown_s, now + self.cooldown_s)
        self._changed(model, CircuitState.OPEN, opened=True)

    def released(self, model: str) -> None:
        """An attempt ended without an outcome (the request was cancelled): if it was the
        probe, the next request probes instead."""
        c = self._open.get(model)
        if c is not None and c.probing:
            c.probing = False
            self._changed(model, CircuitState.OPEN)

    # ------------------------------------------------------------------ the routing side

    def why(self, model: str) -> str | None:
        """Why ``model`` should not be routed to now, or None (closed, or ready for a probe)."""
        c = self._open.get(model)
        if c is None:
            return None
        if c.probing:
            return f"circuit half-open: a probe request is in flight (after {c.reason})"
        left = c.until - self.clock()
        if left <= 0:
            return None
        return (f"circuit open after {c.failures} failed attempts ({c.reason}); "
                f"next try in {left:.0f} s")

    def retry_in(self, models: Iterable[str]) -> float | None:
        """Seconds until the first of ``models`` with an open circuit may be probed."""
        now = self.clock()
        waits = [max(0.0, c.until - now) for m in models if (c := self._open.get(m)) is not None]
        return min(waits) if waits else None

    def status(self, model: str) -> dict[str, Any]:
        """The circuit of ``model`` for ``GET /v1/models``."""
        c = self._open.get(model)
        if c is None:
            return {"state": "closed", "consecutive_failures": self._failures.get(model, 0)}
        state = "half_open" if c.probing or c.until <= self.clock() else "open"
        return {"state": state, "consecutive_failures": c.failures, "last_error": c.reason,
                "retry_in_s": round(max(0.0, c.until - self.clock()), 1)}


class Unavailable(Mapping[str, str]):
    """Models that cannot be called from here now (model -> why): those whose key variable is
    unset, and those whose circuit is open. What routes pass over (``AppState.unavailable``)."""

    __slots__ = ("health", "missing")

    def __init__(self, missing: Mapping[str, str], health: Health) -> None:
        self.missing = missing
        self.health = health

    def get(self, model: str, default: Any = None) -> Any:
        why = self.missing.get(model)
        if why is None and self.health._open:
            why = self.health.why(model)
        return default if why is None else why

    def __getitem__(self, model: str) -> str:
        why: str | None = self.get(model)
        if why is None:
            raise KeyError(model)
        return why

    def __iter__(self) -> Iterator[str]:
        yield from self.missing
        for model in list(self.health._open):
            if model not in self.missing and self.health.why(model) is not None:
                yield model

    def __len__(self) -> int:
        return sum(1 for _ in self)
