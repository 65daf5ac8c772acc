"""router/upstream/h1.py, the fast path's HTTP/1.1 client, against raw asyncio servers on
loopback that answer exactly as scripted: framing (Content-Length, chunked, to the end of the
connection), gzip and deflate bodies, keep-alive reuse, a stale pooled connection, timeouts,
connection failures, back-pressure and early close of a stream."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from router.upstream.h1 import ConnectError, Pool, ReadTimeout, Timeouts, split_url

T = Timeouts(connect=2.0, read=2.0, total=10.0)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A server on a free port; yields its URL and the count of connections it accepted."""
    accepted: list[int] = [0]

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", accepted
    finally:
        srv.close()


def keepalive(body: bytes, extra: bytes = b"", status: bytes = b"200 OK") -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n" + extra
                         + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()

    return handle


def test_split_url() -> None:
    origin, path = split_url("https://api.example.com/v1/chat/completions?x=1")
    assert (origin.host, origin.port, origin.authority, origin.tls) == (
        "api.example.com", 443, b"api.example.com", True)
    assert path == b"/v1/chat/completions?x=1"
    origin, _ = split_url("http://[::1]:8080/v1")
    assert (origin.host, origin.port, origin.authority) == ("::1", 8080, b"[::1]:8080")
    with pytest.raises(ValueError):
        split_url("ftp://example.com/x")


async def test_request_bytes_and_keepalive_reuse() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await read_request(reader)
            seen.append(head + body)
            writer.write(b"HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nContent-Length: 2\r\n\r\nno")
            await writer.drain()

    pool = Pool()
    async with server(handle) as (url, accepted):
        for _ in range(3):
            r = await pool.post(url + "/v1/x", b'{"a":1}', {"Authorization": "Bearer k"}, T)
            assert (r.status, r.header(b"retry-after"), await r.read()) == (429, "3", b"no")
        assert accepted == [1]  # one connection, kept alive
    await pool.aclose()
    port = url.rsplit(":", 1)[1]
    assert seen[0] == (b"POST /v1/x HTTP/1.1\r\nHost: 127.0.0.1:" + port.encode()
                       + b"\r\nAccept-Encoding: gzip, deflate\r\nContent-Length: 7\r\n"
                       b"Authorization: Bearer k\r\n\r\n{\"a\":1}")


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_bodies(encoding: str) -> None:
    data = b'{"choices": []}' * 200
    if encoding == "gzip":
        packed, name = gzip.compress(data), b"gzip"
    elif encoding == "deflate":
        packed, name = zlib.compress(data), b"deflate"
    else:
        z = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        packed, name = z.compress(data) + z.flush(), b"deflate"
    pool = Pool()
    async with server(keepalive(packed, b"Content-Encoding: " + name + b"\r\n")) as (url, _):
        r = await pool.post(url + "/", b"{}", {}, T)
        assert await r.read() == data
    await pool.aclose()


async def test_chunked_stream_as_it_arrives_then_reuse() -> None:
    gate = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\ndata:1\r\n")
        await writer.drain()
        await gate.wait()
        writer.write(b"6\r\ndata:2\r\n0\r\n\r\n")
        await keepalive(b"ok")(reader, writer)

    pool = Pool()
    async with server(handle) as (url, accepted):
        r = await pool.post(url + "/", b"{}", {}, T)
        it = r.iter_chunks()
        assert await it.__anext__() == b"data:1"  # before the rest was even sent
        gate.set()
        assert [c async for c in it] == [b"data:2"]
        r2 = await pool.post(url + "/", b"{}", {}, T)
        assert await r2.read() == b"ok" and accepted == [1]
    await pool.aclose()


async def test_body_to_the_end_of_the_connection() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()

    pool = Pool()
    async with server(handle) as (url, _):
        r = await pool.post(url + "/", b"{}", {}, T)
        assert await r.read() == b"until the end"
    await pool.aclose()


