"""CPU cost of one reserve and one settle on each budget store.

    python bench/budget_store.py [-n 5000] [--redis-url redis://host:port/0]

Without --redis-url it starts its own redis-server on a free port (never 6379). Reports, per
operation, the gateway process's CPU (process_time) and wall time, sequentially on one event
loop (the per-request cost, not throughput), for a request that checks four budgets (key daily,
user monthly, team monthly, global total) plus one rate limit. For Redis it also reports the
server's own time per script call (INFO commandstats) and, for comparison with the SQLite
store's choice to call synchronously, what one asyncio.to_thread hand-off costs. The rate limit
sends a request to the per-request path, so the leased run measures budgets only.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import Proc, free_port, spawn, wait_port

from router.budgets import (
    BudgetSpec,
    BudgetStore,
    LedgerRow,
    Period,
    RateLimitSpec,
    Scope,
    open_store,
)

BUDGETS = [
    BudgetSpec(Scope.KEY, "app-prod", Period.DAILY, 10**15),
    BudgetSpec(Scope.USER, "ann", Period.MONTHLY, 10**15),
    BudgetSpec(Scope.TEAM, "search", Period.MONTHLY, 10**15),
    BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**15),
]
RATE = [RateLimitSpec(Scope.KEY, "app-prod", requests_per_minute=10**9, tokens_per_minute=10**12)]


async def measure(store: BudgetStore, n: int, rate: bool) -> dict[str, float]:
    reservations = []
    for i in range(200):  # warm up: scripts loaded, connections open, pages cached
        r = await store.reserve(f"w{i}", BUDGETS, 1000, rate_limits=RATE if rate else (),
                                tokens=500)  # fmt: skip
        await store.settle(r, 900, LedgerRow(f"w{i}", "gpt-4o-mini", "app-prod", "ann", "search"))
    c0, w0 = time.process_time(), time.perf_counter()
    for i in range(n):
        reservations.append(
            await store.reserve(
                f"r{i}", BUDGETS, 1000, rate_limits=RATE if rate else (), tokens=500
            )
        )
    c1, w1 = time.process_time(), time.perf_counter()
    for i, r in enumerate(reservations):
        row = LedgerRow(f"r{i}", "gpt-4o-mini", "app-prod", "ann", "search", "expression",
                        prompt_tokens=500, completion_tokens=120, estimated_micro=1000)  # fmt: skip
        await store.settle(r, 900, row)
    c2, w2 = time.process_time(), time.perf_counter()
    us = 1e6 / n
    return {
        "reserve_cpu_us": (c1 - c0) * us,
        "reserve_wall_us": (w1 - w0) * us,
        "settle_cpu_us": (c2 - c1) * us,
        "settle_wall_us": (w2 - w1) * us,
    }


async def thread_hop(n: int) -> float:
    def noop() -> None:
        return None

    best = float("inf")
    for _ in range(3):
        c0 = time.process_time()
        for _ in range(n):
            await asyncio.to_thread(noop)
        best = min(best, (time.process_time() - c0) * 1e6 / n)
    return best


async def redis_baseline(url: str, n: int) -> tuple[float, float]:
    """CPU per PING and per EVALSHA of ``return 1``: the client library's floor."""
    from redis.asyncio import Redis

    r = Redis.from_url(url)
    one = r.register_script("return 1")
    await one()
    ping_us = eval_us = float("inf")
    for _ in range(3):
        c0 = time.process_time()
        for _ in range(n):
            await r.ping()
        c1 = time.process_time()
        for _ in range(n):
            await one()
        c2 = time.process_time()
        ping_us = min(ping_us, (c1 - c0) * 1e6 / n)
        eval_us = min(eval_us, (c2 - c1) * 1e6 / n)
    await r.aclose()
    return ping_us, eval_us


def commandstats(url: str) -> dict[str, float]:
    import redis

    info = redis.Redis.from_url(url).info("commandstats")
    return {k: v["usec_per_call"] for k, v in info.items() if k == "cmdstat_evalsha"}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--redis-url")
    ap.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="budget-bench-"))
    redis: Proc | None = None
    url = args.redis_url
    try:
        if url is None and shutil.which("redis-server"):
            port = free_port()
            redis = spawn("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                          port, tmp / "redis.log")
            wait_port(redis)
            url = f"redis://127.0.0.1:{port}/0"
        print(
            f"python {sys.version.split()[0]}, n={args.n}, best of {args.repeat}; "
            "4 budgets per request (+rate: and 1 rate limit, 2 buckets)"
        )
        for name, u, opts, rate in [
            ("sqlite, synchronous=normal", f"sqlite:///{tmp / 'a.db'}", {}, False),
            ("sqlite, synchronous=normal, +rate", f"sqlite:///{tmp / 'b.db'}", {}, True),
            ("sqlite, synchronous=full", f"sqlite:///{tmp / 'c.db'}?synchronous=full", {}, False),
            ("redis, one EVALSHA per step", url, {"prefix": "x"}, False),
            ("redis, one EVALSHA per step, +rate", url, {"prefix": "x"}, True),
            ("redis, leases (fraction 0.1)", url, {"prefix": "x", "lease_fraction": 0.1}, False),
        ]:
            if u is None:
                print(f"{name:38s} skipped: no redis-server")
                continue
            runs = []
            for k in range(args.repeat):
                if u.startswith("sqlite"):
                    u = u.replace(".db", f"{k}.db")
                store = open_store(
                    u, **{**opts, **({"prefix": f"b{time.time_ns()}"} if opts else {})}
                )
                try:
                    runs.append(await measure(store, args.n, rate))
                finally:
                    await store.close()
            m = {k: min(r[k] for r in runs) for k in runs[0]}
            print(
                f"{name:38s} reserve {m['reserve_cpu_us']:6.1f} µs CPU "
                f"({m['reserve_wall_us']:6.1f} wall)   settle {m['settle_cpu_us']:6.1f} µs CPU "
                f"({m['settle_wall_us']:6.1f} wall)"
            )
        if url is not None:
            for k, v in commandstats(url).items():
                print(f"redis-server {k}: {v:.1f} µs per call (server side, mean of all scripts)")
        if url is not None:
            ping_us, eval_us = await redis_baseline(url, args.n)
            print(
                f"redis-py floor: PING {ping_us:.1f} µs CPU, "
                f"EVALSHA 'return 1' {eval_us:.1f} µs CPU"
            )
        print(f"asyncio.to_thread hand-off: {await thread_hop(2000):.1f} µs CPU")
    finally:
        if redis is not None:
            redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
