"""The exporter's parts on their own: the files archive through a crash, the election, the
config's strictness and defaults, ``export: none``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from router.budgets import BudgetSpec, LedgerRow, Period, Scope, SpendRow, open_store
from router.budgets.export.base import ArchiveBusy, Entry
from router.budgets.export.election import FileLeader, RedisLeader
from router.budgets.export.exporter import Exporter
from router.budgets.export.files import STATE, FileArchive
from router.budgets.export.reader import merge
from router.budgets.export.service import (
    RETAIN_HOT_REDIS_S,
    RETAIN_HOT_SQLITE_S,
    LedgerService,
    plan,
)
from router.budgets.export.sqlite_hot import SqliteHotLedger
from router.config import ConfigError, LedgerConfig, StoreConfig, config_from_text, parse_duration
from tests.budgets.conftest import RedisServer

DAY = 86400.0


def entries(n: int, start: int = 1, t0: float = 1_760_000_000.0) -> list[Entry]:
    return [Entry(f"{i}", (i, 0), LedgerRow(f"r{i}", "m", team="t", actual_micro=i,
                                            time=t0 + i * 3600))
            for i in range(start, start + n)]


async def test_files_archive_cuts_a_batch_a_crash_left_half_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = FileArchive(tmp_path)
    assert await a.write("s", entries(30)) == 30  # 30 hours: two UTC days
    # the next batch dies after its lines reached one file (its fsync "fails": a crash)
    calls = {"n": 0}
    real = os.fsync

    def dying(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # 1, 2: the state with pending (file, directory); 3: a day file
            raise OSError("power cut")
        real(fd)

    monkeypatch.setattr(os, "fsync", dying)
    with pytest.raises(OSError):
        await a.write("s", entries(30, start=31))
    monkeypatch.setattr(os, "fsync", real)
    await a.close()
    torn = sum(len(f.read_bytes().splitlines()) for f in tmp_path.glob("day=*/ledger.jsonl"))
    assert torn > 30  # the half-written batch's lines are in a file
    b = FileArchive(tmp_path)  # opening: the batch never committed, so it is cut off
    assert await b.write("s", []) == 0
    assert [r.request_id for r in b.rows()] == [f"r{i}" for i in range(1, 31)]
    assert await b.write("s", entries(30, start=31)) == 30  # the hot store hands it again
    assert [r.request_id for r in b.rows()] == [f"r{i}" for i in range(1, 61)]
    # died after the commit, before the hot store's acknowledgement: the batch comes again
    assert await b.write("s", entries(30, start=31)) == 0
    # a pending batch of the exporter's replay may add new entries after it
    assert await b.write("s", entries(40, start=31)) == 10
    assert [r.request_id for r in b.rows()] == [f"r{i}" for i in range(1, 71)]
    assert await b.count() == (70, sum(range(1, 71)))
    assert (tmp_path / STATE).exists()
    await b.close()


async def test_files_archive_has_one_writer(tmp_path: Path) -> None:
    a, b = FileArchive(tmp_path), FileArchive(tmp_path)
    await a.write("s", entries(1))
    with pytest.raises(ArchiveBusy):
        await b.write("s", entries(1, start=2))
    assert [r.request_id for r in b.rows()] == ["r1"]  # reading needs no lock
    await a.close()
    assert await b.write("s", entries(1, start=2)) == 1
    await b.close()


async def test_redis_election_one_leader_then_another(redis_server: RedisServer) -> None:
    import redis.asyncio as aredis

    r = aredis.Redis.from_url(redis_server.url)
    try:
        a = RedisLeader(r, "{elect}", ttl_s=0.3)
        b = RedisLeader(r, "{elect}", ttl_s=0.3)
        assert await a.hold() and not await b.hold()
        assert await a.hold()  # renewed
        await a.release()
        assert await b.hold() and not await a.hold()
        time.sleep(0.4)  # b died without releasing: its lock expires
        assert await a.hold()
        assert not await b.hold()  # b's renewal fails: the lock is a's now
    finally:
        await r.aclose()


async def test_file_election(tmp_path: Path) -> None:
    a, b = FileLeader(tmp_path / "x.lock"), FileLeader(tmp_path / "x.lock")
    assert await a.hold() and not await b.hold()
    await a.release()
    assert await b.hold()
    await b.release()


def test_config_is_strict_and_names_the_key() -> None:
    assert parse_duration("36h") == 36 * 3600 and parse_duration(90) == 90
    assert parse_duration("2w") == 14 * DAY and parse_duration("0") == 0
    for bad, where in [("retain_hot: 7 days", "store.ledger.retain_hot"),
                       ("retain_hot: -1", "store.ledger.retain_hot"),
                       ("export: postgres", "store.ledger"),
                       ("export: postgres\n    url: mysql://x", "store.ledger.url"),
                       ("export: none\n    url: /x", "store.ledger.url"),
                       ("export: s3", "store.ledger.export"),
                       ("batch: 0", "store.ledger.batch"),
                       ("retain: 1d", "store.ledger.retain")]:
        with pytest.raises(ConfigError) as e:
            config_from_text(f"store:\n  ledger:\n    {bad}\nmodels: {{}}\n", "c.yaml")
        assert any(f"c.yaml:{line}: {where}:" in str(e.value) for line in (2, 3, 4)), str(e.value)


def test_defaults_keep_the_hot_store_bounded() -> None:
    sqlite = plan(StoreConfig(url="sqlite:////var/lib/router/router.db"))
    assert (sqlite.target, sqlite.url) == ("files", "/var/lib/router/ledger")
    assert sqlite.retain_hot_s == RETAIN_HOT_SQLITE_S and sqlite.in_gateway
    fleet = plan(StoreConfig(url="redis://r:6379/0", journal_path="/data/journal.db"))
    assert (fleet.target, fleet.url, fleet.retain_hot_s) == (
        "files", "/data/ledger", RETAIN_HOT_REDIS_S)
    pg = plan(StoreConfig(url="redis://r/0", ledger=LedgerConfig(
        export="postgres", url="postgresql://u:p@h/db", retain_hot="6h")))
    assert (pg.target, pg.retain_hot_s, pg.table) == ("postgres", 6 * 3600, "router_ledger")


async def test_export_none_trims_without_keeping(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = open_store(url)
    now = time.time()
    b = [BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**9)]
    for i in range(10):
        r = await store.reserve(f"x{i}", b, 5, now=now - 10 * DAY + i)
        await store.settle(r, 5, LedgerRow(f"x{i}", "m"), now=now - 10 * DAY + i)
    svc = LedgerService.open(store, StoreConfig(url=url, ledger=LedgerConfig(
        export="none", retain_hot="1d")))
    assert svc is not None and svc.archive is None and store.history is None
    assert await svc.exporter.trim_once() == 9  # the newest row is kept (rowids)
    assert len(await store.ledger_rows(0, 4e9)) == 1
    await svc.aclose()
    await store.close()


async def test_sqlite_trim_keeps_unexported_and_recent_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = open_store(url)
    now = time.time()
    b = [BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**9)]
    for i in range(20):
        t = now - 30 * DAY if i < 10 else now
        r = await store.reserve(f"y{i}", b, 5, now=t)
        await store.settle(r, 5, LedgerRow(f"y{i}", "m"), now=t)
    hot = SqliteHotLedger(str(tmp_path / "r.db"), store.calendar.tz)
    first = await hot.fetch(4)
    await hot.ack(first)  # 4 old rows exported
    assert await hot.trim(now - DAY) == 4
    assert await hot.backlog() == 16
    assert len(await hot.unexported(0, 4e9)) == 16
    assert await hot.floor() == pytest.approx(now - DAY)
    await hot.ack(await hot.fetch(100))
    assert await hot.trim(now - DAY) == 6  # the recent ten stay
    await hot.close()
    await store.close()


def test_merge_adds_groups() -> None:
    a = [SpendRow({"team": "x"}, 1, 2, 3, 4, 5, 6), SpendRow({"team": "y"}, 1, 0, 0, 0, 9, 9)]
    b = [SpendRow({"team": "x"}, 2, 2, 2, 2, 20, 2)]
    assert merge(a, b) == [SpendRow({"team": "x"}, 3, 4, 5, 6, 25, 8),
                           SpendRow({"team": "y"}, 1, 0, 0, 0, 9, 9)]


async def test_exporter_stops_its_pass_when_the_lead_is_lost(tmp_path: Path) -> None:
    class Flaky(FileLeader):
        def __init__(self) -> None:
            super().__init__(tmp_path / "l")
            self.calls = 0

        async def hold(self) -> bool:
            self.calls += 1
            return self.calls < 3

    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = open_store(url)
    b = [BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**9)]
    for i in range(50):
        r = await store.reserve(f"z{i}", b, 5)
        await store.settle(r, 5, LedgerRow(f"z{i}", "m"))
    hot = SqliteHotLedger(str(tmp_path / "r.db"), store.calendar.tz)
    ex = Exporter(hot, FileArchive(tmp_path / "a"), retain_hot_s=0, batch=10)
    stats = await ex.export_once(leader=Flaky())
    # (run() checks the lead before a pass) renewed before the 2nd and 3rd batch, lost
    # before the 4th: the pass ends there
    assert stats.batches == 3
    assert await hot.backlog() == 20
    await hot.close()
    await store.close()


async def test_reports_over_the_archive_answer_store_unavailable_when_it_is_down(
        tmp_path: Path) -> None:
    """A report that needs the archive, with PostgreSQL unreachable: StoreUnavailable (the
    admin API's 503 ``store_unavailable``, ``router spend``'s exit 2), not a traceback."""
    from router.admin.spend import ReportRange, spend_report
    from router.budgets import StoreUnavailable
    from tests.support import free_port

    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = open_store(url)
    b = [BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**9)]
    for i in range(3):
        r = await store.reserve(f"u{i}", b, 5, now=time.time() - 10 * DAY)
        await store.settle(r, 5, LedgerRow(f"u{i}", "m"), now=time.time() - 10 * DAY)
    dead = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    svc = LedgerService.open(store, StoreConfig(url=url, ledger=LedgerConfig(
        export="postgres", url=dead, retain_hot="1d")))
    assert svc is not None and store.history is not None
    await svc.hot.trim(time.time() - DAY, exported_only=False)  # the floor moves: archive needed
    with pytest.raises(StoreUnavailable, match="ledger archive"):
        await spend_report(store, ReportRange(0.0, 1e11, None, ((None, 0.0, 1e11),)), [], {})
    await svc.aclose()
    await store.close()


@pytest.mark.parametrize("hot_kind", ["sqlite", "redis"])
async def test_a_failed_batch_goes_again_before_anything_after_it(
        hot_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The archive fails (down) on a batch, then comes back: that batch is written first, then
    the rest; every row once, in order, without a restart."""
    from router.budgets.export.service import hot_ledger

    class Flaky(FileArchive):
        writes = 0

        async def write(self, source: str, entries: list[Entry]) -> int:  # type: ignore[override]
            self.writes += 1
            if self.writes == 2:  # the second batch finds the archive down
                raise OSError("archive down")
            return await super().write(source, entries)

    if hot_kind == "sqlite":
        store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    else:
        srv: RedisServer = request.getfixturevalue("redis_server")
        store = open_store(srv.url, prefix=f"flaky{time.time_ns()}")
    b = [BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**9)]
    for i in range(35):
        r = await store.reserve(f"f{i:02d}", b, 5)
        await store.settle(r, 5, LedgerRow(f"f{i:02d}", "m"))
    hot = hot_ledger(store)
    assert hot is not None
    archive = Flaky(tmp_path / "a")
    ex = Exporter(hot, archive, retain_hot_s=0, batch=10)
    with pytest.raises(OSError):
        await ex.export_once()
    assert await ex.trim_once() <= 10  # only the first batch was acknowledged
    stats = await ex.export_once()
    assert stats.exported == 25 and stats.new == 25
    assert [r.request_id for r in archive.rows()] == [f"f{i:02d}" for i in range(35)]
    await archive.close()
    await hot.close()
    await store.close()


