"""``router ledger export`` killed mid-batch and run again: exactly once.

Each kill is placed, not hoped for: the test holds a lock on the PostgreSQL table so the
exporter's INSERT waits (killed there, the batch never commits), then lets the INSERT commit
while the hot store's acknowledgement waits (Redis: ``CLIENT PAUSE WRITE``; SQLite: the test
holds the write lock) and kills it there (the archive has the batch, the hot store does not
know). The run after that skips the 100 rows PostgreSQL already has, and the archive ends with
every row once, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from router.budgets import BudgetSpec, LedgerRow, Period, Scope, open_store
from router.budgets.export.files import FileArchive
from router.budgets.export.postgres import PostgresArchive
from tests.budgets.conftest import RedisServer
from tests.support import REPO, wait_until

ROWS = 500
BATCH = 100


def write_config(tmp: Path, store_url: str, ledger: str) -> Path:
    path = tmp / "config.yaml"
    path.write_text(f"store:\n  url: {store_url}\n  ledger:\n{ledger}\npolicy: null\nmodels: {{}}\n")
    return path


def cli(config: Path, *args: str, prefix: str = "router") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "router", "ledger", *args, "--config",
                             str(config), "--prefix", prefix, "--json"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def fill(url: str, prefix: str | None, n: int, t0: float) -> int:
    opts: dict[str, Any] = {"prefix": prefix} if prefix else {}
    store = open_store(url, **opts)
    budget = [BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**15)]
    total = 0
    try:
        for i in range(n):
            r = await store.reserve(f"r{i:05d}", budget, 10_000, now=t0 + i)
            await store.settle(r, 100 + i, LedgerRow(f"r{i:05d}", "m", team="t"), now=t0 + i)
            total += 100 + i
    finally:
        await store.close()
    return total


class Gate:
    """A lock on the archive table, held by the test: INSERTs wait while it is held."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)

    def close_gate(self) -> None:
        self.conn.execute("LOCK TABLE router_ledger IN SHARE MODE")

    def open_gate(self) -> None:
        self.conn.commit()

    def waiting(self) -> bool:
        return bool(self.conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'router_ledger' AND NOT l.granted").fetchone()[0])

    def writers(self) -> int:
        """Sessions of exporters (the gate is open: the statistics snapshot ends here)."""
        n = int(self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
            "'federated-router ledger write'").fetchone()[0])
        self.conn.commit()
        return n

    def rows(self) -> list[tuple[str, int, str]]:
        out = self.conn.execute(
            "SELECT request_id, actual_micro, source_id FROM router_ledger ORDER BY export_seq"
        ).fetchall()
        self.conn.commit()
        return [(a, int(b), c) for a, b, c in out]


@pytest.fixture(params=["redis", "sqlite"])
def hot(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    if request.param == "redis":
        srv: RedisServer = request.getfixturevalue("redis_server")
        yield srv.url, f"crash-{os.getpid()}-{random.randrange(10**9)}"
    else:
        yield f"sqlite:///{tmp_path / 'router.db'}", None


def pos(source_id: str) -> tuple[int, ...]:
    return tuple(int(x) for x in source_id.split("-"))


def test_killed_before_and_after_the_archive_commit_then_exactly_once(
        hot: tuple[str, str | None], pg_url: str, tmp_path: Path) -> None:
    store_url, prefix = hot
    total = asyncio.run(fill(store_url, prefix, ROWS, time.time() - 3600))
    config = write_config(tmp_path, store_url, f"    export: postgres\n    url: {pg_url}\n"
                          f"    retain_hot: 0\n    batch: {BATCH}")
    asyncio.run(PostgresArchive(pg_url).count())  # the table exists, so the test can lock it
    gate = Gate(pg_url)
    args = {"prefix": prefix or "router"}

    # 1. killed while its INSERT waits: nothing committed, the batch stays unacknowledged
    gate.close_gate()
    p = cli(config, "export", **args)
    wait_until(gate.waiting, 60, "the exporter never reached the archive")
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    gate.open_gate()
    wait_until(lambda: gate.writers() == 0, 30, "the killed exporter's session did not end")
    assert gate.rows() == []

    # 2. killed after the archive committed, before the hot store heard of it
    gate.close_gate()
    p = cli(config, "export", **args)
    wait_until(gate.waiting, 60, "the exporter never reached the archive")
    r = redis.Redis.from_url(store_url) if prefix else None
    held: sqlite3.Connection | None = None
    if r is not None:
        r.execute_command("CLIENT", "PAUSE", "5000", "WRITE")  # XACK waits
    else:
        held = sqlite3.connect(store_url[len("sqlite:///"):], isolation_level=None)
        held.execute("BEGIN IMMEDIATE")  # the cursor's UPDATE waits
    try:
        gate.open_gate()
        wait_until(lambda: len(gate.rows()) == BATCH, 30, "the batch did not commit")
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    finally:
        if r is not None:
            r.execute_command("CLIENT", "UNPAUSE")
        if held is not None:
            held.execute("ROLLBACK")
            held.close()
    assert len(gate.rows()) == BATCH

    # 3. the next run skips what the archive has and moves the rest
    p = cli(config, "export", **args)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    result = json.loads(out)
    assert (result["exported"], result["new"], result["duplicates"]) == (ROWS, ROWS - BATCH, BATCH)
    assert result["backlog"] == 0 and result["trimmed"] >= ROWS - 1
    rows = gate.rows()
    assert [rid for rid, _, _ in rows] == [f"r{i:05d}" for i in range(ROWS)]  # once, in order
    assert sum(c for _, c, _ in rows) == total
    assert [pos(s) for _, _, s in rows] == sorted(pos(s) for _, _, s in rows)
    gate.conn.close()


def test_files_archive_under_repeated_kills_holds_every_row_once_in_order(
        tmp_path: Path) -> None:
    """JSONL files: the exporter SIGKILLed at random moments, a dozen times, while it moves
    3,000 rows in batches of 20; then a run to the end. The files hold each row once, in
    rowid order (a batch cut by a kill is cut off the files when the next run opens them)."""
    store_url = f"sqlite:///{tmp_path / 'router.db'}"
    n = 3000
    total = asyncio.run(fill(store_url, None, n, time.time() - 86400))
    archive = tmp_path / "archive"
    config = write_config(tmp_path, store_url,
                          f"    export: files\n    url: {archive}\n    batch: 20")
    rng = random.Random(19)
    kills = 0
    for _ in range(12):
        p = cli(config, "export")
        time.sleep(rng.uniform(0.3, 1.2))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait(10)
    p = cli(config, "export")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    rows = FileArchive(archive).rows()
    assert [r.request_id for r in rows] == [f"r{i:05d}" for i in range(n)]
    assert sum(r.actual_micro for r in rows) == total
    print(f"\n{kills} kills; the last run: {out.strip()}")
