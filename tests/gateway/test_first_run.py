"""The first run (issue 17, points 1 and 8): ``router serve`` on the shipped default config with
no provider key set, driven by the openai SDK as the README's one-liner does; and a port that is
already taken."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support import REPO, Proc, _spawn, free_port

PROVIDER_KEYS = ("OPENAI_API_KEY", "DEEPSEEK_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")


def _keyless_env(tmp: Path) -> dict[str, str]:
    """This environment without provider keys or a config path, the store in ``tmp`` (not the
    checkout's router-data/) and the local model on a port where nothing listens."""
    env = {k: v for k, v in os.environ.items()
           if k not in PROVIDER_KEYS and k != "ROUTER_CONFIG" and not k.startswith("ROUTER_")}
    env["ROUTER_STORE_URL"] = f"sqlite:///{tmp}/router.db"
    env["ROUTER_VLLM_BASE"] = f"http://127.0.0.1:{free_port()}/v1"
    return env


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, str]]:
    tmp = tmp_path_factory.mktemp("first-run")
    env = _keyless_env(tmp)
    port = free_port()
    # What the README says: `router serve` from the checkout, the default config.
    args = [sys.executable, "-m", "router", "serve", "--port", str(port)]
    proc = _spawn(args, port, tmp / "gateway.log", env, "/readyz", inherit_env=False)
    yield proc, env["ROUTER_VLLM_BASE"]
    proc.stop()
    assert "Traceback" not in proc.log()


def test_start_up_says_which_models_are_callable_and_which_keys_to_set(
        keyless: tuple[Proc, str]) -> None:
    proc, vllm = keyless
    log = proc.log()
    assert f"callable models: llama-3.1-8b-local (at {vllm}" in log
    for key in PROVIDER_KEYS:
        assert f"(set {key})" in log
    assert re.search(r"WARNING router no provider key is set: .*router demo", log)
    # the catalogue's keyed models are listed with their variable
    assert "gpt-4o-mini" in log.split("not callable, key unset:")[1].split("(set OPENAI_API_KEY)")[0]


def _local_attempts(proc: Proc) -> float:
    """Failed attempts on llama-3.1-8b-local so far (router_upstream_errors_total)."""
    with urllib.request.urlopen(f"{proc.url}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(
        r'^router_upstream_errors_total\{[^}]*model="llama-3.1-8b-local"[^}]*\} (\S+)$',
        metrics, re.M))


def test_the_readme_one_liner_without_keys_is_one_clear_503(keyless: tuple[Proc, str]) -> None:
    """Before: a 502 after 9 connection attempts to 127.0.0.1:8001. Now one attempt, and a 503
    naming the variables to set and `router demo`, which the SDK does not retry."""
    proc, vllm = keyless
    before = _local_attempts(proc)
    sdk = openai.OpenAI(base_url=f"{proc.url}/v1", api_key="sk-router-dev", timeout=30)
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": "Hello"}])
    err = info.value
    assert err.status_code == 503
    assert err.response.headers["x-should-retry"] == "false"
    assert f"nothing listens at {vllm}" in err.message
    assert "Set OPENAI_API_KEY, DEEPSEEK_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY" \
        in err.message
    assert "router demo" in err.message
    assert _local_attempts(proc) - before == 1  # one connection attempt: the SDK did not retry


def test_the_readme_commands_word_for_word(keyless: tuple[Proc, str]) -> None:
    """The Quick start's export line and one-liner as written (only the port is this test's),
    run by a shell against `router serve` without keys: one line of error with the 503."""
    from tests.demo.test_readme import commands, one_liner, quick_start

    proc, _ = keyless
    (export,) = [c for c in commands(quick_start()) if c.startswith("export OPENAI_BASE_URL=")]
    script = export.replace("127.0.0.1:8000", f"127.0.0.1:{proc.port}") + "\n" + one_liner()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    run = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("openai.InternalServerError: Error code: 503 - ")
    assert "Set OPENAI_API_KEY, DEEPSEEK_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY" in last
    assert "router demo" in last


def test_a_model_named_without_its_key_says_which_variable(keyless: tuple[Proc, str]) -> None:
    proc, _ = keyless
    sdk = openai.OpenAI(base_url=f"{proc.url}/v1", api_key="sk-router-dev", max_retries=0,
                        timeout=30)
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(model="deepseek-chat",
                                    messages=[{"role": "user", "content": "Hello"}])
    assert info.value.status_code == 503
    assert "DEEPSEEK_API_KEY" in info.value.message
    assert "router demo" in info.value.message


def test_a_taken_port_is_one_line_and_a_non_zero_exit_before_ready(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "router", "serve", "--port", str(port)],
            cwd=str(REPO), env=_keyless_env(tmp_path), capture_output=True, text=True,
            timeout=120)
    assert run.returncode == 1
    assert not re.search(r"\bready\b", run.stdout + run.stderr)  # the app never started
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"router serve: cannot listen on 127.0.0.1:{port}: ")
    assert "--port" in lines[0]
