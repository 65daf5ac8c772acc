"""A lean HTTP/1.1 client for the fast path: keep-alive connections on asyncio protocols,
responses parsed by httptools (the C parser uvicorn uses), one socket write per request.

Only what forwarding a JSON body to an OpenAI-compatible upstream needs: POST with a body,
a status, ``Retry-After``, a body read whole or relayed as it arrives, chunked and
``Content-Length`` framing, gzip/deflate bodies, TLS, connect / read / total timeouts, and a
pool of idle connections per host. aiohttp does all of that and much more, and its per-request
machinery (request and response objects, cookie jar, multidicts, timers, payload writers) was
the largest single cost of a gateway request after the socket calls themselves.

Errors: :class:`ConnectError` (no connection, or it dropped before the response was whole),
:class:`ReadTimeout` / :class:`ConnectTimeout`. A request on a pooled connection that the
server had closed while it idled (the connection ends before any byte of a response) is sent
once more on a new connection, as aiohttp and urllib3 do.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

#: Bytes of a streamed body buffered before the socket stops being read (back-pressure).
HIGH_WATER = 256 * 1024


class ConnectError(Exception):
    """No connection to the upstream, or it ended before the response was whole. ``refused``:
    nothing listens at the address (the connection was refused, not lost or timed out)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class ConnectTimeout(Exception):
    """No connection within the connect timeout."""


class ReadTimeout(Exception):
    """The upstream sent nothing for the read timeout, or the total timeout passed."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float | None
    read: float | None
    total: float | None


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a URL's requests go: the pool key, and what the request line needs."""

    scheme: str
    host: str
    port: int
    #: ``Host`` header value.
    authority: bytes

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


def split_url(url: str) -> tuple[Origin, bytes]:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = u.port or (443 if u.scheme == "https" else 80)
    default = (u.scheme == "https" and port == 443) or (u.scheme == "http" and port == 80)
    host = u.hostname
    shown = f"[{host}]" if ":" in host else host
    authority = shown if default else f"{shown}:{port}"
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return Origin(u.scheme, host, port, authority.encode("idna")), path.encode()


