"""Fixtures: a real PostgreSQL (started by the tests, see pg.py) and a real redis-server
(tests/budgets/conftest.py's), each with a fresh database or key prefix per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.budgets.conftest import (  # noqa: F401 - fixtures
    REDIS_SERVER,
    RedisServer,
    persistent_redis,
    redis_server,
)
from tests.ledger.pg import NO_POSTGRES, PostgresServer, bindir

_dbs = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    pytest.importorskip("psycopg", reason="psycopg is in the test extra: pip install -e '.[test]'")
    if bindir() is None:
        pytest.skip(NO_POSTGRES)
    srv = PostgresServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """A database of this test's own."""
    return postgres_server.create_database(f"t{os.getpid()}_{next(_dbs)}")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (for tests that read its memory or restart it)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server binary not found (apt-get install redis-server)")
    d = tmp_path / "redis"
    d.mkdir()
    srv = RedisServer(d)
    srv.start()
    yield srv
    srv.stop()
