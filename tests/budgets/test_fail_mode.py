"""Redis outages, with a real redis-server stopped and started again (append-only file, so its
data survives the restart as a production budget Redis's should).

closed: admission refuses with StoreUnavailable (the gateway's 503) while Redis is down; spend
of requests already admitted is journaled and reconciled. open: requests are served from the
replica's own view, spend is journaled, and reconciled into Redis exactly once when it returns.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from router.budgets import (
    BudgetExceeded,
    BudgetSpec,
    LedgerRow,
    Period,
    RateLimited,
    RateLimitSpec,
    Scope,
    StoreUnavailable,
)
from router.budgets.journal import encode_row
from router.budgets.redis_store import RedisStore
from tests.budgets.conftest import RedisServer

T0 = 1_736_942_400.0  # 2025-01-15 12:00 UTC
BUDGET = BudgetSpec(Scope.TEAM, "search", Period.MONTHLY, 1000)


def store_on(srv: RedisServer, tmp_path: Path, fail_mode: str) -> RedisStore:
    return RedisStore(
        srv.url,
        fail_mode=fail_mode,
        prefix="fm",
        journal_path=str(tmp_path / "journal.db"),
        socket_timeout_s=0.2,
        retry_interval_s=0.05,
        reservation_ttl_s=600,
    )


async def wait_available(store: RedisStore, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not store.available:
        assert time.monotonic() < deadline, "store did not recover"
        await asyncio.sleep(0.02)


def row(rid: str) -> LedgerRow:
    return LedgerRow(rid, "gpt-4o-mini", team="search")


async def test_closed_refuses_admission_and_reconciles_spend(
    persistent_redis: RedisServer, tmp_path: Path
) -> None:
    store = store_on(persistent_redis, tmp_path, "closed")
    try:
        r1 = await store.reserve("r1", [BUDGET], 300, T0)
        persistent_redis.stop()
        t = time.monotonic()
        with pytest.raises(StoreUnavailable) as ei:
            await store.reserve("r2", [BUDGET], 100, T0)
        assert ei.value.store == "redis" and ei.value.reason
        with pytest.raises(StoreUnavailable):  # now refused at once, without a round trip
            await store.check_rate([RateLimitSpec(Scope.KEY, "k", requests_per_minute=5)])
        with pytest.raises(StoreUnavailable):
            await store.budget_status([BUDGET], T0)
        assert time.monotonic() - t < 2
        # the request admitted before the outage finishes: its spend is kept, not lost
        res = await store.settle(r1, 250, row("r1"))
        assert res.applied and res.deferred and len(store.journal) == 1

        persistent_redis.start()
        await wait_available(store)
        assert len(store.journal) == 0
        (st,) = await store.budget_status([BUDGET], T0)
        assert (st.spent_micro, st.reserved_micro) == (250, 0)
        r3 = await store.reserve("r3", [BUDGET], 750, T0)
        assert not r3.local
        assert [r.request_id for r in await store.ledger_rows(0, 4e9)] == ["r1"]
    finally:
        await store.close()


async def test_open_serves_locally_and_reconciles_exactly_once(
    persistent_redis: RedisServer, tmp_path: Path
) -> None:
    store = store_on(persistent_redis, tmp_path, "open")
    try:
        r0 = await store.reserve("r0", [BUDGET], 200, T0)  # in flight across the outage
        r1 = await store.reserve("r1", [BUDGET], 100, T0)
        await store.settle(r1, 100, row("r1"))
        persistent_redis.stop()

        r2 = await store.reserve("r2", [BUDGET], 300, T0)
        assert r2.local
        assert (await store.settle(r2, 250, row("r2"), now=T0)).deferred
        assert (await store.settle(r0, 150, row("r0"), now=T0)).deferred
        # the local view: Redis's last word (100 settled + r0's 200 held) + r2's 250 + r0's 150
        # in place of its hold: exactly what Redis will hold once the journal is replayed
        (st,) = await store.budget_status([BUDGET], T0)
        assert st.spent_micro == 500
        with pytest.raises(BudgetExceeded) as ei:
            await store.reserve("r3", [BUDGET], 501, T0)
        assert ei.value.degraded and ei.value.spent_micro == 500
        r3 = await store.reserve("r3", [BUDGET], 500, T0)  # what is left, to the last µ$
        await store.release(r3)
        rl = [RateLimitSpec(Scope.KEY, "k", requests_per_minute=1)]
        await store.check_rate(rl, now=T0)
        with pytest.raises(RateLimited):
            await store.check_rate(rl, now=T0 + 1)
        assert len(store.journal) == 2

        persistent_redis.start()
        await wait_available(store)
        assert len(store.journal) == 0
        (st,) = await store.budget_status([BUDGET], T0)
        assert (st.spent_micro, st.reserved_micro) == (100 + 250 + 150, 0)
        rows = await store.ledger_rows(0, 4e9)
        assert sorted(r.request_id for r in rows) == ["r0", "r1", "r2"]

        # a replica that crashed between replaying an entry and deleting it replays it again:
        # nothing is counted twice
        ckeys = [store._ckey(c) for c in r2.counters]
        blob = encode_row(row("r2").stamped(T0, 250))
        store.journal.append("settle", "r2", ckeys, 250, int(T0 * 1000), blob)
        assert await store.reconcile() == 1
        (st,) = await store.budget_status([BUDGET], T0)
        assert st.spent_micro == 500
        assert len(await store.ledger_rows(0, 4e9)) == 3
    finally:
        await store.close()


async def test_journal_survives_a_replica_restart(
    persistent_redis: RedisServer, tmp_path: Path
) -> None:
    store = store_on(persistent_redis, tmp_path, "open")
    r = await store.reserve("r1", [BUDGET], 400, T0)
    persistent_redis.stop()
    assert (await store.settle(r, 400, row("r1"))).deferred
    await store.close()  # Redis still down: the entry stays in the journal file

    again = store_on(persistent_redis, tmp_path, "open")
    try:
        assert len(again.journal) == 1
        # down, and this process has had no word from Redis on the budget: its spend is
        # unknown (the journal holds only this replica's part), so nothing is admitted on it
        with pytest.raises(StoreUnavailable) as ei:
            await again.reserve("r2", [BUDGET], 1, T0)
        assert "no spend known" in ei.value.reason
        with pytest.raises(StoreUnavailable):
            await again.budget_status([BUDGET], T0)
        persistent_redis.start()
        await wait_available(again)
        (st,) = await again.budget_status([BUDGET], T0)
        assert (st.spent_micro, st.reserved_micro) == (400, 0)
    finally:
        await again.close()


async def test_leases_keep_serving_exactly_through_an_outage(
    persistent_redis: RedisServer, tmp_path: Path
) -> None:
    store = RedisStore(persistent_redis.url, fail_mode="closed", prefix="fl",
                       journal_path=str(tmp_path / "j.db"), socket_timeout_s=0.2,
                       retry_interval_s=0.05, lease_fraction=0.5)  # fmt: skip
    try:
        now = time.time()
        r1 = await store.reserve("r1", [BUDGET], 100, now)  # takes a lease of 500
        persistent_redis.stop()
        r2 = await store.reserve("r2", [BUDGET], 300, now)  # from the lease: no Redis needed
        assert r2.leases and not r2.local
        with pytest.raises(StoreUnavailable):  # past what the lease holds: closed
            await store.reserve("r3", [BUDGET], 200, now)
        for r in (r1, r2):
            assert (await store.settle(r, r.amount_micro, row(r.request_id))).deferred
        persistent_redis.start()
        await wait_available(store)
        (st,) = await store.budget_status([BUDGET], now)
        assert st.spent_micro == 400 and st.spent_micro + st.reserved_micro <= 1000
    finally:
        await store.close()
    check = RedisStore(persistent_redis.url, prefix="fl")
    try:
        (st,) = await check.budget_status([BUDGET], now)
        assert (st.spent_micro, st.reserved_micro) == (400, 0)
    finally:
        await check.close()


# -- fail_mode open: what a replica may admit during an outage (docs/budgets.md, "Outages") ------

LIMIT, COST = 100_000, 1_000
TEAM_T = BudgetSpec(Scope.TEAM, "t", Period.MONTHLY, LIMIT)


def open_store(srv: RedisServer, path: Path, lease_fraction: float, prefix: str) -> RedisStore:
    return RedisStore(srv.url, fail_mode="open", prefix=prefix, journal_path=str(path),
                      socket_timeout_s=0.2, retry_interval_s=0.05,
                      lease_fraction=lease_fraction)  # fmt: skip


async def spend(store: RedisStore, tag: str, n: int) -> None:
    for i in range(n):
        r = await store.reserve(f"{tag}{i}", [TEAM_T], COST)
        await store.settle(r, COST, LedgerRow(f"{tag}{i}", "m", team="t"))


async def admit_until_refused(store: RedisStore, tag: str) -> int:
    """Reserve and settle COST until refused (at most 200): how many were admitted."""
    for i in range(200):
        try:
            r = await store.reserve(f"{tag}{i}", [TEAM_T], COST)
        except BudgetExceeded as e:
            assert e.degraded or not store.available
            return i
        await store.settle(r, COST, LedgerRow(f"{tag}{i}", "m", team="t"))
    return 200


def idle_lease(store: RedisStore) -> int:
    """Money this replica's leases hold and no request uses (it may spend it, exactly)."""
    assert store.leasing is not None
    return sum(lease.free for lease in store.leasing.leases.by_ckey.values())