async def test_a_stale_pooled_connection_is_retried_once_on_a_new_one() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)  # answers one request, then closes while the client idles
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    pool = Pool()
    async with server(handle) as (url, accepted):
        assert await (await pool.post(url + "/", b"{}", {}, T)).read() == b"ok"
        await asyncio.sleep(0.05)
        assert await (await pool.post(url + "/", b"{}", {}, T)).read() == b"ok"
        assert accepted == [2]
    await pool.aclose()


async def test_a_connection_dropped_mid_body_is_an_error_not_a_short_body() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()

    pool = Pool()
    async with server(handle) as (url, _):
        r = await pool.post(url + "/", b"{}", {}, T)
        with pytest.raises(ConnectError):
            await r.read()
    await pool.aclose()


async def test_read_timeout_before_the_head_and_between_chunks() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        await writer.drain()
        for _ in range(4):  # data keeps coming, each piece within the read timeout
            await asyncio.sleep(0.1)
            writer.write(b"1\r\nb\r\n")
            await writer.drain()
        await asyncio.sleep(5)

    pool = Pool()
    quick = Timeouts(connect=1.0, read=0.25, total=10.0)
    loop = asyncio.get_running_loop()
    async with server(silent) as (url, _):
        t0 = loop.time()
        with pytest.raises(ReadTimeout):
            await pool.post(url + "/", b"{}", {}, quick)
        assert loop.time() - t0 < 2
    async with server(stalls) as (url, _):
        r = await pool.post(url + "/", b"{}", {}, quick)
        got = []
        with pytest.raises(ReadTimeout):
            async for c in r.iter_chunks():
                got.append(c)
        assert b"".join(got) == b"abbbb"  # 0.5 s of data at 0.1 s gaps: no timeout until it stops
    await pool.aclose()


async def test_total_timeout() -> None:
    async def trickles(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(100):
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)

    pool = Pool()
    async with server(trickles) as (url, _):
        r = await pool.post(url + "/", b"{}", {}, Timeouts(connect=1.0, read=1.0, total=0.3))
        with pytest.raises(ReadTimeout):
            await r.read()
    await pool.aclose()


async def test_connection_refused() -> None:
    async with server(keepalive(b"")) as (url, _):
        pass  # closed: nothing listens there now
    with pytest.raises(ConnectError):
        await Pool().post(url + "/", b"{}", {}, T)


async def test_back_pressure_and_early_close() -> None:
    big = b"x" * 65536

    async def floods(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(64):  # 4 MB, more than the client buffers before it stops reading
            writer.write(b"10000\r\n" + big + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    pool = Pool()
    async with server(floods) as (url, accepted):
        r = await pool.post(url + "/", b"{}", {}, T)
        it = r.iter_chunks()
        first = await it.__anext__()
        await asyncio.sleep(0.2)  # the server fills the socket; the client holds <= ~HIGH_WATER
        conn = r._conn
        assert conn is not None and conn.buffered <= 512 * 1024 and conn.paused
        total = len(first) + sum([len(c) async for c in it])
        assert total == 64 * 65536
        r2 = await pool.post(url + "/", b"{}", {}, T)  # (the flood handler served one request)
        await it.aclose()
        r2.close()  # left before its end: closed, never pooled
        assert accepted == [2]
    await pool.aclose()


async def test_tls_verified_and_kept_alive(tmp_path: Path) -> None:
    """https: the certificate is verified (a self-signed one is refused by default), and with
    it trusted the connection is kept alive across requests."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl (the command) is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(cert), str(key))
    accepted = [0]
    handle = keepalive(b'{"ok":true}')

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        try:
            await handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(on_conn, "127.0.0.1", 0, ssl=server_ctx)
    url = f"https://localhost:{srv.sockets[0].getsockname()[1]}/v1/x"
    try:
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await Pool().post(url, b"{}", {}, T)
        pool = Pool()
        pool._ssl = ssl.create_default_context(cafile=str(cert))
        for _ in range(3):
            r = await pool.post(url, b"{}", {}, T)
            assert (r.status, await r.read()) == (200, b'{"ok":true}')
        assert accepted == [1]  # one kept-alive connection (the refused handshake never got here)
        await pool.aclose()
    finally:
        srv.close()
