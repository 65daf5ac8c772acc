"""What the SQLite budget store, the SQLite key store and the Redis store's journal share:
opening a database file that another process may be creating at the same moment, and immediate
write transactions."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open ``path`` (creating its directory; ``:memory:`` for none) in autocommit mode, usable
    from any thread, waiting up to ``busy_timeout_ms`` for another connection's lock."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    return db


def retry_busy(db: sqlite3.Connection, setup: Callable[[sqlite3.Connection], object],
               busy_timeout_ms: int) -> None:
    """Run ``setup`` (switching to WAL, creating tables), retrying ``SQLITE_BUSY``/``LOCKED``
    for as long as the busy timeout: when another process opens the same new file at the same
    moment, these statements can fail at once (the busy handler is not always consulted)."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            setup(db)
            return
        except sqlite3.OperationalError as e:
            busy = (e.sqlite_errorcode & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
    """``BEGIN IMMEDIATE`` (take the write lock now, not at the first write) ... ``COMMIT``;
    ``ROLLBACK`` on any exception."""
    c = db.cursor()
    c.execute("BEGIN IMMEDIATE")
    try:
        yield c
    except BaseException:
        c.execute("ROLLBACK")
        raise
    c.execute("COMMIT")