async def test_a_batch_a_dead_exporter_left_pending_is_exported_by_the_running_one(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """A `router ledger export` run dies with a batch delivered and not acknowledged, beside a
    gateway's exporter that keeps running: once that batch has been idle ``stale_s``, the
    running exporter reads it again; every row reaches the archive once, and the trim, held
    back meanwhile, goes on."""
    from router.budgets.export.redis_hot import RedisHotLedger

    store = open_store(redis_server.url, prefix=f"stale{time.time_ns()}")
    b = [BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**9)]

    async def settle(names: range) -> None:
        for i in names:
            r = await store.reserve(f"p{i:02d}", b, 5)
            await store.settle(r, 5, LedgerRow(f"p{i:02d}", "m"))

    await settle(range(10))
    archive = FileArchive(tmp_path / "a")
    running = Exporter(RedisHotLedger(store.client, store.key_prefix, stale_s=0.3), archive,
                       retain_hot_s=0, batch=10)
    assert (await running.export_once()).exported == 10  # running, its group read once
    await settle(range(10, 35))
    dead = RedisHotLedger(store.client, store.key_prefix)
    assert len(await dead.fetch(10)) == 10  # delivered to the run that then dies
    assert (await running.export_once()).exported == 15  # the rest, after the dead batch
    assert await running.trim_once() == 10  # only what precedes the dead batch goes
    time.sleep(0.4)
    assert (await running.export_once()).exported == 10  # now stale: read again
    assert sorted(r.request_id for r in archive.rows()) == [f"p{i:02d}" for i in range(35)]
    assert await running.trim_once() == 24  # the rest, but the stream's last entry
    await archive.close()
    await store.close()


def test_router_ledger_says_what_cannot_be_reached(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support import REPO, free_port

    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"store:\n  url: redis://127.0.0.1:{free_port()}/0\n  ledger:\n"
                   f"    export: postgres\n    url: postgresql://x@127.0.0.1:{free_port()}/db\n"
                   "policy: null\nmodels: {}\n")
    for action in ("status", "export"):
        res = subprocess.run([sys.executable, "-m", "router", "ledger", action, "--config",
                              str(cfg)], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert res.returncode == 2, res.stderr
        assert res.stderr.startswith("router ledger: ConnectionError") and "Traceback" not in \
            res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("store:\n  ledger:\n    export: postgres\nmodels: {}\n")
    res = subprocess.run([sys.executable, "-m", "router", "ledger", "export", "--config",
                          str(bad)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "bad.yaml:2: store.ledger: export: postgres needs url" in \
        res.stderr
