"""The ``server.workers: 2`` phase of bench/run.py: throughput against one worker in the same
run, then the budgets checked for exactness across the two worker processes.

A second gateway, identical to the run's gateway but for ``server.workers: 2``, is started on a
Redis of its own (so its ledger and counters hold only this phase's requests). wrk drives the
one-worker gateway and the two-worker one in turn at 16 connections, JSON then streaming, in
counting mode (bench/post.lua, ``BENCH_SECONDS``): every request sent is answered before wrk
stops, and the client counts the 200s. Throughput = answered requests / the time they took.
Then the two-worker gateway is stopped (SIGTERM: each worker gives its leases back) and
bench/ledgercheck.py checks its ledger against the 200s and its counters against the ledger.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import harness
import ledgercheck
import redisstats
import setup_gateway
from harness import Proc, cpu_seconds, free_port, loadavg, rss_mb, spawn

REPO = Path(__file__).resolve().parent.parent

if TYPE_CHECKING:
    from run import Run, Target


@dataclass
class CountCell:
    target: str
    mode: str
    load: str
    answered: int
    ok: int
    other: int
    seconds: float
    cpu_s: float
    rss_mb: float
    redis: dict[str, object] | None = None
    unanswered: int = 0  # sent but not answered when wrk stopped (the count is then not exact)

    @property
    def rps(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.answered * 1e6 if self.answered else float("nan")


def count_cell(run: Run, t: Target, mode: str, seconds: int, redis_port: int | None) -> CountCell:
    import run as runmod

    load = loadavg()
    s0 = redisstats.snapshot(redis_port) if redis_port else None
    c0 = cpu_seconds(t.proc.pid)
    res = runmod.wrk(run, t, mode, 16, seconds, count=True)
    c1 = cpu_seconds(t.proc.pid)
    s1 = redisstats.snapshot(redis_port) if redis_port else None
    cell = CountCell(t.name, mode, load, int(res["answered"]), int(res["ok"]), int(res["other"]),
                     res["counted_s"], c1 - c0, rss_mb(t.proc.pid))
    if s0 is not None and s1 is not None:
        cell.redis = redisstats.per_request(s0, s1, cell.answered)
    rt = f"  redis {cell.redis['round_trips_per_request']:.3f} cmd/req" if cell.redis else ""
    print(f"  {t.name:20s} {mode:6s} c=16  {cell.rps:9.0f} req/s  cpu {cell.cpu_us:7.0f} µs/req"
          f"  200s {cell.ok:,}  other {cell.other}{rt}  load {load}", flush=True)
    cell.unanswered = int(res["sent"] - res["answered"])
    if cell.unanswered:
        print(f"  WARNING {t.name}: {cell.unanswered} requests unanswered when wrk stopped: the "
              "count is not exact", flush=True)
    return cell


def start_two_workers(run: Run, mock: Proc, paced: Proc) -> tuple[Proc, Proc, Any]:
    redis = harness.start_redis(run.tmp, "workers-redis")
    cfg = setup_gateway.write_gateway_files(
        run.tmp / "workers2", mock.url, f"redis://127.0.0.1:{redis.port}/0",
        run.args.lease_fraction, paced.url, workers=2)
    port = free_port()
    gw = spawn("gateway, 2 workers", [sys.executable, "-m", "router", "serve", "--config",
                                      str(cfg), "--port", str(port)], port,
               run.tmp / "gateway-2w.log",
               env={setup_gateway.UPSTREAM_KEY_ENV: "sk-bench-upstream"},
               cwd=str(REPO))
    harness.wait_http(gw, "/readyz", timeout=180)
    return redis, gw, cfg


def workers_phase(run: Run, mock: Proc, paced: Proc) -> dict[str, Any]:
    from run import MODES, Target

    a = run.args
    one = next(t for t in run.targets if t.name == "gateway")
    print("workers: the gateway with server.workers: 2 against one worker, 16 connections:",
          flush=True)
    redis, gw, cfg = start_two_workers(run, mock, paced)
    procs = [gw, redis]
    two = Target("gateway, 2 workers", gw, dict(one.paths), one.auth)
    cells: list[CountCell] = []
    try:
        for mode in MODES:  # warm-up, counted too (the ledger has these requests)
            cells.append(count_cell(run, two, mode, a.warmup, None))
        warm = list(cells)
        cells = []
        for _ in range(a.repeat):
            for mode in MODES:
                for t, port in ((one, run.redis.port if run.redis else None), (two, redis.port)):
                    cells.append(count_cell(run, t, mode, a.duration, port))
        if not gw.alive():
            raise RuntimeError(f"the two-worker gateway died:\n{gw.log_tail()}")
        gw.stop()  # SIGTERM: the workers give their leases back
        served = [c for c in warm + cells if c.target == two.name]
        ok = sum(c.ok for c in served)
        other = sum(c.other for c in served)
        chk = ledgercheck.check(cfg, redis.port, ok, other)
        lost = sum(c.unanswered for c in served)
        if lost:
            chk["problems"].append(f"{lost} requests were unanswered when wrk stopped (counted "
                                   "neither as 200 nor as other): the client's count is short")
            chk["ok"] = False
        print("  check: " + ledgercheck.summary(chk), flush=True)
    finally:
        for p in procs:
            p.stop()
    out: dict[str, Any] = {"cells": [_cell_json(c) for c in cells], "check": chk}
    for mode in MODES:
        r1 = _median([c.rps for c in cells if c.target == one.name and c.mode == mode])
        r2 = _median([c.rps for c in cells if c.target == two.name and c.mode == mode])
        out[mode] = {"one_rps": r1, "two_rps": r2, "ratio": r2 / r1 if r1 else float("nan")}
    return out


def _median(xs: list[float]) -> float:
    import statistics

    return statistics.median(xs) if xs else float("nan")


def _cell_json(c: CountCell) -> dict[str, Any]:
    return {"target": c.target, "mode": c.mode, "load": c.load, "answered": c.answered,
            "ok": c.ok, "other": c.other, "seconds": c.seconds, "rps": c.rps,
            "cpu_us": c.cpu_us, "rss_mb": c.rss_mb, "redis": c.redis,
            "unanswered": c.unanswered}
