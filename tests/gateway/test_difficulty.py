"""Difficulty-aware routing in the running gateway: the decision, its headers, /v1/route's
explanation and the classification metric's difficulty band."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.gateway.conftest import ENV, GATEWAY_KEY, POLICY, write_config
from tests.support import Proc, start_gateway

# The shared test policy with a difficulty section: an easy chat prompt's expression bar (40)
# drops below gpt-4o-mini's 45... it already meets 40, so raise the bar to 50: then only an easy
# prompt lets gpt-4o-mini qualify, and a hard one needs more than gpt-4o's 70.
DIFFICULTY_POLICY = POLICY.replace("expression: {min_capability: 40}",
                                   "expression: {min_capability: 50}") + """
difficulty:
  weight: 1.0
  floor: {expression: 42}
"""

EASY = "What is 2 + 2?"
HARD = ("Let p = (1, 2, 5, 4)(2, 3) in S_5. Find the index of <p> in S_5 and the number of "
        "elements of order 6 in S_7, then prove that every group of order 2p with p an odd "
        "prime has a normal subgroup of order p.\nA. 8\nB. 2\nC. 24\nD. 120\nAnswer:")


@pytest.fixture(scope="module")
def gw(fake: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("difficulty")
    proc = start_gateway(write_config(tmp, fake.url, policy=DIFFICULTY_POLICY), tmp, env=ENV)
    yield proc
    proc.stop()


def route(gw: Proc, text: str, task: str) -> dict:
    req = urllib.request.Request(
        f"{gw.url}/v1/route", method="POST", data=json.dumps(
            {"model": "auto", "messages": [{"role": "user", "content": text}]}).encode())
    req.add_header("Authorization", f"Bearer {GATEWAY_KEY}")
    req.add_header("x-router-task", task)
    with urllib.request.urlopen(req, timeout=30) as resp:
        data: dict = json.loads(resp.read())
    return data


def test_an_easy_prompt_goes_below_the_class_bar(gw: Proc) -> None:
    data = route(gw, EASY, "expression")
    d = data["difficulty"]
    assert d["band"] == "easy" and d["value"] < 0.35 and d["estimate"] == "shipped"
    assert d["bars_before"] == {"expression": 50}
    assert data["task"]["bars"]["expression"] < 50  # moved down, to 42 at most
    assert data["model"] == "gpt-4o-mini"
    assert d["signals"] and all(isinstance(s["contribution"], float) for s in d["signals"])


def test_a_hard_prompt_needs_more(gw: Proc) -> None:
    data = route(gw, HARD, "reasoning")
    d = data["difficulty"]
    assert d["band"] == "hard" and d["bars_before"] == {"reasoning": 60}
    assert data["task"]["bars"]["reasoning"] > 60
    assert data["model"] != "gpt-4o-mini"


def test_headers_and_metric_carry_the_difficulty(gw: Proc) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": EASY}],
        extra_headers={"x-router-task": "expression"})
    assert raw.headers["x-router-difficulty-band"] == "easy"
    assert 0 < float(raw.headers["x-router-difficulty"]) < 0.35
    assert raw.headers["x-router-bars"].startswith("expression=")
    assert raw.headers["x-router-model"] == "gpt-4o-mini"
    with urllib.request.urlopen(f"{gw.url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert any(line.startswith("router_classifications_total{") and 'difficulty="easy"' in line
               for line in text.splitlines())


def test_a_policy_without_difficulty_leaves_bars_alone(gateway: Proc) -> None:
    data = route(gateway, EASY, "expression")  # the shared gateway: no difficulty section
    assert data["difficulty"] is None and data["task"]["bars"] == {"expression": 40}


def test_a_refitted_model_file_is_hot_reloaded(fake: Proc, tmp_path: Path) -> None:
    from router.difficulty.model import DEFAULT

    model = DEFAULT.load()
    harder = model.to_json()
    harder["centre"] = model.centre - 3.0  # every prompt 3 log-odds harder
    (tmp_path / "mine.json").write_text(json.dumps(model.to_json()))
    policy = DIFFICULTY_POLICY.replace("  weight: 1.0\n", "  weight: 1.0\n  model: mine.json\n")
    proc = start_gateway(write_config(tmp_path, fake.url, policy=policy), tmp_path, env=ENV)
    try:
        first = route(proc, EASY, "expression")["difficulty"]
        assert first["estimate"].endswith("mine.json") and first["band"] == "easy"
        (tmp_path / "mine.json").write_text(json.dumps(harder))
        from tests.support import wait_until

        wait_until(lambda: route(proc, EASY, "expression")["difficulty"]["band"] == "hard", 10,
                   "the refitted model was not reloaded")
    finally:
        proc.stop()
