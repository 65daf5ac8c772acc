"""SQLite budget store: the default, for one machine. One file, WAL mode, one transaction per
reserve or settle, survives restarts and ``kill -9``.

Why the calls run synchronously on the event loop (measured with ``bench/budget_store.py`` on a
loaded 2-core machine): a reserve with four budgets is ~100-140 µs of CPU (~20 µs more with a
rate limit), a settle ~95-115 µs, of which one WAL commit is ~14 µs and each indexed statement
~4 µs. Handing a call to a thread (``asyncio.to_thread``) costs ~70-140 µs of CPU by itself,
mostly on the loop (wake-ups, futures), so it would nearly double the cost for little gain, and
would let two transactions of the one connection interleave unless serialised.

With ``synchronous=NORMAL`` a commit writes the WAL without fsync: the wait is CPU, not I/O, and
the commit survives a crash of the process (the OS has the pages), though a power loss may lose
the last commits. ``?synchronous=full`` fsyncs every commit, and that wait (0.2-3 ms here) then
blocks the loop: choose it only on a disk with fast fsync. Several processes may share one file
(``BEGIN IMMEDIATE`` serialises them); a transaction waiting for another process's lock blocks
its loop meanwhile, so one gateway process per file is the intended deployment. Reports, which
may scan many rows, run on their own connection in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from router.budgets.errors import RateLimited
from router.budgets.rules import check_fields, choose_amount, gcra
from router.budgets.seed import SCOPE_COLUMN, aggregate_field, window_days
from router.budgets.spec import (
    GROUP_FIELDS,
    BudgetSpec,
    BudgetStatus,
    CounterRef,
    LedgerRow,
    RateLimitSpec,
    Reservation,
    SettleResult,
    SpendRow,
    Window,
)
from router.budgets.sqlitedb import connect, retry_busy, transaction
from router.budgets.store import BudgetStore, _now, check_request

#: The day sums of trimmed ledger rows; also created by the export's hot ledger
#: (router/budgets/export/sqlite_hot.py), which may open a file before any store has.
LEDGER_DAYS_DDL = """
-- µ$ of ledger rows trimmed after export, by local day and scope (router/budgets/export).
CREATE TABLE IF NOT EXISTS ledger_days (
    day TEXT NOT NULL, field TEXT NOT NULL, micro INTEGER NOT NULL,
    PRIMARY KEY (day, field)) WITHOUT ROWID;
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    budget TEXT NOT NULL, win TEXT NOT NULL,
    spent INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (budget, win)) WITHOUT ROWID;
