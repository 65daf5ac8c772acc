"""Issue 16 point 4: a budget added in the middle of its period starts from the spend the ledger
already holds for its scope and window, not from zero, so it stops at its limit and
``router spend --check`` (spend_check) finds the counters equal to the ledger.

Run on SQLite and on a real redis-server (with and without leases), which is stopped and
restarted between the spend and the new budgets: the day sums Redis seeds from persist with
the ledger.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from router.admin.spend import spend_check
from router.budgets import (
    BudgetExceeded,
    BudgetSpec,
    BudgetStore,
    Calendar,
    LedgerRow,
    Period,
    Scope,
    open_store,
)
from router.budgets.keys import open_key_store
from tests.budgets.conftest import REDIS_SERVER, RedisServer

BIG = 10**12
KEY_TOTAL = BudgetSpec(Scope.KEY, "k1", Period.TOTAL, BIG)  # the keys' own: the only ones at first


def row(rid: str, team: str, user: str, key: str) -> LedgerRow:
    return LedgerRow(rid, "m", key_alias=key, user=user, team=team)


@pytest.fixture(params=["sqlite", "redis", "redis+leases"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, object],
                                                                      RedisServer | None]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'b.db'}", {}, None
    if REDIS_SERVER is None:
        pytest.skip("redis-server binary not found (apt-get install redis-server)")
    d = tmp_path / "redis"
    d.mkdir()
    srv = RedisServer(d, persistent=True)
    srv.start()
    request.addfinalizer(srv.stop)
    lease = 0.05 if request.param == "redis+leases" else 0.0
    return srv.url, {"lease_fraction": lease, "socket_timeout_s": 0.5, "fail_mode": "open",
                     "journal_path": str(tmp_path / "journal.db")}, srv  # fmt: skip


async def test_a_budget_added_mid_period_starts_from_the_ledger(
    backend: tuple[str, dict[str, object], RedisServer | None],
) -> None:
    url, options, srv = backend
    now = time.time()
    cal = Calendar("UTC")
    month = cal.window(Period.MONTHLY, now)
    # spend at: the month before, the month's first second, an hour ago (maybe yesterday), now
    times = [month.start - 3600, month.start + 1, max(month.start + 2, now - 3600), now]
    spent: list[tuple[float, str, str, str, int]] = []
    store: BudgetStore = open_store(url, **options)  # type: ignore[arg-type]
    try:
        n = 0
        for t in times:
            held = []
            for team, user, key, cost in (("search", "ann", "k1", 700), ("ads", "bob", "k2", 50)):
                n += 1
                rid = f"r{n}"
                own = BudgetSpec(Scope.KEY, key, Period.TOTAL, BIG)  # each key's own budget
                held.append((await store.reserve(rid, [own], cost, t), row(rid, team, user, key)))
                spent.append((t, team, user, key, cost))
            if t == now and srv is not None:
                srv.stop()  # the last two settle into the replica's journal, replayed later
            for r, lr in held:
                await store.settle(r, r.amount_micro, lr, now=t)
        # a release records a zero-cost row: nothing to seed
        r = await store.reserve("failed", [KEY_TOTAL], 5, now)
        await store.release(r, row("failed", "search", "ann", "k1"), now=now)
    finally:
        await store.close()
    if srv is not None:
        srv.start()

    def ledger_sum(b: BudgetSpec) -> int:
        w = cal.window(b.period, now)
        field = {Scope.GLOBAL: None, Scope.TEAM: 1, Scope.USER: 2, Scope.KEY: 3}[b.scope]
        return sum(c for (t, *ids, c) in spent
                   if w.contains(t) and (field is None or ids[field - 1] == b.scope_id))

    new = [
        BudgetSpec(Scope.TEAM, "search", Period.DAILY, BIG),
        BudgetSpec(Scope.TEAM, "search", Period.WEEKLY, BIG),
        BudgetSpec(Scope.TEAM, "search", Period.MONTHLY, BIG),
        BudgetSpec(Scope.TEAM, "search", Period.TOTAL, BIG),
        BudgetSpec(Scope.USER, "ann", Period.MONTHLY, BIG),
        BudgetSpec(Scope.KEY, "k1", Period.DAILY, BIG),
        BudgetSpec(Scope.GLOBAL, "all", Period.MONTHLY, BIG),
    ]
    store = open_store(url, **options)  # type: ignore[arg-type]
    keys = open_key_store(url)
    try:
        if srv is not None:  # the journal from the outage, replayed on its own path
            assert await store.reconcile() == 3  # (the two settles and the release)
        status = await store.budget_status(new, now)
        assert [s.spent_micro for s in status] == [ledger_sum(b) for b in new]
        assert ledger_sum(new[3]) == 4 * 700 and ledger_sum(new[6]) == 3 * 750

        # the limit holds against the ledger's spend: exactly what is left is admitted
        team = BudgetSpec(Scope.TEAM, "search", Period.MONTHLY, ledger_sum(new[2]) + 1000)
        glob = BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 4 * 750 + 1000)  # seeded on reserve
        every = [KEY_TOTAL, team, glob, *(b for b in new if b.key != team.key)]
        r = await store.reserve("x1", every, 1000, now)
        with pytest.raises(BudgetExceeded) as ei:
            await store.reserve("x2", every, 1, now)
        assert ei.value.scope == "team" and ei.value.spent_micro == ledger_sum(new[2]) + 1000
        await store.settle(r, 1000, row("x1", "search", "ann", "k1"), now=now)

        check = await spend_check(store, keys, now)
        assert check["ok"], [d for d in check["data"] if not d["ok"]]
        seeded = {d["budget"] for d in check["data"]}
        assert {"team:search:monthly", "global:all:total", "user:ann:monthly"} <= seeded
    finally:
        await store.close()
        await keys.close()
