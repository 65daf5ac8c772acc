"""Which APIs and features each catalogue model has: litellm's map, provider defaults, config."""

from __future__ import annotations

from router.capabilities import lacks, resolve_all
from router.config import config_from_text
from router.upstream.base import build_target, endpoint_url

CONFIG = """
policy: null
models:
  claude: {provider: anthropic, upstream_model: claude-haiku-4-5}
  gpt-5: {provider: openai, upstream_model: gpt-5}
  instruct: {provider: openai, upstream_model: gpt-3.5-turbo-instruct}
  gpt-4: {provider: openai, upstream_model: gpt-4}
  local: {provider: vllm, upstream_model: my-llama, api_base: "http://10.0.0.1:8000/v1",
          price: {input_per_1m: 0.1, output_per_1m: 0.1}}
  local-vision-off:
    provider: vllm
    upstream_model: my-llama
    api_base: "http://10.0.0.1:8000/v1"
    price: {input_per_1m: 0.1, output_per_1m: 0.1}
    apis: [chat, completions]
    supports: {vision: false}
"""


def test_apis_and_features_per_model() -> None:
    serving = resolve_all(config_from_text(CONFIG))
    assert serving["claude"].apis == {"messages", "chat"}
    assert serving["claude"].supports["vision"] and not serving["claude"].supports["logprobs"]
    assert {"chat", "responses"} <= serving["gpt-5"].apis
    assert serving["instruct"].apis == {"completions"}
    gpt4 = serving["gpt-4"]
    assert gpt4.supports["tools"] and not gpt4.supports["vision"]
    assert not gpt4.supports["json_schema"] and gpt4.source == "litellm"
    why = lacks(gpt4, ("vision", "tools"))
    assert why is not None and "images" in why and "supports.vision" in why
    assert "tools" not in why.split("(")[0]
    local = serving["local"]  # unknown to the map: assumed able, upstream answers for itself
    assert local.apis == {"chat"} and all(local.supports.values()) and local.source == "assumed"
    off = serving["local-vision-off"]
    assert off.apis == {"chat", "completions"} and off.supports["vision"] is False
    assert off.source == "config"


def test_endpoint_urls() -> None:
    cfg = config_from_text(CONFIG)
    claude = build_target("claude", cfg.models["claude"], {})
    assert endpoint_url(claude.api_base, "messages") == "https://api.anthropic.com/v1/messages"
    assert endpoint_url("https://proxy/v1", "messages/count_tokens") == \
        "https://proxy/v1/messages/count_tokens"
    assert endpoint_url("https://api.openai.com/v1", "responses") == \
        "https://api.openai.com/v1/responses"


def test_native_apis_other_than_chat_need_the_http_pass_through() -> None:
    import pytest

    from router.config import ConfigError

    bad = ("policy: null\nmodels:\n  g:\n    provider: gemini\n    upstream_model: gemini-2.5-flash\n"
           "    apis: [chat, responses]\n")
    with pytest.raises(ConfigError) as info:
        config_from_text(bad, "config.yaml")
    assert "config.yaml:6: models.g.apis[1]" in str(info.value) and "pass-through" in str(info.value)
    serving = resolve_all(config_from_text(bad.replace(", responses", "")))
    assert serving["g"].apis == {"chat"}
    # litellm's map lists endpoints of its own proxy: not what a litellm-path model serves
    gem = "policy: null\nmodels:\n  g: {provider: gemini, upstream_model: gemini-2.5-flash}\n"
    assert resolve_all(config_from_text(gem))["g"].apis == {"chat"}
