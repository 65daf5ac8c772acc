"""DynamicKeys: admin-created keys as the request path sees them, on two "replicas" of one
store (SQLite file, real redis-server), with no store call per lookup."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Collection
from typing import Any

import pytest

from router.admin.keys import DynamicKeys, create_key, parse_key_request, revoke_key
from router.auth import KeyRing
from router.budgets import BudgetExceeded, BudgetSpec, Period, RateLimited, Scope
from router.budgets.keys import CounterTotal, KeyRecord, KeyStore
from router.config import KeyConfig
from tests.admin.conftest import KeyFactory
from tests.budgets.conftest import StoreFactory

REFRESH = 0.1


def sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Counting(KeyStore):
    """A real key store that counts the calls made to it (and can be made to fail)."""

    def __init__(self, inner: KeyStore) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}
        self.fail: Exception | None = None
        self.kind = inner.kind

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.fail is not None:
            raise self.fail

    async def create(self, record: KeyRecord) -> None:
        self._count("create")
        await self.inner.create(record)

    async def get(self, alias: str) -> KeyRecord | None:
        self._count("get")
        return await self.inner.get(alias)

    async def records(self) -> list[KeyRecord]:
        self._count("records")
        return await self.inner.records()

    async def revoke(self, alias: str, now: float | None = None) -> KeyRecord | None:
        self._count("revoke")
        return await self.inner.revoke(alias, now)

    async def version(self) -> str:
        self._count("version")
        return await self.inner.version()

    async def budget_counters(self, windows: Collection[str] | None = None) -> list[CounterTotal]:
        return await self.inner.budget_counters(windows)

    async def close(self) -> None:
        await self.inner.close()


async def wait_for(cond: Any, limit: float) -> float:
    """Seconds until ``cond()`` holds (fails after ``limit``)."""
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < limit, "condition not reached in time"
        await asyncio.sleep(0.005)
    return time.monotonic() - t0


async def test_create_and_revoke_reach_every_replica_within_the_interval(
    make_key_store: KeyFactory,
) -> None:
    a = DynamicKeys(make_key_store(), refresh_s=REFRESH)
    b = DynamicKeys(make_key_store(), refresh_s=REFRESH)
    await a.start()
    await b.start()
    try:
        fields = parse_key_request({"alias": "app", "user": "ann", "team": "search",
                                    "models": ["gpt-4o-mini"]})
        secret, rec = await create_key(a, fields)
        assert secret.startswith("sk-router-") and len(secret) == len("sk-router-") + 32
        h = sha(secret)
        assert rec.key_sha256 == h
        caller = a.get(h)  # on the replica that created it: at once
        assert caller is not None and (caller.alias, caller.user, caller.team) == ("app", "ann",
                                                                                   "search")
        assert caller.may_use("gpt-4o-mini") and not caller.may_use("gpt-4o")
        seen = await wait_for(lambda: b.get(h) is not None, 2 * REFRESH + 0.5)
        assert seen <= REFRESH + 0.2
        await revoke_key(a, "app")
        assert a.get(h) is None
        gone = await wait_for(lambda: b.get(h) is None, 2 * REFRESH + 0.5)
        assert gone <= REFRESH + 0.2
    finally:
        await a.stop()
        await b.stop()


async def test_lookups_never_touch_the_store_and_polls_reload_only_on_change(
    make_key_store: KeyFactory,
) -> None:
    store = Counting(make_key_store())
    keys = DynamicKeys(store, refresh_s=REFRESH)
    secret, _ = await create_key(keys, parse_key_request({"alias": "app", "user": "u"}))
    before = dict(store.calls)
    for _ in range(10_000):
        assert keys.get(sha(secret)) is not None
        assert keys.get(sha("sk-router-unknown")) is None
    assert store.calls == before
    assert await keys.refresh() is False  # version unchanged: no reload
    assert store.calls.get("records") == before.get("records")
    await make_key_store().create(KeyRecord("other", sha("x"), "u", "t"))
    assert await keys.refresh() is True
    assert store.calls["records"] == before["records"] + 1
    assert len(keys) == 2 and set(keys) == {sha(secret), sha("x")}


async def test_the_key_ring_consults_dynamic_keys_after_its_static_ones(
    make_key_store: KeyFactory,
) -> None:
    """The hook the gateway adds to KeyRing: ``ring.dynamic = keys`` (a Mapping of hash ->
    Caller), looked up when a hash is not one of config.yaml's keys."""
    keys = DynamicKeys(make_key_store(), refresh_s=REFRESH, reserved_aliases={"cfg"})
    secret, _ = await create_key(keys, parse_key_request(
        {"alias": "app", "user": "ann", "budget_usd": {"daily": 1}, "requests_per_minute": 5}))
    ring = KeyRing({sha("sk-cfg"): KeyConfig(alias="cfg", key_sha256=sha("sk-cfg"))},
                   require_key=True)
    if not hasattr(ring, "dynamic"):
        pytest.skip("router.auth.KeyRing has no 'dynamic' hook yet (the gateway adds it)")
    ring.dynamic = keys
    assert ring.authenticate("Bearer sk-cfg").alias == "cfg"
    caller = ring.authenticate(f"Bearer {secret}")
    assert caller.alias == "app"
    assert caller.budgets == (BudgetSpec(Scope.KEY, "app", Period.DAILY, 1_000_000),)


