"""Invariants across OS processes: two gateway processes enforce one shared budget, and a
process killed with SIGKILL under load loses no settled ledger row and leaves nothing reserved
for longer than the reservation TTL. Run against both stores (SQLite: two processes on one WAL
file; Redis: two processes on one redis-server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from router.budgets import BudgetSpec, Period, Scope
from tests.budgets.conftest import StoreFactory
from tests.support import REPO


def spawn(mode: str, cfg: dict[str, Any]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.budgets.worker", mode, json.dumps(cfg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


def run_burst(cfgs: list[dict[str, Any]]) -> list[int]:
    """One "burst" worker per config, all released at once: how many requests each got."""
    procs = [spawn("burst", cfg) for cfg in cfgs]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:  # release them all at once
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        oks = []
        for p in procs:
            out, _ = p.communicate(timeout=60)
            assert p.returncode == 0
            oks.append(json.loads(out.strip().splitlines()[-1])["ok"])
        return oks
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def kill_after(cfg: dict[str, Any], n: int = 300,
               timeout: float = 30.0) -> tuple[subprocess.Popen[str], list[str]]:
    """A "load" worker killed with SIGKILL once it has settled ``n`` requests (or after
    ``timeout`` seconds): the process and the ids it reported settled, up to its death."""
    p = spawn("load", cfg)
    assert p.stdout is not None
    settled: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        while len(settled) < n and time.monotonic() < deadline:
            line = p.stdout.readline()
            assert line, "worker died"
            if line.startswith("settled"):
                settled.append(line.split()[1])
    finally:
        p.kill()  # SIGKILL: no cleanup, reservations in flight
        p.wait()
    settled += [line.split()[1] for line in p.stdout.read().splitlines()
                if line.startswith("settled")]
    return p, settled


async def test_two_processes_enforce_one_shared_budget(make_store: StoreFactory) -> None:
    limit, cost = 50 * 1000, 1000
    base = {"url": make_store.url, "options": make_store.options, "limit": limit, "cost": cost,
            "n": 100}  # fmt: skip
    oks = run_burst([{**base, "tag": f"p{i}"} for i in range(2)])
    assert sum(oks) == 50, oks  # 200 requests, a budget for exactly 50
    store = make_store()
    (st,) = await store.budget_status([BudgetSpec(Scope.TEAM, "shared", Period.TOTAL, limit)])
    assert (st.spent_micro, st.reserved_micro) == (limit, 0)
    rows = await store.ledger_rows(0, 4e9)
    assert len(rows) == 50 and sum(r.actual_micro for r in rows) == limit


async def test_sigkill_under_load_loses_no_settled_row_and_frees_reservations(
    make_store: StoreFactory,
) -> None:
    ttl = 5.0
    cfg = {"url": make_store.url, "options": {**make_store.options, "reservation_ttl_s": ttl},
           "limit": 10**12, "cost": 1000, "concurrency": 16, "tag": "k",
           # one request stays in flight, so a reservation is certainly held at the kill (settles
           # are group-committed: the 16 loops can all be between a settle and their next reserve)
           "stuck": True}  # fmt: skip
    p, settled = kill_after(cfg)
    assert p.returncode == -9
    assert len(settled) >= 300

    budget = BudgetSpec(Scope.TEAM, "shared", Period.TOTAL, 10**12)
    store = make_store()
    rows = {r.request_id: r for r in await store.ledger_rows(0, 4e9)}
    missing = [rid for rid in settled if rid not in rows]
    assert not missing, f"settled but not in the ledger: {missing[:5]}"
    (st,) = await store.budget_status([budget])
    assert st.spent_micro == sum(r.actual_micro for r in rows.values())
    assert st.reserved_micro > 0  # the killed process held reservations...
    (st,) = await store.budget_status([budget], time.time() + ttl + 1)
    assert st.reserved_micro == 0  # ...which expire after the TTL
    assert st.spent_micro == sum(r.actual_micro for r in rows.values())
