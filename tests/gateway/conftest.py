"""One fake upstream and one gateway process per test session, talking over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support import Proc, start_fake_upstream, start_gateway

GATEWAY_KEY = "sk-test-gateway-key"
LIMITED_KEY = "sk-test-limited-key"

CONFIG = """
server:
  max_body_bytes: 65536
  retry_backoff_base_s: 0.01
  retry_backoff_max_s: 0.05
  shutdown_grace_seconds: 10
  # Off here: the tests below call failing models over and over and count their attempts;
  # tests/gateway/test_circuits.py runs gateways with circuits on.
  circuit_breaker: {{failure_threshold: 0}}
store:
  url: sqlite:///{tmp}/router.db
policy: policy.yaml
auth:
  keys:
    - {{alias: tests, key_env: TEST_GATEWAY_KEY, user: alice, team: search}}
    - {{alias: limited, key_env: TEST_LIMITED_KEY, user: bob, team: ads, models: [gpt-4o-mini]}}
routing:
  default_model: gpt-4o-mini
  default_embedding_model: text-embedding-3-small
models:
  gpt-4o-mini:
    provider: openai
    upstream_model: gpt-4o-mini
    api_base: {fake}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    context_window: 128000
    max_retries: 2
  gpt-4o:
    provider: openai
    upstream_model: gpt-4o
    api_base: {fake}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    # the fake speaks these natively: Responses and Completions requests pass through
    apis: [chat, responses, completions]
  gpt-4:
    provider: openai
    upstream_model: gpt-4
    api_base: {fake}/v1
    api_key_env: FAKE_UPSTREAM_KEY
  tiny-context:
    provider: openai
    upstream_model: gpt-4o-mini
    api_base: {fake}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    context_window: 40
  broken:
    provider: openai
    upstream_model: broken-model
    price: {{input_per_1m: 1.0, output_per_1m: 2.0}}
    api_base: {fake}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    max_retries: 1
    fallbacks: [gpt-4o]
  broken-alone:
    provider: openai
    upstream_model: broken-model
    price: {{input_per_1m: 1.0, output_per_1m: 2.0}}
    api_base: {fake}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    max_retries: 1
  dead-host:
    provider: openai
    upstream_model: gpt-4o-mini
    api_base: http://127.0.0.1:{dead_port}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    max_retries: 1
    fallbacks: [gpt-4o-mini]
  wrong-key:
    provider: openai
    upstream_model: gpt-4o-mini
    api_base: {fake}/v1
    api_key_env: WRONG_UPSTREAM_KEY
    max_retries: 0
  slow:
    provider: openai
    upstream_model: gpt-4o-mini
    api_base: {fake}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    max_retries: 0
    timeout: {{connect: 1, read: 0.5, total: 5}}
  no-key:
    provider: openai
    upstream_model: gpt-4o-mini
    api_base: {fake}/v1
    api_key_env: ROUTER_TEST_UNSET_KEY
  claude-fake:
    provider: anthropic
    upstream_model: claude-haiku-4-5
    api_base: {fake}
    api_key_env: FAKE_UPSTREAM_KEY
    max_retries: 0
  text-embedding-3-small:
    provider: openai
    mode: embedding
    upstream_model: text-embedding-3-small
    api_base: {fake}/v1
    api_key_env: FAKE_UPSTREAM_KEY
"""

POLICY = """
version: 1
tasks:
  reasoning: {min_capability: 60}
  expression: {min_capability: 40}
low_confidence: {below: 0.6, treat_as: all_tasks}
when_none_qualify: most_capable
models:
  gpt-4o-mini: {reasoning: 40, expression: 45}
  gpt-4o: {reasoning: 70, expression: 70}
  claude-fake: {reasoning: 72, expression: 72}
reference_model: gpt-4o
constraints: {max_cost_per_request_usd: 1.0, max_fallbacks: 2}
routes:
  auto-best: {objective: most_capable}
"""

ENV = {
    "TEST_GATEWAY_KEY": GATEWAY_KEY,
    "TEST_LIMITED_KEY": LIMITED_KEY,
    "FAKE_UPSTREAM_KEY": "sk-fake-upstream-secret-0001",
    "WRONG_UPSTREAM_KEY": "sk-wrong-upstream-secret-0002",
}


@pytest.fixture(scope="session")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_fake_upstream(tmp_path_factory.mktemp("fake"))
    yield proc
    proc.stop()


def write_config(tmp: Path, fake_url: str, *, policy: str = POLICY,
                 store: str | None = None, extra: str = "", server: str = "") -> Path:
    """A config for the test catalogue (all models on the fake upstream) and its policy.

    ``store``: a store URL instead of the SQLite file in ``tmp``; ``extra``: YAML appended to
    the ``store:`` section (indented two spaces); ``server``: the same for ``server:``."""
    from tests.support import free_port

    path = tmp / "config.yaml"
    text = CONFIG.format(tmp=tmp, fake=fake_url, dead_port=free_port())
    if server:
        text = text.replace("server:\n", "server:\n" + server.rstrip() + "\n", 1)
    if store is not None:
        text = text.replace(f"url: sqlite:///{tmp}/router.db", f"url: {store}")
    if extra:
        text = text.replace("policy: policy.yaml", extra.rstrip() + "\npolicy: policy.yaml")
    path.write_text(text)
    (tmp / "policy.yaml").write_text(policy)
    return path


@pytest.fixture(scope="session")
def gateway(fake: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("gateway")
    proc = start_gateway(write_config(tmp, fake.url), tmp, env=ENV)
    yield proc
    proc.stop()


@pytest.fixture()
def client(gateway: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0,
                         timeout=20)
