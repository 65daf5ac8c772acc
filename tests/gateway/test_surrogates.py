"""A lone UTF-16 surrogate in the JSON (``"\\ud83d"``, what JavaScript writes for a string cut in
the middle of an emoji) is accepted: the gateway counts and classifies U+FFFD in its place and
forwards the body to the upstream as received."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
import uuid
from typing import Any

import pytest

from tests.gateway.conftest import GATEWAY_KEY
from tests.gateway.test_errors import CHAT, assert_openai_error, post
from tests.gateway.test_node_client import JS, node_client  # noqa: F401 (a fixture)
from tests.support import Proc


def raw_received(fake: Proc, marker: str) -> str:
    """The last body with ``marker`` as the fake upstream received it (text, escapes intact)."""
    with urllib.request.urlopen(f"{fake.url}/_raw") as resp:
        bodies: list[str] = json.loads(resp.read())
    return next(b for b in reversed(bodies) if marker in b)


def chat_raw(marker: str, content: str, **extra: Any) -> bytes:
    """A chat body whose content is ``content`` written into the JSON verbatim (escapes and
    all), which ``json.dumps`` of a Python string cannot produce for a lone surrogate."""
    rest = "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in extra.items())
    return (f'{{"model": "gpt-4o-mini", "messages": [{{"role": "user", '
            f'"content": "{marker} {content}"}}]{rest}}}').encode()


@pytest.mark.parametrize("escape", ["\\ud83d", "\\uDE00", "ab\\ud83d\\ud83dcd"])
def test_lone_surrogate_is_counted_as_fffd_and_forwarded_as_received(
        gateway: Proc, fake: Proc, escape: str) -> None:
    marker = f"m-{uuid.uuid4().hex[:8]}"
    status, headers, data = post(gateway, CHAT, chat_raw(marker, f"smile {escape}"))
    assert status == 200, data
    # The upstream got the escapes the client sent, with only the model rewritten.
    sent = raw_received(fake, marker)
    assert escape.lower() in sent.lower() and "\ufffd" not in sent
    assert json.loads(sent)["model"] == "gpt-4o-mini"
    # Counted as the same text with U+FFFD, which is what the upstream billed.
    replaced = escape.encode().decode("unicode_escape").encode("utf-16", "surrogatepass") \
        .decode("utf-16", "replace")
    status2, headers2, data2 = post(gateway, CHAT, {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": f"{marker} smile {replaced}"}]})
    assert status2 == 200, data2
    assert headers["x-router-prompt-tokens"] == headers2["x-router-prompt-tokens"] \
        == str(data["usage"]["prompt_tokens"])


def test_lone_surrogate_in_a_stream_and_in_embeddings(gateway: Proc, fake: Proc) -> None:
    marker = f"s-{uuid.uuid4().hex[:8]}"
    req = urllib.request.Request(f"{gateway.url}{CHAT}", method="POST",
                                 data=chat_raw(marker, "cut \\ud83d", stream=True),
                                 headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        text = resp.read().decode()
    assert text.rstrip().endswith("data: [DONE]") and '"error"' not in text
    sent = raw_received(fake, marker)
    assert "\\ud83d" in sent and json.loads(sent)["stream_options"] == {"include_usage": True}
    body = (f'{{"model": "text-embedding-3-small", "input": ["{marker} \\ud83d", "ok"]}}').encode()
    status, _, data = post(gateway, "/v1/embeddings", body)
    assert status == 200, data
    assert "\\ud83d" in raw_received(fake, marker + " \\ud83d")


def test_route_classifies_a_lone_surrogate_as_fffd(gateway: Proc) -> None:
    question = "Prove that there are infinitely many primes, then explain it to a child "
    with_escape = (f'{{"model": "auto", "messages": [{{"role": "user", '
                   f'"content": "{question}\\ud83d"}}]}}').encode()
    with_fffd = {"model": "auto", "messages": [{"role": "user", "content": question + "\ufffd"}]}
    status, _, a = post(gateway, "/v1/route", with_escape)
    assert status == 200, a
    status, _, b = post(gateway, "/v1/route", with_fffd)
    assert status == 200, b
    assert (a["task"], a["prompt_tokens"], a["model"]) == (b["task"], b["prompt_tokens"], b["model"])
    assert a["task"]["confidence"] is not None


@pytest.mark.parametrize("body", [
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\\ud83d"}], "n": NaN}',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\\ud83d \xff"}]}',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\\ud83d"}], "t": 1e999}',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\\ud83d"}]',
    b'{"model": "gpt-4o-mini", "x": ' + b"[" * 5000 + b'"\\ud83d"' + b"]" * 5000 + b"}",
])
def test_other_invalid_json_with_a_lone_surrogate_is_still_refused(gateway: Proc,
                                                                    body: bytes) -> None:
    status, _, payload = post(gateway, CHAT, body)
    assert status == 400
    assert_openai_error(payload, "invalid_request_error", "invalid_json")


def test_npm_sdk_string_cut_mid_emoji(node_client: str, gateway: Proc, fake: Proc) -> None:  # noqa: F811
    marker = f"js-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "OPENAI_BASE_URL": f"{gateway.url}/v1", "OPENAI_API_KEY": GATEWAY_KEY,
           "MARKER": marker}
    proc = subprocess.run([node_client, "surrogate.mjs"], cwd=JS, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["lone"] == "d83d"
    assert seen["content"].startswith("This is a fake reply")
    assert seen["gatewayPromptTokens"] == seen["promptTokens"] > 0
    assert "\\ud83d" in raw_received(fake, marker)