-- state: live (holding money), expired (money freed, a late settle still counts), done.
-- expires_at: for live rows, when the money is freed; for others, when the row is forgotten.
CREATE TABLE IF NOT EXISTS reservations (
    request_id TEXT PRIMARY KEY, state TEXT NOT NULL, amount INTEGER NOT NULL,
    time REAL NOT NULL, expires_at REAL NOT NULL, counters TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reservations_expiry ON reservations (expires_at);
CREATE TABLE IF NOT EXISTS ledger (
    request_id TEXT PRIMARY KEY, time REAL NOT NULL, key_alias TEXT, user TEXT, team TEXT,
    model TEXT NOT NULL, task TEXT, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, estimated_micro INTEGER NOT NULL,
    actual_micro INTEGER NOT NULL, reference_micro INTEGER NOT NULL, status TEXT NOT NULL,
    api TEXT NOT NULL DEFAULT 'chat');
CREATE INDEX IF NOT EXISTS ledger_time ON ledger (time);
CREATE TABLE IF NOT EXISTS rate (key TEXT PRIMARY KEY, tat REAL NOT NULL) WITHOUT ROWID;
""" + LEDGER_DAYS_DDL

#: The ledger table's columns, in the order of a row (router/budgets/export reads them too).
LEDGER_COLS = (
    "request_id, time, key_alias, user, team, model, task, prompt_tokens, completion_tokens, "
    "estimated_micro, actual_micro, reference_micro, status, api"
)
_INSERT_LEDGER = (
    f"INSERT OR IGNORE INTO ledger ({LEDGER_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_ADD_RESERVED = (
    "INSERT INTO counters (budget, win, reserved) VALUES (?, ?, ?) "
    "ON CONFLICT (budget, win) DO UPDATE SET reserved = reserved + excluded.reserved"
)
_ADD_SPENT = (
    "INSERT INTO counters (budget, win, spent) VALUES (?, ?, ?) "
    "ON CONFLICT (budget, win) DO UPDATE SET spent = spent + excluded.spent"
)
_MARK_DONE = (
    "INSERT INTO reservations (request_id, state, amount, time, expires_at, counters) "
    "VALUES (?, 'done', 0, ?, ?, '') "
    "ON CONFLICT (request_id) DO UPDATE SET state = 'done', expires_at = excluded.expires_at"
)
_SWEEP_LIMIT = 1000


def encode_counters(counters: Sequence[CounterRef]) -> str:
    return "\n".join(f"{b}\t{w}" for b, w in counters)


def decode_counters(text: str) -> tuple[CounterRef, ...]:
    out: list[CounterRef] = []
    for line in text.split("\n"):
        if line:
            b, w = line.rsplit("\t", 1)
            out.append((b, w))
    return tuple(out)


def ledger_values(row: LedgerRow) -> tuple[Any, ...]:
    return (
        row.request_id, row.time, row.key_alias, row.user, row.team, row.model, row.task,
        row.prompt_tokens, row.completion_tokens, row.estimated_micro, row.actual_micro,
        row.reference_micro, row.status, row.api,
    )  # fmt: skip


def _add_api_column(db: sqlite3.Connection) -> None:
    """A ledger created before the ``api`` column gets it, its old rows reading ``chat``."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(ledger)")}
    if "api" not in columns:
        db.execute("ALTER TABLE ledger ADD COLUMN api TEXT NOT NULL DEFAULT 'chat'")


