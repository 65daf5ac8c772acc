"""Malformed request bodies the gateway itself reads (roles, content parts) get a precise 400 in
OpenAI's shape, on the proxy endpoints and on ``POST /v1/route``; never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.test_errors import CHAT, assert_openai_error, post
from tests.support import Proc

BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    # issue 16, point 5: an object or array as a role (TypeError in validate.py)
    ({"model": "auto", "messages": [{"role": {}}]}, "messages[0].role"),
    ({"model": "auto", "messages": [{"role": []}]}, "messages[0].role"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}, {"role": [1]}]},
     "messages[1].role"),
    # issue 16, point 6: an object as a content part's type (TypeError in classify/messages.py)
    ({"model": "gpt-4o-mini",
      "messages": [{"role": "user", "content": [{"type": {}, "text": "x"}]}]},
     "messages[0].content[0].type"),
    ({"model": "auto", "messages": [{"role": "user", "content": [{"type": ["text"]}]}]},
     "messages[0].content[0].type"),
    ({"model": "auto", "messages": [{"role": "user", "content": [{"text": "x"}]}]},
     "messages[0].content[0].type"),
    ({"model": "auto", "messages": [{"role": "user", "content": ["x", 7]}]},
     "messages[0].content[0]"),
]


@pytest.mark.parametrize(("body", "param"), BAD_BODIES, ids=lambda v: str(v)[:60])
@pytest.mark.parametrize("path", [CHAT, "/v1/route"])
def test_malformed_roles_and_parts_get_a_precise_400(gateway: Proc, path: str,
                                                     body: dict[str, Any], param: str) -> None:
    status, _, payload = post(gateway, path, body)
    assert status == 400, payload
    err = assert_openai_error(payload, "invalid_request_error")
    assert err["param"] == param


def test_classifier_reads_a_part_with_an_unhashable_type() -> None:
    """The classifier's text extraction never raises (its contract), whatever a part holds:
    ``router classify`` and library callers pass bodies the gateway has not checked."""
    from router.classify.messages import content_text, extract

    assert content_text([{"type": {}, "text": "x"}, {"type": [], "text": "y"}]) == ""
    assert extract([{"role": "user", "content": [{"type": {"a": 1}, "text": "x"}]}]).main == ""


def test_a_body_litellm_cannot_translate_is_a_400_not_a_connection_failure(gateway: Proc) -> None:
    """litellm reports its own failure to translate a request (here a KeyError: a system
    message without content, for Anthropic) as a connection error; nothing was sent, so it is
    the request's fault (400), not an unreachable upstream (502) to retry or hold against the
    model's health. Found by the fuzzer (tests/gateway/test_fuzz.py)."""
    status, headers, payload = post(gateway, CHAT, {"model": "claude-fake",
                                                    "messages": [{"role": "system"}]})
    assert status == 400, payload
    err = assert_openai_error(payload, "invalid_request_error")
    assert "could not be translated for anthropic" in err["message"]
    assert headers["x-router-attempts"] == "1"
