"""The budget layer's exceptions: a small tree the HTTP layer maps by *type*, never by message.

::

    BudgetError                 base of everything raised on purpose by router.budgets
    ├── BudgetExceeded          a hard limit would be passed      -> 429, type "budget_exceeded"
    ├── RateLimited             a per-minute limit would be passed -> 429 + Retry-After
    └── StoreUnavailable        the shared store cannot be reached -> 503 (fail_mode: closed)

Each carries the data the response needs as attributes (and :meth:`BudgetError.details` as a
JSON-ready mapping). Key scopes are always named by the key *alias*, never by the secret.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _usd(micro: int) -> str:
    return f"${micro / 1_000_000:,.6f}".rstrip("0").rstrip(".")


class BudgetError(Exception):
    """Base class of the budget layer's errors."""

    def details(self) -> dict[str, Any]:
        """The error's data as a JSON-ready mapping (for the OpenAI-shaped error body)."""
        return {}


class BudgetExceeded(BudgetError):
    """Reserving ``requested_micro`` would pass the hard limit of one budget.

    ``spent_micro`` is what that budget's current window already holds, settled plus reserved by
    requests in flight; ``reset_at`` is the Unix time its window ends (None for ``total``).
    ``degraded`` is True when the check was made from this replica's local view during a Redis
    outage (``fail_mode: open``).
    """

    def __init__(
        self,
        *,
        scope: str,
        scope_id: str,
        period: str,
        window: str,
        limit_micro: int,
        spent_micro: int,
        requested_micro: int,
        reset_at: float | None,
        degraded: bool = False,
    ) -> None:
        self.scope = scope
        self.scope_id = scope_id
        self.period = period
        self.window = window
        self.limit_micro = limit_micro
        self.spent_micro = spent_micro
        self.requested_micro = requested_micro
        self.reset_at = reset_at
        self.degraded = degraded
        reset = f", resets {_iso(reset_at)}" if reset_at is not None else ""
        super().__init__(
            f"{period} budget of {scope} {scope_id!r} exceeded: spent {_usd(spent_micro)} "
            f"of {_usd(limit_micro)}, this request needs up to {_usd(requested_micro)}{reset}"
        )

    def details(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "scope_id": self.scope_id,
            "period": self.period,
            "window": self.window,
            "limit_micro": self.limit_micro,
            "spent_micro": self.spent_micro,
            "requested_micro": self.requested_micro,
            "reset_at": _iso(self.reset_at),
        }


class RateLimited(BudgetError):
    """A requests- or tokens-per-minute limit would be passed.

    ``kind`` is ``"requests"`` or ``"tokens"``; ``retry_after_s`` is when the same request would
    next fit (seconds, >= 0); :attr:`retry_after_header` is the value for ``Retry-After``.
    """

    def __init__(
        self,
        *,
        scope: str,
        scope_id: str,
        kind: str,
        limit_per_minute: int,
        retry_after_s: float,
    ) -> None:
        self.scope = scope
        self.scope_id = scope_id
        self.kind = kind
        self.limit_per_minute = limit_per_minute
        self.retry_after_s = max(0.0, retry_after_s)
        super().__init__(
            f"{kind} per minute limit of {scope} {scope_id!r} ({limit_per_minute}) reached; "
            f"retry after {self.retry_after_s:.3f}s"
        )

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up, at least 1 (HTTP's Retry-After has no fractions)."""
        return str(max(1, math.ceil(self.retry_after_s)))

    def details(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "scope_id": self.scope_id,
            "kind": self.kind,
            "limit_per_minute": self.limit_per_minute,
            "retry_after_s": round(self.retry_after_s, 3),
        }


class StoreUnavailable(BudgetError):
    """The shared store cannot be reached and ``fail_mode`` is ``closed``: refuse (503).

    Raised only by admission (``reserve``, ``check_rate``): settling never raises it, because the
    upstream call already happened; such spend is journaled and reconciled later.
    """

    def __init__(self, *, store: str, reason: str) -> None:
        self.store = store
        self.reason = reason
        super().__init__(f"budget store {store} unavailable: {reason}")

    def details(self) -> dict[str, Any]:
        return {"store": self.store, "reason": self.reason}