@pytest.mark.parametrize("lease_fraction", [0.05, 0.0])
async def test_open_admits_only_what_was_free_before_the_outage(
    persistent_redis: RedisServer, tmp_path: Path, lease_fraction: float
) -> None:
    """Issue 16 point 1, the store-level reproduction: 90 × 1,000 µ$ of a 100,000 µ$ budget
    settled, Redis stopped, reserving goes on: exactly the 10 left are admitted, with leases
    (it was 100: the local view never heard of the spend made through leases) or without."""
    store = open_store(persistent_redis, tmp_path / "j.db", lease_fraction, "o1")
    try:
        await spend(store, "a", 90)
        persistent_redis.stop()
        assert await admit_until_refused(store, "b") == 10
        assert len(store.journal) == 10
        persistent_redis.start()
        await wait_available(store)
        (st,) = await store.budget_status([TEAM_T])
        assert st.spent_micro == LIMIT
        assert sum(r.actual_micro for r in await store.ledger_rows(0, 4e9)) == LIMIT
    finally:
        await store.close()


async def test_open_two_replicas_each_admit_what_they_last_saw_free(
    persistent_redis: RedisServer, tmp_path: Path
) -> None:
    """Two replicas with leases: during the outage each admits exactly its idle lease money plus
    what was free in Redis at its own last call (a settle): here 30 requests' worth left and 61
    admitted (a last heard from Redis before b's last request), where the issue saw 88-111."""
    a = open_store(persistent_redis, tmp_path / "a.db", 0.05, "o2")
    b = open_store(persistent_redis, tmp_path / "b.db", 0.05, "o2")
    observer = RedisStore(persistent_redis.url, prefix="o2")  # reads Redis, not a's or b's view
    try:
        for i in range(35):
            await spend(a, f"a{i}-", 1)
            (sa,) = await observer.budget_status([TEAM_T])
            await spend(b, f"b{i}-", 1)
            (sb,) = await observer.budget_status([TEAM_T])
        idle_a, idle_b = idle_lease(a), idle_lease(b)
        assert sb.used_micro == 70_000 + idle_a + idle_b
        persistent_redis.stop()
        ok_a = await admit_until_refused(a, "x")
        ok_b = await admit_until_refused(b, "y")
        assert ok_a == (LIMIT - sa.used_micro + idle_a) // COST
        assert ok_b == (LIMIT - sb.used_micro + idle_b) // COST
        # the bound: (replicas - 1) × what was free at the outage, plus what the others spent
        # after a replica's last call (here b's last request, after a's last call)
        free = LIMIT - sb.used_micro  # b's view is Redis's at the outage
        stale = sb.used_micro - sa.used_micro
        assert stale == COST
        assert 70_000 + (ok_a + ok_b) * COST - LIMIT == (2 - 1) * free + stale
        persistent_redis.start()
        await wait_available(a)
        await wait_available(b)
        (st,) = await a.budget_status([TEAM_T])
        assert st.spent_micro == 70_000 + (ok_a + ok_b) * COST
        assert sum(r.actual_micro for r in await a.ledger_rows(0, 4e9)) == st.spent_micro
    finally:
        await a.close()
        await b.close()
        await observer.close()


