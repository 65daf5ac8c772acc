"""Every bad input gets its status and an OpenAI-shaped error; never a 500 or a traceback."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest

from tests.gateway.conftest import ENV, GATEWAY_KEY, LIMITED_KEY
from tests.support import Proc


def post(gateway: Proc, path: str, body: bytes | dict[str, Any], *, key: str | None = GATEWAY_KEY,
         headers: dict[str, str] | None = None, method: str = "POST") -> tuple[int, dict[str, str], Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(f"{gateway.url}{path}", data=data if method == "POST" else None,
                                 method=method)
    req.add_header("Content-Type", "application/json")
    if key is not None:
        req.add_header("Authorization", f"Bearer {key}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def assert_openai_error(payload: Any, type_: str, code: str | None = None) -> dict[str, Any]:
    assert set(payload) == {"error"}, payload
    err = payload["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert err["type"] == type_, err
    if code is not None:
        assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    assert "Traceback" not in err["message"]
    return dict(err)


CHAT = "/v1/chat/completions"
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": 7, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "gpt-4o-mini"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages"),
        ({"model": "gpt-4o-mini", "messages": ["hi"]}, "messages[0]"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({**HELLO, "stream": "yes"}, "stream"),
        ({**HELLO, "max_tokens": 0}, "max_tokens"),
        ({**HELLO, "max_tokens": "ten"}, "max_tokens"),
        ({**HELLO, "n": 0}, "n"),
    ],
)
def test_invalid_requests_get_400(gateway: Proc, body: bytes | dict[str, Any], param: str | None) -> None:
    status, headers, payload = post(gateway, CHAT, body)
    assert status == 400
    err = assert_openai_error(payload, "invalid_request_error")
    assert err["param"] == param
    assert headers["x-request-id"]


def test_malformed_json_code(gateway: Proc) -> None:
    status, _, payload = post(gateway, CHAT, b'{"model": ')
    assert status == 400
    assert_openai_error(payload, "invalid_request_error", "invalid_json")


def test_missing_and_unknown_keys_get_401(client: openai.OpenAI, gateway: Proc) -> None:
    status, _, payload = post(gateway, CHAT, HELLO, key=None)
    assert status == 401
    assert_openai_error(payload, "authentication_error", "invalid_api_key")
    bad = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_unknown_model_gets_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    body: Any = info.value.body
    assert body["code"] == "model_not_found" and body["param"] == "model"


def test_model_not_allowed_for_key_gets_403(gateway: Proc) -> None:
    limited = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=LIMITED_KEY, max_retries=0)
    limited.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.PermissionDeniedError):
        limited.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])


def test_body_over_limit_gets_413(gateway: Proc) -> None:
    big = {**HELLO, "messages": [{"role": "user", "content": "x" * 70_000}]}
    status, _, payload = post(gateway, CHAT, big)
    assert status == 413
    assert_openai_error(payload, "invalid_request_error", "request_too_large")


def test_context_too_long_gets_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny-context", max_tokens=30,
                                       messages=[{"role": "user", "content": "word " * 20}])
    body: Any = info.value.body
    assert body["code"] == "context_length_exceeded"


def test_upstream_timeout_gets_504(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="slow", messages=[{"role": "user", "content": "[[fake:delay=2]]"}])
    assert info.value.status_code == 504
    body: Any = info.value.body
    assert body["type"] == "upstream_timeout"


def test_upstream_failure_after_retries_gets_502_with_upstream_status(gateway: Proc) -> None:
    status, headers, payload = post(gateway, CHAT, {**HELLO, "model": "broken-alone"})
    assert status == 502
    err = assert_openai_error(payload, "upstream_error")
    assert "503" in err["message"] and "overloaded" in err["message"]
    assert headers["x-router-attempts"] == "2"  # 1 try + 1 retry


def test_upstream_key_is_never_revealed(gateway: Proc) -> None:
    status, _, payload = post(gateway, CHAT, {**HELLO, "model": "wrong-key"})
    assert status == 502
    err = assert_openai_error(payload, "upstream_error")
    assert "401" in err["message"]
    secret = ENV["WRONG_UPSTREAM_KEY"]
    assert secret not in json.dumps(payload) and secret[:12] not in json.dumps(payload)
    assert secret not in gateway.log()


def test_retry_then_success(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "[[fake:fail_times=2,id=retry-1]]"}])
    assert raw.headers["x-router-attempts"] == "3"
    assert raw.parse().choices[0].message.content


def test_fallback_to_next_model(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="broken", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-router-model"] == "gpt-4o"
    assert raw.headers["x-router-fallback-from"] == "broken"
    assert raw.headers["x-router-attempts"] == "3"


def test_connection_refused_falls_back(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="dead-host", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-router-model"] == "gpt-4o-mini"


def test_upstream_rejection_is_relayed_with_its_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "[[fake:status=400]]"}])
    assert "Fake failure with status 400" in info.value.message


def test_upstream_non_json_body_gets_502(gateway: Proc) -> None:
    status, _, payload = post(gateway, CHAT, {**HELLO, "messages": [{"role": "user", "content": "[[fake:bad_json]]"}]})
    assert status == 502
    assert_openai_error(payload, "upstream_error")


def test_upstream_drop_gets_502(gateway: Proc) -> None:
    status, _, payload = post(gateway, CHAT, {**HELLO, "model": "broken-alone",
                                              "messages": [{"role": "user", "content": "[[fake:drop_after=0]]"}]})
    assert status == 502
    assert_openai_error(payload, "upstream_error")


def test_model_without_key_gets_503_naming_the_env_var(gateway: Proc) -> None:
    status, headers, payload = post(gateway, CHAT, {**HELLO, "model": "no-key"})
    assert status == 503
    err = assert_openai_error(payload, "service_unavailable")
    assert "ROUTER_TEST_UNSET_KEY" in err["message"]
    assert headers["x-should-retry"] == "false"  # the SDKs would retry a 503 in vain


def test_unknown_path_and_method(gateway: Proc) -> None:
    status, _, payload = post(gateway, "/v1/nothing-here", HELLO)
    assert status == 404
    assert_openai_error(payload, "invalid_request_error", "not_found")
    status, _, payload = post(gateway, CHAT, b"", method="GET")
    assert status == 405
    assert_openai_error(payload, "invalid_request_error", "method_not_allowed")


def test_mid_stream_drop_raises_in_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True,
        messages=[{"role": "user", "content": "[[fake:drop_after=3,tokens=10]]"}])
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            if chunk.choices:
                got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "This is a"
    assert "stream" in str(info.value.message)


def test_errors_logged_once_with_request_id_and_no_traceback(gateway: Proc) -> None:
    status, headers, _ = post(gateway, CHAT, {**HELLO, "model": "broken-alone"},
                              headers={"x-request-id": "trace-abc-123"})
    assert status == 502 and headers["x-request-id"] == "trace-abc-123"
    log = gateway.log()
    assert len(re.findall(r"request_id=trace-abc-123 .*status=502", log)) == 1
    assert "Traceback" not in log
