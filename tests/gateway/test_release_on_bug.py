"""A request whose upstream call fails with something the gateway did not expect (a bug in a
transport, not a provider error) frees its reservation at once and leaves an error row: its money
is not held until the reservation expires, and the client gets a 500 in OpenAI's shape."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import openai
import pytest

from router.upstream.base import Endpoint, Target, UpstreamResponse
from tests.gateway.conftest import ENV, GATEWAY_KEY, write_config


class Broken:
    """A transport with a bug: every call raises an exception no transport should."""

    calls = 0

    async def send(self, target: Target, endpoint: Endpoint, body: dict[str, Any], stream: bool,
                   headers: Mapping[str, str] | None = None) -> UpstreamResponse:
        Broken.calls += 1
        raise RuntimeError("a bug in the transport")

    async def aclose(self) -> None:
        return None


def test_an_unexpected_error_frees_the_reservation(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from router.app import create_app

    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    cfg = write_config(tmp_path, "http://127.0.0.1:9")  # never reached: the transport is broken
    app = create_app(config_path=str(cfg), transports={"openai": Broken(), "litellm": Broken()})
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    async def scenario() -> int:
        server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="on"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1",
                                        api_key=GATEWAY_KEY, max_retries=0, timeout=20)
            with pytest.raises(openai.InternalServerError) as info:
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}])
            await client.close()
            return info.value.status_code
        finally:
            server.should_exit = True
            await serving

    assert asyncio.run(scenario()) == 500
    assert Broken.calls >= 1
    db = sqlite3.connect(tmp_path / "router.db")
    live = db.execute("SELECT count(*) FROM reservations WHERE state = 'live'").fetchone()[0]
    held = db.execute("SELECT coalesce(sum(reserved), 0) FROM counters").fetchone()[0]
    rows = db.execute("SELECT status, actual_micro FROM ledger").fetchall()
    assert (live, held) == (0, 0)  # freed now, not when the reservation expires
    assert rows == [("error", 0)]
