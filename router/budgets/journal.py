"""What a Redis-backed replica keeps for itself: the journal of spend Redis has not seen yet,
and its local view of budgets for serving through an outage (``fail_mode: open``).

The journal is a small SQLite file (or memory): a settle or release that cannot reach Redis is
appended there *before* the call returns, and replayed through the same idempotent settle
script when Redis is back. The script marks each request id done, so an entry replayed twice
(a crash between the script and the journal delete) counts once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from router.budgets.errors import RateLimited
from router.budgets.rules import choose_amount, gcra
from router.budgets.spec import BudgetSpec, BudgetStatus, CounterRef, LedgerRow, Reservation, Window
from router.budgets.sqlitedb import connect


def encode_row(row: LedgerRow) -> bytes:
    """A ledger row as a JSON array in field order: ~40% of the bytes of a JSON object, and
    the stream holds one per request."""
    return orjson.dumps(
        [row.request_id, row.model, row.key_alias, row.user, row.team, row.task,
         row.prompt_tokens, row.completion_tokens, row.estimated_micro, row.actual_micro,
         row.reference_micro, row.status, row.time]
    )  # fmt: skip


def decode_row(blob: bytes) -> LedgerRow:
    return LedgerRow(*orjson.loads(blob))


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: int
    op: str  # "settle" | "release"
    request_id: str
    counters: tuple[str, ...]  # Redis counter keys
    actual_micro: int
    row_ms: int
    row: bytes  # JSON ledger row, b"" for none
    leases: tuple[str, ...] = ()  # lease keys of a leased reservation
    consumed: int = 0  # µ$ each of those leases gives up to the spend


class Journal:
    """Durable FIFO of settles and releases waiting for Redis (``path`` None: in memory)."""

    def __init__(self, path: str | None) -> None:
        # 5000 ms: sqlite3.connect's default timeout (5 s), which this connection had before
        self._db = connect(":memory:" if path is None else path, busy_timeout_ms=5000)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "op TEXT NOT NULL, request_id TEXT NOT NULL, counters TEXT NOT NULL, "
            "actual INTEGER NOT NULL, row_ms INTEGER NOT NULL, row BLOB NOT NULL, "
            "leases TEXT NOT NULL DEFAULT '', consumed INTEGER NOT NULL DEFAULT 0)"
        )
        (self._count,) = self._db.execute("SELECT COUNT(*) FROM journal").fetchone()

    def append(
        self,
        op: str,
        request_id: str,
        counters: Sequence[str],
        actual_micro: int,
        row_ms: int,
        row: bytes,
        leases: Sequence[str] = (),
        consumed: int = 0,
    ) -> int:
        cur = self._db.execute(
            "INSERT INTO journal (op, request_id, counters, actual, row_ms, row, leases, "
            "consumed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (op, request_id, "\n".join(counters), actual_micro, row_ms, row, "\n".join(leases),
             consumed),
        )  # fmt: skip
        assert cur.lastrowid is not None
        self._count += 1
        return cur.lastrowid

    def head(self, limit: int = 100) -> list[JournalEntry]:
        rows = self._db.execute(
            "SELECT id, op, request_id, counters, actual, row_ms, row, leases, consumed "
            "FROM journal ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            JournalEntry(r[0], r[1], r[2], tuple(c for c in r[3].split("\n") if c), r[4], r[5],
                         bytes(r[6]), tuple(x for x in r[7].split("\n") if x), r[8])
            for r in rows
        ]  # fmt: skip

    def delete(self, entry_id: int) -> bool:
        """Forget a replayed entry; False if it was already gone."""
        n = self._db.execute("DELETE FROM journal WHERE id = ?", (entry_id,)).rowcount
        self._count -= n
        return n == 1

    def __len__(self) -> int:
        """Entries waiting (kept in memory: this is read on every call)."""
        return int(self._count)

    def close(self) -> None:
        self._db.close()


@dataclass(slots=True)
class _LocalHold:
    amount: int
    counters: tuple[str, ...]
    expires_at: float


class LocalView:
    """A replica's own view of its budgets, used only while Redis is unreachable.

    ``used(key)`` = what Redis last told us (settled + reserved) + spend journaled since + money
    held by local reservations. Without exactness across replicas (each only knows its own
    spend since the outage) this still stops one replica from spending a whole budget alone.
    """

    def __init__(self) -> None:
        self.snapshot: dict[str, int] = {}
        self.pending: dict[str, int] = {}
        self.held: dict[str, int] = {}
        self.holds: dict[str, _LocalHold] = {}
        self.rates: dict[str, float] = {}

    def seen(self, key: str, used: int) -> None:
        if len(self.snapshot) > 100_000:
            self.snapshot.clear()
        self.snapshot[key] = used

    def used(self, key: str) -> int:
        return self.snapshot.get(key, 0) + self.pending.get(key, 0) + self.held.get(key, 0)

    def add_pending(self, counters: Sequence[str], amount: int) -> None:
        for k in counters:
            v = self.pending.get(k, 0) + amount
            if v:
                self.pending[k] = v
            else:
                self.pending.pop(k, None)

    def hold(
        self, request_id: str, counters: Sequence[str], amount: int, expires_at: float
    ) -> None:
        self.holds[request_id] = _LocalHold(amount, tuple(counters), expires_at)
        for k in counters:
            self.held[k] = self.held.get(k, 0) + amount

    def unhold(self, request_id: str) -> None:
        h = self.holds.pop(request_id, None)
        if h is None:
            return
        for k in h.counters:
            v = self.held.get(k, 0) - h.amount
            if v:
                self.held[k] = v
            else:
                self.held.pop(k, None)

    def expire(self, now: float) -> int:
        gone = [rid for rid, h in self.holds.items() if h.expires_at <= now]
        for rid in gone:
            self.unhold(rid)
        return len(gone)

    def rate(self, items: Sequence[tuple[str, int, int]], now: float) -> tuple[int, float] | None:
        """Local GCRA over ``(key, per_minute, cost)``: None (consumed) or (index, wait)."""
        new: list[tuple[str, float]] = []
        fail: tuple[int, float] | None = None
        for j, (key, per, cost) in enumerate(items):
            ok, tat, wait = gcra(self.rates.get(key), now, cost, per)
            if ok:
                new.append((key, tat))
            elif fail is None or wait > fail[1]:
                fail = (j, wait)
        if fail is None:
            self.rates.update(new)
        return fail

    def reserve(
        self,
        request_id: str,
        budgets: Sequence[BudgetSpec],
        windows: Sequence[Window],
        refs: tuple[CounterRef, ...],
        ckeys: Sequence[str],
        rate_items: Sequence[tuple[str, int, int]],
        amount_micro: int,
        fallback_micro: int | None,
        now: float,
        ttl_s: float,
        rate_error: Callable[[int, float], RateLimited],
    ) -> Reservation:
        """``fail_mode: open`` during an outage: the stores' rules on this replica's view."""
        self.expire(now)
        used = [self.used(k) for k in ckeys]
        hold = self.holds.get(request_id)
        if hold is not None:  # a retried reserve
            amount, exp = hold.amount, hold.expires_at
        else:
            fail = self.rate(rate_items, now)
            if fail is not None:
                raise rate_error(*fail)
            amount = choose_amount(
                budgets, windows, used, amount_micro, fallback_micro, degraded=True
            )
            exp = now + ttl_s
            self.hold(request_id, ckeys, amount, exp)
            used = [u + amount for u in used]
        status = tuple(
            BudgetStatus(b, w.id, u, 0, w.reset_at)
            for b, w, u in zip(budgets, windows, used, strict=True)
        )
        return Reservation(request_id, amount, now, exp, refs, status, local=True)
