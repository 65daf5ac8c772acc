"""What a Redis-backed replica keeps for itself: the journal of spend Redis has not seen yet
(its view of budgets for serving through an outage is :mod:`router.budgets.localview`).

The journal is a small SQLite file (or memory): a settle or release that cannot reach Redis is
appended there *before* the call returns, and replayed through the same idempotent settle
script when Redis is back. The script marks each request id done, so an entry replayed twice
(a crash between the script and the journal delete) counts once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from router.budgets.spec import LedgerRow
from router.budgets.sqlitedb import connect


def encode_row(row: LedgerRow) -> bytes:
    """A ledger row as a JSON array in field order: ~40% of the bytes of a JSON object, and
    the stream holds one per request."""
    return orjson.dumps(
        [row.request_id, row.model, row.key_alias, row.user, row.team, row.task,
         row.prompt_tokens, row.completion_tokens, row.estimated_micro, row.actual_micro,
         row.reference_micro, row.status, row.time, row.api]
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
    #: The ledger day-sum fields the row adds to (router/budgets/seed.py); None: read the row.
    fields: tuple[str, ...] | None = None


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
