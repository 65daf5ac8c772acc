"""Fixtures: the budget tests' real stores (SQLite file, redis-server on a free port), plus a
key store on the same backend (``key_store_kind``-parametrised through ``make_store``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from router.budgets.keys import KeyStore, open_key_store
from tests.budgets.conftest import StoreFactory, make_store, redis_server, store_kind

__all__ = ["make_store", "redis_server", "store_kind"]  # fixtures pytest finds here

KeyFactory = Callable[..., KeyStore]


@pytest.fixture
async def make_key_store(make_store: StoreFactory) -> AsyncIterator[KeyFactory]:
    """Opens key stores on ``make_store``'s backend (same SQLite file / Redis prefix), so a test
    can open several "replicas" next to the budget store."""
    opened: list[KeyStore] = []

    def factory(**kw: object) -> KeyStore:
        ks = open_key_store(make_store.url, prefix=str(make_store.options.get("prefix", "router")),
                            **kw)  # type: ignore[arg-type]
        opened.append(ks)
        return ks

    yield factory
    for ks in opened:
        await ks.close()


@pytest.fixture
async def key_store(make_key_store: KeyFactory) -> KeyStore:
    return make_key_store()
