"""A simulated fleet: N gateway replicas on one Redis share a budget until it runs out; then the
budget is checked for exactness.

    python bench/fleet.py                       # 8 replicas, prints the check, exit 1 if not exact
    python bench/fleet.py --replicas 4 --json

A correctness check, not a throughput measurement. Each replica is ``router serve`` with one
worker and the bench's config (bench/setup_gateway.py: Redis budgets with leases as shipped, the
classifier, difficulty, metrics), except that the team ``bench-team`` gets a monthly limit of
``--limit-usd``. An asyncio client sends chat requests (JSON and streaming, alternately) to the
replicas in turn, ``--concurrency`` at a time, until the last 2 x N answers were all 429 (the
budget is spent, as far as every replica can tell) or ``--max-requests``. Then the replicas are
stopped (SIGTERM: each gives its leases back) and bench/ledgercheck.py checks that the ledger's
ok rows are exactly the 200s the client got, the counters equal the ledger, nothing is still
reserved, and the team's spend did not pass its limit.

The bound is the limit itself: the request bodies are chosen with at least as many prompt tokens
as the mock bills (57) and all carry ``max_tokens`` above what it bills (36, 14), so no settle
can exceed its reservation (docs/budgets.md, "What a limit guarantees": a settle passes its
reservation only when the provider bills more prompt tokens than were reserved).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import ledgercheck  # noqa: E402
import setup_gateway  # noqa: E402
from harness import Proc, free_port, loadavg, spawn  # noqa: E402

REPO = HERE.parent
#: What the mock bills per request (bench/mock_upstream.py): prompt tokens, max completion.
MOCK_PROMPT_TOKENS = 57
MAX_TOKENS = 128


def fleet_bodies(count: int = 256) -> list[tuple[str, bytes]]:
    """(mode, body): JSON and streaming chat bodies with >= 57 prompt tokens and max_tokens."""
    from router.tokens import configure_offline, text_counter

    configure_offline()  # tiktoken's files from litellm's bundle, never the network
    tokens = text_counter("o200k_base")
    out: list[tuple[str, bytes]] = []
    for mode, model in (("json", "auto"), ("stream", "auto-stream")):
        for raw in setup_gateway.bodies(512, model=model, stream=mode == "stream"):
            body = json.loads(raw)
            text = " ".join(m["content"] for m in body["messages"])
            if tokens(text) < MOCK_PROMPT_TOKENS:
                continue
            body["max_tokens"] = MAX_TOKENS
            out.append((mode, json.dumps(body, ensure_ascii=False).encode()))
            if sum(1 for m, _ in out if m == mode) >= count // 2:
                break
    # alternate the modes
    js = [b for b in out if b[0] == "json"]
    st = [b for b in out if b[0] == "stream"]
    return [x for pair in zip(js, st, strict=False) for x in pair]


def start_replicas(tmp: Path, cfg: Path, n: int) -> list[Proc]:
    procs = []
    for i in range(n):
        port = free_port()
        procs.append(spawn(f"replica {i}", [sys.executable, "-m", "router", "serve", "--config",
                                            str(cfg), "--port", str(port)], port,
                           tmp / f"replica-{i}.log",
                           env={setup_gateway.UPSTREAM_KEY_ENV: "sk-bench-upstream"},
                           cwd=str(REPO)))
    for p in procs:
        harness.wait_http(p, "/readyz", timeout=180)
    return procs


async def drive(urls: list[str], bodies: list[tuple[str, bytes]], concurrency: int,
                max_requests: int, timeout_s: float) -> dict[str, Any]:
    """Requests to the replicas in turn until the last 2 x len(urls) were all 429."""
    import aiohttp

    auth = {"Authorization": f"Bearer {setup_gateway.GATEWAY_KEY}",
            "Content-Type": "application/json"}
    statuses: dict[int, int] = {}
    per_replica = [0] * len(urls)
    refused_in_a_row = 0
    sent = 0
    stop = asyncio.Event()
    t0 = time.monotonic()
    first_429: int | None = None

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent, refused_in_a_row, first_429
        while not stop.is_set():
            if sent >= max_requests or time.monotonic() - t0 > timeout_s:
                stop.set()
                return
            k = sent
            sent += 1
            mode, body = bodies[k % len(bodies)]
            r = k % len(urls)
            async with session.post(urls[r] + "/v1/chat/completions", data=body,
                                    headers=auth) as resp:
                data = await resp.read()
                status = resp.status
            if status == 200 and mode == "stream" and b"[DONE]" not in data:
                status = -1  # a stream cut short: counted apart, fails the check
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                per_replica[r] += 1
            if status == 429:
                first_429 = sent if first_429 is None else first_429
                refused_in_a_row += 1
                if refused_in_a_row >= 2 * len(urls):
                    stop.set()
            else:
                refused_in_a_row = 0

    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return {"statuses": statuses, "sent": sent, "seconds": time.monotonic() - t0,
            "ok_per_replica": per_replica, "first_429_after": first_429}


def run_fleet(tmp: Path, *, replicas: int = 8, limit_usd: float = 0.2, concurrency: int = 16,
              max_requests: int = 20_000, timeout_s: float = 300, mock_url: str | None = None,
              log: Any = print) -> dict[str, Any]:
    """Start the fleet (and a mock and Redis of its own), drive it, stop it, check it."""
    tmp.mkdir(parents=True, exist_ok=True)
    procs: list[Proc] = []
    try:
        if mock_url is None:
            from mock_upstream import start_mock

            mock = start_mock(tmp, free_port())
            procs.append(mock)
            mock_url = mock.url
        redis = harness.start_redis(tmp, "fleet-redis")
        procs.append(redis)
        cfg = setup_gateway.write_gateway_files(
            tmp / "fleet", mock_url, f"redis://127.0.0.1:{redis.port}/0",
            _lease_fraction(), team_limit_usd=limit_usd)
        load0 = loadavg()
        t_start = time.monotonic()
        log(f"fleet: starting {replicas} replicas (load {load0}) ...")
        reps = start_replicas(tmp, cfg, replicas)
        procs.extend(reps)
        started_s = time.monotonic() - t_start
        bodies = fleet_bodies()
        log(f"fleet: {replicas} replicas up in {started_s:.1f} s; driving {concurrency} "
            f"concurrent requests until the team's ${limit_usd:g} is spent ...")
        got = asyncio.run(drive([p.url for p in reps], bodies, concurrency, max_requests,
                                timeout_s))
        for p in reps:
            if not p.alive():
                raise RuntimeError(f"{p.name} died:\n{p.log_tail()}")
        for p in reps:  # SIGTERM: each gives its leases back
            p.stop()
        overshoots = sum(p.log_tail(100000).count("overshoot") for p in reps)
        st = got["statuses"]
        ok = st.get(200, 0)
        other = sum(v for k, v in st.items() if k != 200)
        chk = ledgercheck.check(cfg, redis.port, ok, other,
                                limit=("team", "bench-team", round(limit_usd * 1_000_000)))
        if st.get(429, 0) == 0:
            chk["problems"].append("no request was refused: the limit was never reached")
        bad = {k: v for k, v in st.items() if k not in (200, 429)}
        if bad:
            chk["problems"].append(f"answers other than 200 and 429: {bad}")
        if overshoots:
            chk["problems"].append(f"{overshoots} settles logged an overshoot")
        chk["ok"] = not chk["problems"]
        return {"replicas": replicas, "concurrency": concurrency, "limit_usd": limit_usd,
                "load": load0, "start_s": started_s, **got,
                "statuses": {str(k): v for k, v in st.items()}, "check": chk}
    finally:
        for p in reversed(procs):
            p.stop()


def _lease_fraction() -> float:
    from router.config import StoreConfig

    return float(StoreConfig().lease_fraction)


def describe(res: dict[str, Any]) -> str:
    c = res["check"]
    return (f"{res['replicas']} replicas (one worker each) on one Redis, {res['concurrency']} "
            f"concurrent requests in turn across them, team limit ${res['limit_usd']:g}: "
            f"{res['sent']:,} requests in {res['seconds']:.1f} s (answers "
            f"{', '.join(f'{k}: {v:,}' for k, v in sorted(res['statuses'].items()))}; first 429 "
            f"after {res['first_429_after'] or 0:,}); 200s per replica "
            f"{res['ok_per_replica']}; {ledgercheck.summary(c)} — "
            f"{'**exact**' if c['ok'] else '**NOT exact**'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--limit-usd", type=float, default=0.2,
                    help="the team's monthly limit, which the run spends (default 0.2)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-requests", type=int, default=20_000)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args(argv)
    missing = harness.missing_tools("nginx", "redis-server", "redis-cli")
    if missing:
        print(f"SKIP: missing {', '.join(missing)}")
        return 3
    tmp = Path(tempfile.mkdtemp(prefix="router-fleet-"))
    try:
        res = run_fleet(tmp, replicas=a.replicas, limit_usd=a.limit_usd,
                        concurrency=a.concurrency, max_requests=a.max_requests,
                        log=(lambda s: print(s, file=sys.stderr, flush=True)))
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(res, indent=2) if a.json else describe(res))
    return 0 if res["check"]["ok"] else 1


if __name__ == "__main__":
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    sys.exit(main())
