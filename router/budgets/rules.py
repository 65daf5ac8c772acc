"""Pure rules shared by every store (the Redis Lua scripts mirror them line for line)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from router.budgets.errors import BudgetExceeded
from router.budgets.spec import GROUP_FIELDS, BudgetSpec, LedgerRow, SpendRow, Window

#: Rate limits are per minute.
RATE_PERIOD_S = 60.0


def over_limit(budget: BudgetSpec, used_micro: int, amount_micro: int) -> bool:
    """Would reserving ``amount_micro`` on top of ``used_micro`` (settled + reserved) pass the
    hard limit? A zero-cost request is only stopped by an exhausted budget that blocks zero cost.
    """
    if amount_micro == 0:
        return budget.block_zero_cost and used_micro >= budget.limit_micro
    return used_micro + amount_micro > budget.limit_micro


def first_over(budgets: Sequence[BudgetSpec], used: Sequence[int], amount_micro: int) -> int | None:
    """Index of the first budget ``amount_micro`` would pass, or None if it fits in all."""
    for i, b in enumerate(budgets):
        if over_limit(b, used[i], amount_micro):
            return i
    return None


def exceeded(
    budget: BudgetSpec, window: Window, used: int, requested: int, *, degraded: bool = False
) -> BudgetExceeded:
    """The error for ``budget``, whose ``window`` holds ``used`` (settled + reserved)."""
    return BudgetExceeded(
        scope=budget.scope.value,
        scope_id=budget.scope_id,
        period=budget.period.value,
        window=window.id,
        limit_micro=budget.limit_micro,
        spent_micro=used,
        requested_micro=requested,
        reset_at=window.reset_at,
        degraded=degraded,
    )


def choose_amount(
    budgets: Sequence[BudgetSpec],
    windows: Sequence[Window],
    used: Sequence[int],
    amount_micro: int,
    fallback_micro: int | None,
    *,
    degraded: bool = False,
) -> int:
    """The amount to hold: ``amount_micro`` if it fits in every budget, else ``fallback_micro``
    if that fits; otherwise raise :class:`BudgetExceeded` for the first budget it passes."""
    amount = amount_micro
    bad = first_over(budgets, used, amount)
    if bad is not None and fallback_micro is not None and fallback_micro < amount:
        amount = fallback_micro
        bad = first_over(budgets, used, amount)
    if bad is None:
        return amount
    raise exceeded(budgets[bad], windows[bad], used[bad], amount, degraded=degraded)


def gcra(tat: float | None, now: float, cost: float, per_minute: int) -> tuple[bool, float, float]:
    """Generic cell-rate algorithm (a token bucket kept as one number, the theoretical arrival
    time ``tat``). Returns ``(allowed, new_tat, retry_after_s)``.

    The bucket holds ``per_minute`` units and refills at ``per_minute / 60`` per second. A cost
    larger than the whole bucket passes only when the bucket is full, and then keeps the bucket
    empty for as long as it overdrew it, so the long-run rate still holds.
    """
    interval = RATE_PERIOD_S / per_minute
    base = now if tat is None or tat < now else tat
    new_tat = base + cost * interval
    # A cost within the bucket waits until it fits; a larger one until the bucket is full.
    wait = new_tat - RATE_PERIOD_S - now if cost <= per_minute else base - now
    if wait > 0:
        return False, base, wait
    return True, new_tat, 0.0


def matches(row: LedgerRow, filters: Mapping[str, str] | None) -> bool:
    if not filters:
        return True
    return all(getattr(row, GROUP_FIELDS[k]) == v for k, v in filters.items())


def check_fields(group_by: Sequence[str], filters: Mapping[str, str] | None) -> None:
    for name in (*group_by, *(filters or {})):
        if name not in GROUP_FIELDS:
            known = ", ".join(sorted(GROUP_FIELDS))
            raise ValueError(f"cannot group or filter by {name!r}: use one of {known}")


def aggregate(rows: Iterable[LedgerRow], group_by: Sequence[str]) -> list[SpendRow]:
    """Sum ledger rows into one :class:`SpendRow` per distinct value of ``group_by``, sorted by
    actual spend, largest first."""
    acc: dict[tuple[str | None, ...], list[int]] = {}
    cols = [GROUP_FIELDS[g] for g in group_by]
    for r in rows:
        k = tuple(getattr(r, c) for c in cols)
        a = acc.setdefault(k, [0, 0, 0, 0, 0, 0])
        a[0] += 1
        a[1] += r.prompt_tokens
        a[2] += r.completion_tokens
        a[3] += r.estimated_micro
        a[4] += r.actual_micro
        a[5] += r.reference_micro
    out = [
        SpendRow(
            group=dict(zip(group_by, k, strict=True)),
            requests=a[0],
            prompt_tokens=a[1],
            completion_tokens=a[2],
            estimated_micro=a[3],
            actual_micro=a[4],
            reference_micro=a[5],
        )
        for k, a in acc.items()
    ]
    out.sort(key=lambda s: (-s.actual_micro, tuple(str(v) for v in s.group.values())))
    return out
