"""What the spend ledger's exporter costs per request, and what Redis holds per request.

    python bench/ledger_export.py [-n 20000] [--repeat 3] [--long-run MINUTES --rate RPS]

Starts its own redis-server and PostgreSQL (initdb into a temporary directory, on free ports;
as root, PostgreSQL runs as the postgres user) unless given --redis-url / --pg-url. Every figure
is per ledger row, i.e. per request:

* exporter CPU in the process that runs it (the elected gateway replica, or ``router ledger
  export``): fetch from the hot store, write to the archive, acknowledge; and the trim;
  sequential on one event loop, batches of --batch rows; Redis -> PostgreSQL, Redis -> JSONL
  files, SQLite -> PostgreSQL;
* redis-server time per row for the consumer group reads, acknowledgements and trims
  (INFO commandstats);
* Redis memory per request before the export and after the trim (stream entry, tombstone);
* --long-run: the exporter running in the same process as paced settles (as in a gateway) for
  MINUTES; used_memory sampled every 10 s (flat once the tombstones' settle_dedup_s is over:
  --dedup-s, default 60 s here so that the run sees it).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import Proc, free_port, loadavg, spawn, wait_port

from router.budgets import BudgetSpec, LedgerRow, Period, Scope, open_store
from router.budgets.export.base import Archive, HotLedger
from router.budgets.export.exporter import Exporter
from router.budgets.export.files import FileArchive
from router.budgets.export.postgres import PostgresArchive
from router.budgets.export.redis_hot import RedisHotLedger
from router.budgets.export.sqlite_hot import SqliteHotLedger
from router.budgets.redis_store import RedisStore

BUDGETS = [BudgetSpec(Scope.KEY, "app-prod", Period.DAILY, 10**15),
           BudgetSpec(Scope.TEAM, "search", Period.MONTHLY, 10**15),
           BudgetSpec(Scope.GLOBAL, "all", Period.TOTAL, 10**15)]


def row(rid: str) -> LedgerRow:
    return LedgerRow(rid, "gpt-4o-mini", "app-prod", "ann", "search", "expression",
                     prompt_tokens=812, completion_tokens=214, estimated_micro=5000,
                     reference_micro=9876)  # fmt: skip


async def fill(store: Any, n: int, tag: str) -> None:
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        rid = f"req_{tag}{i:026d}"  # the gateway's ids: req_ + 32 hex characters
        async with sem:
            r = await store.reserve(rid, BUDGETS, 5000)
            await store.settle(r, 1234, row(rid))

    await asyncio.gather(*(one(i) for i in range(n)))


def commandstats(url: str) -> dict[str, tuple[int, int]]:
    import redis

    info = redis.Redis.from_url(url).info("commandstats")
    return {k[len("cmdstat_"):]: (int(v["calls"]), int(v["usec"])) for k, v in info.items()}


async def export_cost(hot: HotLedger, archive: Archive, n: int, batch: int) -> dict[str, float]:
    ex = Exporter(hot, archive, retain_hot_s=0, batch=batch)
    c0, w0 = time.process_time(), time.perf_counter()
    stats = await ex.export_once()
    c1, w1 = time.process_time(), time.perf_counter()
    trimmed = await ex.trim_once()
    c2, w2 = time.process_time(), time.perf_counter()
    assert stats.exported == n and stats.new == n, stats
    assert trimmed >= n - 1, trimmed
    us = 1e6 / n
    return {"export_cpu": (c1 - c0) * us, "export_wall": (w1 - w0) * us,
            "trim_cpu": (c2 - c1) * us, "trim_wall": (w2 - w1) * us}


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: min(r[k] for r in runs) for k in runs[0]}


async def redis_runs(url: str, pg_url: str, tmp: Path, n: int, batch: int,
                     repeat: int) -> None:  # fmt: skip
    import redis

    r = redis.Redis.from_url(url)
    for target in ("postgres", "files"):
        runs = []
        server: dict[str, float] = {}
        for k in range(repeat):
            prefix = f"b{time.time_ns()}"
            store = RedisStore(url, prefix=prefix, settle_dedup_s=3600)
            await fill(store, n, str(k))
            archive: Archive = (PostgresArchive(pg_url, table=f"bench_{prefix}") if target ==
                                "postgres" else FileArchive(tmp / f"files-{prefix}"))
            before = commandstats(url)
            try:
                runs.append(await export_cost(RedisHotLedger(store.client, store.key_prefix),
                                              archive, n, batch))
                if isinstance(archive, FileArchive) and k == 0:
                    size = sum(f.stat().st_size for f in archive.dir.rglob("*.jsonl"))
                    print(f"jsonl files: {size / n:.0f} B per row")
            finally:
                await archive.close()
                await store.close()
            after = commandstats(url)
            for cmd in ("xreadgroup", "xack", "evalsha", "xinfo", "xpending", "get", "set"):
                a, b = after.get(cmd, (0, 0)), before.get(cmd, (0, 0))
                server[cmd] = min(server.get(cmd, 1e18), (a[1] - b[1]) / n)
            for key in r.scan_iter(f"{{{prefix}}}:*", count=10_000):
                r.delete(key)
        m = best(runs)
        srv = " ".join(f"{c} {v:.2f}" for c, v in server.items() if v)
        print(f"redis -> {target:8s} export {m['export_cpu']:6.1f} µs CPU/row "
              f"({m['export_wall']:6.1f} wall)   trim {m['trim_cpu']:5.2f} µs CPU/row "
              f"({m['trim_wall']:5.2f} wall)   redis-server µs/row: {srv}")


async def sqlite_runs(pg_url: str, tmp: Path, n: int, batch: int, repeat: int) -> None:
    for target in ("postgres", "files"):
        runs = []
        for k in range(repeat):
            path = tmp / f"s{target}{k}.db"
            store = open_store(f"sqlite:///{path}")
            await fill(store, n, str(k))
            hot = SqliteHotLedger(str(path), store.calendar.tz)
            archive: Archive = (PostgresArchive(pg_url, table=f"bench_sqlite_{k}_{time.time_ns()}")
                                if target == "postgres" else FileArchive(tmp / f"sf{k}"))
            try:
                runs.append(await export_cost(hot, archive, n, batch))
            finally:
                await archive.close()
                await hot.close()
                await store.close()
        m = best(runs)
        print(f"sqlite -> {target:7s} export {m['export_cpu']:6.1f} µs CPU/row "
              f"({m['export_wall']:6.1f} wall)   trim {m['trim_cpu']:5.2f} µs CPU/row "
              f"({m['trim_wall']:5.2f} wall)")


async def memory(url: str, pg_url: str, n: int) -> None:
    """used_memory deltas: n settles (stream entries and tombstones), then the export + trim
    (what the stream held); the rest is the tombstones, until settle_dedup_s. (Deleting the
    tombstones is no measure of them: Redis also shrinks its key table then.)"""
    import redis

    r = redis.Redis.from_url(url)
    store = RedisStore(url, prefix="mem", settle_dedup_s=3600)
    await fill(store, 200, "w")
    m0 = int(r.info("memory")["used_memory"])
    await fill(store, n, "m")
    m1 = int(r.info("memory")["used_memory"])
    archive = PostgresArchive(pg_url, table="bench_memory")
    ex = Exporter(RedisHotLedger(store.client, store.key_prefix), archive, retain_hot_s=0,
                  batch=1000)
    await ex.run_pass()
    m2 = int(r.info("memory")["used_memory"])
    import psycopg

    with psycopg.connect(pg_url) as conn:
        (pg_bytes,) = conn.execute(
            "SELECT pg_total_relation_size('bench_memory')").fetchone()
    await archive.close()
    await store.close()
    print(f"redis used_memory per request: {(m1 - m0) / n:.0f} B settled, before export; the "
          f"export + trim freed {(m1 - m2) / n:.0f} B (the stream entry); "
          f"{(m2 - m0) / n:.0f} B remain until settle_dedup_s (the tombstone)")
    print(f"postgresql: {pg_bytes / (n + 200):.0f} B per row (table, TOAST and its five "
          "indexes, pg_total_relation_size)")


async def long_run(url: str, pg_url: str, minutes: float, rate: float, dedup_s: float) -> None:
    import redis

    r = redis.Redis.from_url(url)
    store = RedisStore(url, prefix="long", settle_dedup_s=dedup_s)
    archive = PostgresArchive(pg_url, table="bench_long")
    ex = Exporter(RedisHotLedger(store.client, store.key_prefix), archive, retain_hot_s=0,
                  batch=1000, interval_s=1.0)
    from router.budgets.export.base import AlwaysLeader

    stop = asyncio.Event()
    task = asyncio.create_task(ex.run(AlwaysLeader(), stop))
    t0 = time.monotonic()
    sent = 0
    samples: list[tuple[float, int, int]] = []
    next_sample = t0
    while time.monotonic() - t0 < minutes * 60:
        due = int((time.monotonic() - t0) * rate)
        if due > sent:
            await fill_range(store, sent, due)
            sent = due
        if time.monotonic() >= next_sample:
            samples.append((time.monotonic() - t0, sent, int(r.info("memory")["used_memory"])))
            next_sample += 10
        await asyncio.sleep(0.01)
    stop.set()
    await task
    await archive.close()
    await store.close()
    print(f"long run: {sent} requests in {minutes:g} min at {rate:g}/s, settle_dedup_s "
          f"{dedup_s:g}; used_memory every 10 s (s, requests, bytes):")
    for t, k, m in samples:
        print(f"  {t:6.0f} {k:9d} {m:12d}")
    steady = [s for s in samples if s[0] > dedup_s + 20]
    if len(steady) >= 2:
        (_, ka, ma), (_, kb, mb) = steady[0], steady[-1]
        print(f"after the first settle_dedup_s: {(mb - ma) / max(1, kb - ka):.2f} B per request "
              f"over {kb - ka} requests")


async def fill_range(store: RedisStore, start: int, end: int) -> None:
    async def one(i: int) -> None:
        rid = f"req_long{i:028d}"
        res = await store.reserve(rid, BUDGETS, 5000)
        await store.settle(res, 1234, row(rid))

    await asyncio.gather(*(one(i) for i in range(start, end)))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20000, help="rows per measurement")
    ap.add_argument("--batch", type=int, default=1000, help="rows per archive transaction")
    ap.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    ap.add_argument("--redis-url")
    ap.add_argument("--pg-url")
    ap.add_argument("--long-run", type=float, default=0, metavar="MINUTES")
    ap.add_argument("--rate", type=float, default=500, help="requests/s of the long run")
    ap.add_argument("--dedup-s", type=float, default=60, help="settle_dedup_s of the long run")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    redis: Proc | None = None
    pg: Any = None
    url, pg_url = args.redis_url, args.pg_url
    try:
        if url is None:
            port = free_port()
            redis = spawn("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                          port, tmp / "redis.log")
            wait_port(redis)
            url = f"redis://127.0.0.1:{port}/0"
        if pg_url is None:
            from tests.ledger.pg import PostgresServer

            pg = PostgresServer()
            pg.start()
            pg_url = pg.url()
        print(f"python {sys.version.split()[0]}, n={args.n} rows, batches of {args.batch}, best "
              f"of {args.repeat}, load average {loadavg()}")
        await redis_runs(url, pg_url, tmp, args.n, args.batch, args.repeat)
        await sqlite_runs(pg_url, tmp, args.n, args.batch, args.repeat)
        await memory(url, pg_url, args.n)
        if args.long_run:
            await long_run(url, pg_url, args.long_run, args.rate, args.dedup_s)
        print(f"load average at the end {loadavg()}")
    finally:
        if redis is not None:
            redis.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
