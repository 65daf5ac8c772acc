"""Start-up, several workers, and graceful shutdown with requests in flight."""

from __future__ import annotations

import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.gateway.conftest import ENV, GATEWAY_KEY, write_config
from tests.support import Proc, start_gateway


@pytest.fixture()
def own_gateway(fake: Proc, tmp_path: Path) -> Iterator[Proc]:
    proc = start_gateway(write_config(tmp_path, fake.url), tmp_path, env=ENV)
    yield proc
    proc.stop(signal.SIGKILL)


def test_graceful_shutdown_finishes_streams_and_requests(own_gateway: Proc) -> None:
    client = openai.OpenAI(base_url=f"{own_gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0)
    results: dict[str, object] = {}

    def slow_request() -> None:
        resp = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[fake:delay=1.0]]"}])
        results["plain"] = resp.choices[0].message.content

    worker = threading.Thread(target=slow_request)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True,
        messages=[{"role": "user", "content": "[[fake:tokens=12,chunk_delay=0.1]]"}])
    pieces = []
    worker.start()
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            if len(pieces) == 2:
                time.sleep(0.2)  # the plain request is in flight too
                own_gateway.proc.send_signal(signal.SIGTERM)
    worker.join(10)
    assert len(pieces) == 12, "the stream was cut by shutdown"
    assert results.get("plain"), "the in-flight request was dropped"
    # uvicorn re-raises the signal once it has shut down cleanly, so the status says SIGTERM
    assert own_gateway.proc.wait(15) in (0, -signal.SIGTERM)
    assert "Finished server process" in own_gateway.log()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{own_gateway.url}/healthz", timeout=2)


def test_several_workers(fake: Proc, tmp_path: Path) -> None:
    proc = start_gateway(write_config(tmp_path, fake.url), tmp_path, env=ENV,
                         extra_args=["--workers", "2"])
    try:
        client = openai.OpenAI(base_url=f"{proc.url}/v1", api_key=GATEWAY_KEY, max_retries=0)
        for _ in range(10):
            resp = client.chat.completions.create(model="auto",
                                                  messages=[{"role": "user", "content": "hi"}])
            assert resp.choices[0].message.content
    finally:
        assert proc.stop() in (0, -signal.SIGTERM)


def test_health_and_readiness(gateway: Proc) -> None:
    with urllib.request.urlopen(f"{gateway.url}/healthz") as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"{gateway.url}/readyz") as resp:
        assert resp.status == 200


def test_metrics_endpoint(gateway: Proc, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "m"}])
    with urllib.request.urlopen(f"{gateway.url}/metrics") as resp:
        text = resp.read().decode()
    assert 'router_requests_total{model="gpt-4o-mini",route="chat",status="200"' in text
    assert "router_spend_microdollars_total" in text
    assert "router_gateway_overhead_seconds_bucket" in text
    assert "_created" not in text
