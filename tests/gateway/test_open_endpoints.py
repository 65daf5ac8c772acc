"""Endpoints open to anyone: ``/metrics`` (spend per key alias and team) can require a bearer
token (``server.metrics_auth``), and the OpenAPI schema (which lists the admin API) and its
viewers are off unless ``server.api_docs`` turns them on."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from router.auth import MetricsAuth
from router.errors import AuthenticationFailed
from tests.gateway.conftest import ENV, write_config
from tests.gateway.test_errors import CHAT, HELLO, assert_openai_error, post
from tests.support import Proc, start_gateway

TOKEN = "metrics-token-0123456789abcdef"


def get(gw: Proc, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"{gw.url}{path}")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
def test_schema_and_viewers_are_off_by_default(gateway: Proc, path: str) -> None:
    status, _, body = get(gateway, path)
    assert status == 404
    assert_openai_error(json.loads(body), "invalid_request_error", "not_found")


def test_metrics_stay_open_without_metrics_auth(gateway: Proc) -> None:
    status, _, body = get(gateway, "/metrics")
    assert status == 200 and b"router_requests_total" in body


@pytest.fixture(scope="module")
def guarded(fake: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    tmp: Path = tmp_path_factory.mktemp("open-endpoints")
    server = "  metrics_auth: {token_env: TEST_METRICS_TOKEN}\n  api_docs: true\n"
    proc = start_gateway(write_config(tmp, fake.url, server=server), tmp,
                         env={**ENV, "TEST_METRICS_TOKEN": TOKEN})
    yield proc
    proc.stop()
    assert TOKEN not in proc.log()


def test_metrics_need_the_bearer_token(guarded: Proc) -> None:
    assert post(guarded, CHAT, HELLO)[0] == 200  # some spend to show
    for token in (None, "wrong", TOKEN[:-1]):
        status, headers, body = get(guarded, "/metrics", token)
        assert status == 401, token
        err = assert_openai_error(json.loads(body), "authentication_error")
        assert TOKEN not in err["message"] and "TEST_METRICS_TOKEN" in err["message"]
        assert headers["www-authenticate"].startswith("Bearer")
        assert b"router_spend" not in body
    status, _, body = get(guarded, "/metrics", TOKEN)
    assert status == 200 and b'router_spend_microdollars_total{key="tests"' in body


def test_schema_and_viewers_when_enabled(guarded: Proc) -> None:
    status, _, body = get(guarded, "/openapi.json")
    assert status == 200
    schema: dict[str, Any] = json.loads(body)
    assert "/v1/models" in schema["paths"] and "/admin/keys" in schema["paths"]
    for path in ("/docs", "/redoc"):
        status, headers, body = get(guarded, path)
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b"/openapi.json" in body


def test_metrics_auth_without_its_token_refuses_every_scrape() -> None:
    """A configured token variable that is unset at start fails closed."""
    auth = MetricsAuth(None, required=True, token_env="ROUTER_METRICS_TOKEN")
    for headers in ({}, {"authorization": "Bearer "}, {"authorization": "Bearer anything"}):
        with pytest.raises(AuthenticationFailed, match="ROUTER_METRICS_TOKEN is not set"):
            auth.check(headers)
    MetricsAuth(None, required=False).check({})  # off: anyone
