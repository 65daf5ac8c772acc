"""A fleet's ledger: replicas in separate processes settle into one real redis-server while
their exporters move the stream into a real PostgreSQL; exporters killed mid-batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg
import pytest
import redis

from tests.budgets.conftest import RedisServer
from tests.ledger.replica import cost_of
from tests.support import REPO, wait_until

N = 1500  # requests per replica


def replica(cfg: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.ledger.replica", json.dumps(cfg)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    lines = out.strip().splitlines()
    return dict(json.loads(lines[-1]))


def pg_rows(url: str) -> list[tuple[str, int, str]]:
    with psycopg.connect(url) as conn:
        return [(r[0], int(r[1]), r[2]) for r in conn.execute(
            "SELECT request_id, actual_micro, source_id FROM router_ledger ORDER BY export_seq")]


def expected(tags: list[str], n: int) -> dict[str, int]:
    return {f"{t}-{i}": cost_of(t, i) for t in tags for i in range(n)}


def stream_pos(source_id: str) -> tuple[int, int]:
    ms, seq = source_id.split("-")
    return int(ms), int(seq)


@pytest.mark.parametrize("lead", ["always", "elected"])
def test_two_replicas_export_under_load_lose_and_duplicate_nothing(
        redis_server: RedisServer, pg_url: str, lead: str) -> None:
    """Both replicas settle 1,500 requests each while both exporters run: with ``always`` both
    read the consumer group at once (no election: the consumer group alone keeps them from
    getting the same entries); with ``elected`` one at a time, and the rows land in stream
    order."""
    prefix = f"fleet-{lead}-{os.getpid()}"
    common = {"redis": redis_server.url, "prefix": prefix, "pg": pg_url, "n": N, "lead": lead,
              "batch": 50, "interval_s": 0.05, "retain_hot_s": 0}
    procs = [replica({**common, "tag": tag}) for tag in ("a", "b")]
    stats = [finish(p) for p in procs]
    rows = pg_rows(pg_url)
    want = expected(["a", "b"], N)
    got = {rid: cost for rid, cost, _ in rows}
    assert len(rows) == len(got) == len(want) == 2 * N  # nothing lost, nothing twice
    assert got == want and sum(got.values()) == sum(want.values())
    assert sum(s["new"] for s in stats) == 2 * N
    r = redis.Redis.from_url(redis_server.url)
    # the counter the settles kept equals the archive's sum
    assert int(r.hget(f"{{{prefix}}}:c:global:all:total:total", "s") or 0) == sum(want.values())
    # retain_hot 0: everything exported is trimmed (the last pass may leave the tail of the
    # final batches, exported after the last trim)
    assert r.xlen(f"{{{prefix}}}:ledger") < 2 * 50 * 2
    print(f"\n{lead}: exporter a {stats[0]}, exporter b {stats[1]}")
    if lead == "elected":
        positions = [stream_pos(s) for _, _, s in rows]
        assert positions == sorted(positions), "rows are archived in stream order"


def test_elected_exporter_killed_under_load_another_takes_over_exactly_once(
        redis_server: RedisServer, pg_url: str) -> None:
    """SIGKILL the replica whose exporter holds the lead, in the middle of its work: its lock
    expires (2 s here), the other replica takes over, re-reads the dead one's pending entries
    first, and the archive ends with every row once, in stream order."""
    prefix = f"kill-{os.getpid()}"
    r = redis.Redis.from_url(redis_server.url)
    lock = f"{{{prefix}}}:ledger:exporter"
    common = {"redis": redis_server.url, "prefix": prefix, "pg": pg_url, "n": N,
              "lead": "elected", "lock_ttl_s": 2.0, "batch": 50, "interval_s": 0.05}
    a = replica({**common, "tag": "a"})
    wait_until(lambda: r.get(lock) is not None, 60, "no exporter took the lead")
    time.sleep(0.05)
    b = replica({**common, "tag": "b"})
    pending_seen = 0
    try:
        # kill whichever process leads, once it is exporting with entries in flight
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pending = r.xpending(f"{{{prefix}}}:ledger", "export")["pending"]
            if pending:
                pending_seen = pending
                break
            time.sleep(0.002)
        holder = r.get(lock).decode()
        victim = a if holder.split(":")[1] == str(a.pid) else b
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        survivor = b if victim is a else a
    assert pending_seen > 0, "the exporter was never caught with a batch in flight"
    finish(survivor)
    # the victim's own requests: those it settled before it died are in the stream
    stream_settled = {rid for rid, _, _ in pg_rows(pg_url)}
    rows = pg_rows(pg_url)
    assert len(rows) == len(stream_settled)  # no request id twice
    survivor_tag = "b" if victim is a else "a"
    assert {f"{survivor_tag}-{i}" for i in range(N)} <= stream_settled
    total_settled = int(r.hget(f"{{{prefix}}}:c:global:all:total:total", "s") or 0)
    assert sum(c for _, c, _ in rows) == total_settled  # every settled row, once
    positions = [stream_pos(s) for _, _, s in rows]
    assert positions == sorted(positions)
    assert r.xpending(f"{{{prefix}}}:ledger", "export")["pending"] == 0
