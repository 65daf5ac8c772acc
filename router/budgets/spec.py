"""Value types of the budget layer: scopes, periods and their windows, specs, reservations,
ledger rows. All frozen; money is integer micro-dollars (µ$) everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class Scope(StrEnum):
    """Who a budget or rate limit applies to. A key is named by its alias, never its secret."""

    GLOBAL = "global"
    TEAM = "team"
    USER = "user"
    KEY = "key"


class Period(StrEnum):
    """Calendar-aligned budget windows (in the store's time zone); weeks start on Monday."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    TOTAL = "total"


#: Ledger row statuses the gateway writes (others are accepted and stored as given).
STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_DISCONNECTED = "client_disconnected"

#: Fields a ledger report may group or filter by, and the ledger column each one reads.
GROUP_FIELDS: Mapping[str, str] = {
    "team": "team",
    "user": "user",
    "key": "key_alias",
    "model": "model",
    "task": "task",
    "status": "status",
    "api": "api",
}


def _check_id(what: str, value: str) -> None:
    if not value or len(value) > 256 or any(ord(ch) < 32 for ch in value):
        raise ValueError(f"{what} must be 1-256 printable characters, got {value!r}")


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    """A dollar budget: at most ``limit_micro`` per ``period`` window for one scope.

    ``soft_limit_micro`` only marks the budget as nearly spent (policy behaviour, metric).
    Requests whose reserved cost is zero (self-hosted at zero marginal price) pass an exhausted
    budget unless ``block_zero_cost``.
    """

    scope: Scope
    scope_id: str
    period: Period
    limit_micro: int
    soft_limit_micro: int | None = None
    block_zero_cost: bool = False
    #: Identity of the budget's counters: ``scope:scope_id:period`` (unambiguous, since scope
    #: and period contain no colon). Computed once: it is read on every request.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", Scope(self.scope))
        object.__setattr__(self, "period", Period(self.period))
        object.__setattr__(self, "key", f"{self.scope.value}:{self.scope_id}:{self.period.value}")
        _check_id("scope_id", self.scope_id)
        if isinstance(self.limit_micro, bool) or not isinstance(self.limit_micro, int):
            raise TypeError("limit_micro must be an int (micro-dollars)")
        if self.limit_micro < 0:
            raise ValueError("limit_micro must be >= 0")
        if self.soft_limit_micro is not None and not 0 <= self.soft_limit_micro <= self.limit_micro:
            raise ValueError("soft_limit_micro must be between 0 and limit_micro")


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    """Per-minute limits for one scope. Token buckets refill continuously: a full minute's
    allowance may be used at once, then it comes back at ``limit / 60`` per second."""

    scope: Scope
    scope_id: str
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", Scope(self.scope))
        _check_id("scope_id", self.scope_id)
        for name in ("requests_per_minute", "tokens_per_minute"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise ValueError(f"{name} must be a positive int or None")

    def limits(self) -> list[tuple[str, int]]:
        """``(kind, per_minute)`` for each limit that is set."""
        out: list[tuple[str, int]] = []
        if self.requests_per_minute is not None:
            out.append(("requests", self.requests_per_minute))
        if self.tokens_per_minute is not None:
            out.append(("tokens", self.tokens_per_minute))
        return out


@dataclass(frozen=True, slots=True)
class Window:
    """One calendar window of a period: ``id`` names it (``2025-01-31``, ``2025-W05``,
    ``2025-01``, ``total``); ``start`` and ``reset_at`` are Unix times (``reset_at`` None for
    ``total``)."""

    period: Period
    id: str
    start: float
    reset_at: float | None

    def contains(self, t: float) -> bool:
        return self.start <= t and (self.reset_at is None or t < self.reset_at)


def window_of(period: Period | str, now: float, tz: ZoneInfo) -> Window:
    """The window of ``period`` that contains Unix time ``now``, aligned to midnight in ``tz``.

    Pure. DST-safe: boundaries are local midnights converted to UTC, so a day may last 23 or 25
    hours. ISO weeks (Monday start; the id uses the ISO year, so 2024-12-30 is ``2025-W01``).
    """
    period = Period(period)
    if period is Period.TOTAL:
        return Window(period, "total", float("-inf"), None)
    local = datetime.fromtimestamp(now, tz)
    day = local.date()
    if period is Period.DAILY:
        start, end, wid = day, day + timedelta(days=1), day.isoformat()
    elif period is Period.WEEKLY:
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
        iso = start.isocalendar()
        wid = f"{iso.year}-W{iso.week:02d}"
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        wid = f"{start.year}-{start.month:02d}"
    t0 = datetime(start.year, start.month, start.day, tzinfo=tz).timestamp()
    t1 = datetime(end.year, end.month, end.day, tzinfo=tz).timestamp()
    return Window(period, wid, t0, t1)


class Calendar:
    """:func:`window_of` for one time zone, remembering the current window of each period so
    the hot path does no date arithmetic until a window ends."""

    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)
        self.name = timezone
        self._current: dict[Period, Window] = {}

    def window(self, period: Period, now: float) -> Window:
        w = self._current.get(period)
        if w is not None and w.contains(now):
            return w
        w = window_of(period, now, self.tz)
        self._current[period] = w
        return w


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One budget's current window: settled spend, reserved (in flight), and what is left."""

    budget: BudgetSpec
    window: str
    spent_micro: int
    reserved_micro: int
    reset_at: float | None

    @property
    def used_micro(self) -> int:
        return self.spent_micro + self.reserved_micro

    @property
    def remaining_micro(self) -> int:
        return max(0, self.budget.limit_micro - self.used_micro)

    @property
    def soft_exceeded(self) -> bool:
        soft = self.budget.soft_limit_micro
        return soft is not None and self.used_micro >= soft


#: A budget window's counters: ``(BudgetSpec.key, Window.id)``.
CounterRef = tuple[str, str]


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Reservation:
    """Money held for one request until it is settled or released (or expires).

    ``counters`` are the budget windows it was made in: settling adds the actual cost there even
    if the request ends after a window reset. ``status`` is each budget's window right after the
    reservation (same order as the budgets given). ``local`` marks a reservation made from the
    replica's own view during a Redis outage (``fail_mode: open``). ``leases``: the Redis lease
    records it was reserved against in memory (leasing on), one per counter.
    """

    request_id: str
    amount_micro: int
    time: float
    expires_at: float
    counters: tuple[CounterRef, ...]
    status: tuple[BudgetStatus, ...] = ()
    local: bool = False
    leases: tuple[str, ...] = ()

    @property
    def soft_exceeded(self) -> bool:
        return any(s.soft_exceeded for s in self.status)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One request in the spend ledger.

    The store sets ``time`` to the reservation's time (so a ledger sum over a window equals that
    window's counters) and ``actual_micro`` to the settled amount; the caller fills the rest.
    ``reference_micro`` is what the request would have cost on the reference model (savings).
    """

    request_id: str
    model: str
    key_alias: str | None = None
    user: str | None = None
    team: str | None = None
    task: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_micro: int = 0
    actual_micro: int = 0
    reference_micro: int = 0
    status: str = STATUS_OK
    time: float = 0.0
    #: The API the request came through: ``chat``, ``responses``, ``messages``, ``completions``,
    #: ``embeddings``. Rows written before this field existed read as ``chat``.
    api: str = "chat"

    def stamped(self, time: float, actual_micro: int) -> LedgerRow:
        """This row with the store's ``time`` and ``actual_micro`` (faster than replace())."""
        return LedgerRow(
            self.request_id, self.model, self.key_alias, self.user, self.team, self.task,
            self.prompt_tokens, self.completion_tokens, self.estimated_micro, actual_micro,
            self.reference_micro, self.status, time, self.api,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SettleResult:
    """What :meth:`BudgetStore.settle` did. ``applied`` False: already settled (a retry).
    ``overshoot_micro``: actual cost above the reservation (bounded; report it).
    ``deferred``: the store was unreachable; journaled, reconciled when it returns."""

    applied: bool
    overshoot_micro: int = 0
    deferred: bool = False


@dataclass(frozen=True)
class SpendRow:
    """One group of a ledger report."""

    group: Mapping[str, str | None] = field(default_factory=dict)
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_micro: int = 0
    actual_micro: int = 0
    reference_micro: int = 0

    @property
    def savings_micro(self) -> int:
        """What routing saved against sending every request to the reference model."""
        return self.reference_micro - self.actual_micro
