"""Request bodies that never finish: a deadline (408) and a cap per client address (429), seen
from a raw socket, as a slow or hostile client behaves."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import ENV, GATEWAY_KEY, write_config
from tests.gateway.test_errors import assert_openai_error
from tests.support import Proc, start_gateway

BODY_TIMEOUT_S = 3
CAP = 3
BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture(scope="module")
def guarded(fake: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    tmp: Path = tmp_path_factory.mktemp("slow-bodies")
    server = f"  body_timeout_s: {BODY_TIMEOUT_S}\n  max_pending_bodies_per_client: {CAP}\n"
    proc = start_gateway(write_config(tmp, fake.url, server=server), tmp, env=ENV)
    yield proc
    proc.stop()


def open_request(gw: Proc, body: bytes, length: int | None = None,
                 path: str = "/v1/chat/completions") -> socket.socket:
    """Send the headers (declaring ``length`` bytes of body) and ``body``, and no more."""
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {GATEWAY_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length or len(body)}\r\n\r\n")
    sock.sendall(head.encode() + body)
    return sock


def read_response(sock: socket.socket, *, closes: bool = True
                  ) -> tuple[int, dict[str, str], Any, bool]:
    """Status, headers, JSON body, and whether the server then closed the connection (only
    waited for when ``closes``: a kept-alive connection stays open)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    closed = closes and sock.recv(1) == b""
    return status, headers, json.loads(rest[:length]), closed


def test_a_body_that_never_finishes_gets_408_and_the_connection_closes(guarded: Proc) -> None:
    sock = open_request(guarded, b'{"model": "gpt-', length=1000)  # 15 of 1000 bytes
    with sock:
        status, headers, payload, closed = read_response(sock)
    assert status == 408
    err = assert_openai_error(payload, "invalid_request_error", "request_timeout")
    assert f"{BODY_TIMEOUT_S} s" in err["message"]
    assert headers["connection"] == "close" and closed
    assert headers["x-request-id"]


def test_pending_bodies_are_capped_per_client_address(guarded: Proc) -> None:
    """Five requests whose body stops (one after its headers, the others part-way): three are
    held until their deadline, the other two are refused as soon as they count as slow (1 s);
    then a request with its whole body goes through."""
    socks = [open_request(guarded, b"" if i == 0 else b'{"model"', length=500) for i in range(5)]
    try:
        results = [read_response(s) for s in socks]  # each one's answer, in whatever order
        statuses = sorted(r[0] for r in results)
        assert statuses == [408, 408, 408, 429, 429], statuses
        for status, headers, payload, closed in results:
            if status == 429:
                assert_openai_error(payload, "rate_limit_exceeded", "too_many_pending_bodies")
            assert headers["connection"] == "close" and closed
    finally:
        for s in socks:
            s.close()
    with open_request(guarded, BODY.encode()) as sock:
        status, _, payload, _ = read_response(sock, closes=False)
    assert status == 200, payload


def test_a_complete_body_is_never_refused_while_others_are_pending(guarded: Proc) -> None:
    socks = [open_request(guarded, b'{"mo', length=300) for _ in range(CAP + 1)]
    try:
        # one of them is refused once slow: by then CAP requests of this address are pending
        assert read_response(socks[-1])[0] == 429
        with open_request(guarded, BODY.encode()) as sock:
            status, headers, payload, _ = read_response(sock, closes=False)
        assert status == 200, payload
        assert headers.get("connection") != "close"  # kept alive: nothing is left unread
    finally:
        for s in socks:
            s.close()


def test_a_client_leaving_mid_body_is_no_error(guarded: Proc) -> None:
    for path in ("/v1/chat/completions", "/v1/route"):
        sock = open_request(guarded, b'{"model": "gp', length=200, path=path)
        sock.close()
    with open_request(guarded, BODY.encode()) as sock:  # the gateway is fine
        assert read_response(sock, closes=False)[0] == 200
    assert "Traceback" not in guarded.log() and "unexpected error" not in guarded.log()


def test_a_burst_of_bodies_sent_after_their_headers_is_not_capped(guarded: Proc) -> None:
    """Clients such as httpx send the headers and the body in two writes: many such requests
    at once from one address are not slow bodies (each body follows within milliseconds)."""
    n = 4 * CAP
    socks = [open_request(guarded, b"", length=len(BODY)) for _ in range(n)]
    try:
        time.sleep(0.05)  # every request's headers are in; its body is not
        for s in socks:
            s.sendall(BODY.encode())
        statuses = [read_response(s, closes=False)[0] for s in socks]
    finally:
        for s in socks:
            s.close()
    assert statuses == [200] * n