async def test_open_refuses_a_budget_whose_spend_it_never_heard_of(
    persistent_redis: RedisServer, tmp_path: Path
) -> None:
    store = open_store(persistent_redis, tmp_path / "j.db", 0.05, "o3")
    other = BudgetSpec(Scope.TEAM, "other", Period.MONTHLY, LIMIT)
    daily = BudgetSpec(Scope.TEAM, "t", Period.DAILY, 5 * COST)
    try:
        await spend(store, "a", 1)
        persistent_redis.stop()
        await spend(store, "b", 1)  # known: served
        with pytest.raises(StoreUnavailable) as ei:  # never seen: its spend may be anything
            await store.reserve("c", [TEAM_T, other], COST)
        assert "team:other:monthly" in ei.value.reason
        # a window that began after Redis was lost cannot hold spend made through Redis: from 0
        tomorrow = time.time() + 86_400
        r = await store.reserve("d", [daily], 5 * COST, tomorrow)
        assert r.local
        with pytest.raises(BudgetExceeded) as e2:
            await store.reserve("e", [daily], 1, tomorrow)
        assert e2.value.degraded and e2.value.spent_micro == 5 * COST
        await store.release(r)
    finally:
        persistent_redis.start()
        await store.close()


async def test_a_restarted_replica_admits_nothing_from_redis_before_its_journal_is_in(
    persistent_redis: RedisServer, tmp_path: Path
) -> None:
    """Spend journaled by a replica that stopped during an outage is replayed before the
    restarted replica admits anything against Redis. Their holds have expired meanwhile (the
    replica was down longer than the reservation TTL), so until the replay Redis counts none
    of it: the replica admitted 901 of a 1000 budget at once, racing its own replay of 100."""
    store = store_on(persistent_redis, tmp_path, "closed")
    held = [await store.reserve(f"r{i}", [BUDGET], 1, T0) for i in range(100)]
    persistent_redis.stop()
    for r in held:
        assert (await store.settle(r, 1, row(r.request_id))).deferred
    await store.close()  # Redis still down: the entries stay in the journal file
    persistent_redis.start()

    again = store_on(persistent_redis, tmp_path, "closed")
    try:
        assert len(again.journal) == 100
        later = T0 + 601  # the holds of r0..r99 have expired
        with pytest.raises(StoreUnavailable):  # the journal first
            await again.reserve("x", [BUDGET], 901, later)
        await wait_available(again)
        with pytest.raises(BudgetExceeded) as ei:
            await again.reserve("x", [BUDGET], 901, later)
        assert ei.value.spent_micro == 100
        await again.reserve("y", [BUDGET], 900, later)
    finally:
        await again.close()
