"""Group commit of settles (router/budgets/batch.py): concurrent settles share Redis calls, and
each one is applied exactly as its own call would apply it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from router.budgets import BudgetSpec, LedgerRow, Period, Scope
from router.budgets.batch import GroupCommit
from router.budgets.redis_store import RedisStore
from tests.budgets.conftest import RedisServer
from tests.budgets.test_leases import evalsha_calls

T0 = 1_736_942_400.0


def team(limit: int) -> BudgetSpec:
    return BudgetSpec(Scope.TEAM, "search", Period.MONTHLY, limit)


async def test_alone_a_submit_is_one_call_of_one_entry() -> None:
    seen: list[list[int]] = []

    async def run(batch: Sequence[int]) -> list[int]:
        seen.append(list(batch))
        await asyncio.sleep(0)
        return [x * 10 for x in batch]

    g: GroupCommit[int, int] = GroupCommit(run)
    for i in range(3):
        assert await g.submit(i) == i * 10
    assert seen == [[0], [1], [2]]


async def test_concurrent_submits_share_calls_in_order() -> None:
    seen: list[list[int]] = []

    async def run(batch: Sequence[int]) -> list[int]:
        seen.append(list(batch))
        await asyncio.sleep(0.001)
        return [x * 10 for x in batch]

    g: GroupCommit[int, int] = GroupCommit(run, max_batch=8)
    out = await asyncio.gather(*(g.submit(i) for i in range(20)))
    assert out == [i * 10 for i in range(20)]
    assert [x for b in seen for x in b] == list(range(20))  # every entry once, in order
    assert all(len(b) <= 8 for b in seen) and len(seen) < 20
    assert (g.calls, g.entries) == (len(seen), 20)


async def test_a_failed_call_fails_each_of_its_waiters_and_the_next_call_runs() -> None:
    calls = 0

    async def run(batch: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.001)
        if calls == 1:
            raise ConnectionError("redis went away")
        return list(batch)

    g: GroupCommit[int, int] = GroupCommit(run)
    first = asyncio.ensure_future(g.submit(1))
    await asyncio.sleep(0)  # the first call is in flight
    rest = [asyncio.ensure_future(g.submit(i)) for i in (2, 3)]
    with pytest.raises(ConnectionError):
        await first
    assert await asyncio.gather(*rest) == [2, 3]


async def test_a_cancelled_waiter_does_not_stop_its_entry() -> None:
    applied: list[int] = []

    async def run(batch: Sequence[int]) -> list[int]:
        await asyncio.sleep(0.01)
        applied.extend(batch)
        return list(batch)

    g: GroupCommit[int, int] = GroupCommit(run)
    waiter = asyncio.ensure_future(g.submit(7))
    await asyncio.sleep(0.001)
    waiter.cancel()
    other = await g.submit(8)
    assert other == 8 and applied == [7, 8]


async def test_concurrent_redis_settles_share_calls_and_count_exactly(
        redis_server: RedisServer) -> None:
    s = RedisStore(redis_server.url, prefix="gc1", lease_fraction=0.0)
    limit = 10**9
    b = [team(limit), BudgetSpec(Scope.KEY, "app", Period.DAILY, limit)]
    try:
        warm = await s.reserve("warm", b, 1000, T0)
        await s.settle(warm, 1000, LedgerRow("warm", "m"))
        rs = [await s.reserve(f"r{i}", b, 1000, T0) for i in range(100)]
        before = evalsha_calls(redis_server)
        results = await asyncio.gather(*(
            s.settle(r, 600 + i, LedgerRow(r.request_id, "m")) for i, r in enumerate(rs)))
        calls = evalsha_calls(redis_server) - before
        assert all(x.applied and not x.deferred for x in results)
        assert calls < 20, calls  # 100 settles, a handful of calls
        assert s._finisher.entries - s._finisher.calls >= 80
        # a settle repeated (a retry) inside a batch counts once
        again = await asyncio.gather(*(s.settle(r, 600, LedgerRow(r.request_id, "m"))
                                       for r in rs[:10]))
        assert not any(x.applied for x in again)
        spent = 1000 + sum(600 + i for i in range(100))
        st = await s.budget_status(b, T0)
        assert [(x.spent_micro, x.reserved_micro) for x in st] == [(spent, 0), (spent, 0)]
        rows = await s.ledger_rows(0, 4e9)
        assert sorted(r.request_id for r in rows) == sorted(["warm", *(f"r{i}" for i in range(100))])
        assert sum(r.actual_micro for r in rows) == spent
    finally:
        await s.close()


async def test_settles_and_releases_mixed_in_one_batch(redis_server: RedisServer) -> None:
    s = RedisStore(redis_server.url, prefix="gc2", lease_fraction=0.0)
    b = [team(10**9)]
    try:
        rs = [await s.reserve(f"m{i}", b, 1000, T0) for i in range(40)]
        await asyncio.gather(*(
            s.settle(r, 700, LedgerRow(r.request_id, "m")) if i % 2 else
            s.release(r, LedgerRow(r.request_id, "m", status="error"))
            for i, r in enumerate(rs)))
        (st,) = await s.budget_status(b, T0)
        assert (st.spent_micro, st.reserved_micro) == (20 * 700, 0)
        rows = {r.request_id: r.actual_micro for r in await s.ledger_rows(0, 4e9)}
        assert rows == {f"m{i}": (700 if i % 2 else 0) for i in range(40)}
    finally:
        await s.close()


async def test_linger_waits_for_the_expected_entries_and_not_when_none_is_expected() -> None:
    seen: list[list[int]] = []

    async def run(batch: Sequence[int]) -> list[int]:
        seen.append(list(batch))
        return list(batch)

    in_flight = 0
    g: GroupCommit[int, int] = GroupCommit(run, linger_s=5.0, expected=lambda: in_flight)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await g.submit(1) == 1  # none expected: at once, not after the 5 s linger
    assert loop.time() - t0 < 1.0

    async def request(i: int, delay: float) -> int:
        nonlocal in_flight
        await asyncio.sleep(delay)
        in_flight -= 1  # settles now (as RedisStore counts it)
        return await g.submit(i)

    in_flight = 3
    t0 = loop.time()
    got = await asyncio.gather(request(2, 0), request(3, 0.01), request(4, 0.02))
    assert got == [2, 3, 4]
    assert seen == [[1], [2, 3, 4]]  # the three settles in one call: it waited for them
    assert loop.time() - t0 < 1.0  # and no longer than they took


async def test_linger_is_bounded() -> None:
    seen: list[list[int]] = []

    async def run(batch: Sequence[int]) -> list[int]:
        seen.append(list(batch))
        return list(batch)

    g: GroupCommit[int, int] = GroupCommit(run, linger_s=0.02, expected=lambda: 5)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await g.submit(1) == 1  # five expected that never come: it waits 20 ms, no more
    assert 0.015 <= loop.time() - t0 < 1.0
    assert seen == [[1]]


async def test_linger_stops_at_a_full_batch() -> None:
    seen: list[list[int]] = []

    async def run(batch: Sequence[int]) -> list[int]:
        seen.append(list(batch))
        return list(batch)

    g: GroupCommit[int, int] = GroupCommit(run, max_batch=4, linger_s=5.0, expected=lambda: 99)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    waiters = [asyncio.ensure_future(g.submit(i)) for i in range(4)]
    assert await asyncio.gather(*waiters) == [0, 1, 2, 3]
    assert loop.time() - t0 < 1.0 and seen == [[0, 1, 2, 3]]


async def test_redis_store_counts_what_is_in_flight(redis_server: RedisServer) -> None:
    s = RedisStore(redis_server.url, prefix="gc3", lease_fraction=0.05)
    b = [team(10**9)]
    try:
        rs = [await s.reserve(f"h{i}", b, 1000, T0) for i in range(4)]
        assert len(s._live) == 4
        await s.settle(rs[0], 10, LedgerRow("h0", "m"))
        await s.release(rs[1], LedgerRow("h1", "m", status="error"))
        await s.release(rs[2])
        assert len(s._live) == 1
        del rs[:]  # h3's request dropped it without a settle: it no longer counts
        assert len(s._live) == 0
    finally:
        await s.close()
