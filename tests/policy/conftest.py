"""A small synthetic catalogue (explicit prices and limits, no litellm map) and its policy."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from router.auth import Caller
from router.config import Config, config_from_text
from router.costs.pricing import PricedModel, resolve_catalogue
from router.policy.compile import Policy, policy_from_text

REPO = Path(__file__).resolve().parents[2]

CONFIG = """
auth:
  keys:
    - {alias: dev, key_sha256: "@H1@", user: alice, team: search}
    - {alias: limited, key_sha256: "@H2@", user: bob, team: ads, models: [small, mid]}
models:
  tiny:
    {provider: openai, upstream_model: tiny, context_window: 8000, max_output_tokens: 2000,
     price: {input_per_1m: 0.05, output_per_1m: 0.1}}
  small:
    {provider: openai, upstream_model: small, context_window: 128000, max_output_tokens: 16000,
     price: {input_per_1m: 0.1, output_per_1m: 0.4}}
  mid:
    {provider: deepseek, upstream_model: mid, context_window: 64000, max_output_tokens: 8000,
     price: {input_per_1m: 0.3, output_per_1m: 0.5}, fallbacks: [small]}
  think:
    {provider: deepseek, upstream_model: think, context_window: 64000, max_output_tokens: 32000,
     price: {input_per_1m: 0.3, output_per_1m: 0.5}}
  big:
    {provider: anthropic, upstream_model: big, context_window: 200000, max_output_tokens: 64000,
     price: {input_per_1m: 3, output_per_1m: 15}, fallbacks: [mid, small]}
  huge-ctx:
    {provider: gemini, upstream_model: hc, context_window: 1000000, max_output_tokens: 32000,
     price: {input_per_1m: 1, output_per_1m: 4}}
  embed:
    {provider: openai, mode: embedding, upstream_model: e, context_window: 8191,
     max_output_tokens: 1, price: {input_per_1m: 0.02}}
""".replace("@H1@", "1" * 64).replace("@H2@", "2" * 64)

POLICY = """\
version: 1
tasks:
  reasoning: {min_capability: 70}
  expression: {min_capability: 50}
models:
  tiny: {reasoning: 20, expression: 40}
  small: {reasoning: 50, expression: 60}
  mid: {reasoning: 72, expression: 70}
  think: {reasoning: 85, expression: 75, output_multiplier: 3}
  big: {reasoning: 90, expression: 92}
  huge-ctx: {reasoning: 80, expression: 80}
"""


@dataclass(frozen=True)
class Guess:
    """A classification (the engine takes it as a fact; this stands in for the classifier)."""

    task: str
    confidence: float
    signals: tuple[str, ...] = ()


DEV = Caller("dev", "alice", "search", None)
LIMITED = Caller("limited", "bob", "ads", frozenset({"small", "mid"}))


@pytest.fixture(scope="session")
def cfg() -> Config:
    return config_from_text(CONFIG, "test-config.yaml")


@pytest.fixture(scope="session")
def cat(cfg: Config) -> dict[str, PricedModel]:
    return resolve_catalogue(cfg, price_map={})


def make(extra: str = "", base: str = POLICY, *, cfg: Config | None = None,
         cat: dict[str, PricedModel] | None = None, path: str = "p.yaml") -> Policy:
    """The base policy with ``extra`` YAML appended (top-level sections)."""
    config = cfg or config_from_text(CONFIG, "test-config.yaml")
    catalogue = cat or resolve_catalogue(config, price_map={})
    return policy_from_text(base + textwrap.dedent(extra), config, catalogue, path=path)


@pytest.fixture(scope="session")
def policy(cfg: Config, cat: dict[str, PricedModel]) -> Policy:
    return make(cfg=cfg, cat=cat)
