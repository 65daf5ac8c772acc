"""Passive health: failing models open a circuit, routing and fallbacks skip them, and when
nothing is callable the answer is a 503 the SDKs do not retry. Unit tests of the breaker on a
fake clock, then a gateway (circuits on: threshold 5, cool-down 1 s) over loopback."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from router.upstream.health import CircuitState, Health, Unavailable
from tests.gateway.conftest import ENV, GATEWAY_KEY, POLICY, write_config
from tests.gateway.test_errors import CHAT, assert_openai_error, post
from tests.gateway.test_openai_sdk import received
from tests.support import Proc, free_port, start_fake_upstream, start_gateway, wait_until

# ----------------------------------------------------------------------------- the breaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(threshold: int = 3) -> tuple[Health, Clock, list[tuple[str, CircuitState, bool]]]:
    clock, seen = Clock(), []
    health = Health(threshold, 10.0, 25.0, clock=clock,
                    on_change=lambda m, s, o: seen.append((m, s, o)))
    return health, clock, seen


def test_consecutive_failures_open_the_circuit_and_a_success_resets_the_count() -> None:
    health, _, seen = breaker()
    health.failed("m", "status 503")
    health.failed("m", "status 503")
    health.succeeded("m")  # any answer below 500 resets the count
    health.failed("m", "connection failed")
    health.failed("m", "connection failed")
    assert health.acquire("m") and health.why("m") is None
    health.failed("m", "connection failed")
    assert seen == [("m", CircuitState.OPEN, True)]
    assert not health.acquire("m")
    assert "circuit open after 3 failed attempts (connection failed)" in (health.why("m") or "")
    assert health.acquire("other")  # per model


def test_half_open_lets_one_probe_through_and_a_failed_probe_doubles_the_cooldown() -> None:
    health, clock, seen = breaker()
    for _ in range(3):
        health.failed("m", "timeout")
    clock.now += 9.9
    assert not health.acquire("m")
    clock.now += 0.2
    assert health.why("m") is None  # routable again: the next request probes
    assert health.acquire("m")  # the probe
    assert not health.acquire("m")  # the others wait for it
    assert "probe request is in flight" in (health.why("m") or "")
    health.failed("m", "status 502")
    assert seen[-1] == ("m", CircuitState.OPEN, True)
    assert health.status("m")["retry_in_s"] == 20.0  # doubled
    clock.now += 20.1
    assert health.acquire("m")
    health.failed("m", "status 502")
    assert health.status("m")["retry_in_s"] == 25.0  # capped at max_cooldown_s
    clock.now += 25.1
    assert health.acquire("m")
    health.succeeded("m")
    assert seen[-1] == ("m", CircuitState.CLOSED, False)
    assert health.status("m") == {"state": "closed", "consecutive_failures": 0}


def test_a_cancelled_probe_frees_the_slot() -> None:
    health, clock, _ = breaker(threshold=1)
    health.failed("m", "timeout")
    clock.now += 11
    assert health.acquire("m")
    health.released("m")  # the client left during the probe
    assert health.acquire("m")


def test_threshold_zero_turns_circuits_off() -> None:
    health, _, seen = breaker(threshold=0)
    for _ in range(100):
        health.failed("m", "timeout")
    assert health.acquire("m") and not seen


def test_unavailable_merges_missing_keys_and_open_circuits() -> None:
    health, clock, _ = breaker(threshold=1)
    view = Unavailable({"nokey": "X is not set"}, health)
    assert dict(view) == {"nokey": "X is not set"} and len(view) == 1
    health.failed("m", "status 500")
    assert set(view) == {"nokey", "m"} and "circuit open" in view["m"]
    assert view.get("fine") is None and "fine" not in view
    clock.now += 11
    assert "m" not in view


# ----------------------------------------------------------------------------- the gateway

#: A model on a port where nothing listens until the test starts an upstream there, with no
#: fallbacks, and a route over it alone; and one for the SDK scenario of the issue.
EXTRA_MODELS = """  revivable:
    provider: openai
    upstream_model: gpt-4o-mini
    api_base: http://127.0.0.1:{revivable}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    max_retries: 1
  dead-local:
    provider: vllm
    upstream_model: llama
    api_base: http://127.0.0.1:{dead}/v1
    price: {{input_per_1m: 0.1, output_per_1m: 0.1}}
    max_retries: 2
