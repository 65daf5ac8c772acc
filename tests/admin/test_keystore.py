"""The key store contract, against SqliteKeyStore and RedisKeyStore (a real redis-server)."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import pytest
import redis

from router.budgets import BudgetSpec, LedgerRow, Period, Scope, StoreUnavailable
from router.budgets.keys import KeyExists, KeyRecord, KeyStore, RedisKeyStore, open_key_store
from tests.admin.conftest import KeyFactory
from tests.budgets.conftest import StoreFactory
from tests.support import free_port

T0 = 1_736_942_400.0  # 2025-01-15 12:00 UTC


def record(alias: str, secret: str = "", **kw: object) -> KeyRecord:
    digest = hashlib.sha256((secret or f"sk-{alias}").encode()).hexdigest()
    base: dict[str, object] = dict(user="ann", team="search", created=T0)
    base.update(kw)
    return KeyRecord(alias=alias, key_sha256=digest, **base)  # type: ignore[arg-type]


async def test_create_get_list_roundtrip(key_store: KeyStore) -> None:
    a = record("app-a", models=("gpt-4o-mini", "auto"),
               budgets=((Period.DAILY, 1_500_000), (Period.MONTHLY, 20_000_000)),
               requests_per_minute=60, tokens_per_minute=100_000)
    b = record("app-b", created=T0 + 1)
    await key_store.create(b)
    await key_store.create(a)
    assert await key_store.get("app-a") == a
    assert await key_store.get("nope") is None
    assert await key_store.records() == [a, b]  # oldest first
    assert a.budget_specs() == (BudgetSpec(Scope.KEY, "app-a", Period.DAILY, 1_500_000),
                                BudgetSpec(Scope.KEY, "app-a", Period.MONTHLY, 20_000_000))
    rl = a.rate_limit()
    assert rl is not None and (rl.requests_per_minute, rl.tokens_per_minute) == (60, 100_000)
    assert b.rate_limit() is None and b.budget_specs() == ()


async def test_aliases_are_never_reused(key_store: KeyStore) -> None:
    await key_store.create(record("app"))
    with pytest.raises(KeyExists):
        await key_store.create(record("app", secret="another"))
    await key_store.revoke("app", T0 + 5)
    with pytest.raises(KeyExists):
        await key_store.create(record("app", secret="third"))
    assert (await key_store.get("app")) == record("app", revoked=T0 + 5)


async def test_concurrent_creates_of_one_alias_one_wins(make_key_store: KeyFactory) -> None:
    stores = [make_key_store() for _ in range(4)]
    results = await asyncio.gather(
        *(stores[i % 4].create(record("race", secret=f"s{i}")) for i in range(20)),
        return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, KeyExists) for r in results if r is not None)
    assert len(await stores[0].records()) == 1


async def test_revoke_is_idempotent_and_versions_move_only_on_change(key_store: KeyStore) -> None:
    v0 = await key_store.version()
    await key_store.create(record("app"))
    v1 = await key_store.version()
    assert v1 != v0
    await key_store.get("app")
    await key_store.records()
    assert await key_store.version() == v1
    first = await key_store.revoke("app", T0 + 10)
    assert first is not None and first.revoked == T0 + 10 and not first.active
    v2 = await key_store.version()
    assert v2 not in (v0, v1)
    again = await key_store.revoke("app", T0 + 99)  # keeps the first time, changes nothing
    assert again is not None and again.revoked == T0 + 10
    assert await key_store.version() == v2
    assert await key_store.revoke("unknown", T0) is None
    assert await key_store.version() == v2


async def test_a_fresh_backend_never_repeats_a_version(make_store: StoreFactory,
                                                       tmp_path: Path) -> None:
    """Versions carry a random epoch: a wiped store (Redis restarted empty, a new SQLite file)
    that sees as many changes as before still reads as changed to a replica."""
    prefix = str(make_store.options.get("prefix", "router"))
    versions = []
    for i in range(2):
        url = (f"sqlite:///{tmp_path / f'k{i}.db'}" if make_store.kind == "sqlite"
               else make_store.url)
        ks = open_key_store(url, prefix=f"{prefix}-fresh{i}")
        await ks.create(record("app"))
        versions.append(await ks.version())
        await ks.close()
    assert versions[0] != versions[1]


async def test_the_secret_is_stored_nowhere(make_store: StoreFactory, key_store: KeyStore,
                                            tmp_path: Path) -> None:
    secret = "sk-router-THIS-SECRET-MUST-NOT-BE-STORED-0123"
    await key_store.create(record("app", secret=secret))
    await key_store.revoke("app", T0)
    if make_store.kind == "sqlite":
        blobs = [p.read_bytes() for p in tmp_path.glob("budgets.db*")]
    else:
        client = redis.Redis.from_url(make_store.url)
        blobs = []
        for k in client.scan_iter(match="*"):
            kind = client.type(k)
            blobs.append(k + repr(client.hgetall(k) if kind == b"hash" else client.dump(k)).encode())
        client.close()
    assert blobs and not any(secret.encode() in b for b in blobs)
    digest = hashlib.sha256(secret.encode()).hexdigest().encode()
    assert any(digest in b for b in blobs)


async def test_budget_counters_are_the_budget_stores(make_store: StoreFactory,
                                                     key_store: KeyStore) -> None:
    store = make_store()
    budgets = [BudgetSpec(Scope.TEAM, "search", Period.DAILY, 10**9),
               BudgetSpec(Scope.KEY, "app:with:colons", Period.TOTAL, 10**9)]
    r1 = await store.reserve("r1", budgets, 700, T0)
    await store.settle(r1, 400, LedgerRow("r1", "m", team="search"))
    await store.reserve("r2", budgets, 250, T0 + 1)  # still in flight
    got = {(c.budget, c.window): c for c in await key_store.budget_counters()}
    team = got[("team:search:daily", "2025-01-15")]
    key = got[("key:app:with:colons:total", "total")]
    assert (team.spent_micro, team.reserved_micro) == (400, 250)
    assert (key.scope, key.scope_id, key.period, key.spent_micro) == ("key", "app:with:colons",
                                                                      "total", 400)
    only = await key_store.budget_counters({"total"})
    assert [(c.budget, c.window) for c in only] == [("key:app:with:colons:total", "total")]
    assert await key_store.budget_counters(set()) == []


def test_record_checks_and_json_roundtrip() -> None:
    r = record("a.b-c_1", models=("x",), budgets=(("weekly", 5),), tokens_per_minute=7,
               revoked=T0)
    assert r.budgets == ((Period.WEEKLY, 5),)
    assert KeyRecord.from_json(r.to_json(), T0) == r
    assert b"revoked" not in r.to_json()
    for bad in (dict(alias="-x"), dict(alias="a" * 65), dict(alias="a b"),
                dict(user=""), dict(team="t\n"),
                dict(budgets=((Period.DAILY, -1),)), dict(budgets=((Period.DAILY, 1.5),)),
                dict(budgets=((Period.DAILY, 1), (Period.DAILY, 2))),
                dict(requests_per_minute=0), dict(tokens_per_minute=True)):
        with pytest.raises(ValueError):
            record(**{"alias": "ok", **bad})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        KeyRecord(alias="ok", key_sha256="ABC", user="u", team="t")


async def test_read_only_sqlite_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    with pytest.raises(FileNotFoundError):
        open_key_store(f"sqlite:///{missing}", read_only=True)
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    ro = open_key_store(f"sqlite:///{empty}", read_only=True)
    assert await ro.records() == [] and await ro.version() == "0"
    assert await ro.budget_counters() == []
    with pytest.raises(sqlite3.OperationalError):
        await ro.create(record("app"))
    await ro.close()


async def test_unreachable_redis_is_store_unavailable() -> None:
    ks = RedisKeyStore(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.2)
    for call in (ks.version(), ks.records(), ks.get("a"), ks.create(record("a")),
                 ks.revoke("a"), ks.budget_counters()):
        with pytest.raises(StoreUnavailable):
            await call
    await ks.close()
