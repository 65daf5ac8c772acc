"""Fixtures: a real redis-server started by the tests on a free port, and a store factory
parametrised over both stores (``store_kind``: sqlite, redis).

The Redis already running on 6379 (if any) is never used. Without the redis-server binary the
Redis half is skipped with a message saying so (CI installs it: apt-get install redis-server).
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from router.budgets import BudgetStore, open_store
from tests.support import binary, free_port

REDIS_SERVER = binary("redis-server")
_NO_REDIS = (
    "redis-server binary not found: install it (apt-get install redis-server) to run the "
    "Redis half of the budget tests"
)


def ping(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server subprocess. ``persistent``: append-only file in ``dir`` (fsync always),
    so a stop and start keeps the data, as a production Redis for budgets should."""

    def __init__(self, dir: Path, *, persistent: bool = False) -> None:
        assert REDIS_SERVER is not None
        self.dir = dir
        self.persistent = persistent
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", str(self.dir)]  # fmt: skip
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir
        )
        deadline = time.monotonic() + 10
        while not ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip(_NO_REDIS)
    srv = RedisServer(tmp_path_factory.mktemp("redis"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop and start again."""
    if REDIS_SERVER is None:
        pytest.skip(_NO_REDIS)
    d = tmp_path / "redis"
    d.mkdir()
    srv = RedisServer(d, persistent=True)
    srv.start()
    yield srv
    srv.stop()


_prefixes = itertools.count()


@dataclass
class StoreFactory:
    """Opens stores of one kind on one backend (one SQLite file, or one Redis key prefix), so a
    test can open several "replicas" or reopen after a restart. ``url`` and ``options`` let a
    subprocess open the same store."""

    kind: str
    url: str
    options: dict[str, Any]
    opened: list[BudgetStore] = field(default_factory=list)

    def __call__(self, **overrides: Any) -> BudgetStore:
        opts = {**self.options, **overrides}
        store = open_store(self.url, **opts)
        self.opened.append(store)
        return store


@pytest.fixture(params=["sqlite", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_store(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[StoreFactory]:
    options: dict[str, Any] = {"timezone": "UTC", "reservation_ttl_s": 60.0}
    if store_kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'budgets.db'}"
    else:
        srv: RedisServer = request.getfixturevalue("redis_server")
        url = srv.url
        options["prefix"] = f"t{os.getpid()}-{next(_prefixes)}"
    factory = StoreFactory(store_kind, url, options)
    yield factory
    for s in factory.opened:
        await s.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> BudgetStore:
    return make_store()