class SqliteStore(BudgetStore):
    """Budgets, rate limits and ledger in one SQLite file (``:memory:`` for tests)."""

    kind = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        timezone: str = "UTC",
        reservation_ttl_s: float = 1800.0,
        settle_dedup_s: float = 86400.0,
        synchronous: str = "normal",
        busy_timeout_ms: int = 5000,
    ) -> None:
        super().__init__(timezone=timezone, reservation_ttl_s=reservation_ttl_s)
        if synchronous.lower() not in ("normal", "full", "extra"):
            raise ValueError("synchronous must be normal, full or extra")
        self.path = path
        self.settle_dedup_s = float(settle_dedup_s)
        self._db = connect(path, busy_timeout_ms)

        def setup(db: sqlite3.Connection) -> None:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            db.executescript(SCHEMA)
            _add_api_column(db)

        retry_busy(self._db, setup, busy_timeout_ms)

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Cursor]:
        return transaction(self._db)

    # -- internals (inside a transaction) --------------------------------------------------------

    def _sweep(self, c: sqlite3.Cursor, now: float, limit: int = _SWEEP_LIMIT) -> int:
        rows = c.execute(
            "SELECT request_id, state, amount, counters FROM reservations "
            "WHERE expires_at <= ? LIMIT ?",
            (now, limit),
        ).fetchall()
        freed = 0
        for rid, state, amount, counters in rows:
            if state == "live":
                c.executemany(
                    "UPDATE counters SET reserved = reserved - ? WHERE budget = ? AND win = ?",
                    [(amount, b, w) for b, w in decode_counters(counters)],
                )
                c.execute(
                    "UPDATE reservations SET state = 'expired', expires_at = ? "
                    "WHERE request_id = ?",
                    (now + self.settle_dedup_s, rid),
                )
                freed += 1
            else:
                c.execute("DELETE FROM reservations WHERE request_id = ?", (rid,))
        return freed

    def _counters(
        self,
        c: sqlite3.Cursor,
        counters: Sequence[CounterRef],
        budgets: Sequence[BudgetSpec],
        windows: Sequence[Window],
    ) -> list[tuple[int, int]]:
        """(spent, reserved) of each counter, in one statement (statements, not rows, are
        what a reserve pays for); a missing one is created, seeded from the ledger."""
        if not counters:
            return []
        values = ",".join("(?,?)" for _ in counters)
        args = [x for ref in counters for x in ref]
        found = {
            (b, w): (s, r)
            for b, w, s, r in c.execute(
                "SELECT budget, win, spent, reserved FROM counters "
                f"WHERE (budget, win) IN (VALUES {values})",
                args,
            )
        }
        out = []
        for ref, b, w in zip(counters, budgets, windows, strict=True):
            v = found.get(ref)
            if v is None:
                v = (self._seed(c, ref, b, w), 0)
            out.append(v)
        return out

    def _seed(self, c: sqlite3.Cursor, ref: CounterRef, budget: BudgetSpec, window: Window) -> int:
        """Create the counter ``ref`` with the ledger's spend of its scope in its window, if
        the budget is new; a budget with counters of earlier windows starts a new window at 0
        (see router/budgets/seed.py)."""
        known = c.execute("SELECT 1 FROM counters WHERE budget = ? LIMIT 1", (ref[0],)).fetchone()
        if known is not None:
            c.execute("INSERT INTO counters (budget, win) VALUES (?, ?)", ref)
            return 0
        sql = "SELECT COALESCE(SUM(actual_micro), 0) FROM ledger WHERE time >= ?"
        args: list[Any] = [window.start]
        if window.reset_at is not None:
            sql += " AND time < ?"
            args.append(window.reset_at)
        column = SCOPE_COLUMN[budget.scope]
        if column is not None:
            sql += f" AND {column} = ?"
            args.append(budget.scope_id)
        (spent,) = c.execute(sql, args).fetchone()
        spent += self._trimmed(c, budget, window)
        c.execute("INSERT INTO counters (budget, win, spent, reserved) VALUES (?, ?, ?, 0)",
                  (*ref, spent))  # fmt: skip
        return int(spent)

    def _trimmed(self, c: sqlite3.Cursor, budget: BudgetSpec, window: Window) -> int:
        """µ$ of the scope's ledger rows in ``window`` that were trimmed after export (their
        day sums; windows are whole local days)."""
        sql = "SELECT COALESCE(SUM(micro), 0) FROM ledger_days WHERE field = ?"
        args: list[Any] = [aggregate_field(budget)]
        if window.reset_at is not None:
            days = window_days(window, self.calendar.tz)
            sql += " AND day >= ? AND day <= ?"
            args += [days[0], days[-1]]
        (trimmed,) = c.execute(sql, args).fetchone()
        return int(trimmed)

    @staticmethod
    def _consume_rate(
        c: sqlite3.Cursor, specs: Sequence[RateLimitSpec], tokens: int, now: float
    ) -> None:
        new: list[tuple[str, float]] = []
        failed: RateLimited | None = None
        for s in specs:
            for kind, per in s.limits():
                cost = 1 if kind == "requests" else tokens
                if cost <= 0:
                    continue
                key = f"{s.scope.value}:{s.scope_id}:{kind}"
                r = c.execute("SELECT tat FROM rate WHERE key = ?", (key,)).fetchone()
                ok, tat, wait = gcra(r[0] if r else None, now, cost, per)
                if ok:
                    new.append((key, tat))
                elif failed is None or wait > failed.retry_after_s:
                    failed = RateLimited(
                        scope=s.scope.value,
                        scope_id=s.scope_id,
                        kind=kind,
                        limit_per_minute=per,
                        retry_after_s=wait,
                    )
        if failed is not None:
            raise failed
        c.executemany(
            "INSERT INTO rate (key, tat) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
            new,
        )

    # -- the interface ---------------------------------------------------------------------------

    async def reserve(
        self,
        request_id: str,
        budgets: Sequence[BudgetSpec],
        amount_micro: int,
        now: float | None = None,
        *,
        fallback_micro: int | None = None,
        rate_limits: Sequence[RateLimitSpec] = (),
        tokens: int = 0,
    ) -> Reservation:
        now = _now(now)
        check_request(request_id, budgets, amount_micro, fallback_micro)
        windows, counters = self._windows(budgets, now)
        with self._tx() as c:
            self._sweep(c, now)
            old = c.execute(
                "SELECT state, amount, time, expires_at, counters FROM reservations "
                "WHERE request_id = ?",
                (request_id,),
            ).fetchone()
            if old is not None and old[0] != "live":
                raise ValueError(f"request {request_id!r} was already {old[0]}")
            if old is None and rate_limits:
                self._consume_rate(c, rate_limits, tokens, now)
            vals = self._counters(c, counters, budgets, windows)
            if old is not None:  # a retried reserve: the reservation stands, reserve nothing
                amount, t0, exp, counters = old[1], old[2], old[3], decode_counters(old[4])
                added = 0
            else:
                used = [s + r for s, r in vals]
                amount = choose_amount(budgets, windows, used, amount_micro, fallback_micro)
                t0, exp, added = now, now + self.reservation_ttl_s, amount
                c.executemany(_ADD_RESERVED, [(b, w, amount) for b, w in counters])
                c.execute(
                    "INSERT INTO reservations (request_id, state, amount, time, expires_at, "
                    "counters) VALUES (?, 'live', ?, ?, ?, ?)",
                    (request_id, amount, now, exp, encode_counters(counters)),
                )
        status = tuple(
            BudgetStatus(b, w.id, s, r + added, w.reset_at)
            for b, w, (s, r) in zip(budgets, windows, vals, strict=True)
        )
        return Reservation(request_id, amount, t0, exp, counters, status)

    async def settle(
        self,
        reservation: Reservation,
        actual_micro: int,
        row: LedgerRow,
        *,
        now: float | None = None,
    ) -> SettleResult:
        now = _now(now)
        rid = reservation.request_id
        if row.request_id != rid:
            raise ValueError(f"ledger row is for {row.request_id!r}, not {rid!r}")
        if actual_micro < 0:
            raise ValueError("actual_micro must be >= 0")
        row = row.stamped(reservation.time, actual_micro)
        with self._tx() as c:
            old = c.execute(
                "SELECT state, amount, counters FROM reservations WHERE request_id = ?", (rid,)
            ).fetchone()
            if old is not None and old[0] == "done":
                return SettleResult(applied=False)
            if c.execute(_INSERT_LEDGER, ledger_values(row)).rowcount == 0:
                c.execute(_MARK_DONE, (rid, now, now + self.settle_dedup_s))
                return SettleResult(applied=False)
            if old is not None and old[0] == "live":
                c.executemany(
                    "UPDATE counters SET reserved = reserved - ? WHERE budget = ? AND win = ?",
                    [(old[1], b, w) for b, w in decode_counters(old[2])],
                )
            c.executemany(_ADD_SPENT, [(b, w, actual_micro) for b, w in reservation.counters])
            c.execute(_MARK_DONE, (rid, now, now + self.settle_dedup_s))
        return SettleResult(
            applied=True, overshoot_micro=max(0, actual_micro - reservation.amount_micro)
        )

    async def release(
        self,
        reservation: Reservation,
        row: LedgerRow | None = None,
        *,
        now: float | None = None,
    ) -> bool:
        now = _now(now)
        rid = reservation.request_id
        with self._tx() as c:
            old = c.execute(
                "SELECT state, amount, counters FROM reservations WHERE request_id = ?", (rid,)
            ).fetchone()
            if old is not None and old[0] == "done":
                return False
            if row is not None:
                if row.request_id != rid:
                    raise ValueError(f"ledger row is for {row.request_id!r}, not {rid!r}")
                row = row.stamped(reservation.time, 0)
                if c.execute(_INSERT_LEDGER, ledger_values(row)).rowcount == 0:
                    c.execute(_MARK_DONE, (rid, now, now + self.settle_dedup_s))
                    return False
            if old is not None and old[0] == "live":
                c.executemany(
                    "UPDATE counters SET reserved = reserved - ? WHERE budget = ? AND win = ?",
                    [(old[1], b, w) for b, w in decode_counters(old[2])],
                )
            c.execute(_MARK_DONE, (rid, now, now + self.settle_dedup_s))
        return True

    async def budget_status(
        self, budgets: Sequence[BudgetSpec], now: float | None = None
    ) -> list[BudgetStatus]:
        now = _now(now)
        windows, counters = self._windows(budgets, now)
        with self._tx() as c:
            self._sweep(c, now)
            vals = self._counters(c, counters, budgets, windows)
        return [
            BudgetStatus(b, w.id, s, r, w.reset_at)
            for b, w, (s, r) in zip(budgets, windows, vals, strict=True)
        ]

    async def check_rate(
        self, specs: Sequence[RateLimitSpec], tokens: int = 0, now: float | None = None
    ) -> None:
        now = _now(now)
        with self._tx() as c:
            self._consume_rate(c, specs, tokens, now)

    async def expire_reservations(self, now: float | None = None) -> int:
        now = _now(now)
        total = 0
        while True:
            with self._tx() as c:
                n = self._sweep(c, now)
                more = c.execute(
                    "SELECT 1 FROM reservations WHERE expires_at <= ? LIMIT 1", (now,)
                ).fetchone()
            total += n
            if not more:
                return total

    # -- reports (own connection, in a thread) ---------------------------------------------------

    def _where(
        self, since: float, until: float, filters: Mapping[str, str] | None
    ) -> tuple[str, list[Any]]:
        check_fields((), filters)
        sql = "time >= ? AND time < ?"
        args: list[Any] = [since, until]
        for k, v in (filters or {}).items():
            sql += f" AND {GROUP_FIELDS[k]} = ?"
            args.append(v)
        return sql, args

    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self.path == ":memory:":
            return self._db.execute(sql, args).fetchall()
        db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    async def _run_query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self.path == ":memory:":
            return self._query(sql, args)
        return await asyncio.to_thread(self._query, sql, args)

    async def iter_ledger(
        self, since: float, until: float, filters: Mapping[str, str] | None = None
    ) -> AsyncIterator[LedgerRow]:
        where, args = self._where(since, until, filters)
        rows = await self._run_query(
            f"SELECT {LEDGER_COLS} FROM ledger WHERE {where} ORDER BY time, request_id", args
        )
        for r in rows:
            yield LedgerRow(
                request_id=r[0], time=r[1], key_alias=r[2], user=r[3], team=r[4], model=r[5],
                task=r[6], prompt_tokens=r[7], completion_tokens=r[8], estimated_micro=r[9],
                actual_micro=r[10], reference_micro=r[11], status=r[12], api=r[13],
            )  # fmt: skip

    async def ledger_query(
        self,
        since: float,
        until: float,
        group_by: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
    ) -> list[SpendRow]:
        check_fields(group_by, filters)
        where, args = self._where(since, until, filters)
        cols = [GROUP_FIELDS[g] for g in group_by]
        select = "".join(f"{c}, " for c in cols)
        group = f" GROUP BY {', '.join(cols)}" if cols else ""
        rows = await self._run_query(
            f"SELECT {select}COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
            f"SUM(estimated_micro), SUM(actual_micro), SUM(reference_micro) "
            f"FROM ledger WHERE {where}{group}",
            args,
        )
        n = len(cols)
        out = [
            SpendRow(
                group=dict(zip(group_by, r[:n], strict=True)),
                requests=r[n],
                prompt_tokens=r[n + 1] or 0,
                completion_tokens=r[n + 2] or 0,
                estimated_micro=r[n + 3] or 0,
                actual_micro=r[n + 4] or 0,
                reference_micro=r[n + 5] or 0,
            )
            for r in rows
            if r[n]
        ]
        out.sort(key=lambda s: (-s.actual_micro, tuple(str(v) for v in s.group.values())))
        return out

    async def close(self) -> None:
        self._db.close()
