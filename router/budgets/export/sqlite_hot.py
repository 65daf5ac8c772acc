"""The SQLite ledger table as the exporter's source: rows in rowid order after a cursor.

Rowids grow with every insert (one writer at a time), as long as the row with the largest rowid
is never deleted (SQLite gives a new row the largest rowid + 1): trimming always keeps it. The
cursor (``ledger_export.last_rowid``) is the last rowid the archive acknowledged; it lives in
the same file, so a restart resumes there.

Trimming deletes exported rows older than the cutoff and adds them, in the same transaction,
to ``ledger_days`` (µ$ by local day and scope, as Redis's day sums): a budget added later is
seeded from the ledger plus those sums (router/budgets/sqlite.py), so trimming never changes
what a new budget starts from. The calls run in a thread on their own connection, in short
transactions, so the gateway's settles wait for them a few milliseconds at most.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from router.budgets.export.base import Entry, HotLedger
from router.budgets.rules import check_fields
from router.budgets.seed import row_fields
from router.budgets.spec import GROUP_FIELDS, LedgerRow
from router.budgets.sqlite import LEDGER_COLS, LEDGER_DAYS_DDL
from router.budgets.sqlitedb import connect, retry_busy, transaction

EXPORT_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_export (
    id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL,
    last_rowid INTEGER NOT NULL DEFAULT 0, floor REAL NOT NULL DEFAULT 0);
""" + LEDGER_DAYS_DDL

_COLS = f"rowid, {LEDGER_COLS}"
#: Rows deleted per trim transaction (a few ms: the gateway's settles wait meanwhile).
TRIM_CHUNK = 2000


def _row(r: Sequence[Any]) -> LedgerRow:
    return LedgerRow(
        request_id=r[1], time=r[2], key_alias=r[3], user=r[4], team=r[5], model=r[6], task=r[7],
        prompt_tokens=r[8], completion_tokens=r[9], estimated_micro=r[10], actual_micro=r[11],
        reference_micro=r[12], status=r[13], api=r[14],
    )  # fmt: skip


class SqliteHotLedger(HotLedger):
    """The ledger of the SQLite store at ``path``; ``tz``: the store's time zone (day sums)."""

    kind = "sqlite"

    def __init__(self, path: str, tz: ZoneInfo, busy_timeout_ms: int = 5000) -> None:
        if path == ":memory:":
            raise ValueError("an in-memory SQLite store has no ledger to export")
        self.path = path
        self.tz = tz
        self._db = connect(path, busy_timeout_ms)

        def setup(db: sqlite3.Connection) -> None:
            db.execute("PRAGMA journal_mode = WAL")
            db.executescript(EXPORT_SCHEMA)
            db.execute("INSERT OR IGNORE INTO ledger_export (id, token) VALUES (1, ?)",
                       (os.urandom(8).hex(),))

        retry_busy(self._db, setup, busy_timeout_ms)
        self._lock = asyncio.Lock()  # one statement sequence at a time on the connection

    async def _run(self, fn: Any, *args: Any) -> Any:
        async with self._lock:
            return await asyncio.to_thread(fn, *args)

    def _state(self) -> tuple[str, int, float]:
        token, last, floor = self._db.execute(
            "SELECT token, last_rowid, floor FROM ledger_export WHERE id = 1").fetchone()
        return str(token), int(last), float(floor)

    async def source_id(self) -> str:
        token, _, _ = await self._run(self._state)
        return f"sqlite:{token}"

    def _fetch(self, limit: int) -> list[Entry]:
        _, last, _ = self._state()
        rows = self._db.execute(
            f"SELECT {_COLS} FROM ledger WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, limit)
        ).fetchall()
        return [Entry(str(r[0]), (int(r[0]), 0), _row(r)) for r in rows]

    async def fetch(self, limit: int) -> list[Entry]:
        out: list[Entry] = await self._run(self._fetch, limit)
        return out

    def _ack(self, last: int) -> None:
        self._db.execute(
            "UPDATE ledger_export SET last_rowid = max(last_rowid, ?) WHERE id = 1", (last,))

    async def ack(self, entries: Sequence[Entry]) -> None:
        if entries:
            await self._run(self._ack, max(e.pos[0] for e in entries))

    def _trim(self, before: float, exported_only: bool) -> int:
        total = 0
        while True:
            with transaction(self._db) as c:
                _, last, floor = self._state()
                top = c.execute("SELECT max(rowid) FROM ledger").fetchone()[0] or 0
                limit = min(last, top - 1) if exported_only else top - 1
                rows = c.execute(
                    "SELECT rowid, time, team, user, key_alias, actual_micro FROM ledger "
                    "WHERE time < ? AND rowid <= ? LIMIT ?", (before, limit, TRIM_CHUNK)
                ).fetchall()
                sums: dict[tuple[str, str], int] = defaultdict(int)
                for _rid, t, team, user, key, actual in rows:
                    if not actual:
                        continue
                    day = datetime.fromtimestamp(t, self.tz).date().isoformat()
                    probe = LedgerRow("", "", key_alias=key, user=user, team=team)
                    for f in row_fields(probe):
                        sums[(day, f)] += actual
                c.executemany(
                    "INSERT INTO ledger_days (day, field, micro) VALUES (?, ?, ?) "
                    "ON CONFLICT (day, field) DO UPDATE SET micro = micro + excluded.micro",
                    [(d, f, v) for (d, f), v in sums.items()])
                c.executemany("DELETE FROM ledger WHERE rowid = ?", [(r[0],) for r in rows])
                if len(rows) < TRIM_CHUNK:
                    c.execute("UPDATE ledger_export SET floor = ? WHERE id = 1",
                              (max(floor, before),))
            total += len(rows)
            if len(rows) < TRIM_CHUNK:
                return total

    async def trim(self, before: float, *, exported_only: bool = True) -> int:
        n: int = await self._run(self._trim, before, exported_only)
        return n

    async def floor(self) -> float:
        _, _, floor = await self._run(self._state)
        return float(floor)

    def _unexported(self, since: float, until: float,
                    filters: Mapping[str, str] | None) -> list[LedgerRow]:  # fmt: skip
        check_fields((), filters)
        _, last, _ = self._state()
        sql = f"SELECT {_COLS} FROM ledger WHERE rowid > ? AND time >= ? AND time < ?"
        args: list[Any] = [last, since, until]
        for k, v in (filters or {}).items():
            sql += f" AND {GROUP_FIELDS[k]} = ?"
            args.append(v)
        return [_row(r) for r in self._db.execute(sql + " ORDER BY rowid", args)]

    async def unexported(
        self, since: float, until: float, filters: Mapping[str, str] | None = None
    ) -> list[LedgerRow]:
        out: list[LedgerRow] = await self._run(self._unexported, since, until, filters)
        return out

    def _backlog(self) -> int:
        _, last, _ = self._state()
        return int(self._db.execute("SELECT count(*) FROM ledger WHERE rowid > ?",
                                    (last,)).fetchone()[0])  # fmt: skip

    async def backlog(self) -> int:
        n: int = await self._run(self._backlog)
        return n

    async def close(self) -> None:
        async with self._lock:
            self._db.close()
