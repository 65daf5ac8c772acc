"""CORS for browser apps: ``server.cors`` (off by default) answers preflights for its origins
and lets their pages read the answers, streams and errors included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from router.config import ConfigError, config_from_text
from tests.gateway.conftest import ENV, GATEWAY_KEY, write_config
from tests.support import Proc, start_gateway

APP = "https://app.example.com"


@pytest.fixture(scope="module")
def cors_gateway(fake: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("cors")
    config = write_config(tmp, fake.url, server=f"  cors: {{allow_origins: [{APP}]}}")
    gw = start_gateway(config, tmp, env=ENV)
    yield gw
    gw.stop()


def test_preflight_for_an_allowed_origin(cors_gateway: Proc) -> None:
    for path in ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/completions"):
        resp = httpx.options(f"{cors_gateway.url}{path}", headers={
            "origin": APP, "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type, x-api-key, "
                                              "anthropic-version"})
        assert resp.status_code == 200, (path, resp.text)
        assert resp.headers["access-control-allow-origin"] == APP
        assert "POST" in resp.headers["access-control-allow-methods"]
        allowed = resp.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "anthropic-version" in allowed


def test_other_origins_get_no_cors_headers(cors_gateway: Proc) -> None:
    resp = httpx.options(f"{cors_gateway.url}/v1/chat/completions", headers={
        "origin": "https://evil.example.net", "access-control-request-method": "POST"})
    assert resp.status_code == 400
    assert "access-control-allow-origin" not in resp.headers
    resp = httpx.post(f"{cors_gateway.url}/v1/chat/completions",
                      headers={"origin": "https://evil.example.net",
                               "authorization": f"Bearer {GATEWAY_KEY}"},
                      json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 200 and "access-control-allow-origin" not in resp.headers


def test_answers_streams_and_errors_are_readable_by_the_page(cors_gateway: Proc) -> None:
    headers = {"origin": APP, "authorization": f"Bearer {GATEWAY_KEY}"}
    resp = httpx.post(f"{cors_gateway.url}/v1/chat/completions", headers=headers,
                      json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert resp.headers["access-control-allow-origin"] == APP
    exposed = resp.headers["access-control-expose-headers"].lower()
    assert "x-router-model" in exposed and "x-request-id" in exposed
    with httpx.stream("POST", f"{cors_gateway.url}/v1/responses", headers=headers,
                      json={"model": "gpt-4o-mini", "input": "x", "stream": True}) as stream:
        assert stream.headers["access-control-allow-origin"] == APP
        assert "response.completed" in stream.read().decode()
    resp = httpx.post(f"{cors_gateway.url}/v1/messages", headers={"origin": APP},
                      json={"model": "auto", "max_tokens": 5, "messages": []})
    assert resp.status_code == 401 and resp.headers["access-control-allow-origin"] == APP


def test_cors_is_off_by_default(gateway: Proc) -> None:
    resp = httpx.options(f"{gateway.url}/v1/chat/completions", headers={
        "origin": APP, "access-control-request-method": "POST"})
    assert resp.status_code == 405 and "access-control-allow-origin" not in resp.headers


def test_cors_config_is_checked(tmp_path: Path) -> None:
    base = "models: {m: {provider: openai, upstream_model: gpt-4o}}\npolicy: null\n"
    with pytest.raises(ConfigError) as info:
        config_from_text("server:\n  cors: {allow_origins: ['https://app.example.com/']}\n" + base,
                         "config.yaml")
    assert "config.yaml:2" in str(info.value) and "allow_origins" in str(info.value)
    with pytest.raises(ConfigError):
        config_from_text("server:\n  cors: {allow_origins: ['*'], allow_credentials: true}\n"
                         + base, "config.yaml")
