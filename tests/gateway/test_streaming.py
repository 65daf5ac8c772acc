"""Streams are relayed chunk by chunk as they arrive, and their usage is always learnt."""

from __future__ import annotations

import time

import openai
import orjson

from router.sse import StreamRelay


def test_chunks_arrive_as_the_upstream_sends_them(client: openai.OpenAI) -> None:
    """With 0.15 s between upstream chunks, the first reaches the client long before the last:
    the gateway does not buffer the stream."""
    started = time.monotonic()
    arrivals = []
    for chunk in client.chat.completions.create(
            model="gpt-4o-mini", stream=True,
            messages=[{"role": "user", "content": "[[fake:tokens=8,chunk_delay=0.15]]"}]):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 8
    assert arrivals[-1] - arrivals[0] > 0.8


def test_stream_without_usage_from_upstream_still_completes(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "[[fake:no_usage,tokens=3]]"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "This is a"


def _event(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def test_relay_splits_events_across_reads_and_strips_usage_chunk() -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    wire = (_event({"choices": [{"index": 0, "delta": {"content": "Hel"}}], "usage": None})
            + _event({"choices": [{"index": 0, "delta": {"content": "lo"}}], "usage": None})
            + _event({"choices": [], "usage": usage}) + b"data: [DONE]\n\n")
    relay = StreamRelay(strip_usage_chunk=True)
    out = b"".join(relay.feed(wire[i:i + 7]) for i in range(0, len(wire), 7))
    assert relay.usage == usage and relay.done and relay.holding
    assert b'"prompt_tokens"' not in out and b"[DONE]" not in out  # held back for the settle
    assert relay.release() == b"data: [DONE]\n\n" and not relay.holding
    assert relay.release() == b""
    assert list(relay.generated_text()) == ["Hel", "lo"]
    kept = StreamRelay(strip_usage_chunk=False)
    assert b'"prompt_tokens":9' in kept.feed(wire)


def test_relay_handles_crlf_and_tool_call_text() -> None:
    wire = (b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
            b'{"name":"f","arguments":"{\\"a\\":1}"}}]}}]}\r\n\r\ndata: [DONE]\r\n\r\n')
    relay = StreamRelay(strip_usage_chunk=True)
    relay.feed(wire)
    assert relay.done and relay.usage is None
    assert list(relay.generated_text()) == ['f{"a":1}']
