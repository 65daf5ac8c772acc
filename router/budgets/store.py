"""The budget store interface.

Like httpx's transports, a store implements a handful of primitives and inherits the rest:
:meth:`reserve`, :meth:`settle`, :meth:`release`, :meth:`budget_status`, :meth:`check_rate`,
:meth:`expire_reservations`, :meth:`iter_ledger` and :meth:`close`. Reports
(:meth:`ledger_query`, :meth:`ledger_rows`, :meth:`spend`) are built on :meth:`iter_ledger`
and may be overridden where the backend can aggregate natively (SQLite does).

Every method takes ``now`` (Unix seconds) so tests and replays are deterministic; ``None`` means
``time.time()``. Windows are computed from ``now`` in the store's time zone.
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from router.budgets.rules import aggregate, check_fields
from router.budgets.spec import (
    BudgetSpec,
    BudgetStatus,
    Calendar,
    CounterRef,
    LedgerRow,
    RateLimitSpec,
    Reservation,
    SettleResult,
    SpendRow,
    Window,
)

if TYPE_CHECKING:
    from router.budgets.export.reader import History


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def check_request(
    request_id: str, budgets: Sequence[BudgetSpec], amount: int, fallback: int | None
) -> None:
    """Argument checks shared by the stores (programming errors, not budget errors)."""
    if not request_id or "\n" in request_id or len(request_id) > 256:
        raise ValueError(f"bad request_id {request_id!r}")
    if amount < 0 or (fallback is not None and fallback < 0):
        raise ValueError("amounts must be >= 0")
    if len({b.key for b in budgets}) != len(budgets):
        raise ValueError("the same budget (scope, id, period) is given twice")


class BudgetStore(abc.ABC):
    """Budgets, rate limits and the spend ledger, shared by every request (and replica).

    Guarantees, tested by ``tests/budgets/test_contract.py`` against every store:

    * ``reserve`` checks all budgets and reserves on all of them, or on none, atomically: the
      settled plus reserved amount of a window never passes its limit because of a reservation.
    * ``settle`` releases the reservation, adds the actual cost to the windows the reservation
      was made in, and appends the ledger row, atomically, so the ledger sums equal the
      counters. It is idempotent per request id.
    * A reservation never settled nor released stops counting ``reservation_ttl_s`` after it
      was made (crash safety).
    """

    #: Short name for errors and metrics ("sqlite", "redis").
    kind: str = "store"

    def __init__(self, *, timezone: str, reservation_ttl_s: float) -> None:
        if reservation_ttl_s <= 0:
            raise ValueError("reservation_ttl_s must be > 0")
        self.calendar = Calendar(timezone)
        self.reservation_ttl_s = float(reservation_ttl_s)
        #: The whole ledger, archive included, when rows are exported (set by
        #: router.budgets.export.service): reports over trimmed periods read it.
        self.history: History | None = None

    @property
    def timezone(self) -> str:
        return self.calendar.name

    def _windows(
        self, budgets: Sequence[BudgetSpec], now: float
    ) -> tuple[list[Window], tuple[CounterRef, ...]]:
        """Each budget's window containing ``now``, and its counter ``(b.key, w.id)``."""
        windows = [self.calendar.window(b.period, now) for b in budgets]
        refs = tuple((b.key, w.id) for b, w in zip(budgets, windows, strict=True))
        return windows, refs

    # -- primitives ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def reserve(
        self,
        request_id: str,
        budgets: Sequence[BudgetSpec],
        amount_micro: int,
        now: float | None = None,
        *,
        fallback_micro: int | None = None,
        rate_limits: Sequence[RateLimitSpec] = (),
        tokens: int = 0,
    ) -> Reservation:
        """Reserve ``amount_micro`` on every budget, or raise :class:`BudgetExceeded` naming the
        first budget (in the order given) it would pass.

        ``fallback_micro``: if the full amount does not fit, reserve this smaller amount instead
        (see :func:`router.budgets.amount.reservation_amount`); the returned
        ``Reservation.amount_micro`` says which. ``rate_limits``/``tokens``: consume one request
        and ``tokens`` tokens in the same atomic step (:class:`RateLimited`; nothing is reserved
        or consumed when either check fails). Retrying with the same ``request_id`` returns the
        live reservation instead of reserving twice.
        """

    @abc.abstractmethod
    async def settle(
        self,
        reservation: Reservation,
        actual_micro: int,
        row: LedgerRow,
        *,
        now: float | None = None,
    ) -> SettleResult:
        """Release the reservation, add ``actual_micro`` to its windows and append ``row``
        (with ``time`` and ``actual_micro`` set by the store). Idempotent per request id."""

    @abc.abstractmethod
    async def release(
        self,
        reservation: Reservation,
        row: LedgerRow | None = None,
        *,
        now: float | None = None,
    ) -> bool:
        """Give the reservation back without spending (the call failed). ``row``, if given, is
        recorded with cost 0 (e.g. status ``error``). False if it was already settled/released."""

    @abc.abstractmethod
    async def budget_status(
        self, budgets: Sequence[BudgetSpec], now: float | None = None
    ) -> list[BudgetStatus]:
        """Each budget's window containing ``now``: limit, spent, reserved, remaining, reset."""

    @abc.abstractmethod
    async def check_rate(
        self, specs: Sequence[RateLimitSpec], tokens: int = 0, now: float | None = None
    ) -> None:
        """Consume one request and ``tokens`` tokens on every spec, or raise
        :class:`RateLimited` (consuming nothing)."""

    @abc.abstractmethod
    async def expire_reservations(self, now: float | None = None) -> int:
        """Free reservations older than ``reservation_ttl_s``; returns how many. Reserving and
        status reads also do this, so calling it is only needed for prompt metrics."""

    @abc.abstractmethod
    def iter_ledger(
        self, since: float, until: float, filters: Mapping[str, str] | None = None
    ) -> AsyncIterator[LedgerRow]:
        """Ledger rows with ``since <= time < until`` matching ``filters`` (field -> value over
        team, user, key, model, task, status), oldest first."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; a Redis store hands back what it can of its local journal."""

    # -- built on the primitives ----------------------------------------------------------------

    async def ledger_rows(
        self,
        since: float,
        until: float,
        filters: Mapping[str, str] | None = None,
        *,
        limit: int | None = None,
    ) -> list[LedgerRow]:
        check_fields((), filters)
        out: list[LedgerRow] = []
        async for row in self.iter_ledger(since, until, filters):
            out.append(row)
            if limit is not None and len(out) >= limit:
                break
        return out

    async def ledger_query(
        self,
        since: float,
        until: float,
        group_by: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
    ) -> list[SpendRow]:
        """Spend report: one row per group (team, user, key, model, task, status), largest
        first; no ``group_by`` gives one total row (when there is any spend)."""
        check_fields(group_by, filters)
        rows = [r async for r in self.iter_ledger(since, until, filters)]
        return aggregate(rows, group_by)

    async def spend(self, budget: BudgetSpec, now: float | None = None) -> int:
        """Settled spend of ``budget``'s current window (µ$)."""
        (st,) = await self.budget_status([budget], now)
        return st.spent_micro

    async def ping(self) -> bool:
        """Is the store reachable right now (readiness)?"""
        return True

    async def __aenter__(self) -> BudgetStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
