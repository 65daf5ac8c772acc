"""A second client: the official ``openai`` npm package on Node.js (tests/js/client.mjs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.gateway.conftest import GATEWAY_KEY
from tests.support import REPO, Proc

JS = REPO / "tests" / "js"


@pytest.fixture(scope="module")
def node_client() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (.ci/run installs it)")
    if not (JS / "node_modules" / "openai").is_dir():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed to install the openai package for this test"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True,
                       capture_output=True, timeout=300)
    return node


def test_openai_npm_package(node_client: str, gateway: Proc) -> None:
    env = {**os.environ, "OPENAI_BASE_URL": f"{gateway.url}/v1", "OPENAI_API_KEY": GATEWAY_KEY}
    proc = subprocess.run([node_client, "client.mjs"], cwd=JS, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["content"].startswith("This is a fake reply")
    assert seen["promptTokens"] > 0
    assert seen["routedModel"] == "gpt-4o-mini" and seen["requestId"].startswith("req_")
    assert seen["streamText"] == "This is a fake reply" and seen["streamUsage"] == 5
    assert "auto" in seen["models"] and "gpt-4o" in seen["models"]
    assert seen["embeddingLength"] == 8
    assert (seen["errorStatus"], seen["errorCode"]) == (404, "model_not_found")


def test_openai_npm_responses(node_client: str, gateway: Proc) -> None:
    env = {**os.environ, "OPENAI_BASE_URL": f"{gateway.url}/v1", "OPENAI_API_KEY": GATEWAY_KEY}
    proc = subprocess.run([node_client, "responses.mjs"], cwd=JS, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    for model in ("gpt-4o", "gpt-4o-mini"):
        r = seen[model]
        assert r["text"] == "This is a fake" and r["outputTokens"] == 4
        assert r["types"][0] == "response.created" and r["types"][-1] == "response.completed"
        assert r["streamText"] == "This is a fake reply"
        assert r["call"] == {"type": "function_call", "name": "get_weather",
                             "args": {"location": "Paris"}}
        assert r["afterTool"].startswith("This is a fake reply")
    assert seen["continued"].startswith("Continuing:") and seen["continuedOn"] == "gpt-4o"
    assert (seen["unknownStatus"], seen["unknownCode"]) == (400, "previous_response_not_found")
