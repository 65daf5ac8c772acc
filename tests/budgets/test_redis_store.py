"""Redis-specific properties: one hash slot for every key (Cluster), the ledger stream's ids
and retention, and the cost of a settle in Redis memory."""

from __future__ import annotations

import redis
from redis.crc import key_slot

from router.budgets import BudgetSpec, LedgerRow, Period, RateLimitSpec, Scope
from router.budgets.redis_store import RedisStore
from tests.budgets.conftest import RedisServer

T0 = 1_736_942_400.0


def budgets() -> list[BudgetSpec]:
    return [
        BudgetSpec(Scope.KEY, "app", Period.DAILY, 10**9),
        BudgetSpec(Scope.USER, "ann", Period.WEEKLY, 10**9),
        BudgetSpec(Scope.TEAM, "search", Period.MONTHLY, 10**9),
        BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**9),
    ]


async def test_every_key_is_in_one_cluster_slot(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, prefix="slot-test")
    try:
        rl = [RateLimitSpec(Scope.KEY, "app", requests_per_minute=100, tokens_per_minute=10**6)]
        r = await store.reserve("a", budgets(), 10, T0, rate_limits=rl, tokens=5)
        await store.reserve("b", budgets(), 10, T0)
        await store.settle(r, 5, LedgerRow("a", "m"))
        await store.expire_reservations(T0 + 10**5)
    finally:
        await store.close()
    client = redis.Redis.from_url(redis_server.url)
    keys = list(client.scan_iter(match="{slot-test}*"))
    client.close()
    assert len(keys) >= 9  # 4 counters, 2 reservations, 2 rate keys, the ledger
    assert {key_slot(k) for k in keys} == {key_slot(b"{slot-test}")}


async def test_ledger_ids_never_precede_row_time_and_trim(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, prefix="ledger-test")
    try:
        # settled out of order: a later request settles first, an earlier one after it
        for rid, t in [("late", T0 + 100), ("early", T0 + 10), ("mid", T0 + 50)]:
            r = await store.reserve(rid, budgets(), 10, t)
            await store.settle(r, 7, LedgerRow(rid, "m"))
        rows = await store.ledger_rows(T0 + 10, T0 + 60)
        assert sorted(r.request_id for r in rows) == ["early", "mid"]
        assert [r.request_id for r in await store.ledger_rows(T0 + 51, T0 + 1000)] == ["late"]
        client = redis.asyncio.Redis.from_url(redis_server.url)
        entries = await client.xrange("{ledger-test}:ledger")
        await client.aclose()
        ids = [int(i.split(b"-")[0]) for i, _ in entries]
        assert ids == sorted(ids) and ids[0] == (T0 + 100) * 1000
        # the last entry stays: an empty stream would refuse the next row older than its
        # last id (Redis remembers it), which the settle script could no longer see
        assert await store.trim_ledger(T0 + 101) == 2
        assert [r.request_id for r in await store.ledger_rows(0, 4e9)] == ["mid"]
        r = await store.reserve("older", budgets(), 10, T0 + 1)
        await store.settle(r, 3, LedgerRow("older", "m"))
        assert await store.trim_ledger(T0 + 101) == 1
        assert [r.request_id for r in await store.ledger_rows(0, 4e9)] == ["older"]
    finally:
        await store.close()
