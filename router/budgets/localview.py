"""A replica's own view of its budgets, for admitting requests while Redis cannot be reached
(``fail_mode: open``).

For each budget window counter, ``used(key)`` is

* what Redis last told this replica the window holds (settled + reserved, leases included):
  every reserve, lease, settle, replay and status reply refreshes it, so it is as fresh as this
  replica's last call touching that budget (the gateway also reads every budget it has seen
  every few seconds for its gauges);
* plus what this replica has journaled since for that window: each settle's actual cost minus
  the part of its hold that the snapshot already counts and that the settle releases (a leased
  request's cost comes out of its lease; a per-request reservation's hold is released), so a
  request is never counted twice nor forgotten;
* plus what reservations made locally during the outage hold now.

So a replica admits during an outage at most what was free in each window as it last saw it
(docs/budgets.md, "Outages", states the resulting fleet bound). A window this replica has had
no word of from Redis is *unknown* (:meth:`unknown`): its spend may be anything up to the limit,
so the store refuses it rather than admit against zero, unless the window began after Redis was
lost, when nothing can have been spent in it through Redis before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from router.budgets.errors import RateLimited
from router.budgets.rules import choose_amount, gcra
from router.budgets.spec import BudgetSpec, BudgetStatus, CounterRef, Reservation, Window


@dataclass(slots=True)
class _LocalHold:
    amount: int
    counters: tuple[str, ...]
    expires_at: float


class LocalView:
    """Used money per counter key as this replica knows it (see the module docstring)."""

    #: Most counters remembered; past it the snapshot starts afresh (they become unknown).
    MAX_COUNTERS = 100_000

    def __init__(self) -> None:
        self.snapshot: dict[str, int] = {}
        self.pending: dict[str, int] = {}
        self._journaled: dict[int, tuple[tuple[str, ...], int]] = {}
        self.held: dict[str, int] = {}
        self.holds: dict[str, _LocalHold] = {}
        self.rates: dict[str, float] = {}

    # -- what Redis said, and what it has not seen yet ---------------------------------------

    def seen(self, key: str, used: int) -> None:
        """Redis reported ``used`` (settled + reserved) for the counter ``key``."""
        if len(self.snapshot) >= self.MAX_COUNTERS and key not in self.snapshot:
            self.snapshot.clear()
        self.snapshot[key] = used

    def used(self, key: str) -> int:
        return self.snapshot.get(key, 0) + self.pending.get(key, 0) + self.held.get(key, 0)

    def unknown(self, ckeys: Sequence[str], windows: Sequence[Window], lost_at: float) -> int:
        """Index of the first counter with no word from Redis whose window began before Redis
        was lost (``lost_at``), or -1 when every one is known."""
        for i, (k, w) in enumerate(zip(ckeys, windows, strict=True)):
            if k not in self.snapshot and w.start < lost_at:
                return i
        return -1

    def journaled(self, entry_id: int, counters: Sequence[str], delta: int) -> None:
        """Journal entry ``entry_id`` will move ``counters`` by ``delta`` when Redis applies it."""
        if delta and counters:
            self._journaled[entry_id] = (tuple(counters), delta)
            self._add(counters, delta)

    def replayed(self, entry_id: int) -> None:
        """Entry ``entry_id`` is in Redis now (its reply refreshed the snapshot)."""
        item = self._journaled.pop(entry_id, None)
        if item is not None:
            self._add(item[0], -item[1])

    def _add(self, counters: Sequence[str], amount: int) -> None:
        for k in counters:
            v = self.pending.get(k, 0) + amount
            if v:
                self.pending[k] = v
            else:
                self.pending.pop(k, None)

    # -- local holds -------------------------------------------------------------------------

    def hold(
        self, request_id: str, counters: Sequence[str], amount: int, expires_at: float
    ) -> None:
        self.holds[request_id] = _LocalHold(amount, tuple(counters), expires_at)
        for k in counters:
            self.held[k] = self.held.get(k, 0) + amount

    def unhold(self, request_id: str) -> None:
        h = self.holds.pop(request_id, None)
        if h is None:
            return
        for k in h.counters:
            v = self.held.get(k, 0) - h.amount
            if v:
                self.held[k] = v
            else:
                self.held.pop(k, None)

    def expire(self, now: float) -> int:
        gone = [rid for rid, h in self.holds.items() if h.expires_at <= now]
        for rid in gone:
            self.unhold(rid)
        return len(gone)

    # -- admission ---------------------------------------------------------------------------

    def rate(self, items: Sequence[tuple[str, int, int]], now: float) -> tuple[int, float] | None:
        """Local GCRA over ``(key, per_minute, cost)``: None (consumed) or (index, wait)."""
        new: list[tuple[str, float]] = []
        fail: tuple[int, float] | None = None
        for j, (key, per, cost) in enumerate(items):
            ok, tat, wait = gcra(self.rates.get(key), now, cost, per)
            if ok:
                new.append((key, tat))
            elif fail is None or wait > fail[1]:
                fail = (j, wait)
        if fail is None:
            self.rates.update(new)
        return fail

    def reserve(
        self,
        request_id: str,
        budgets: Sequence[BudgetSpec],
        windows: Sequence[Window],
        refs: tuple[CounterRef, ...],
        ckeys: Sequence[str],
        rate_items: Sequence[tuple[str, int, int]],
        amount_micro: int,
        fallback_micro: int | None,
        now: float,
        ttl_s: float,
        rate_error: Callable[[int, float], RateLimited],
    ) -> Reservation:
        """``fail_mode: open`` during an outage: the stores' rules on this replica's view (the
        caller has checked that every counter is known)."""
        self.expire(now)
        used = [self.used(k) for k in ckeys]
        hold = self.holds.get(request_id)
        if hold is not None:  # a retried reserve
            amount, exp = hold.amount, hold.expires_at
        else:
            fail = self.rate(rate_items, now)
            if fail is not None:
                raise rate_error(*fail)
            amount = choose_amount(
                budgets, windows, used, amount_micro, fallback_micro, degraded=True
            )
            exp = now + ttl_s
            self.hold(request_id, ckeys, amount, exp)
            used = [u + amount for u in used]
        status = tuple(
            BudgetStatus(b, w.id, u, 0, w.reset_at)
            for b, w, u in zip(budgets, windows, used, strict=True)
        )
        return Reservation(request_id, amount, now, exp, refs, status, local=True)
