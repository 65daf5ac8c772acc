"""CPU per request of the gateway's ASGI app alone, in-process, under concurrency (issue 18).

No HTTP server and no load generator in the measured process: ``--conns`` tasks call the ASGI
app directly with the bench's bodies (bench/setup_gateway.py), against nginx as the mock
upstream and a real redis-server (budgets with leases), so that what is measured is the
gateway's own code, its upstream client and its Redis client. Prints CPU µs per request
(``time.process_time``, best of ``--rounds``) and the Redis script calls per request; with
``--profile``, cProfile's top functions by own time.

    python bench/inproc.py --mode json -n 3000 --rounds 3
    python bench/inproc.py --mode stream --profile 25
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import setup_gateway  # noqa: E402
from harness import free_port, spawn  # noqa: E402
from mock_upstream import start_mock  # noqa: E402


async def drive(app: Any, bodies: list[bytes], n: int, conns: int) -> int:
    auth = f"Bearer {setup_gateway.GATEWAY_KEY}".encode()
    done = 0
    bad = 0

    async def one(body: bytes) -> None:
        nonlocal bad
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                 "http_version": "1.1", "method": "POST", "scheme": "http",
                 "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5555),
                 "server": ("127.0.0.1", 8000),
                 "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                             (b"authorization", auth),
                             (b"content-length", str(len(body)).encode())]}
        sent = False
        finished = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(msg: dict[str, Any]) -> None:
            nonlocal bad
            if msg["type"] == "http.response.start" and msg["status"] != 200:
                bad += 1
            if msg["type"] == "http.response.body" and not msg.get("more_body", False):
                finished.set()

        await app(scope, receive, send)

    async def worker(k: int) -> None:
        nonlocal done
        i = k * 7919
        while done < n:
            done += 1
            i += 1
            await one(bodies[i % len(bodies)])

    await asyncio.gather(*(worker(k) for k in range(conns)))
    if bad:
        raise RuntimeError(f"{bad} requests failed")
    return done


async def main_async(a: argparse.Namespace, cfg: Path) -> None:
    from router.app import create_app

    app = create_app(config_path=str(cfg))
    model = "auto" if a.mode == "json" else "auto-stream"
    bodies = setup_gateway.bodies(512, model=model, stream=a.mode == "stream")
    async with app.api.router.lifespan_context(app.api):
        state = app.current()
        store = state.store  # type: ignore[union-attr]
        if a.linger is not None and hasattr(store, "_finisher"):
            store._finisher.linger_s = a.linger
        await drive(app, bodies, 600, a.conns)  # warm-up: leases, caches
        best = float("inf")
        for _ in range(a.rounds):
            fin = getattr(store, "_finisher", None)
            c0 = fin.calls if fin else 0
            prof = cProfile.Profile() if a.profile else None
            t0, w0 = time.process_time(), time.perf_counter()
            if prof:
                prof.enable()
            n = await drive(app, bodies, a.n, a.conns)
            if prof:
                prof.disable()
            t1, w1 = time.process_time(), time.perf_counter()
            calls = (fin.calls - c0) / n if fin else float("nan")
            us = (t1 - t0) / n * 1e6
            best = min(best, us)
            print(f"  {a.mode}: {us:7.1f} µs CPU/request, {n / (w1 - w0):6.0f} req/s, "
                  f"settle calls/request {calls:.3f}", flush=True)
            if prof:
                st = pstats.Stats(prof)
                st.sort_stats("tottime").print_stats(a.profile)
        print(f"best: {best:.1f} µs CPU/request ({a.mode}, {a.conns} concurrent)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=["json", "stream"], default="json")
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="cProfile the rounds, print the top N functions by own time")
    ap.add_argument("--linger", type=float, default=None,
                    help="the settles' group commit linger in seconds (default: as shipped)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="router-inproc-"))
    procs = []
    try:
        mock = start_mock(tmp, free_port())
        procs.append(mock)
        rport = free_port()
        redis = spawn("redis", ["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", str(tmp)], rport,
                      tmp / "redis.log")
        procs.append(redis)
        harness.wait_port(redis)
        cfg = setup_gateway.write_gateway_files(tmp, mock.url, f"redis://127.0.0.1:{rport}/0",
                                                0.05, mock.url)
        os.environ[setup_gateway.UPSTREAM_KEY_ENV] = "sk-bench-upstream"
        try:
            import uvloop

            uvloop.run(main_async(a, cfg))
        except ImportError:
            asyncio.run(main_async(a, cfg))
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
