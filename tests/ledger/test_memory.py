"""Redis memory with the export on: flat. Rounds of 2,000 settled requests into a redis-server
of this test's own, each round followed by an export pass into a real PostgreSQL and a trim
(``retain_hot: 0``), with the tombstones' ``settle_dedup_s`` at 1 s so that their steady state
comes within the test (in production it is a day: see docs/budgets.md for the sizing rule).
After the first round, memory moves by a few bytes per request at most, against ~250 without
the export; the figures are printed."""

from __future__ import annotations

import asyncio
import time

import redis

from router.budgets import BudgetSpec, LedgerRow, Period, Scope
from router.budgets.export.exporter import Exporter
from router.budgets.export.postgres import PostgresArchive
from router.budgets.export.redis_hot import RedisHotLedger
from router.budgets.redis_store import RedisStore
from tests.budgets.conftest import RedisServer
from tests.support import wait_until

ROUND = 2000
ROUNDS = 5
BUDGETS = [BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**15),
           BudgetSpec(Scope.TEAM, "t", Period.MONTHLY, 10**15)]


async def settle_round(store: RedisStore, tag: str) -> None:
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with sem:
            rid = f"{tag}-{i:05d}-padding-like-a-real-request-id"
            r = await store.reserve(rid, BUDGETS, 5000)
            await store.settle(r, 1234, LedgerRow(rid, "gpt-4o-mini", key_alias="app", user="u1",
                                                  team="t", task="expression", prompt_tokens=812,
                                                  completion_tokens=214, estimated_micro=5000,
                                                  reference_micro=9876))

    await asyncio.gather(*(one(i) for i in range(ROUND)))


def settled_memory(r: redis.Redis, keys_at_rest: int) -> int:
    """used_memory once the expired tombstones are gone (active expiry, waited for)."""
    wait_until(lambda: r.dbsize() <= keys_at_rest, 30, "tombstones did not expire")
    time.sleep(0.2)
    return int(r.info("memory")["used_memory"])


async def test_redis_memory_stays_flat_with_export(own_redis: RedisServer, pg_url: str) -> None:
    r = redis.Redis.from_url(own_redis.url)
    store = RedisStore(own_redis.url, prefix="mem", settle_dedup_s=1.0)
    archive = PostgresArchive(pg_url)
    exporter = Exporter(RedisHotLedger(store.client, store.key_prefix), archive,
                        retain_hot_s=0, batch=1000)
    try:
        await settle_round(store, "warm")  # scripts loaded, counters and day sums created
        await exporter.run_pass()
        keys_at_rest = len([k for k in r.scan_iter("{mem}:*") if not k.startswith(b"{mem}:r:")])
        m0 = settled_memory(r, keys_at_rest)
        # a round as it stands before any export or expiry: rows and tombstones
        await settle_round(store, "kept")
        held = int(r.info("memory")["used_memory"]) - m0
        entry = int(r.memory_usage("{mem}:ledger", samples=0) or 0) / r.xlen("{mem}:ledger")
        used: list[int] = []
        for k in range(ROUNDS):
            if k:
                await settle_round(store, f"r{k}")
            stats = await exporter.run_pass()
            assert stats.exported == ROUND and stats.new == ROUND
            assert r.xlen("{mem}:ledger") == 1  # only the last entry stays
            used.append(settled_memory(r, keys_at_rest))
        slope = (used[-1] - used[0]) / ((ROUNDS - 1) * ROUND)
        print(f"\nheld before export and expiry: {held / ROUND:.0f} B/request (stream entry "
              f"{entry:.0f} B, the rest tombstones and the expiry set); with export + trim, "
              f"used_memory after each round: {used}; growth after trim: {slope:.2f} B/request")
        assert held / ROUND > 150  # the measure sees rows and tombstones while they stay
        assert abs(slope) < 5, used
        assert await archive.count() == (ROUND * (ROUNDS + 1), 1234 * ROUND * (ROUNDS + 1))
    finally:
        await archive.close()
        await store.close()
        r.close()
