"""A paced streaming upstream for time-to-first-byte measurements.

nginx cannot pace a body of a few kilobytes (its ``limit_rate`` allows a full second's worth of
bytes at once), so this small asyncio server answers every ``POST`` with the mock's SSE stream in
two parts: the headers and the first three events at once, the rest ``--delay-ms`` later, as a
model streams its first tokens before the others. A proxy that relays events as they come shows
its own overhead before the first byte; one that waits for the end of the stream (or settles the
request before relaying a chunk holding ``[DONE]``) shows the delay too. One request at a time is
all it is built for (the TTFB client is sequential); HTTP/1.1 keep-alive, Content-Length bodies.

    python bench/paced_upstream.py --port 9002 [--delay-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mock_upstream import sse_body


def parts() -> tuple[bytes, bytes]:
    body = sse_body()
    events = body.split(b"\n\n")
    first = b"\n\n".join(events[:3]) + b"\n\n"
    rest = body[len(first):]
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Connection: keep-alive\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    return head + first, rest


class Paced(asyncio.Protocol):
    def __init__(self, first: bytes, rest: bytes, delay: float) -> None:
        self.first, self.rest, self.delay = first, rest, delay
        self.buf = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's TCPTransport is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            self.respond()

    def respond(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(self.first)
        asyncio.get_running_loop().call_later(
            self.delay, lambda: None if t.is_closing() else t.write(self.rest))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int, delay_ms: float) -> None:
    first, rest = parts()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Paced(first, rest, delay_ms / 1000), "127.0.0.1",
                                      port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=20.0)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.port, args.delay_ms))
    except ImportError:
        asyncio.run(serve(args.port, args.delay_ms))


if __name__ == "__main__":
    main()
