"""CPU per upstream call: aiohttp (the previous fast path, and the bare pass-through's client)
against router/upstream/h1.py, the gateway's, on the bench's nginx mock (issue 18).

16 concurrent callers, JSON and streaming, interleaved rounds; both clients get the same
bodies and headers and their answers are checked equal first.

    python bench/upstream_client.py --rounds 3 -n 2000
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
from harness import free_port  # noqa: E402
from mock_upstream import start_mock  # noqa: E402

from router.upstream.h1 import Pool, Timeouts  # noqa: E402


async def compare(url: str, n: int, rounds: int) -> None:
    body = orjson.dumps({"model": "gpt-4o-mini",
                         "messages": [{"role": "user", "content": "hi " * 200}]})
    hdr = {"Content-Type": "application/json", "Authorization": "Bearer sk-x"}
    sess = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
                                 skip_auto_headers=("User-Agent",))
    pool = Pool()
    to = Timeouts(10, 60, 600)
    at = aiohttp.ClientTimeout(total=600, connect=10, sock_connect=10, sock_read=60)

    async def a_json() -> bytes:
        r = await sess.post(url + "/v1/chat/completions", data=body, headers=hdr, timeout=at)
        d = await r.read()
        r.release()
        return d

    async def h_json() -> bytes:
        r = await pool.post(url + "/v1/chat/completions", body, hdr, to)
        return await r.read()

    async def a_stream() -> bytes:
        r = await sess.post(url + "/stream/v1/chat/completions", data=body, headers=hdr,
                            timeout=at)
        out = [d async for d in r.content.iter_any()]
        r.release()
        return b"".join(out)

    async def h_stream() -> bytes:
        r = await pool.post(url + "/stream/v1/chat/completions", body, hdr, to)
        return b"".join([d async for d in r.iter_chunks()])

    try:
        assert await a_json() == await h_json()
        assert await a_stream() == await h_stream()
        cases: list[tuple[str, Callable[[], Awaitable[bytes]]]] = [
            ("aiohttp json", a_json), ("h1 json", h_json),
            ("aiohttp stream", a_stream), ("h1 stream", h_stream)]
        for _ in range(rounds):
            for name, f in cases:
                async def worker(call: Callable[[], Awaitable[bytes]] = f) -> None:
                    for _ in range(n // 16):
                        await call()

                t = time.process_time()
                await asyncio.gather(*(worker() for _ in range(16)))
                dt = time.process_time() - t
                print(f"{name:16s} {dt / n * 1e6:6.1f} µs CPU/request (16 concurrent)",
                      flush=True)
    finally:
        await sess.close()
        await pool.aclose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="router-client-"))
    mock = start_mock(tmp, free_port())
    try:
        try:
            import uvloop

            uvloop.run(compare(mock.url, a.n, a.rounds))
        except ImportError:
            asyncio.run(compare(mock.url, a.n, a.rounds))
    finally:
        mock.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
