"""The official OpenAI Python SDK, pointed at the gateway, works unchanged."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import openai
import pytest

from tests.support import Proc


def received(fake: Proc) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{fake.url}/_requests") as resp:
        data: list[dict[str, Any]] = json.loads(resp.read())
    return data


def last_received(fake: Proc, marker: str) -> dict[str, Any]:
    for body in reversed(received(fake)):
        if marker in json.dumps(body):
            return body
    raise AssertionError(f"upstream never saw {marker!r}")


def test_chat_completion(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
    )
    resp = raw.parse()
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content.startswith("This is a fake reply")
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.completion_tokens > 0
    assert raw.headers["x-router-model"] == "gpt-4o-mini"
    assert raw.headers["x-request-id"].startswith("req_")
    assert int(raw.headers["x-router-prompt-tokens"]) == resp.usage.prompt_tokens


def test_parameters_pass_through_untouched(client: openai.OpenAI, fake: Proc) -> None:
    params: dict[str, Any] = dict(
        temperature=0.3, top_p=0.9, stop=["\n\n", "END"], seed=42, presence_penalty=0.5,
        frequency_penalty=0.25, logit_bias={"50256": -100}, user="end-user-7", max_tokens=5,
        parallel_tool_calls=False, metadata={"trace": "t-1"}, store=False,
    )
    messages = [{"role": "system", "content": "be brief"},
                {"role": "user", "content": "pass-through marker 8c1f"}]
    client.chat.completions.create(model="gpt-4o", messages=messages,  # type: ignore[arg-type]
                                   extra_body={"vendor_extension": {"x": 1}}, **params)
    body = last_received(fake, "marker 8c1f")
    assert body["model"] == "gpt-4o"
    assert body["messages"] == messages
    assert body["vendor_extension"] == {"x": 1}
    for key, value in params.items():
        assert body[key] == value, key


def test_auto_routes_by_task_to_the_cheapest_model_meeting_the_bar(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-router-task": "expression"})
    assert raw.headers["x-router-model"] == "gpt-4o-mini"
    assert raw.headers["x-router-task"] == "expression"
    assert raw.headers["x-router-task-source"] == "override"
    assert raw.headers["x-router-route"] == "auto"
    assert raw.headers["x-router-reference-model"] == "gpt-4o"
    raw = client.chat.completions.with_raw_response.create(
        model="auto:reasoning", messages=[{"role": "user", "content": "hi"}])
    # gpt-4o-mini is below the reasoning bar; claude-fake ($1/$5 per 1M) is cheaper than gpt-4o
    assert raw.headers["x-router-model"] == "claude-fake"
    assert raw.headers["x-router-task-source"] == "route"


def test_stream_relays_chunks_and_hides_usage_chunk_not_asked_for(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "[[fake:tokens=6]]"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "This is a fake reply from"
    assert all(c.choices for c in chunks), "usage-only chunk leaked to a client that did not ask"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_with_usage_when_asked(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "[[fake:tokens=4]]"}]))
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_tools(client: openai.OpenAI, fake: Proc) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city.",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                       "required": ["location"]}}}]
    resp = client.chat.completions.create(
        model="gpt-4o", tools=tools, tool_choice="auto",  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "weather in Paris? tools-marker"}])
    call = resp.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Paris"}
    assert last_received(fake, "tools-marker")["tools"] == tools
    # the tool result goes back in a second turn
    resp2 = client.chat.completions.create(model="gpt-4o", tools=tools, tool_choice="none",  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "weather in Paris?"},
                  {"role": "assistant", "tool_calls": [call.model_dump()]},  # type: ignore[list-item]
                  {"role": "tool", "tool_call_id": call.id, "content": "18C, sunny"}])
    assert resp2.choices[0].message.content


def test_streamed_tool_call(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Look up.",
              "parameters": {"type": "object", "properties": {}}}}]
    args = ""
    for chunk in client.chat.completions.create(model="gpt-4o", tools=tools, stream=True,  # type: ignore[arg-type]
                                                messages=[{"role": "user", "content": "go"}]):
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args += tc.function.arguments or ""  # type: ignore[union-attr]
    assert json.loads(args) == {"location": "Paris"}


def test_response_format_n_and_logprobs(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="gpt-4o-mini", n=2, logprobs=True, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "json please"}])
    assert len(resp.choices) == 2
    assert json.loads(resp.choices[1].message.content or "") == {"answer": "fake"}
    assert resp.choices[0].logprobs is not None and resp.choices[0].logprobs.content


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert {"auto", "auto:reasoning", "auto:expression", "gpt-4o-mini", "gpt-4o"} <= set(ids)
    model = client.models.retrieve("gpt-4o")
    assert model.id == "gpt-4o" and model.owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_embeddings(client: openai.OpenAI) -> None:
    one = client.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert len(one.data) == 1 and len(one.data[0].embedding) == 8
    assert one.usage.prompt_tokens == 2
    many = client.embeddings.create(model="auto", input=["a", "b", "c"], dimensions=4)
    assert [d.index for d in many.data] == [0, 1, 2]
    assert len(many.data[0].embedding) == 4


def test_chat_model_is_not_an_embedding_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="gpt-4o", input="x")


def test_async_client_streams(gateway: Proc) -> None:
    import asyncio

    from tests.gateway.conftest import GATEWAY_KEY

    async def go() -> str:
        async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY,
                                      max_retries=0) as aclient:
            stream = await aclient.chat.completions.create(
                model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi"}])
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert asyncio.run(go()).startswith("This is a fake reply")


def test_litellm_path_for_other_protocols(client: openai.OpenAI) -> None:
    """An Anthropic model: the gateway translates through litellm (fake speaks Messages API)."""
    resp = client.chat.completions.create(
        model="claude-fake", max_tokens=50, messages=[{"role": "user", "content": "[[fake:tokens=5]]"}])
    assert resp.choices[0].message.content == "This is a fake reply"
    assert resp.usage is not None and resp.usage.completion_tokens == 5
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="claude-fake", max_tokens=50, stream=True,
        messages=[{"role": "user", "content": "[[fake:tokens=3]]"}]) if c.choices)
    assert text == "This is a"


def test_cost_headers(client: openai.OpenAI) -> None:
    """gpt-4o-mini at litellm's list price: $0.15 / $0.60 per 1M tokens, in exact micro-dollars."""
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", max_tokens=10, messages=[{"role": "user", "content": "[[fake:tokens=10]]"}])
    usage = raw.parse().usage
    assert usage is not None
    prompt = int(raw.headers["x-router-prompt-tokens"])
    expected_estimate = -(-(prompt * 150_000 + 10 * 600_000) // 1_000_000)
    assert raw.headers["x-router-cost-estimate-usd"] == f"0.{expected_estimate:06d}"
    actual = -(-(usage.prompt_tokens * 150_000 + usage.completion_tokens * 600_000) // 1_000_000)
    assert raw.headers["x-router-cost-usd"] == f"0.{actual:06d}"


def test_models_carry_prices(client: openai.OpenAI) -> None:
    card = client.models.retrieve("gpt-4o-mini")
    info = card.model_extra["router"]  # type: ignore[index]
    assert info["pricing"]["source"] == "litellm"
    assert info["context_window"] == 128000 and info["available"] is True
