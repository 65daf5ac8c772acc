"""The budget store contract: every test runs against SqliteStore and RedisStore (a real
redis-server started by conftest.py). Time is always passed explicitly."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from router.budgets import (
    STATUS_ERROR,
    BudgetExceeded,
    BudgetSpec,
    BudgetStore,
    LedgerRow,
    Period,
    RateLimited,
    RateLimitSpec,
    Reservation,
    Scope,
    window_of,
)
from tests.budgets.conftest import StoreFactory

T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC).timestamp()
FOREVER = 4e9


def team(limit: int, period: str = "total", **kw: object) -> BudgetSpec:
    return BudgetSpec(Scope.TEAM, "search", Period(period), limit, **kw)  # type: ignore[arg-type]


def key(limit: int, period: str = "total", **kw: object) -> BudgetSpec:
    return BudgetSpec(Scope.KEY, "app-prod", Period(period), limit, **kw)  # type: ignore[arg-type]


def row(rid: str, **kw: object) -> LedgerRow:
    base: dict[str, object] = dict(
        model="gpt-4o-mini", key_alias="app-prod", user="ann", team="search", task="expression"
    )
    base.update(kw)
    return LedgerRow(request_id=rid, **base)  # type: ignore[arg-type]


async def ledger_total(store: BudgetStore, **filters: str) -> int:
    rows = await store.ledger_rows(0, FOREVER, filters or None)
    return sum(r.actual_micro for r in rows)


async def test_reserve_settle_and_status(store: BudgetStore) -> None:
    b = [team(1000, soft_limit_micro=500), key(5000)]
    r = await store.reserve("r1", b, 600, T0)
    assert r.amount_micro == 600 and not r.local
    assert [s.reserved_micro for s in r.status] == [600, 600]
    assert r.status[0].soft_exceeded and not r.status[1].soft_exceeded
    res = await store.settle(r, 450, row("r1", prompt_tokens=10, completion_tokens=20))
    assert res.applied and res.overshoot_micro == 0 and not res.deferred
    st = await store.budget_status(b, T0 + 1)
    assert [(s.spent_micro, s.reserved_micro, s.remaining_micro) for s in st] == [
        (450, 0, 550),
        (450, 0, 4550),
    ]
    (lr,) = await store.ledger_rows(0, FOREVER)
    assert (lr.request_id, lr.actual_micro, lr.time, lr.completion_tokens) == ("r1", 450, T0, 20)
    assert await store.spend(b[0], T0) == 450


async def test_exceeded_names_first_budget_and_reserves_nothing(store: BudgetStore) -> None:
    b = [key(10_000), team(1000, "daily")]
    await store.reserve("r1", b, 700, T0)
    with pytest.raises(BudgetExceeded) as ei:
        await store.reserve("r2", b, 400, T0)
    e = ei.value
    assert (e.scope, e.scope_id, e.period, e.limit_micro) == ("team", "search", "daily", 1000)
    assert (e.spent_micro, e.requested_micro, e.window) == (700, 400, "2025-01-15")
    assert e.reset_at == datetime(2025, 1, 16, tzinfo=UTC).timestamp()
    assert e.details()["reset_at"] == "2025-01-16T00:00:00+00:00"
    # all or nothing: the key budget, which had room, holds nothing for r2
    st = await store.budget_status(b, T0)
    assert [s.reserved_micro for s in st] == [700, 700]


async def test_fallback_amount_when_worst_case_does_not_fit(store: BudgetStore) -> None:
    b = [team(1000)]
    r1 = await store.reserve("r1", b, 800, T0, fallback_micro=100)
    assert r1.amount_micro == 800  # the worst case fits: take it
    r2 = await store.reserve("r2", b, 800, T0, fallback_micro=150)
    assert r2.amount_micro == 150
    with pytest.raises(BudgetExceeded) as ei:
        await store.reserve("r3", b, 800, T0, fallback_micro=100)
    assert ei.value.requested_micro == 100 and ei.value.spent_micro == 950
    res = await store.settle(r2, 400, row("r2"))
    assert res.overshoot_micro == 250  # reported, bounded by the plan


async def test_zero_cost_requests_pass_exhausted_budgets_unless_configured(
    store: BudgetStore,
) -> None:
    open_b, blocking = team(100), key(100, block_zero_cost=True)
    r = await store.reserve("r1", [open_b, blocking], 100, T0)
    await store.settle(r, 100, row("r1"))
    await store.reserve("free", [open_b], 0, T0)  # exhausted, but zero-cost: allowed
    with pytest.raises(BudgetExceeded):
        await store.reserve("free2", [open_b, blocking], 0, T0)
    with pytest.raises(BudgetExceeded):
        await store.reserve("paid", [open_b], 1, T0)


async def test_200_concurrent_reservations_against_budget_of_50(store: BudgetStore) -> None:
    limit = 50 * 2_000
    b = [team(limit), key(limit * 10)]

    async def one(i: int) -> bool:
        try:
            r = await store.reserve(f"c{i}", b, limit // 50, T0)
        except BudgetExceeded:
            return False
        await asyncio.sleep(0)
        await store.settle(r, limit // 50, row(f"c{i}"))
        return True

    ok = await asyncio.gather(*(one(i) for i in range(200)))
    assert sum(ok) == 50
    (st, _) = await store.budget_status(b, T0)
    assert st.spent_micro == limit and st.reserved_micro == 0
    assert await ledger_total(store) == limit


async def test_concurrent_reservations_never_pass_limit_with_uneven_costs(
    store: BudgetStore,
) -> None:
    limit = 100_000
    rng = random.Random(7)
    costs = [rng.randint(500, 5000) for _ in range(200)]
    held: list[int] = []

    async def one(i: int) -> None:
        try:
            await store.reserve(f"u{i}", [team(limit)], costs[i], T0)
        except BudgetExceeded:
            return
        held.append(costs[i])

    await asyncio.gather(*(one(i) for i in range(200)))
    (st,) = await store.budget_status([team(limit)], T0)
    assert st.reserved_micro == sum(held) <= limit
    assert limit - st.reserved_micro < max(costs)  # and it was not refused needlessly


async def test_window_reset_loses_nothing_and_counts_nothing_twice(store: BudgetStore) -> None:
    day, month = team(1000, "daily"), key(10_000, "monthly")
    b = [day, month]
    before = datetime(2025, 1, 31, 23, 59, 59, tzinfo=UTC).timestamp()
    after = before + 2  # 2025-02-01 00:00:01: new day and new month
    r1 = await store.reserve("late", b, 900, before)
    r2 = await store.reserve("early", b, 900, after)  # a fresh day: fits
    await store.settle(r1, 800, row("late"), now=after + 5)  # settles after the reset
    await store.settle(r2, 700, row("early"), now=after + 6)
    old = await store.budget_status(b, before)
    new = await store.budget_status(b, after + 10)
    assert [(s.window, s.spent_micro, s.reserved_micro) for s in old] == [
        ("2025-01-31", 800, 0),
        ("2025-01", 800, 0),
    ]
    assert [(s.window, s.spent_micro) for s in new] == [("2025-02-01", 700), ("2025-02", 700)]
    # the ledger, split at the window boundary, agrees with each window
    w = window_of(Period.DAILY, after, store.calendar.tz)
    assert sum(r.actual_micro for r in await store.ledger_rows(0, w.start)) == 800
    assert sum(r.actual_micro for r in await store.ledger_rows(w.start, FOREVER)) == 700


async def test_unsettled_reservation_expires_and_frees_budget(make_store: StoreFactory) -> None:
    store = make_store(reservation_ttl_s=30.0)
    b = [team(1000)]
    await store.reserve("lost", b, 1000, T0)
    with pytest.raises(BudgetExceeded):
        await store.reserve("next", b, 1, T0 + 29)
    r = await store.reserve("next", b, 1000, T0 + 30)  # expired at T0 + 30
    assert r.amount_micro == 1000
    (st,) = await store.budget_status(b, T0 + 31)
    assert st.reserved_micro == 1000 and st.spent_micro == 0


async def test_late_settle_after_expiry_still_counts_once(make_store: StoreFactory) -> None:
    store = make_store(reservation_ttl_s=30.0)
    b = [team(1000)]
    r = await store.reserve("slow", b, 500, T0)
    assert await store.expire_reservations(T0 + 31) == 1
    assert await store.expire_reservations(T0 + 32) == 0
    (st,) = await store.budget_status(b, T0 + 31)
    assert st.reserved_micro == 0
    assert (await store.settle(r, 300, row("slow"), now=T0 + 40)).applied
    assert not (await store.settle(r, 300, row("slow"), now=T0 + 41)).applied
    (st,) = await store.budget_status(b, T0 + 50)
    assert (st.spent_micro, st.reserved_micro) == (300, 0)


async def test_settle_is_idempotent(store: BudgetStore) -> None:
    b = [team(10_000), key(10_000)]
    r = await store.reserve("r1", b, 1000, T0)
    results = await asyncio.gather(*(store.settle(r, 700, row("r1")) for _ in range(5)))
    assert sum(x.applied for x in results) == 1
    assert not await store.release(r)
    st = await store.budget_status(b, T0)
    assert [(s.spent_micro, s.reserved_micro) for s in st] == [(700, 0), (700, 0)]
    assert len(await store.ledger_rows(0, FOREVER)) == 1


async def test_reserve_retry_with_same_request_id_reserves_once(store: BudgetStore) -> None:
    b = [team(1000)]
    r1 = await store.reserve("r1", b, 600, T0)
    r1b = await store.reserve("r1", b, 600, T0 + 1)
    assert (r1b.amount_micro, r1b.time, r1b.counters) == (600, T0, r1.counters)
    (st,) = await store.budget_status(b, T0)
    assert st.reserved_micro == 600
    await store.settle(r1, 600, row("r1"))
    with pytest.raises(ValueError):
        await store.reserve("r1", b, 600, T0 + 2)


async def test_release_frees_and_records_error_row(store: BudgetStore) -> None:
    b = [team(1000)]
    r = await store.reserve("bad", b, 1000, T0)
    assert await store.release(r, row("bad", status=STATUS_ERROR, estimated_micro=1000))
    assert not await store.release(r)
    assert not (await store.settle(r, 5, row("bad"))).applied
    (st,) = await store.budget_status(b, T0)
    assert (st.spent_micro, st.reserved_micro) == (0, 0)
    (lr,) = await store.ledger_rows(0, FOREVER)
    assert (lr.status, lr.actual_micro, lr.estimated_micro) == ("error", 0, 1000)
    r2 = await store.reserve("quiet", b, 1000, T0)
    assert await store.release(r2)  # no row: nothing recorded
    assert len(await store.ledger_rows(0, FOREVER)) == 1


async def test_rate_limits_requests_and_tokens(store: BudgetStore) -> None:
    spec = [RateLimitSpec(Scope.KEY, "app-prod", requests_per_minute=3, tokens_per_minute=1000)]
    for i in range(3):
        await store.check_rate(spec, 100, T0 + i * 0.001)
    with pytest.raises(RateLimited) as ei:
        await store.check_rate(spec, 100, T0 + 0.01)
    e = ei.value
    assert (e.kind, e.limit_per_minute, e.scope, e.scope_id) == ("requests", 3, "key", "app-prod")
    assert e.retry_after_s == pytest.approx(20 - 0.01 + 0.0, abs=0.01)
    assert e.retry_after_header == "20"
    await store.check_rate(spec, 100, T0 + 20.01)  # one request refilled
    tok = [RateLimitSpec(Scope.TEAM, "search", tokens_per_minute=1000)]
    await store.check_rate(tok, 900, T0)
    with pytest.raises(RateLimited) as ei:
        await store.check_rate(tok, 200, T0 + 1)  # 900 - 1 s of refill + 200 > 1000
    assert ei.value.kind == "tokens" and ei.value.retry_after_s == pytest.approx(5.0)
    await store.check_rate(tok, 100, T0 + 1)  # the refused call consumed nothing
    # larger than the whole bucket: passes only when the bucket is full, then blocks
    with pytest.raises(RateLimited):
        await store.check_rate(tok, 5000, T0 + 30)
    await store.check_rate(tok, 5000, T0 + 61)
    with pytest.raises(RateLimited) as ei:
        await store.check_rate(tok, 1, T0 + 62)
    assert ei.value.retry_after_s == pytest.approx(300 - 60 - 1 + 0.06, abs=0.01)


async def test_reserve_with_rate_limits_is_all_or_nothing(store: BudgetStore) -> None:
    spec = [RateLimitSpec(Scope.TEAM, "search", requests_per_minute=1)]
    with pytest.raises(BudgetExceeded):
        await store.reserve("a", [team(10)], 20, T0, rate_limits=spec)
    r = await store.reserve("b", [team(10)], 5, T0, rate_limits=spec)  # rate not consumed
    with pytest.raises(RateLimited):
        await store.reserve("c", [team(10)], 1, T0 + 1, rate_limits=spec)
    (st,) = await store.budget_status([team(10)], T0 + 1)
    assert st.reserved_micro == r.amount_micro == 5  # budget not touched by the refusal


async def test_ledger_query_groups_and_filters(store: BudgetStore) -> None:
    rows = [
        ("a", "search", "gpt-4o", "reasoning", 300),
        ("b", "search", "gpt-4o-mini", "expression", 100),
        ("c", "ads", "gpt-4o-mini", "expression", 50),
        ("d", "ads", "gpt-4o-mini", "reasoning", 20),
    ]
    for i, (rid, t, m, task, cost) in enumerate(rows):
        r = await store.reserve(rid, [], cost, T0 + i)
        await store.settle(r, cost, row(rid, team=t, model=m, task=task, reference_micro=400))
    by_team = await store.ledger_query(0, FOREVER, ["team"])
    assert [(s.group["team"], s.actual_micro, s.requests) for s in by_team] == [
        ("search", 400, 2),
        ("ads", 70, 2),
    ]
    assert by_team[1].savings_micro == 800 - 70
    q = await store.ledger_query(0, FOREVER, ["model", "task"], {"team": "ads"})
    assert {(s.group["model"], s.group["task"]): s.actual_micro for s in q} == {
        ("gpt-4o-mini", "expression"): 50,
        ("gpt-4o-mini", "reasoning"): 20,
    }
    (total,) = await store.ledger_query(T0 + 1, T0 + 3)
    assert (total.requests, total.actual_micro) == (2, 150)
    assert await store.ledger_query(0, 1) == []
    with pytest.raises(ValueError):
        await store.ledger_query(0, FOREVER, ["secret"])


async def test_state_survives_reopen(make_store: StoreFactory) -> None:
    s1 = make_store()
    b = [team(1000)]
    r = await s1.reserve("r1", b, 400, T0)
    await s1.settle(r, 300, row("r1"))
    await s1.reserve("r2", b, 200, T0)
    await s1.close()
    s2 = make_store()
    (st,) = await s2.budget_status(b, T0)
    assert (st.spent_micro, st.reserved_micro) == (300, 200)
    assert not (await s2.settle(r, 300, row("r1"))).applied


async def test_random_workload_ledger_equals_counters(make_store: StoreFactory) -> None:
    """Reserve, settle, release and let expire at random across window resets; afterwards
    every counter equals the ledger rows of its window, and nothing stays reserved."""
    store = make_store(reservation_ttl_s=600.0)
    rng = random.Random(20250115)
    every = BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**9)
    shared = BudgetSpec(Scope.KEY, "k-shared", Period.WEEKLY, 200_000)
    groups = [  # (budgets, team, key alias) of three kinds of caller
        ([team(50_000, "daily"), shared, every], "search", "k-shared"),
        ([BudgetSpec(Scope.TEAM, "ads", Period.MONTHLY, 80_000), shared, every], "ads", "k-shared"),
        ([every, BudgetSpec(Scope.KEY, "k-other", Period.DAILY, 30_000)], "other", "k-other"),
    ]
    t = datetime(2025, 1, 30, 20, 0, tzinfo=UTC).timestamp()
    live: list[tuple[Reservation, int]] = []
    refused = 0
    for i in range(300):
        t += rng.uniform(0, 1200)
        if live and rng.random() < 0.5:
            r, g = live.pop(rng.randrange(len(live)))
            if rng.random() < 0.8:
                actual = rng.randint(0, r.amount_micro + 200)
                lr = row(r.request_id, team=groups[g][1], key_alias=groups[g][2])
                await store.settle(r, actual, lr, now=t)
            elif rng.random() < 0.5:
                await store.release(r, now=t)
            continue  # else: never settled; expires
        g = rng.randrange(3)
        try:
            r = await store.reserve(f"w{i}", groups[g][0], rng.randint(0, 9000), t)
        except BudgetExceeded:
            refused += 1
            continue
        live.append((r, g))
    assert refused > 0  # the workload does reach the limits
    await store.expire_reservations(t + 10_000)
    rows = await store.ledger_rows(0, FOREVER)
    tz = store.calendar.tz
    budgets = {b for g in groups for b in g[0]}
    checked = 0
    for b in budgets:
        mine = [
            r
            for r in rows
            if b.scope == Scope.GLOBAL
            or (b.scope == Scope.TEAM and r.team == b.scope_id)
            or (b.scope == Scope.KEY and r.key_alias == b.scope_id)
        ]
        by_window: dict[str, list[LedgerRow]] = {}
        for r in mine:
            by_window.setdefault(window_of(b.period, r.time, tz).id, []).append(r)
        for rs in by_window.values():
            (st,) = await store.budget_status([b], rs[0].time)
            assert st.reserved_micro == 0
            assert st.spent_micro == sum(r.actual_micro for r in rs) <= b.limit_micro + 200 * 40
            checked += 1
    assert checked > 8
