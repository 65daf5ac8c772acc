"""Time to first body byte of streaming requests, measured with a raw-socket HTTP/1.1 client.

wrk times whole responses, so it cannot say when a stream's first byte arrived. This client sends
N requests one after another on one keep-alive connection and, for each, records the time from
writing the request to the arrival of the first byte of the response *body* (after the headers),
then reads the rest of the response (Content-Length or chunked) before the next request. Run
against the mock, the pass-through and the gateway in turn, the difference of the percentiles is
what each adds before a client sees its stream start.
"""

from __future__ import annotations

import asyncio
import time


def _request(host: str, port: int, path: str, body: bytes, auth: str | None) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n")
    if auth:
        head += f"Authorization: {auth}\r\n"
    return head.encode() + b"\r\n" + body


async def _read_rest(reader: asyncio.StreamReader, headers: bytes, first: bytes) -> int:
    """Read the body after its first byte; returns the body's size."""
    lower = headers.lower()
    if b"transfer-encoding: chunked" in lower:
        line = first + await reader.readuntil(b"\r\n")
        size_total = 0
        for _ in range(1_000_000):
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then blank line
                    pass
                return size_total
            await reader.readexactly(size + 2)
            size_total += size
            line = await reader.readuntil(b"\r\n")
        raise RuntimeError("too many chunks")
    for h in lower.split(b"\r\n"):
        if h.startswith(b"content-length:"):
            length = int(h.split(b":", 1)[1])
            await reader.readexactly(length - 1)
            return length
    raise RuntimeError("response with neither Content-Length nor chunked encoding")


async def measure(host: str, port: int, path: str, bodies: list[bytes], n: int,
                  auth: str | None = None, warmup: int = 20) -> list[float]:
    """TTFB in seconds of ``n`` sequential requests (after ``warmup`` unmeasured ones)."""
    reader, writer = await asyncio.open_connection(host, port)
    out: list[float] = []
    try:
        for k in range(warmup + n):
            req = _request(host, port, path, bodies[k % len(bodies)], auth)
            t0 = time.perf_counter()
            writer.write(req)
            headers = await reader.readuntil(b"\r\n\r\n")
            first = await reader.readexactly(1)
            t1 = time.perf_counter()
            status = headers.split(b" ", 2)[1]
            if status != b"200":
                raise RuntimeError(f"{path} on port {port} answered {status.decode()}: "
                                   f"{headers[:300]!r}")
            await _read_rest(reader, headers, first)
            if k >= warmup:
                out.append(t1 - t0)
    finally:
        writer.close()
    return out


def run(host: str, port: int, path: str, bodies: list[bytes], n: int,
        auth: str | None = None, warmup: int = 20) -> list[float]:
    try:
        import uvloop

        return uvloop.run(measure(host, port, path, bodies, n, auth, warmup))
    except ImportError:
        return asyncio.run(measure(host, port, path, bodies, n, auth, warmup))
