"""The faces' translations as pure functions: request -> chat view, chat answer -> the API's
answer, and chat stream -> the API's events, checked round trip (the stream, accumulated by the
official SDK's own accumulator, equals the non-streamed rendering of the same answer)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from router.capabilities import request_needs
from router.errors import InvalidRequest, UpstreamError
from router.faces import completions, messages_wire, responses_wire
from router.faces.events import TranslatingRelay

TOOL_ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "deepseek-chat",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}}],
    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
              "prompt_tokens_details": {"cached_tokens": 60}},
}


def chat_stream(answer: dict[str, Any]) -> bytes:
    """The SSE stream an OpenAI-compatible upstream sends for ``answer``."""
    msg = answer["choices"][0]["message"]
    base = {"id": answer["id"], "object": "chat.completion.chunk", "created": 1,
            "model": answer["model"]}

    def ev(delta: dict[str, Any], finish: str | None = None) -> bytes:
        c = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
             "usage": None}
        return b"data: " + orjson.dumps(c) + b"\n\n"

    out = ev({"role": "assistant", "content": ""})
    for word in (msg.get("content") or "").split(" "):
        out += ev({"content": word + " "})
    for i, call in enumerate(msg.get("tool_calls") or ()):
        args = call["function"]["arguments"]
        out += ev({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                   "function": {"name": call["function"]["name"],
                                                "arguments": ""}}]})
        out += ev({"tool_calls": [{"index": i, "function": {"arguments": args[:5]}}]})
        out += ev({"tool_calls": [{"index": i, "function": {"arguments": args[5:]}}]})
    out += ev({}, answer["choices"][0]["finish_reason"])
    out += b"data: " + orjson.dumps({**base, "choices": [], "usage": answer["usage"]}) + b"\n\n"
    return out + b"data: [DONE]\n\n"


def relay_all(relay: TranslatingRelay, data: bytes) -> list[tuple[str, dict[str, Any]]]:
    raw = b""
    for i in range(0, len(data), 37):  # split anywhere, as TCP does
        raw += relay.feed(data[i : i + 37])
    assert relay.holding and relay.done
    raw += relay.release()
    events = []
    for block in raw.decode().split("\n\n"):
        if block:
            name, data_line = block.split("\n")
            events.append((name.removeprefix("event: "), json.loads(data_line[6:])))
    return events


# ------------------------------------------------------------------------------ Messages


def test_messages_request_to_chat_keeps_system_images_tools_and_results() -> None:
    body = {"model": "auto", "max_tokens": 300, "stop_sequences": ["END"], "temperature": 0.2,
            "metadata": {"user_id": "u-1"},
            "system": [{"type": "text", "text": "You are terse.",
                        "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": "get_weather", "description": "Weather.",
                       "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "iVBORw0KGgo="}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                     "input": {"city": "Paris"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
                     "content": [{"type": "text", "text": "timeout"}]},
                    {"type": "text", "text": "And tomorrow?"}]}]}
    _, stream, max_tokens = messages_wire.check(body)
    chat, missing = messages_wire.to_chat(body, stream, max_tokens)
    assert missing == ()
    assert chat["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url",
                                      "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: timeout"},
        {"role": "user", "content": "And tomorrow?"}]
    assert chat["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert (chat["stop"], chat["user"], chat["max_tokens"]) == (["END"], "u-1", 300)
    assert request_needs(chat) == ("vision", "tools")


@pytest.mark.parametrize(("extra", "named"), [
    ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "'thinking'"),
    ({"top_k": 5}, "'top_k'"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search_20250305"),
    ({"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "x"}}]}]}]}, "inside a tool_result"),
])
def test_what_chat_cannot_carry_is_named(extra: dict[str, Any], named: str) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
            **extra}
    _, missing = messages_wire.to_chat(body, False, 10)
    assert any(named in m for m in missing), missing


def test_messages_check_refuses_like_anthropic() -> None:
    with pytest.raises(InvalidRequest) as info:
        messages_wire.check({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert info.value.param == "max_tokens"
    with pytest.raises(InvalidRequest) as info:
        messages_wire.check({"model": "m", "max_tokens": 5,
                             "messages": [{"role": "system", "content": "x"}]})
    assert info.value.param == "messages.0.role"
    err = messages_wire.error_payload(info.value)
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"


def test_messages_answer_and_its_stream_agree() -> None:
    from anthropic.lib.streaming._messages import accumulate_event
    from anthropic.types import RawMessageStreamEvent
    from pydantic import TypeAdapter

    message = messages_wire.from_chat(TOOL_ANSWER)
    assert message["stop_reason"] == "tool_use"
    assert message["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]
    # cached input is not input: Anthropic reports the uncached rest
    assert message["usage"] == {"input_tokens": 40, "output_tokens": 20,
                                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60}
    relay = TranslatingRelay(messages_wire.StreamTranslator())
    events = relay_all(relay, chat_stream(TOOL_ANSWER))
    assert [e[0] for e in events][:2] == ["message_start", "content_block_start"]
    assert [e[0] for e in events][-2:] == ["message_delta", "message_stop"]
    adapter = TypeAdapter(RawMessageStreamEvent)
    snapshot, bufs = None, {}
    for _, data in events:
        snapshot = accumulate_event(event=adapter.validate_python(data),
                                    current_snapshot=snapshot, json_bufs=bufs)
    assert snapshot is not None
    streamed = snapshot.model_dump(exclude_none=True)
    assert streamed["content"][0]["text"].strip() == "Let me look."
    assert streamed["content"][1] == message["content"][1]
    assert streamed["stop_reason"] == "tool_use"
    assert streamed["usage"]["output_tokens"] == 20
    assert relay.usage == TOOL_ANSWER["usage"]


def test_usage_both_ways_keeps_cache_reads_and_writes() -> None:
    native = {"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 1000,
              "cache_creation_input_tokens": 200}
    chat = messages_wire.chat_usage_of(native)
    assert chat["prompt_tokens"] == 1210 and chat["completion_tokens"] == 7
    assert chat["prompt_tokens_details"] == {"cached_tokens": 1000, "cache_creation_tokens": 200}
    back = messages_wire.messages_usage(chat)
    assert back == native
    resp = responses_wire.chat_usage_of({"input_tokens": 50, "output_tokens": 9,
                                         "input_tokens_details": {"cached_tokens": 30},
                                         "output_tokens_details": {"reasoning_tokens": 4}})
    assert responses_wire.responses_usage(resp) == {
        "input_tokens": 50, "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 0},
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 4}, "total_tokens": 59}


def test_tool_arguments_that_are_not_json_are_an_upstream_error_not_a_silent_drop() -> None:
    bad = json.loads(json.dumps(TOOL_ANSWER))
    bad["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = "{oops"
    with pytest.raises(UpstreamError):
        messages_wire.from_chat(bad)


# ----------------------------------------------------------------------------- Responses


def test_responses_request_to_chat_with_a_tool_result_turn() -> None:
    body = {"model": "auto", "instructions": "Be brief.", "max_output_tokens": 200,
            "store": False, "reasoning": {"effort": "low"},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"},
                                "strict": True}},
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "input": [
                {"role": "user", "content": [
                    {"type": "input_text", "text": "Weather?"},
                    {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"}]},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                 "arguments": '{"city":"Paris"}'},
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"}]}
    _, stream, max_tokens = responses_wire.check(body)
    chat, missing = responses_wire.to_chat(body, stream, max_tokens)
    assert missing == ()
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                                     {"type": "image_url",
                                      "image_url": {"url": "https://x/y.png", "detail": "low"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"}]
    assert chat["max_tokens"] == 200 and chat["reasoning_effort"] == "low"
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "w", "schema": {"type": "object"}, "strict": True}}
    assert request_needs(chat) == ("vision", "tools", "json_schema")


def test_responses_hosted_tools_and_stored_state_need_a_native_upstream() -> None:
    body = {"model": "m", "input": "hi", "previous_response_id": "resp_1",
            "tools": [{"type": "web_search"}], "conversation": "conv_1"}
    _, missing = responses_wire.to_chat(body, False, None)
    assert "'previous_response_id'" in missing and "'conversation'" in missing
    assert any("web_search" in m for m in missing)


def test_responses_answer_and_its_stream_agree() -> None:
    from openai import omit
    from openai.lib.streaming.responses._responses import ResponseStreamState
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    body = {"model": "m", "input": "hi"}
    response = responses_wire.from_chat(TOOL_ANSWER, body, "resp_x")
    assert [o["type"] for o in response["output"]] == ["message", "function_call"]
    assert response["usage"]["input_tokens_details"]["cached_tokens"] == 60
    relay = TranslatingRelay(responses_wire.StreamTranslator(body))
    events = relay_all(relay, chat_stream(TOOL_ANSWER))
    assert [e[1]["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    adapter = TypeAdapter(ResponseStreamEvent)
    for _, data in events:
        seen = state.handle_event(adapter.validate_python(data))
    assert seen[-1].type == "response.completed"
    final = events[-1][1]["response"]
    assert final["output"][0]["content"][0]["text"].strip() == "Let me look."
    assert final["output"][1]["arguments"] == response["output"][1]["arguments"]
    assert final["output"][1]["call_id"] == "call_1"
    assert final["usage"] == response["usage"]


def test_truncated_answers_are_incomplete() -> None:
    cut = json.loads(json.dumps(TOOL_ANSWER))
    cut["choices"][0]["finish_reason"] = "length"
    cut["choices"][0]["message"].pop("tool_calls")
    response = responses_wire.from_chat(cut, {"model": "m", "input": "x"}, "resp_y")
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert messages_wire.from_chat(cut)["stop_reason"] == "max_tokens"


# --------------------------------------------------------------------------- Completions


def test_completions_round_trip() -> None:
    body = {"model": "m", "prompt": ["Once upon"], "logprobs": 2, "stop": "\n"}
    _, stream, max_tokens, _ = completions.check(body)
    assert max_tokens == completions.DEFAULT_MAX_TOKENS
    chat, missing = completions.to_chat(body, stream, max_tokens)
    assert missing == ()
    assert chat["messages"] == [{"role": "user", "content": "Once upon"}]
    assert (chat["logprobs"], chat["top_logprobs"], chat["stop"]) == (True, 2, "\n")
    answer = {"id": "c", "created": 3, "model": "m", "usage": {"prompt_tokens": 2},
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "a time"},
                           "logprobs": {"content": [
                               {"token": "a", "logprob": -0.1, "top_logprobs": [
                                   {"token": "a", "logprob": -0.1}]},
                               {"token": " time", "logprob": -0.2, "top_logprobs": []}]}}]}
    out = completions.from_chat(answer)
    assert out["object"] == "text_completion" and out["choices"][0]["text"] == "a time"
    assert out["choices"][0]["logprobs"] == {"tokens": ["a", " time"],
                                             "token_logprobs": [-0.1, -0.2],
                                             "top_logprobs": [{"a": -0.1}, {}],
                                             "text_offset": [0, 1]}
    _, missing = completions.to_chat({"model": "m", "prompt": "x", "suffix": "y", "echo": True},
                                     False, 16)
    assert missing == ("'suffix'", "'echo'")
