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
        assert (await store.settle(r2, 250, row("r2"))).deferred
        assert (await store.settle(r0, 150, row("r0"))).deferred
        # the local view: Redis's last word (300 used) + 400 journaled since
        (st,) = await store.budget_status([BUDGET], T0)
        assert st.spent_micro == 700
        with pytest.raises(BudgetExceeded) as ei:
            await store.reserve("r3", [BUDGET], 301, T0)
        assert ei.value.degraded
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
        (st,) = await again.budget_status([BUDGET], T0)  # down: local view counts it
        assert st.spent_micro == 400
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
