"""The pre-call prompt token count equals what OpenAI bills as ``usage.prompt_tokens``."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from router.tokens import (
    EST_PER_CJK,
    count_chat_tokens,
    count_embedding_input,
    encoding_for,
    estimate_tokens,
)

COOKBOOK_MESSAGES = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
]
COOKBOOK_TOOLS = [{"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "description": "The unit of temperature to return",
                 "enum": ["celsius", "fahrenheit"]}},
        "required": ["location"]}}}]
COOKBOOK_TOOL_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize(("model", "expected"), [
    ("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124),
])
def test_cookbook_figures_measured_on_openai_api(model: str, expected: int) -> None:
    """Figures the OpenAI API returned, as published in the OpenAI cookbook."""
    assert count_chat_tokens({"messages": COOKBOOK_MESSAGES}, encoding_for(model)) == expected


@pytest.mark.parametrize(("model", "expected"), [
    ("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101),
])
def test_cookbook_tool_figures(model: str, expected: int) -> None:
    body = {"messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS}
    assert count_chat_tokens(body, encoding_for(model)) == expected


SHAPES: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "user", "content": "请把下面这段话翻译成英文:今天天气很好,我们去公园散步吧。"}],
    [{"role": "system", "content": "你是一个乐于助人的助手。"},
     {"role": "user", "content": "解方程 x^2 - 5x + 6 = 0,并说明步骤。"},
     {"role": "assistant", "content": "x = 2 或 x = 3。"},
     {"role": "user", "content": "Now explain it in English, step by step."}],
    [{"role": "developer", "content": "Answer in JSON."},
     {"role": "user", "name": "carol", "content": "List three prime numbers."}],
    [{"role": "user", "content": [{"type": "text", "text": "Describe this image:"},
                                  {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}]}],
    [{"role": "user", "content": "Code:\n```python\nprint('<|endoftext|>')\n```\nWhat does it print?"}],
    COOKBOOK_MESSAGES,
]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4"])
@pytest.mark.parametrize("messages", SHAPES)
def test_pre_call_count_equals_upstream_prompt_tokens(client: openai.OpenAI, model: str,
                                                      messages: list[dict[str, Any]]) -> None:
    if model == "gpt-4" and "image_url" in str(messages):  # gpt-4 takes no images (litellm's map)
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
        assert info.value.code == "model_cannot_serve"
        return
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)  # type: ignore[arg-type]
    usage = raw.parse().usage
    assert usage is not None
    assert int(raw.headers["x-router-prompt-tokens"]) == usage.prompt_tokens


def test_tools_count_matches_upstream(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=COOKBOOK_TOOL_MESSAGES, tools=COOKBOOK_TOOLS)  # type: ignore[arg-type]
    usage = raw.parse().usage
    assert usage is not None and usage.prompt_tokens == 101
    assert raw.headers["x-router-prompt-tokens"] == "101"


def test_special_token_text_does_not_break_counting() -> None:
    assert count_chat_tokens({"messages": [{"role": "user", "content": "<|endoftext|>"}]}, "o200k_base") > 7


def test_odd_shapes_never_raise() -> None:
    body: dict[str, Any] = {"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "..."}}, 3]}],
        "tools": [{"type": "function"}, "junk"]}
    assert count_chat_tokens(body, "o200k_base") > 0
    assert count_chat_tokens(body, "estimate") > 0


def test_embedding_inputs() -> None:
    assert count_embedding_input("hello world", "cl100k_base") == 2
    assert count_embedding_input(["hello", "world"], "cl100k_base") == 2
    assert count_embedding_input([1, 2, 3], "cl100k_base") == 3
    assert count_embedding_input([[1, 2], [3]], "cl100k_base") == 3


def test_family_encodings() -> None:
    assert encoding_for("gpt-4o-2024-08-06") == "o200k_base"
    assert encoding_for("o3-mini") == "o200k_base"
    assert encoding_for("gpt-4.1-nano") == "o200k_base"
    assert encoding_for("gpt-4-turbo") == "cl100k_base"
    assert encoding_for("gpt-3.5-turbo") == "cl100k_base"
    assert encoding_for("deepseek-chat", "deepseek") == "deepseek"
    assert encoding_for("meta-llama/Llama-3.1-8B-Instruct", "vllm") == "estimate"


def test_chinese_estimate_against_tiktoken() -> None:
    """The calibrated estimate stays within 25% of cl100k on Chinese text; the seed's
    '1 汉字 ≈ 2 tokens' rule over-counts modern tokenizers (documented in router/tokens.py)."""
    from router.tokens import count_text_tokens

    text = "联邦小模型的思路是在应用侧做好分发,用最便宜且足够好的模型完成每个任务,从而花小模型的钱享大模型的福。"
    cl100k = count_text_tokens(text, "cl100k_base")
    o200k = count_text_tokens(text, "o200k_base")
    assert abs(estimate_tokens(text) - cl100k) / cl100k < 0.25
    hanzi = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    assert 2 * hanzi > 1.2 * cl100k and 2 * hanzi > 1.6 * o200k
    assert EST_PER_CJK < 2


def test_cached_system_prompt_and_role_counts_equal_fresh_counts() -> None:
    from router import tokens

    count = tokens.text_counter("o200k_base")
    for i in range(tokens.CACHE_TEXTS + 20):  # more distinct system prompts than the cache keeps
        system = f"You are assistant number {i}. 你好，请简洁回答。" * (1 + i % 3)
        body = {"messages": [{"role": "system", "content": system},
                             {"role": "user", "name": f"u{i}", "content": "Hi"}]}
        expected = (tokens.REPLY_PRIMING + 2 * tokens.TOKENS_PER_MESSAGE + count("system")
                    + count(system) + count("user") + count(f"u{i}") + tokens.TOKENS_PER_NAME
                    + count("Hi"))
        assert tokens.count_chat_tokens(body, "o200k_base") == expected
        assert tokens.count_chat_tokens(body, "o200k_base") == expected  # from the caches
    info = tokens._repeating_counter("o200k_base").cache_info()  # type: ignore[attr-defined]
    assert info.currsize <= tokens.CACHE_TEXTS and info.hits >= tokens.CACHE_TEXTS
