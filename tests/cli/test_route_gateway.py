"""``router route`` answers what the gateway's ``POST /v1/route`` answers for the same prompt and
the same environment: a model whose key variable is unset is passed over by both (the issue:
the CLI chose deepseek-chat while the gateway, without DEEPSEEK_API_KEY, chose another)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from router.config import DEV_KEY
from tests.cli.support import KEY_VARS, router, user_env
from tests.support import REPO, Proc, start_gateway

PROMPTS = ["写一首秋天的诗", "Prove that there are infinitely many primes.", "hi"]
#: Set: every provider key but DeepSeek's (the issue's case), and OpenAI's alone.
ENVS = {"no-deepseek": ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"),
        "openai-only": ("OPENAI_API_KEY",)}


def keys_env(which: str) -> dict[str, str]:
    return {var: ("sk-set" if var in ENVS[which] else "") for var in KEY_VARS}


@pytest.fixture(scope="module", params=sorted(ENVS))
def gateway(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Proc]]:
    tmp = tmp_path_factory.mktemp("gateway")
    env = {**keys_env(request.param), "ROUTER_STORE_URL": f"sqlite:///{tmp}/router.db"}
    proc = start_gateway(REPO / "config.yaml", tmp, env=env)
    yield request.param, proc
    proc.stop()


def gateway_route(proc: Proc, prompt: str) -> dict[str, Any]:
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": prompt}]})
    req = urllib.request.Request(f"{proc.url}/v1/route", data=body.encode(), method="POST",
                                 headers={"Authorization": f"Bearer {DEV_KEY}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        out: dict[str, Any] = json.loads(resp.read())
    return out


def comparable(route: dict[str, Any]) -> dict[str, Any]:
    """The decision, with the wording of "key unset" (here vs the gateway's environment) equal."""
    text = json.dumps(route, ensure_ascii=False)
    text = text.replace(" is not set in the gateway's environment", " is not set here")
    out: dict[str, Any] = json.loads(text)
    return out


@pytest.mark.parametrize("prompt", PROMPTS)
def test_route_equals_the_gateway(gateway: tuple[str, Proc], prompt: str,
                                  tmp_path: Path) -> None:
    which, proc = gateway
    want = comparable(gateway_route(proc, prompt))
    env = user_env(tmp_path, **keys_env(which))
    cli = router("route", prompt, "--key", "local-dev", "--json",
                 "--config", str(REPO / "config.yaml"), cwd=tmp_path, env=env)
    assert cli.returncode == (0 if want["model"] else 1), cli.stderr
    got = comparable(json.loads(cli.stdout))
    assert got == want
    # it says what it assumed (stderr: stdout is the gateway's JSON)
    unset = sorted(v for v in KEY_VARS if v not in ENVS[which])
    assert cli.stderr.startswith("router route: keys: as a gateway started with this "
                                 "environment, passed over ")
    assert all(f"({var} unset)" in cli.stderr for var in unset)
    if which == "no-deepseek" and prompt == PROMPTS[0]:
        assert want["model"] != "deepseek-chat"
        # --all-keys is the other answer, and says so
        every = router("route", prompt, "--key", "local-dev", "--json", "--all-keys",
                       "--config", str(REPO / "config.yaml"), cwd=tmp_path, env=env)
        assert json.loads(every.stdout)["model"] == "deepseek-chat"
        assert every.stderr == ("router route: keys: assumed every provider key is set "
                                "(--all-keys); unset here: DEEPSEEK_API_KEY\n")


def test_the_table_says_what_was_assumed(tmp_path: Path) -> None:
    env = user_env(tmp_path, **keys_env("no-deepseek"))
    done = router("route", PROMPTS[0], "--config", str(REPO / "config.yaml"), cwd=tmp_path,
                  env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1] == (
        "keys: as a gateway started with this environment, passed over deepseek-chat, "
        "deepseek-reasoner (DEEPSEEK_API_KEY unset); --all-keys decides as if every key were set")
    assert "DEEPSEEK_API_KEY is not set here" in done.stdout
    assert done.stdout.rstrip().splitlines()[-2] == f"config: {REPO / 'config.yaml'} (--config)"
    every = {v: "sk-set" for v in KEY_VARS}
    done = router("route", PROMPTS[0], "--config", str(REPO / "config.yaml"), cwd=tmp_path,
                  env=user_env(tmp_path, **every))
    assert done.stdout.rstrip().splitlines()[-1] == (
        "keys: every model's key is set here, as the gateway started here would have them")