"""
CIRCUITS = "circuit_breaker: {failure_threshold: 5, cooldown_s: 1, max_cooldown_s: 2}"
ROUTE_POLICY = POLICY.replace(
    "  claude-fake: {reasoning: 72, expression: 72}\n",
    "  claude-fake: {reasoning: 72, expression: 72}\n  revivable: {reasoning: 50, expression: 50}\n"
).replace("routes:\n", "routes:\n  auto-revivable: {models: [revivable], "
          "min_capability: {reasoning: 0, expression: 0}}\n")


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"revivable": free_port(), "dead": free_port()}


@pytest.fixture(scope="module")
def circuits(fake: Proc, tmp_path_factory: pytest.TempPathFactory,
             ports: dict[str, int]) -> Iterator[Proc]:
    tmp: Path = tmp_path_factory.mktemp("circuits")
    path = write_config(tmp, fake.url, policy=ROUTE_POLICY)
    text = path.read_text().replace("circuit_breaker: {failure_threshold: 0}", CIRCUITS)
    text = text.replace("  text-embedding-3-small:\n",
                        EXTRA_MODELS.format(**ports) + "  text-embedding-3-small:\n", 1)
    path.write_text(text)
    proc = start_gateway(path, tmp, env=ENV)
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log()


def metric(gw: Proc, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"{gw.url}/metrics", timeout=10) as r:
        text = r.read().decode()
    want = "".join(f'(?=[^}}]*{k}="{re.escape(v)}")' for k, v in labels.items())
    total = 0.0
    for m in re.finditer(rf"^{name}\{{{want}[^}}]*\}} (\S+)$", text, re.M):
        total += float(m.group(1))
    return total


def card(gw: Proc, model: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{gw.url}/v1/models/{model}",
                                 headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        data: dict[str, Any] = json.loads(r.read())["router"]
    return data


def broken_calls(fake: Proc) -> int:
    return sum(1 for b in received(fake) if b.get("model") == "broken-model")


def test_5xx_opens_the_circuit_and_fallbacks_skip_the_model(circuits: Proc, fake: Proc) -> None:
    assert card(circuits, "broken")["circuit"]["state"] == "closed"
    assert metric(circuits, "router_upstream_circuit_state", model="broken") == 0
    for _ in range(3):  # 2 attempts each (max_retries 1): the 5th failure opens it
        status, headers, _ = post(circuits, CHAT, {"model": "broken", "messages": [
            {"role": "user", "content": "hi"}]})
        assert status == 200 and headers["x-router-model"] == "gpt-4o"
    before = broken_calls(fake)
    status, headers, _ = post(circuits, CHAT, {"model": "broken", "messages": [
        {"role": "user", "content": "hi"}]})
    assert status == 200 and headers["x-router-model"] == "gpt-4o"
    assert headers["x-router-attempts"] == "2"  # broken passed over, gpt-4o answered
    assert broken_calls(fake) == before  # no call to the open circuit
    info = card(circuits, "broken")
    assert info["available"] is False and info["circuit"]["state"] in ("open", "half_open")
    assert info["circuit"]["consecutive_failures"] == 5
    assert metric(circuits, "router_upstream_circuit_opened_total", model="broken") >= 1
    assert metric(circuits, "router_upstream_circuit_state", model="broken") >= 1
    assert metric(circuits, "router_upstream_errors_total", model="broken",
                  reason="circuit_open") >= 1


def test_nothing_callable_is_a_503_the_sdk_does_not_retry_then_a_probe_closes_it(
        circuits: Proc, ports: dict[str, int], tmp_path: Path) -> None:
    hello = {"model": "revivable", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(2):  # 2 connection failures each: 4
        status, headers, _ = post(circuits, CHAT, hello)
        assert status == 502 and "x-should-retry" not in headers
    # the 5th failure opens it: this 502 already says not to retry, and when to come back
    status, headers, payload = post(circuits, CHAT, hello)
    assert status == 502, payload
    assert headers["x-should-retry"] == "false" and int(headers["retry-after"]) >= 1
    # open: not called at all
    status, headers, payload = post(circuits, CHAT, hello)
    assert status == 503
    err = assert_openai_error(payload, "service_unavailable")
    assert "circuit open" in err["message"] and headers["x-should-retry"] == "false"
    assert headers["x-router-attempts"] == "1"
    # a route over it alone: routing finds nothing callable, says why, and not to retry
    status, headers, payload = post(circuits, CHAT, {**hello, "model": "auto-revivable"})
    assert status == 503, payload
    assert "circuit open" in payload["error"]["message"]
    assert headers["x-should-retry"] == "false" and "retry-after" in headers
    status, _, explained = post(circuits, "/v1/route", {**hello, "model": "auto-revivable"})
    assert status == 200
    (row,) = [c for c in explained["candidates"] if c["model"] == "revivable"]
    assert any("circuit open" in why for why in row["reasons"])
    # The openai SDK (2 retries by default) honours x-should-retry: one request, not three.
    counted = metric(circuits, "router_requests_total", model="revivable", status="503")
    sdk = openai.OpenAI(base_url=f"{circuits.url}/v1", api_key=GATEWAY_KEY, timeout=20)
    with pytest.raises(openai.InternalServerError) as info:
        sdk.chat.completions.create(model="revivable", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503
    assert metric(circuits, "router_requests_total", model="revivable", status="503") \
        == counted + 1
    # The upstream comes back: after the cool-down one request probes it and closes the circuit.
    upstream = start_fake_upstream(tmp_path, port=ports["revivable"])
    try:
        wait_until(lambda: card(circuits, "revivable")["circuit"]["state"] == "half_open", 30)
        assert card(circuits, "revivable")["available"] is True
        status, headers, payload = post(circuits, CHAT, hello)
        assert status == 200, payload
        info2 = card(circuits, "revivable")
        assert info2["circuit"] == {"state": "closed", "consecutive_failures": 0}
        assert metric(circuits, "router_upstream_circuit_state", model="revivable") == 0
    finally:
        upstream.stop()


def test_the_sdk_stops_at_once_when_a_local_model_is_not_running(circuits: Proc) -> None:
    """The issue's first run: a self-hosted model (keyless, on loopback) that refuses
    connections, the openai SDK with its default 2 retries. Before: 3 attempts per request x 3
    requests = 9 connection attempts, then a 502. Now: one attempt; a refused connection on this
    machine means its server is not running, so the answer is a 503 that says so and that the
    SDK does not retry (issue 17, point 1)."""
    sdk = openai.OpenAI(base_url=f"{circuits.url}/v1", api_key=GATEWAY_KEY, timeout=20)
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(model="dead-local",
                                    messages=[{"role": "user", "content": "Hello"}])
    assert info.value.status_code == 503
    assert info.value.response.headers["x-should-retry"] == "false"
    assert "nothing listens at http://127.0.0.1:" in info.value.message
    assert metric(circuits, "router_upstream_errors_total", model="dead-local",
                  reason="not_running") == 1
    assert metric(circuits, "router_upstream_errors_total", model="dead-local",
                  reason="connect") == 0
    assert metric(circuits, "router_requests_total", model="dead-local") == 1
