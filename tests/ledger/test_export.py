"""The exporter in one process, on every hot store x archive pair (SQLite, a real redis-server;
a real PostgreSQL, JSONL files): every row reaches the archive exactly once, in order; only
exported rows older than retain_hot are trimmed; reports and ``spend --check`` over periods the
hot store no longer holds equal the whole ledger."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from router.admin.spend import ReportRange, spend_check, spend_report
from router.budgets import BudgetSpec, BudgetStore, LedgerRow, Period, Scope, open_store
from router.budgets.export.base import Archive
from router.budgets.export.service import LedgerService
from router.budgets.keys import open_key_store
from router.config import LedgerConfig, StoreConfig

DAY = 86400.0
_prefixes = itertools.count()


@dataclass
class Setup:
    store: BudgetStore
    svc: LedgerService
    cfg: StoreConfig

    @property
    def archive(self) -> Archive:
        assert self.svc.archive is not None
        return self.svc.archive


@pytest.fixture(params=["sqlite", "redis"])
def hot_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["postgres", "files"])
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make(hot_kind: str, target: str, tmp_path: Path,
               request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    opened: list[Setup] = []

    def factory(retain_hot: float = 7 * DAY, **ledger: Any) -> Setup:
        if hot_kind == "sqlite":
            url, opts = f"sqlite:///{tmp_path / 'router.db'}", {}
        else:
            srv = request.getfixturevalue("redis_server")
            url, opts = srv.url, {"prefix": f"x{os.getpid()}-{next(_prefixes)}"}
        if target == "postgres":
            ledger.setdefault("url", request.getfixturevalue("pg_url"))
        else:
            ledger.setdefault("url", str(tmp_path / "archive"))
        cfg = StoreConfig(url=url, ledger=LedgerConfig(export=target, retain_hot=retain_hot,
                                                       batch=100, **ledger))
        store = open_store(url, timezone="Europe/Paris", **opts)
        svc = LedgerService.open(store, cfg)
        assert svc is not None
        s = Setup(store, svc, cfg)
        opened.append(s)
        return s

    yield factory
    for s in opened:
        await s.svc.aclose()
        await s.store.close()


BUDGETS = [BudgetSpec(Scope.TEAM, "search", Period.MONTHLY, 10**12),
           BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**12)]


async def settle(store: BudgetStore, rid: str, t: float, cost: int, team: str = "search",
                 key: str = "k1", api: str = "chat") -> None:  # fmt: skip
    budgets = BUDGETS if team == "search" else [BUDGETS[1]]
    r = await store.reserve(rid, budgets, cost, now=t)
    await store.settle(r, cost, LedgerRow(rid, "gpt-4o-mini", key_alias=key, user="u", team=team,
                                          task="expression", prompt_tokens=10,
                                          completion_tokens=5, estimated_micro=cost,
                                          reference_micro=3 * cost, api=api), now=t)


async def test_rows_move_once_in_order_and_only_exported_old_rows_are_trimmed(make: Any) -> None:
    s = make(retain_hot=10 * DAY)
    now = time.time()
    rows = [(f"r{i:04d}", now - 40 * DAY + i * 600, 100 + i) for i in range(300)]  # ~2 days
    for rid, t, cost in rows:
        await settle(s.store, rid, t, cost)
    stats = await s.svc.exporter.export_once()
    assert (stats.exported, stats.new, stats.batches) == (300, 300, 3)
    assert await s.archive.count() == (300, sum(c for _, _, c in rows))
    assert await s.svc.hot.backlog() == 0
    # nothing new: a second pass moves nothing
    assert (await s.svc.exporter.export_once()).exported == 0
    # trim: everything is exported and older than 10 days; the last row stays on SQLite (its
    # rowid keeps new rowids growing), never on Redis
    trimmed = await s.svc.exporter.trim_once()
    assert trimmed in (299, 300)
    assert await s.svc.hot.floor() > rows[-1][1] - 1
    # new rows after the trim are exported too (SQLite rowids kept growing)
    for i in range(5):
        await settle(s.store, f"new{i}", now - 60 + i, 7)
    assert (await s.svc.exporter.export_once()).new == 5
    assert await s.archive.count() == (305, sum(c for _, _, c in rows) + 35)
    # the new rows are within retain_hot; the old row kept as the largest rowid goes now
    assert trimmed + await s.svc.exporter.trim_once() == 300


async def test_reports_and_check_read_the_archive_beyond_the_hot_window(make: Any) -> None:
    s = make(retain_hot=3 * DAY)
    now = time.time()
    month_start = s.store.calendar.window(Period.MONTHLY, now).start
    rows = []
    for i in range(120):  # spread over the last 60 days: some this month, some before
        t = now - 60 * DAY + i * 0.5 * DAY
        team = "search" if i % 3 else "ads"
        rows.append((f"q{i}", t, 1000 + i, team))
    for rid, t, cost, team in rows:
        await settle(s.store, rid, t, cost, team=team, key=f"k{len(rid) % 2}",
                     api="messages" if rid.endswith("5") else "chat")
    await s.svc.exporter.export_once()
    assert await s.svc.exporter.trim_once() > 0
    # some rows are not exported yet when the report runs: they come from the hot store
    for i in range(3):
        await settle(s.store, f"late{i}", now - 50 * DAY, 5, team="ads")
        rows.append((f"late{i}", now - 50 * DAY, 5, "ads"))
    assert s.store.history is not None

    def expected(t0: float, t1: float, team: str | None = None) -> int:
        return sum(c for _, t, c, tm in rows if t0 <= t < t1 and (team is None or tm == team))

    rng = ReportRange(0.0, 1e11, None, ((None, 0.0, 1e11),))
    report = await spend_report(s.store, rng, ["team"], {})
    by_team = {r["group"]["team"]: r["actual_micro"] for r in report["data"]}
    assert by_team == {"search": expected(0, 1e11, "search"), "ads": expected(0, 1e11, "ads")}
    assert report["total"]["requests"] == len(rows)
    assert report["total"]["savings_micro"] == 2 * expected(0, 1e11)
    # the API a request came in by survives the export
    by_api = {r["group"]["api"]: r["requests"]
              for r in (await spend_report(s.store, rng, ["api"], {}))["data"]}
    assert by_api == {"messages": 12, "chat": len(rows) - 12}
    # a range entirely before the hot window: the archive (and the unexported rows)
    t0, t1 = now - 55 * DAY, now - 20 * DAY
    rng = ReportRange(t0, t1, None, ((None, t0, t1),))
    report = await spend_report(s.store, rng, [], {"team": "ads"})
    assert report["total"]["actual_micro"] == expected(t0, t1, "ads")
    # without the archive the hot store alone has lost the trimmed rows
    history, s.store.history = s.store.history, None
    assert (await spend_report(s.store, rng, [], {"team": "ads"}))["total"]["actual_micro"] \
        < expected(t0, t1, "ads")
    s.store.history = history
    # the ledger still equals the counters of the live windows (month, total)
    keys = open_key_store(s.cfg.url, prefix=getattr(s.store, "key_prefix", "{router}")[1:-1])
    try:
        check = await spend_check(s.store, keys, now)
    finally:
        await keys.close()
    assert check["ok"], check
    month = next(r for r in check["data"] if r["period"] == "monthly")
    assert month["ledger_micro"] == expected(month_start, 1e11, "search") > 0
    total = next(r for r in check["data"] if r["period"] == "total")
    assert total["ledger_micro"] == expected(0, 1e11)


async def test_a_budget_added_after_the_trim_starts_from_the_whole_ledger(make: Any) -> None:
    """Seeding reads the hot ledger plus what trimming set aside (SQLite: ledger_days; Redis:
    its day sums), so trimming never changes where a new budget starts."""
    s = make(retain_hot=0)
    now = time.time()
    for i in range(50):
        await settle(s.store, f"s{i}", now - 20 * DAY + i * 3600, 100)
    await s.svc.exporter.export_once()
    assert await s.svc.exporter.trim_once() >= 49
    new = BudgetSpec(Scope.KEY, "k1", Period.TOTAL, 10**9)
    (st,) = await s.store.budget_status([new], now)
    assert st.spent_micro == 5000
