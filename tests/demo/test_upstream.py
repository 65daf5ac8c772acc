"""The demo's simulated upstream over loopback: marked answers, OpenAI's stream framing with the
usage chunk, and usage that is the tokens actually sent (plus hidden reasoning tokens)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from router.demo import upstream
from router.tokens import configure_offline, count_chat_tokens, count_text_tokens

configure_offline()
TOKENIZERS = {"gpt-4o-mini": "o200k_base", "o4-mini": "o200k_base", "claude-haiku-4-5": "estimate",
              "text-embedding-3-small": "cl100k_base"}


@pytest.fixture()
async def sim() -> AsyncIterator[str]:
    runner, url, _ = await upstream.start(TOKENIZERS, speed=1000)
    yield url
    await runner.cleanup()


async def post(url: str, path: str, body: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.post(f"{url}/{path}", json=body) as r:
        assert r.status == 200
        return dict(r.headers), await r.read()


def chat(model: str, text: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **kw}


async def test_an_answer_is_marked_and_its_usage_is_what_was_sent(sim: str) -> None:
    body = chat("gpt-4o-mini", "Write a short poem about the sea.")
    headers, raw = await post(sim, "chat/completions", body)
    data = json.loads(raw)
    text = data["choices"][0]["message"]["content"]
    assert headers["x-router-simulated"] == "true"
    assert text.startswith("[simulated] gpt-4o-mini: ")
    assert data["system_fingerprint"] == "simulated"
    assert data["usage"]["prompt_tokens"] == count_chat_tokens(body, "o200k_base")
    assert data["usage"]["completion_tokens"] == count_text_tokens(text, "o200k_base") > 20


async def test_chinese_prompts_get_chinese_answers(sim: str) -> None:
    _, raw = await post(sim, "chat/completions", chat("claude-haiku-4-5", "请写一首关于秋天的诗。"))
    assert "模拟" in json.loads(raw)["choices"][0]["message"]["content"]


async def test_a_thinking_model_bills_hidden_reasoning_tokens(sim: str) -> None:
    _, raw = await post(sim, "chat/completions", chat("o4-mini", "Prove that sqrt(2) is irrational."))
    data = json.loads(raw)
    visible = count_text_tokens(data["choices"][0]["message"]["content"], "o200k_base")
    reasoning = data["usage"]["completion_tokens_details"]["reasoning_tokens"]
    assert reasoning > 0
    assert data["usage"]["completion_tokens"] == visible + reasoning


async def test_max_tokens_caps_the_answer(sim: str) -> None:
    _, raw = await post(sim, "chat/completions", chat("gpt-4o-mini", "Tell me a long story.",
                                                      max_tokens=7))
    data = json.loads(raw)
    assert data["usage"]["completion_tokens"] <= 7
    assert data["choices"][0]["finish_reason"] == "length"


async def test_a_stream_is_framed_as_openais_with_the_usage_chunk_last(sim: str) -> None:
    body = chat("gpt-4o-mini", "Hello there", stream=True, stream_options={"include_usage": True})
    headers, raw = await post(sim, "chat/completions", body)
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["x-router-simulated"] == "true"
    events = [e.removeprefix("data: ") for e in raw.decode().split("\n\n") if e]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.startswith("[simulated]")
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["completion_tokens"] == count_text_tokens(text, "o200k_base")
    assert usage["prompt_tokens"] == count_chat_tokens(body, "o200k_base")


async def test_a_stream_without_include_usage_has_no_usage_chunk(sim: str) -> None:
    _, raw = await post(sim, "chat/completions", chat("gpt-4o-mini", "Hi", stream=True))
    chunks = [json.loads(e.removeprefix("data: ")) for e in raw.decode().split("\n\n")
              if e and e != "data: [DONE]"]
    assert all("usage" not in c for c in chunks)


async def test_embeddings(sim: str) -> None:
    _, raw = await post(sim, "embeddings", {"model": "text-embedding-3-small",
                                             "input": ["one", "two"]})
    data = json.loads(raw)
    assert [d["index"] for d in data["data"]] == [0, 1]
    assert data["usage"]["prompt_tokens"] == 2
