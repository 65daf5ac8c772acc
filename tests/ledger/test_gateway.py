"""End to end: two gateway processes on one real redis-server, their elected exporter moving
the ledger into a real PostgreSQL while the official SDK sends requests to both; then
``/admin/spend``, ``/admin/spend/check``, ``router spend`` and ``router spend --check`` over the
whole ledger after the stream was trimmed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import psycopg
import redis

from tests.budgets.conftest import RedisServer
from tests.gateway.conftest import ENV, GATEWAY_KEY, POLICY, fake, write_config
from tests.support import REPO, Proc, start_gateway, wait_until

__all__ = ["fake"]

ADMIN = "admin-key-for-the-ledger-test-19"
HEADERS = {"authorization": f"Bearer {ADMIN}"}
PER_GATEWAY = 150
#: Budgets of every kind of window, so --check compares counters of day, month and total.
BUDGETS = POLICY + """
budgets:
  keys:
    tests: {daily: {limit_usd: 1000}, monthly: {limit_usd: 1000}, total: {limit_usd: 1000}}
  teams:
    search: {total: {limit_usd: 1000}}
"""


async def load(gw: Proc, n: int, tag: str) -> int:
    client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0,
                                timeout=30)
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> int:
        async with sem:
            r = await client.chat.completions.create(
                model="gpt-4o-mini", max_tokens=8,
                messages=[{"role": "user", "content": f"[[fake:tokens=6]] {tag} {i}"}])
            return 1 if r.choices else 0

    try:
        return sum(await asyncio.gather(*(one(i) for i in range(n))))
    finally:
        await client.close()


def test_fleet_exports_to_postgres_and_reports_read_it(
        fake: Proc, own_redis: RedisServer, pg_url: str, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, fake.url, policy=BUDGETS, store=own_redis.url, extra=(
        f"  ledger:\n    export: postgres\n    url: {pg_url}\n    retain_hot: 0\n"
        f"    interval_s: 0.2\n    batch: 40"))
    env = {**ENV, "ROUTER_ADMIN_KEY": ADMIN}
    gws = [start_gateway(cfg, tmp_path, env=env) for _ in range(2)]
    try:
        async def both() -> list[int]:
            return list(await asyncio.gather(load(gws[0], PER_GATEWAY, "a"),
                                             load(gws[1], PER_GATEWAY, "b")))

        answered = sum(asyncio.run(both()))
        assert answered == 2 * PER_GATEWAY
        r = redis.Redis.from_url(own_redis.url)
        pg = psycopg.connect(pg_url, autocommit=True)

        def archived() -> int:
            return int(pg.execute("SELECT count(*) FROM router_ledger").fetchone()[0])

        wait_until(lambda: archived() == answered, 60, "the fleet's exporter did not catch up")
        n, distinct, total = pg.execute(
            "SELECT count(*), count(DISTINCT request_id), sum(actual_micro) "
            "FROM router_ledger").fetchone()
        assert n == distinct == answered and total > 0
        # one exporter led: the rows are in stream order
        ids = [s for (s,) in pg.execute("SELECT source_id FROM router_ledger ORDER BY export_seq")]
        assert ids == sorted(ids, key=lambda s: tuple(int(x) for x in s.split("-")))
        # the stream was trimmed (retain_hot 0) down to its last entries
        wait_until(lambda: r.xlen("{router}:ledger") <= 1, 30, "the stream was not trimmed")
        assert float(r.get("{router}:ledger:floor") or 0) > 0

        # the reports read the archive for what the stream no longer holds
        for gw in gws:
            rep = httpx.get(f"{gw.url}/admin/spend?period=total&group_by=key",
                            headers=HEADERS, timeout=30).json()
            assert rep["total"]["requests"] == answered, rep
            assert rep["total"]["actual_micro"] == total
            check = httpx.get(f"{gw.url}/admin/spend/check", headers=HEADERS, timeout=30).json()
            assert check["ok"] and check["budgets"] == 4, check
            assert {d["ledger_micro"] for d in check["data"]} == {total}
        out = subprocess.run([sys.executable, "-m", "router", "spend", "--config", str(cfg),
                              "--period", "total", "--json"], cwd=REPO, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["total"]["actual_micro"] == total
        out = subprocess.run([sys.executable, "-m", "router", "spend", "--config", str(cfg),
                              "--check"], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        status = subprocess.run([sys.executable, "-m", "router", "ledger", "status", "--config",
                                 str(cfg), "--json"], cwd=REPO, capture_output=True, text=True,
                                timeout=60)
        assert status.returncode == 0, status.stderr
        st = json.loads(status.stdout)
        assert st["backlog"] == 0 and st["archive_rows"] == answered
        assert st["exporter"] is not None  # one of the gateways holds the lead
        pg.close()
    finally:
        for gw in gws:
            gw.stop()
    for gw in gws:
        assert "ledger export failed" not in gw.log(), gw.log()[-3000:]
