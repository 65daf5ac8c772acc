"""docs/budgets.md, "What clients see", against a real gateway: the example responses of the
page (status line, headers, error body) are what a client gets over HTTP and through the
official SDK, and a policy edit applies to the running gateway as the page says."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pytest

from tests.docs.snippets import REPO, blocks
from tests.gateway.conftest import ENV, GATEWAY_KEY, LIMITED_KEY, POLICY, write_config
from tests.support import Proc, start_fake_upstream, start_gateway, wait_until

PAGE = REPO / "docs" / "budgets.md"
# gpt-4o, max_tokens 10, this prompt: 138 µ$ worst case and actual; gpt-4o-mini: 8 µ$.
BIG = {"model": "gpt-4o", "max_tokens": 10,
       "messages": [{"role": "user", "content": "[[fake:tokens=10]] hi"}]}
SMALL = {"model": "gpt-4o-mini", "max_tokens": 10,
         "messages": [{"role": "user", "content": "[[fake:tokens=10]] hi"}]}
BUDGETS = POLICY + """
budgets:
  keys:
    tests: {daily: {limit_usd: 0.0003}}      # two requests of 138 µ$, not three
    limited: {total: {limit_usd: 0.00001}}   # one request of 8 µ$, not two
"""
RATES = POLICY + """
rate_limits:
  keys: {limited: {requests_per_minute: 1}}
"""


def example(kind: str) -> tuple[int, dict[str, str], dict[str, object]]:
    """The page's example response marked ``<!-- http-example: kind -->``."""
    found = [b for b in blocks(PAGE.read_text(), "budgets.md")
             if b.lang == "http" and b.marker == f"<!-- http-example: {kind} -->"]
    assert len(found) == 1, f"no single http example {kind!r} in {PAGE}"
    head, _, body = found[0].text.partition("\n\n")
    status_line, *header_lines = head.split("\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, json.loads(body)


def template(message: str) -> re.Pattern[str]:
    """The example's message with its names, amounts, times and counts as wildcards."""
    out = re.escape(message)
    out = re.sub(r"'[^']*'", "'[^']+'", out)
    out = re.sub(r"\d{4}\\-\d\d\\-\d\dT\d\d:\d\d:\d\d\\\+00:00", r"[0-9T:+-]+", out)
    out = re.sub(r"\\\$\d+\\\.\d+", r"\\$\\d+\\.\\d{6}", out)
    out = re.sub(r"\d+\\\.\d+s", r"\\d+(\\.\\d+)?s", out)
    out = re.sub(r"\(\d+\\\)", r"(\\d+\\)", out)
    out = re.sub(r"(global|team|user|key)(?=\\ ')", "(global|team|user|key)", out)
    return re.compile(out)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Path]]:
    tmp = tmp_path_factory.mktemp("client-view")
    fake = start_fake_upstream(tmp)
    gw = start_gateway(write_config(tmp, fake.url, policy=BUDGETS), tmp, env=ENV)
    try:
        yield gw, tmp
    finally:
        gw.stop()
        fake.stop()


def post(gw: Proc, key: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}"})


def test_over_budget_is_the_pages_example(gateway: tuple[Proc, Path]) -> None:
    gw, _ = gateway
    status, headers, body = example("budget_exceeded")
    for _ in range(2):
        ok = post(gw, GATEWAY_KEY, BIG)
        assert ok.status_code == 200, ok.text
        assert ok.headers["x-router-cost-usd"] == "0.000138"
        assert "x-router-cost-estimate-usd" in ok.headers
    sent = datetime.now(UTC)
    r = post(gw, GATEWAY_KEY, BIG)
    assert r.status_code == status == 429
    got = r.json()
    assert got.keys() == body.keys() == {"error"}
    want = body["error"]
    assert isinstance(want, dict)
    assert got["error"].keys() == want.keys()
    for field in ("type", "code", "param"):
        assert got["error"][field] == want[field], field
    assert got["error"]["type"] == "budget_exceeded"
    assert template(want["message"]).fullmatch(got["error"]["message"]), got["error"]["message"]
    assert "the daily budget of key 'tests' is $0.000300; $0.000276 is spent or reserved and " \
           "this request needs up to $0.000138" in got["error"]["message"]
    # Retry-After: seconds until the window resets (midnight UTC, the store's zone here)
    assert set(headers) <= set(r.headers)
    midnight = (sent + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert abs(int(r.headers["retry-after"]) - (midnight - sent).total_seconds()) <= 5


def test_the_sdk_raises_rate_limit_error_and_tells_budget_from_rate(
        gateway: tuple[Proc, Path]) -> None:
    gw, _ = gateway
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=LIMITED_KEY, max_retries=0)
    client.chat.completions.create(**SMALL)  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(**SMALL)  # type: ignore[call-overload]
    assert exc.value.status_code == 429
    assert exc.value.code == "budget_exceeded" and exc.value.type == "budget_exceeded"
    assert "the total budget of key 'limited'" in exc.value.message
    # a total budget never resets: no Retry-After
    assert "retry-after" not in exc.value.response.headers


def test_a_rate_limit_after_a_policy_edit_is_the_pages_example(
        gateway: tuple[Proc, Path]) -> None:
    """The page: a saved policy applies within 2 seconds; removing a budget stops enforcing it;
    over a rate limit: 429 rate_limit_exceeded with Retry-After in whole seconds."""
    gw, tmp = gateway
    assert post(gw, LIMITED_KEY, SMALL).status_code == 429  # the spent total budget
    (tmp / "policy.yaml").write_text(RATES)
    wait_until(lambda: post(gw, LIMITED_KEY, SMALL).status_code == 200, timeout=30,
               interval=0.2, msg="the edited policy was not applied")
    status, headers, body = example("rate_limit_exceeded")
    r = post(gw, LIMITED_KEY, SMALL)
    assert r.status_code == status == 429
    want = body["error"]
    assert isinstance(want, dict)
    got = r.json()["error"]
    assert got.keys() == want.keys()
    assert (got["type"], got["code"], got["param"]) == (want["type"], want["code"], want["param"])
    assert got["type"] == "rate_limit_exceeded"
    assert template(want["message"]).fullmatch(got["message"]), got["message"]
    assert set(headers) <= set(r.headers)
    assert 1 <= int(r.headers["retry-after"]) <= 60
