"""Wiring the exporter to a budget store and ``store.ledger``: which hot ledger, which archive,
which election, and the defaults of retention (docs/budgets.md, "Ledger retention and export").
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from router.budgets.export.base import AlwaysLeader, Archive, HotLedger, Leader
from router.budgets.export.election import FileLeader, RedisLeader
from router.budgets.export.exporter import Exporter
from router.budgets.export.reader import History
from router.budgets.store import BudgetStore
from router.config import StoreConfig

log = logging.getLogger("router.ledger")

#: Default ``retain_hot``: a month and a bit on one machine (this month's reports and new
#: budgets read SQLite alone), a day in Redis (memory: ~155 B a row).
RETAIN_HOT_SQLITE_S = 35 * 86400.0
RETAIN_HOT_REDIS_S = 86400.0


@dataclass(frozen=True)
class LedgerPlan:
    """``store.ledger`` resolved against the store: ``target`` postgres|files|none and where."""

    target: str
    url: str | None
    table: str
    retain_hot_s: float
    in_gateway: bool
    interval_s: float
    batch: int


def plan(cfg: StoreConfig) -> LedgerPlan:
    lc = cfg.ledger
    sqlite = cfg.url.startswith("sqlite")
    retain = lc.retain_hot if lc.retain_hot is not None else (
        RETAIN_HOT_SQLITE_S if sqlite else RETAIN_HOT_REDIS_S)
    url = lc.url
    if lc.export == "files":
        if url is None:
            url = str(default_files_dir(cfg))
        elif url.startswith("file://"):
            url = url[len("file://"):]
    return LedgerPlan(lc.export, url, lc.table, retain, lc.in_gateway, lc.interval_s, lc.batch)


def default_files_dir(cfg: StoreConfig) -> Path:
    """``ledger`` beside the SQLite file; for Redis, beside the journal, else
    ``./router-data/ledger``."""
    if cfg.url.startswith("sqlite"):
        from router.budgets.factory import sqlite_path

        path, _ = sqlite_path(cfg.url)
        return Path(path).parent / "ledger"
    if cfg.journal_path:
        return Path(cfg.journal_path).parent / "ledger"
    return Path("router-data") / "ledger"


def hot_ledger(store: BudgetStore) -> HotLedger | None:
    """The store's ledger as an export source (None: an in-memory SQLite store)."""
    from router.budgets.redis_store import RedisStore
    from router.budgets.sqlite import SqliteStore

    if isinstance(store, RedisStore):
        from router.budgets.export.redis_hot import RedisHotLedger

        return RedisHotLedger(store.client, store.key_prefix)
    if isinstance(store, SqliteStore) and store.path != ":memory:":
        from router.budgets.export.sqlite_hot import SqliteHotLedger

        return SqliteHotLedger(store.path, store.calendar.tz)
    return None


def open_archive(p: LedgerPlan) -> Archive | None:
    """The archive of the plan (nothing connects yet)."""
    if p.target == "postgres":
        from router.budgets.export.postgres import PostgresArchive

        assert p.url is not None
        return PostgresArchive(p.url, p.table)
    if p.target == "files":
        from router.budgets.export.files import FileArchive

        assert p.url is not None
        return FileArchive(p.url)
    return None


def election(store: BudgetStore) -> Leader:
    from router.budgets.redis_store import RedisStore
    from router.budgets.sqlite import SqliteStore

    if isinstance(store, RedisStore):
        return RedisLeader(store.client, store.key_prefix)
    if isinstance(store, SqliteStore):
        return FileLeader(store.path + ".exporter.lock")
    return AlwaysLeader()


class LedgerService:
    """The exporter of one store, and the history reader its reports use."""

    def __init__(self, store: BudgetStore, p: LedgerPlan, hot: HotLedger,
                 archive: Archive | None, leader: Leader) -> None:  # fmt: skip
        self.store = store
        self.plan = p
        self.hot = hot
        self.archive = archive
        self.leader = leader
        self.exporter = Exporter(hot, archive, retain_hot_s=p.retain_hot_s, batch=p.batch,
                                 interval_s=p.interval_s)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # reads go through their own hot ledger (the exporter's holds a lock while it works)
        self._read_hot = hot_ledger(store) if archive is not None else None
        if self._read_hot is not None and archive is not None:
            store.history = History(store, self._read_hot, archive)

    @classmethod
    def open(cls, store: BudgetStore, cfg: StoreConfig, *,
             leader: Leader | None = None) -> LedgerService | None:  # fmt: skip
        """The service for ``store`` (None: a store without a durable ledger, ``:memory:``).
        Attaches the history reader to the store; nothing connects yet."""
        hot = hot_ledger(store)
        if hot is None:
            return None
        p = plan(cfg)
        return cls(store, p, hot, open_archive(p), leader or election(store))

    def start(self) -> None:
        """Run the exporter in the background (in the gateway), if ``in_gateway``."""
        if not self.plan.in_gateway or self._task is not None:
            return
        if self.plan.target == "files" and self.hot.kind == "redis":
            log.warning("exporting a fleet's ledger to local files (%s): set store.ledger.export:"
                        " postgres, or a directory every replica shares", self.plan.url)
        self._task = asyncio.get_running_loop().create_task(
            self.exporter.run(self.leader, self._stop), name="ledger-exporter")

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 30)
            except TimeoutError:
                self._task.cancel()
            self._task = None
        self.store.history = None
        await self.hot.close()
        if self._read_hot is not None:
            await self._read_hot.close()
        if self.archive is not None:
            await self.archive.close()