class _Decoder:
    """gzip / deflate bodies (``Content-Encoding``), decoded as they arrive."""

    def __init__(self, encoding: str) -> None:
        # 32 + MAX_WBITS: gzip or zlib header, detected; raw deflate as a fallback
        self._z = zlib.decompressobj(32 + zlib.MAX_WBITS)
        self._raw = encoding == "deflate"

    def feed(self, data: bytes) -> bytes:
        try:
            return self._z.decompress(data)
        except zlib.error:
            if not self._raw:
                raise
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # deflate without its zlib header
            self._raw = False
            return self._z.decompress(data)

    def flush(self) -> bytes:
        return self._z.flush()


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, pool: Pool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.used = False  # has served a response before (a stale keep-alive may be closed)
        #: When data last arrived (``loop.time()``), or the request was sent.
        self.last_data = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.got_bytes = False
        self.head: asyncio.Future[None] | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.decoder: _Decoder | None = None
        self.until_eof = False
        self.keep_alive = False

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # (uvloop's is not a subclass)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self.last_data = self.pool.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail(ConnectError("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self.fail(ConnectError(f"malformed response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.until_eof and exc is None and self.error is None and not self.complete:
            self.on_message_complete()  # a body without a length ends with its connection
        if not self.complete:
            self.fail(ConnectError("the connection closed before the response was complete"))

    def pause_writing(self) -> None:  # bodies are small: the kernel buffers them
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        framed = self.status in (204, 304) or 100 <= self.status < 200
        for name, value in self.headers:
            if name in (b"content-length", b"transfer-encoding"):
                framed = True
            elif name == b"content-encoding":
                enc = value.decode("latin-1").strip().lower()
                if enc in ("gzip", "deflate", "x-gzip"):
                    self.decoder = _Decoder(enc)
        self.until_eof = not framed
        self.keep_alive = self.parser.should_keep_alive() and framed
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.decoder is not None:
            try:
                body = self.decoder.feed(body)
            except zlib.error as exc:
                self.fail(ConnectError(f"cannot decode the body: {exc}"))
                return
            if not body:
                return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.decoder is not None:
            rest = self.decoder.flush()
            if rest:
                self.chunks.append(rest)
        self.complete = True
        if self.head is not None and not self.head.done():  # (a body-less answer)
            self.head.set_result(None)
        self._wake()

    # -- the request side ----------------------------------------------------------------------

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        if self.head is not None and not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # retrieved: a waiter may be gone
        self._wake()
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def start(self, data: bytes) -> asyncio.Future[None]:
        self._reset()
        self.head = self.pool.loop.create_future()
        self.last_data = self.pool.loop.time()
        assert self.transport is not None
        self.transport.write(data)
        return self.head

    def data_waiter(self) -> asyncio.Future[None]:
        """Done at more body, the end of the response, or an error."""
        self.waiter = self.pool.loop.create_future()
        return self.waiter

    def take(self) -> bytes:
        data = b"".join(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def done(self) -> None:
        """The response was read whole: back to the pool, or closed."""
        if self.complete and self.error is None and not self.closed and self.keep_alive:
            self.used = True
            self.pool.put(self)
        else:
            self.close()


class Response:
    """A response's status and ``Retry-After``, then its body, whole or as it arrives."""

    __slots__ = ("_conn", "_deadline", "_read_s", "_timer", "headers", "status")

    def __init__(self, conn: Connection, read_s: float | None, deadline: float | None) -> None:
        self._conn: Connection | None = conn
        self.status = conn.status
        self.headers = conn.headers
        self._read_s = read_s
        self._deadline = deadline
        self._timer: asyncio.TimerHandle | None = None

    def header(self, name: bytes) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode("latin-1")
        return None

    async def _next(self) -> bytes | None:
        """The next piece of body (None: the end)."""
        conn = self._conn
        if conn is None:
            return None
        while True:
            if conn.chunks:
                return conn.take()
            if conn.error is not None:
                self.close()
                raise conn.error
            if conn.complete:
                self._conn = None
                conn.done()
                return None
            await _timed(conn, conn.data_waiter(), self._read_s, self._deadline)
            conn.waiter = None

    async def read(self) -> bytes:
        parts = []
        try:
            while (part := await self._next()) is not None:
                parts.append(part)
        except BaseException:
            self.close()
            raise
        return b"".join(parts) if len(parts) != 1 else parts[0]

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            while (part := await self._next()) is not None:
                yield part
        finally:
            self.close()  # left early (or failed): the connection cannot be reused

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


async def _timed(conn: Connection, fut: asyncio.Future[None], read_s: float | None,
                 deadline: float | None) -> None:
    """Await ``fut`` (completed by the connection) unless no data comes for ``read_s``, or
    ``deadline`` (``loop.time()``) passes: then it fails with :class:`ReadTimeout` and the
    connection is closed. Checked by the pool's sweep (:meth:`Pool._sweep`), not a timer per
    wait: a timer costs more than the rest of the wait, and timeouts are seconds long."""
    if read_s is None and deadline is None:
        await fut
        return
    pool = conn.pool
    pool.watch(conn, read_s, deadline)
    try:
        await fut
    finally:
        pool.unwatch(conn)


#: How often the timeouts of the requests waiting on the upstream are checked (a timeout fires
#: up to this much late).
SWEEP_S = 0.1


class Pool:
    """Idle keep-alive connections per origin; opens new ones as needed."""

    def __init__(self, keepalive_s: float = 60.0) -> None:
        self.keepalive_s = keepalive_s
        #: Connections waiting on the upstream: (read timeout, deadline), swept every SWEEP_S
        #: while there are any.
        self._watched: dict[Connection, tuple[float | None, float | None]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._idle: dict[Origin, list[Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._urls: dict[str, tuple[Origin, bytes]] = {}  # a catalogue's few endpoint URLs

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def watch(self, conn: Connection, read_s: float | None, deadline: float | None) -> None:
        self._watched[conn] = (read_s, deadline)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(SWEEP_S, self._sweep)

    def unwatch(self, conn: Connection) -> None:
        self._watched.pop(conn, None)

    def _sweep(self) -> None:
        now = self.loop.time()
        late = [c for c, (read_s, deadline) in self._watched.items()
                if (read_s is not None and now - c.last_data > read_s)
                or (deadline is not None and now > deadline)]
        for conn in late:
            del self._watched[conn]
            conn.fail(ReadTimeout("no data from the upstream within its timeout"))
        self._sweeper = self.loop.call_later(SWEEP_S, self._sweep) if self._watched else None

    def put(self, conn: Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin, []).append(conn)

    def _get(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            t = conn.transport
            if conn.closed or t is None or t.is_closing() or now - conn.idle_since > \
                    self.keepalive_s:
                conn.close()
                continue
            return conn
        return None

    async def _connect(self, origin: Origin, timeout: float | None) -> Connection:
        if origin.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        conn = Connection(self, origin)
        coro = self.loop.create_connection(
            lambda: conn, origin.host, origin.port,
            ssl=self._ssl if origin.tls else None,
            server_hostname=origin.host if origin.tls else None)
        try:
            await asyncio.wait_for(coro, timeout)
        except TimeoutError:
            raise ConnectTimeout(f"no connection to {origin.host}:{origin.port}") from None
        except (OSError, ssl.SSLError) as exc:
            refused = isinstance(exc, ConnectionRefusedError) or getattr(
                exc, "errno", None) == errno.ECONNREFUSED
            raise ConnectError(f"{type(exc).__name__}: {exc}", refused=refused) from None
        return conn

    async def post(self, url: str, body: bytes, headers: Mapping[str, str],
                   timeouts: Timeouts) -> Response:
        """POST ``body``; returns once the response's head arrived (its body comes after)."""
        split = self._urls.get(url)
        if split is None:
            split = split_url(url)
            if len(self._urls) < 1024:
                self._urls[url] = split
        origin, path = split
        loop = self.loop
        deadline = loop.time() + timeouts.total if timeouts.total is not None else None
        head = [b"POST ", path, b" HTTP/1.1\r\nHost: ", origin.authority,
                b"\r\nAccept-Encoding: gzip, deflate\r\nContent-Length: ",
                str(len(body)).encode(), b"\r\n"]
        for k, v in headers.items():
            head += (k.encode("latin-1"), b": ", v.encode("latin-1"), b"\r\n")
        head += (b"\r\n", body)
        data = b"".join(head)
        for attempt in range(2):
            conn = self._get(origin)
            if conn is None:
                timeout = timeouts.connect
                if deadline is not None:
                    left = deadline - loop.time()
                    timeout = left if timeout is None else min(timeout, left)
                conn = await self._connect(origin, timeout)
            reused = conn.used
            try:
                await _timed(conn, conn.start(data), timeouts.read, deadline)
            except ConnectError:
                conn.close()
                if reused and not conn.got_bytes and attempt == 0:
                    continue  # a stale keep-alive connection: once more on a new one
                raise
            except BaseException:
                conn.close()
                raise
            return Response(conn, timeouts.read, deadline)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

