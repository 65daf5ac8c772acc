"""The policy in the running gateway: explain endpoint, hot reload under load, SIGHUP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.gateway.conftest import ENV, GATEWAY_KEY, POLICY, write_config
from tests.gateway.test_openai_sdk import received
from tests.support import REPO, Proc, start_gateway


def explain(gateway: Proc, body: dict[str, object], task: str | None = None) -> dict[str, object]:
    req = urllib.request.Request(f"{gateway.url}/v1/route", data=json.dumps(body).encode(),
                                 method="POST")
    req.add_header("Authorization", f"Bearer {GATEWAY_KEY}")
    if task:
        req.add_header("x-router-task", task)
    with urllib.request.urlopen(req, timeout=10) as resp:
        data: dict[str, object] = json.loads(resp.read())
    return data


def test_route_explains_without_calling_a_model(gateway: Proc, fake: Proc) -> None:
    before = len(received(fake))
    data = explain(gateway, {"model": "auto", "messages": [
        {"role": "user", "content": "Prove that the square root of 2 is irrational. route-marker"}]},
        task="reasoning")
    assert len(received(fake)) == before
    text = json.dumps(data)
    assert "route-marker" not in text
    assert data["model"] == "claude-fake"
    assert data["prompt_tokens"] > 0  # type: ignore[operator]
    names = {c["model"]: c for c in data["candidates"]}  # type: ignore[attr-defined,index]
    assert names["gpt-4o-mini"]["eligible"] is False
    assert any("bar" in why for why in names["gpt-4o-mini"]["reasons"])
    assert "savings" in text


def test_explain_needs_a_key(gateway: Proc) -> None:
    req = urllib.request.Request(f"{gateway.url}/v1/route", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 401


@pytest.fixture()
def own(fake: Proc, tmp_path: Path) -> Iterator[tuple[Proc, Path]]:
    proc = start_gateway(write_config(tmp_path, fake.url), tmp_path, env=ENV)
    yield proc, tmp_path / "policy.yaml"
    proc.stop(signal.SIGKILL)


def routed_model(client: openai.OpenAI) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hello"}],
        extra_headers={"x-router-task": "expression"})
    return raw.headers["x-router-model"]


def test_hot_reload_under_load_and_invalid_edit_refused(own: tuple[Proc, Path]) -> None:
    gateway, policy = own
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0)
    assert routed_model(client) == "gpt-4o-mini"
    failures: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        c = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0)
        while not stop.is_set():
            try:
                routed_model(c)
            except BaseException as exc:
                failures.append(exc)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        # raise the expression bar above gpt-4o-mini: the next cheapest that qualifies wins
        policy.write_text(POLICY.replace("expression: {min_capability: 40}",
                                         "expression: {min_capability: 60}"))
        deadline = time.monotonic() + 2.0
        while routed_model(client) == "gpt-4o-mini":
            assert time.monotonic() < deadline, "edit not live within 2 s"
            time.sleep(0.05)
        assert routed_model(client) == "claude-fake"
        # an invalid edit is refused; the running policy stays
        policy.write_text(POLICY.replace("min_capability: 60", "min_capabilty: 60"))
        time.sleep(1.5)
        assert routed_model(client) == "claude-fake"
    finally:
        stop.set()
        for w in workers:
            w.join(10)
    assert not failures, failures[:3]
    log = gateway.log()
    assert "min_capabilty" in log and "unknown key" in log


def test_sighup_reloads(own: tuple[Proc, Path]) -> None:
    gateway, policy = own
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0)
    policy.write_text(POLICY.replace("gpt-4o-mini: {reasoning: 40, expression: 45}",
                                     "gpt-4o-mini: {reasoning: 40, expression: 30}"))
    gateway.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 2.0
    while routed_model(client) == "gpt-4o-mini":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert gateway.proc.poll() is None


def test_serve_refuses_an_invalid_policy(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9")
    (tmp_path / "policy.yaml").write_text(POLICY.replace("gpt-4o:", "gpt-5o:"))
    proc = subprocess.run([sys.executable, "-m", "router", "serve", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60, cwd=REPO, env={**ENV, "PATH": ""})
    assert proc.returncode == 2
    assert "policy.yaml:" in proc.stderr and "gpt-5o" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_routes_pass_over_a_model_whose_key_is_unset(fake: Proc, tmp_path: Path) -> None:
    """The README's first run: only some providers' keys are set. ``no-key`` is the cheapest
    qualifying model here, but its key variable is unset: auto routes around it (and says why);
    asking for it by name still gets the 503 naming the variable."""
    policy = POLICY.replace("models:\n", "models:\n  no-key: {reasoning: 90, expression: 90}\n", 1)
    proc = start_gateway(write_config(tmp_path, fake.url, policy=policy), tmp_path, env=ENV)
    try:
        client = openai.OpenAI(base_url=f"{proc.url}/v1", api_key=GATEWAY_KEY, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "hello"}],
            extra_headers={"x-router-task": "expression"})
        assert raw.headers["x-router-model"] == "gpt-4o-mini"
        assert "x-router-fallback-from" not in raw.headers  # chosen, not fallen back to
        data = explain(proc, {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
                       task="expression")
        names = {c["model"]: c for c in data["candidates"]}  # type: ignore[attr-defined,index]
        assert names["no-key"]["reasons"] == [
            "ROUTER_TEST_UNSET_KEY is not set in the gateway's environment"]
        with pytest.raises(openai.InternalServerError, match="ROUTER_TEST_UNSET_KEY"):
            client.chat.completions.create(model="no-key",
                                           messages=[{"role": "user", "content": "hi"}])
    finally:
        proc.stop(signal.SIGKILL)