async def test_a_keys_budget_and_rate_limit_are_enforced_by_the_budget_store(
    make_store: StoreFactory, make_key_store: KeyFactory,
) -> None:
    keys = DynamicKeys(make_key_store(), refresh_s=REFRESH)
    secret, _ = await create_key(keys, parse_key_request(
        {"alias": "small", "budget_usd": {"daily": "0.000050"}, "requests_per_minute": 3}))
    caller = keys[sha(secret)]
    assert caller.budgets == (BudgetSpec(Scope.KEY, "small", Period.DAILY, 50),)
    store = make_store()
    t0 = 1_736_942_400.0
    await store.reserve("r1", caller.budgets, 30, t0)
    with pytest.raises(BudgetExceeded) as e:
        await store.reserve("r2", caller.budgets, 30, t0)
    assert (e.value.scope, e.value.scope_id, e.value.limit_micro) == ("key", "small", 50)
    for _ in range(3):  # a minute's allowance at once, then nothing until it refills
        await store.check_rate(caller.rate_limits, now=t0)
    with pytest.raises(RateLimited):
        await store.check_rate(caller.rate_limits, now=t0 + 1)


async def test_store_failures_keep_the_loaded_keys_and_log_once(
    make_key_store: KeyFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    store = Counting(make_key_store())
    keys = DynamicKeys(store, refresh_s=0.02)
    secret, _ = await create_key(keys, parse_key_request({"alias": "app"}))
    await keys.start()
    try:
        store.fail = ConnectionError("store down for the test")
        with caplog.at_level(logging.WARNING, logger="router.admin"):
            await asyncio.sleep(0.2)
        assert keys.get(sha(secret)) is not None
        warnings = [r for r in caplog.records if "reload" in r.getMessage()]
        assert len(warnings) == 1 and secret not in warnings[0].getMessage()
        store.fail = None
        await store.inner.revoke("app")
        await wait_for(lambda: keys.get(sha(secret)) is None, 1.0)
    finally:
        await keys.aclose()


async def test_aliases_of_config_keys_are_reserved(make_key_store: KeyFactory) -> None:
    from router.admin.keys import KeyConflict

    inner = make_key_store()
    keys = DynamicKeys(inner, refresh_s=REFRESH, reserved_aliases={"local-dev"})
    with pytest.raises(KeyConflict):
        await create_key(keys, parse_key_request({"alias": "local-dev"}))
    with pytest.raises(KeyConflict):
        await revoke_key(keys, "local-dev")
    # a stored key that config.yaml later declares too: config wins, the stored one is ignored
    await inner.create(KeyRecord("local-dev", sha("sk-stored"), "u", "t"))
    await keys.refresh()
    assert keys.get(sha("sk-stored")) is None
