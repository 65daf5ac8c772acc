"""Where each relayed Responses-API response lives: the gateway's memory for
``previous_response_id``.

A response created with ``store`` on (OpenAI's default) is kept by the provider that answered
it, and only that provider can continue it. The gateway remembers, in its own store (the same
``store.url`` as budgets: a table of the SQLite file, or keys in Redis shared by every replica),
the model that answered, the provider account that holds it (API base and key variable), and
the gateway key that created it (another key may not continue it). A response answered through
translation to chat completions is remembered too, as held nowhere, so that a later
``previous_response_id`` gets a precise 400 instead of "unknown".

Entries expire after 30 days, as OpenAI's stored responses do.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from typing import Protocol

import orjson

#: How long a response is remembered (OpenAI keeps stored responses 30 days).
TTL_S = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class Home:
    """Where a response lives. ``account`` is empty when no upstream stored it (it was answered
    through translation, or with ``store: false``)."""

    model: str
    account: str
    key_alias: str


class ResponseHomes(Protocol):
    async def remember(self, response_id: str, home: Home) -> None: ...

    async def lookup(self, response_id: str) -> Home | None: ...

    async def aclose(self) -> None: ...


class MemoryHomes:
    """In one process (the fake beside the real ones; also ``sqlite:///:memory:``)."""

    def __init__(self, ttl_s: float = TTL_S) -> None:
        self.ttl_s = ttl_s
        self._homes: dict[str, tuple[float, Home]] = {}

    async def remember(self, response_id: str, home: Home) -> None:
        self._homes[response_id] = (time.time() + self.ttl_s, home)

    async def lookup(self, response_id: str) -> Home | None:
        found = self._homes.get(response_id)
        if found is None or found[0] <= time.time():
            return None
        return found[1]

    async def aclose(self) -> None:
        self._homes.clear()


_SCHEMA = """CREATE TABLE IF NOT EXISTS response_homes (
    response_id TEXT PRIMARY KEY, model TEXT NOT NULL, account TEXT NOT NULL,
    key_alias TEXT NOT NULL, expires REAL NOT NULL) WITHOUT ROWID"""


class SqliteHomes:
    """A table in the budget store's SQLite file (one short write per stored response)."""

    def __init__(self, path: str, ttl_s: float = TTL_S, busy_timeout_ms: int = 5000) -> None:
        from router.budgets.sqlitedb import connect, retry_busy

        self.ttl_s = ttl_s
        self._db = connect(path, busy_timeout_ms)
        self._writes = 0

        def setup(db: sqlite3.Connection) -> None:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(_SCHEMA)

        retry_busy(self._db, setup, busy_timeout_ms)

    def _remember(self, response_id: str, home: Home) -> None:
        now = time.time()
        self._db.execute(
            "INSERT OR REPLACE INTO response_homes VALUES (?, ?, ?, ?, ?)",
            (response_id, home.model, home.account, home.key_alias, now + self.ttl_s))
        self._writes += 1
        if self._writes % 1000 == 0:
            self._db.execute("DELETE FROM response_homes WHERE expires <= ?", (now,))

    async def remember(self, response_id: str, home: Home) -> None:
        await asyncio.to_thread(self._remember, response_id, home)

    def _lookup(self, response_id: str) -> Home | None:
        row = self._db.execute(
            "SELECT model, account, key_alias FROM response_homes "
            "WHERE response_id = ? AND expires > ?", (response_id, time.time())).fetchone()
        return Home(row[0], row[1], row[2]) if row is not None else None

    async def lookup(self, response_id: str) -> Home | None:
        return await asyncio.to_thread(self._lookup, response_id)

    async def aclose(self) -> None:
        self._db.close()


class RedisHomes:
    """``<prefix>:resp:<id>`` keys with a TTL, shared by every replica."""

    def __init__(self, url: str, prefix: str = "router", ttl_s: float = TTL_S) -> None:
        import redis.asyncio as redis

        self._r = redis.from_url(url)
        self._prefix = f"{prefix}:resp:"
        self.ttl_s = ttl_s

    async def remember(self, response_id: str, home: Home) -> None:
        value = orjson.dumps([home.model, home.account, home.key_alias])
        await self._r.set(self._prefix + response_id, value, ex=int(self.ttl_s))

    async def lookup(self, response_id: str) -> Home | None:
        raw = await self._r.get(self._prefix + response_id)
        if raw is None:
            return None
        model, account, alias = orjson.loads(raw)
        return Home(model, account, alias)

    async def aclose(self) -> None:
        await self._r.aclose()


def open_homes(url: str) -> ResponseHomes:
    """The response memory on the store ``url`` names (nothing connects until first use for
    Redis; the SQLite file is opened now, as the budget store does)."""
    from router.budgets.factory import sqlite_path

    if url.startswith("sqlite"):
        path, _ = sqlite_path(url)
        return MemoryHomes() if path == ":memory:" else SqliteHomes(path)
    return RedisHomes(url)
