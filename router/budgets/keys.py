"""Gateway keys created through the admin API, kept next to the budgets in the same backend.

A :class:`KeyRecord` is what the store keeps of a key: its alias, the SHA-256 of its secret (the
secret itself is shown once, at creation, and never stored), owner, allowed models, its own
budgets and rate limits, and when it was created and revoked. :class:`KeyStore` is the small
interface over it, with :class:`SqliteKeyStore` (table ``gateway_keys`` in the budget store's
file) and :class:`RedisKeyStore` (hashes under the budget store's ``{prefix}`` hash tag, so a
Cluster keeps them in the same slot). ``tests/admin/test_keystore.py`` runs the contract on both.

Replicas learn about changes by polling :meth:`KeyStore.version`, an opaque token that changes
with every create and revoke (and when the backend is wiped: it carries a random epoch), so the
poll is one tiny read and a full reload happens only after a change.

:meth:`KeyStore.budget_counters` reads the budget store's counters (layout in docs/budgets.md)
for the spend check (``router spend --check``, ``GET /admin/spend/check``): the admin side's
read-only view of the same backend, which the budget store's interface does not expose.
"""

from __future__ import annotations

import abc
import contextlib
import re
import secrets
import sqlite3
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from router.budgets.errors import StoreUnavailable
from router.budgets.spec import BudgetSpec, Period, RateLimitSpec, Scope
from router.budgets.sqlitedb import connect, retry_busy, transaction

ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class KeyExists(Exception):
    """A key with this alias exists (or existed: aliases of revoked keys are never reused, so
    the ledger rows of one alias always belong to one key)."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        super().__init__(f"a key with alias {alias!r} already exists")


def _check_name(what: str, value: str) -> None:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ValueError(f"{what} must be 1-256 characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"{what} must not contain control characters")


def _positive_int(what: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"{what} must be a positive integer")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A gateway key as stored: never the secret, only its SHA-256.

    ``budgets``: ``(period, limit µ$)`` pairs, one per period at most, applied to the key's own
    scope (``Scope.KEY``, named by the alias). ``created`` and ``revoked`` are Unix seconds.
    """

    alias: str
    key_sha256: str
    user: str
    team: str
    models: tuple[str, ...] | None = None
    budgets: tuple[tuple[Period, int], ...] = ()
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    created: float = 0.0
    revoked: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.alias, str) or not ALIAS_RE.match(self.alias):
            raise ValueError("alias must be 1-64 of A-Z a-z 0-9 . _ - (starting alphanumeric)")
        if not isinstance(self.key_sha256, str) or not _SHA256_RE.match(self.key_sha256):
            raise ValueError("key_sha256 must be 64 lowercase hex digits")
        _check_name("user", self.user)
        _check_name("team", self.team)
        if self.models is not None:
            object.__setattr__(self, "models", tuple(self.models))
            for m in self.models:
                _check_name("model", m)
        budgets = tuple((Period(p), limit) for p, limit in self.budgets)
        object.__setattr__(self, "budgets", budgets)
        if len({p for p, _ in budgets}) != len(budgets):
            raise ValueError("one budget per period")
        for _, limit in budgets:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ValueError("budget limits must be integer micro-dollars >= 0")
        _positive_int("requests_per_minute", self.requests_per_minute)
        _positive_int("tokens_per_minute", self.tokens_per_minute)

    @property
    def active(self) -> bool:
        return self.revoked is None

    def budget_specs(self) -> tuple[BudgetSpec, ...]:
        """The key's own budgets, as the budget store takes them."""
        return tuple(BudgetSpec(Scope.KEY, self.alias, p, limit) for p, limit in self.budgets)

    def rate_limit(self) -> RateLimitSpec | None:
        """The key's own rate limits, or None."""
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            return None
        return RateLimitSpec(Scope.KEY, self.alias, self.requests_per_minute,
                             self.tokens_per_minute)  # fmt: skip

    def to_json(self) -> bytes:
        """Everything but ``revoked`` (kept apart, so revoking never rewrites the record)."""
        return orjson.dumps({
            "alias": self.alias, "key_sha256": self.key_sha256, "user": self.user,
            "team": self.team, "models": self.models,
            "budgets": {p.value: limit for p, limit in self.budgets},
            "rpm": self.requests_per_minute, "tpm": self.tokens_per_minute,
            "created": self.created,
        })  # fmt: skip

    @classmethod
    def from_json(cls, blob: bytes | str, revoked: float | None = None) -> KeyRecord:
        d: dict[str, Any] = orjson.loads(blob)
        models = d.get("models")
        return cls(
            alias=d["alias"], key_sha256=d["key_sha256"], user=d["user"], team=d["team"],
            models=tuple(models) if models is not None else None,
            budgets=tuple((Period(p), int(v)) for p, v in d.get("budgets", {}).items()),
            requests_per_minute=d.get("rpm"), tokens_per_minute=d.get("tpm"),
            created=float(d.get("created", 0.0)), revoked=revoked,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class CounterTotal:
    """One budget window's counter as the budget store holds it (``budget`` is
    ``BudgetSpec.key``: ``scope:scope_id:period``)."""

    budget: str
    window: str
    spent_micro: int
    reserved_micro: int

    @property
    def scope(self) -> str:
        return self.budget.split(":", 1)[0]

    @property
    def period(self) -> str:
        return self.budget.rsplit(":", 1)[1]

    @property
    def scope_id(self) -> str:
        return self.budget.split(":", 1)[1].rsplit(":", 1)[0]


def _new_epoch() -> str:
    return secrets.token_hex(8)


def _sort(records: list[KeyRecord]) -> list[KeyRecord]:
    return sorted(records, key=lambda r: (r.created, r.alias))


class KeyStore(abc.ABC):
    """Gateway keys created through the admin API (see the module doc)."""

    kind: str = "keys"

    @abc.abstractmethod
    async def create(self, record: KeyRecord) -> None:
        """Store a new key, or raise :class:`KeyExists` (also for the alias of a revoked key)."""

    @abc.abstractmethod
    async def get(self, alias: str) -> KeyRecord | None:
        """The key with this alias, revoked or not."""

    @abc.abstractmethod
    async def records(self) -> list[KeyRecord]:
        """Every key, revoked ones included, oldest first."""

    @abc.abstractmethod
    async def revoke(self, alias: str, now: float | None = None) -> KeyRecord | None:
        """Revoke the key (idempotent: a second revoke keeps the first time). None: no such key."""

    @abc.abstractmethod
    async def version(self) -> str:
        """A token that changes whenever a key is created or revoked (cheap: polled often)."""

    @abc.abstractmethod
    async def budget_counters(self, windows: Collection[str] | None = None) -> list[CounterTotal]:
        """The budget store's counters (all, or those of the given window ids), read-only."""

    @abc.abstractmethod
    async def close(self) -> None: ...


# ---------------------------------------------------------------------------------- SQLite

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS gateway_keys (
    alias TEXT PRIMARY KEY, key_sha256 TEXT NOT NULL UNIQUE, record TEXT NOT NULL,
    created REAL NOT NULL, revoked REAL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gateway_keys_version (
    id INTEGER PRIMARY KEY CHECK (id = 0), epoch TEXT NOT NULL, n INTEGER NOT NULL);
"""


class SqliteKeyStore(KeyStore):
    """Keys in the budget store's SQLite file, on a connection of their own.

    Calls run on the event loop, like the budget store's (each is one small statement or
    transaction; the gateway only polls :meth:`version`). ``read_only`` opens the file with
    ``mode=ro`` and creates nothing (``router spend``); a file without the tables reads as empty.
    """

    kind = "sqlite"

    def __init__(self, path: str, *, read_only: bool = False, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.read_only = read_only
        if read_only and path != ":memory:":
            if not Path(path).exists():
                raise FileNotFoundError(f"no budget store at {path}")
            uri = Path(path).resolve().as_uri() + "?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None,
                                       check_same_thread=False)  # fmt: skip
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        else:
            self._db = connect(path, busy_timeout_ms)
        if read_only:
            return
        # Another process (the budget store, another replica) may be creating the file right now.
        retry_busy(self._db, lambda db: db.executescript(_SQLITE_SCHEMA), busy_timeout_ms)

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Cursor]:
        return transaction(self._db)

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):  # a read-only view of a store without keys yet
                return []
            raise

    @staticmethod
    def _bump(c: sqlite3.Cursor) -> None:
        c.execute(
            "INSERT INTO gateway_keys_version (id, epoch, n) VALUES (0, ?, 1) "
            "ON CONFLICT (id) DO UPDATE SET n = n + 1",
            (_new_epoch(),),
        )

    async def create(self, record: KeyRecord) -> None:
        with self._tx() as c:
            if c.execute("SELECT 1 FROM gateway_keys WHERE alias = ?", (record.alias,)).fetchone():
                raise KeyExists(record.alias)
            c.execute(
                "INSERT INTO gateway_keys (alias, key_sha256, record, created, revoked) "
                "VALUES (?, ?, ?, ?, NULL)",
                (record.alias, record.key_sha256, record.to_json().decode(), record.created),
            )
            self._bump(c)

    async def get(self, alias: str) -> KeyRecord | None:
        rows = self._read("SELECT record, revoked FROM gateway_keys WHERE alias = ?", (alias,))
        return KeyRecord.from_json(rows[0][0], rows[0][1]) if rows else None

    async def records(self) -> list[KeyRecord]:
        rows = self._read("SELECT record, revoked FROM gateway_keys")
        return _sort([KeyRecord.from_json(r, rev) for r, rev in rows])

    async def revoke(self, alias: str, now: float | None = None) -> KeyRecord | None:
        now = time.time() if now is None else now
        with self._tx() as c:
            row = c.execute(
                "SELECT record, revoked FROM gateway_keys WHERE alias = ?", (alias,)
            ).fetchone()
            if row is None:
                return None
            if row[1] is not None:
                return KeyRecord.from_json(row[0], row[1])
            c.execute("UPDATE gateway_keys SET revoked = ? WHERE alias = ?", (now, alias))
            self._bump(c)
        return KeyRecord.from_json(row[0], now)

    async def version(self) -> str:
        rows = self._read("SELECT epoch, n FROM gateway_keys_version WHERE id = 0")
        return f"{rows[0][0]}:{rows[0][1]}" if rows else "0"

    async def budget_counters(self, windows: Collection[str] | None = None) -> list[CounterTotal]:
        sql = "SELECT budget, win, spent, reserved FROM counters"
        args: tuple[Any, ...] = ()
        if windows is not None:
            wins = tuple(windows)
            if not wins:
                return []
            sql += f" WHERE win IN ({','.join('?' for _ in wins)})"
            args = wins
        return [CounterTotal(b, w, int(s), int(r)) for b, w, s, r in self._read(sql, args)]

    async def close(self) -> None:
        self._db.close()


# ----------------------------------------------------------------------------------- Redis

# KEYS: keys hash, version hash. ARGV: alias, record JSON, a fresh epoch.
_CREATE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSETNX', KEYS[2], 'e', ARGV[3])
redis.call('HINCRBY', KEYS[2], 'n', 1)
return 1
"""
# KEYS: keys hash, revoked hash, version hash. ARGV: alias, time, a fresh epoch.
# Returns false (nil) for an unknown alias, else the (first) revocation time.
_REVOKE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return false end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  redis.call('HSETNX', KEYS[3], 'e', ARGV[3])
  redis.call('HINCRBY', KEYS[3], 'n', 1)
end
return redis.call('HGET', KEYS[2], ARGV[1])
"""


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisKeyStore(KeyStore):
    """Keys in Redis, under the budget store's hash tag (``P = {prefix}``)::

        P:keys          hash  alias -> record JSON (never the secret)
        P:keys:revoked  hash  alias -> revocation time
        P:keys:v        hash  e = random epoch, n = change count (the version)

    Unreachable Redis raises :class:`StoreUnavailable`.
    """

    kind = "redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "router",
        socket_timeout_s: float = 2.0,
    ) -> None:
        from redis.asyncio import Redis

        if not prefix or any(ch in prefix for ch in "{}\n"):
            raise ValueError(f"bad key prefix {prefix!r}")
        if client is None:
            if url is None:
                raise ValueError("give a redis:// url or a client")
            client = Redis.from_url(url, socket_timeout=socket_timeout_s,
                                    socket_connect_timeout=socket_timeout_s)  # fmt: skip
        self._r = client
        self._p = "{" + prefix + "}"
        self._keys = f"{self._p}:keys"
        self._revoked = f"{self._p}:keys:revoked"
        self._v = f"{self._p}:keys:v"
        self._create = client.register_script(_CREATE)
        self._revoke = client.register_script(_REVOKE)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        from router.budgets.redis_store import UNAVAILABLE

        try:
            yield
        except UNAVAILABLE as e:
            raise StoreUnavailable(store="redis", reason=type(e).__name__) from e

    @staticmethod
    def _time(raw: bytes | None) -> float | None:
        return None if raw is None else float(raw)

    async def create(self, record: KeyRecord) -> None:
        with self._guard():
            args = [record.alias, record.to_json(), _new_epoch()]
            ok = await self._create(keys=[self._keys, self._v], args=args)
        if not int(ok):
            raise KeyExists(record.alias)

    async def get(self, alias: str) -> KeyRecord | None:
        with self._guard():
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hget(self._keys, alias)
                pipe.hget(self._revoked, alias)
                blob, rev = await pipe.execute()
        return None if blob is None else KeyRecord.from_json(blob, self._time(rev))

    async def records(self) -> list[KeyRecord]:
        with self._guard():
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hgetall(self._keys)
                pipe.hgetall(self._revoked)
                blobs, revoked = await pipe.execute()
        return _sort([KeyRecord.from_json(b, self._time(revoked.get(a))) for a, b in blobs.items()])

    async def revoke(self, alias: str, now: float | None = None) -> KeyRecord | None:
        now = time.time() if now is None else now
        with self._guard():
            t = await self._revoke(keys=[self._keys, self._revoked, self._v],
                                   args=[alias, repr(now), _new_epoch()])  # fmt: skip
        if t is None:
            return None
        rec = await self.get(alias)
        return None if rec is None else replace(rec, revoked=float(t))

    async def version(self) -> str:
        with self._guard():
            epoch, n = await self._r.hmget(self._v, ["e", "n"])
        return "0" if epoch is None else f"{epoch.decode()}:{int(n or 0)}"

    async def budget_counters(self, windows: Collection[str] | None = None) -> list[CounterTotal]:
        wanted = None if windows is None else set(windows)
        head = f"{self._p}:c:"
        found: list[str] = []
        with self._guard():
            async for raw in self._r.scan_iter(match=_glob_escape(head) + "*", count=1000):
                key = raw.decode()
                budget, _, win = key[len(head):].rpartition(":")
                if budget and (wanted is None or win in wanted):
                    found.append(key)
            out: list[CounterTotal] = []
            for i in range(0, len(found), 500):
                chunk = found[i : i + 500]
                async with self._r.pipeline(transaction=False) as pipe:
                    for key in chunk:
                        pipe.hmget(key, ["s", "r"])
                    values = await pipe.execute()
                for key, (s, r) in zip(chunk, values, strict=True):
                    budget, _, win = key[len(head):].rpartition(":")
                    out.append(CounterTotal(budget, win, int(s or 0), int(r or 0)))
        return out

    async def close(self) -> None:
        await self._r.aclose()


def open_key_store(
    url: str, *, prefix: str = "router", read_only: bool = False, **options: Any
) -> KeyStore:
    """The key store on the backend a budget store URL names (``sqlite:///path``,
    ``redis://...``). ``prefix`` must be the budget store's (Redis), so the counters read by
    :meth:`KeyStore.budget_counters` are that store's. ``read_only`` (SQLite): open the file
    read-only and create nothing; Redis is only read unless a write method is called."""
    from urllib.parse import urlsplit

    from router.budgets.factory import sqlite_path

    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path, _query = sqlite_path(url)
        return SqliteKeyStore(path, read_only=read_only, **options)
    if scheme in ("redis", "rediss", "unix"):
        return RedisKeyStore(url, prefix=prefix, **options)
    raise ValueError(f"unknown store url {url!r}: use sqlite:///path or redis://host:port/db")
