"""Every client API through the gateway, driven by the official SDKs: the OpenAI Responses API
(``openai`` ``responses.create``), Anthropic Messages (``anthropic`` ``messages.create`` and
``count_tokens``), legacy Completions, and litellm as a client of both. Each is served natively
(pass-through) and across API families (translated to a chat-completions model)."""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.request
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.gateway.conftest import GATEWAY_KEY, LIMITED_KEY
from tests.support import Proc

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city.",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                          "required": ["location"]}}
WEATHER_ANTHROPIC = {"name": "get_weather", "description": "Weather for a city.",
                     "input_schema": WEATHER["parameters"]}


def received(fake: Proc, path: str = "_requests") -> list[Any]:
    with urllib.request.urlopen(f"{fake.url}/{path}") as resp:
        return list(json.loads(resp.read()))


def ledger_row(gateway: Proc, request_id: str) -> dict[str, Any]:
    db = gateway.log_path.parent / "router.db"
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = list(conn.execute("select * from ledger where request_id = ?", (request_id,)))
    assert len(rows) == 1, request_id
    return dict(rows[0])


@pytest.fixture()
def oai(gateway: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0,
                         timeout=30)


@pytest.fixture()
def claude(gateway: Proc) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0,
                               timeout=30)


# ------------------------------------------------------------------------------- Responses


@pytest.mark.parametrize(("model", "native"), [("gpt-4o", True), ("gpt-4o-mini", False)])
def test_responses_plain(oai: openai.OpenAI, fake: Proc, gateway: Proc, model: str,
                         native: bool) -> None:
    raw = oai.responses.with_raw_response.create(model=model, input="Say hi [[fake:tokens=6]]",
                                                 instructions="Be brief.", store=not native,
                                                 metadata={"router_task": "expression"})
    resp = raw.parse()
    assert resp.output_text == "This is a fake reply from"
    assert resp.status == "completed" and resp.usage is not None and resp.usage.output_tokens > 0
    assert raw.headers["x-router-model"] == model
    assert raw.headers["x-router-task"] == "expression"  # metadata.router_task, as on chat
    last = received(fake)[-1]
    if native:  # passed through: the Responses body as sent, only model rewritten
        assert last["input"] == "Say hi [[fake:tokens=6]]" and last["instructions"] == "Be brief."
    else:  # translated: a chat-completions request
        assert last["messages"] == [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": "Say hi [[fake:tokens=6]]"}]
        assert "metadata" not in last  # the gateway's to read, not sent to a chat model
        assert resp.store is False
    row = ledger_row(gateway, raw.headers["x-request-id"])
    assert row["api"] == "responses" and row["status"] == "ok" and row["model"] == model
    assert row["completion_tokens"] == resp.usage.output_tokens
    assert row["prompt_tokens"] == resp.usage.input_tokens
    assert f"0.{row['actual_micro']:06d}" == raw.headers["x-router-cost-usd"]


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini"])
def test_responses_streamed(oai: openai.OpenAI, gateway: Proc, model: str) -> None:
    with oai.responses.with_streaming_response.create(
            model=model, input="[[fake:tokens=5]] stream", stream=True, store=False) as raw:
        request_id = raw.headers["x-request-id"]
        types, text, final = [], "", None
        for event in raw.parse():
            types.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.completed":
                final = event.response
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert text == "This is a fake reply" and final is not None
    assert final.usage is not None and final.usage.output_tokens == 5
    row = ledger_row(gateway, request_id)  # settled before the client saw response.completed
    assert (row["api"], row["status"], row["completion_tokens"]) == ("responses", "ok", 5)


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini"])
def test_responses_tools_and_a_tool_result_turn(oai: openai.OpenAI, model: str) -> None:
    first = oai.responses.create(model=model, input="weather in Paris?", tools=[WEATHER],  # type: ignore[list-item]
                                 store=False)
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"location": "Paris"}
    second = oai.responses.create(model=model, tools=[WEATHER], store=False, input=[  # type: ignore[list-item]
        {"role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name,
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "18C, sunny"}])
    assert second.output_text.startswith("This is a fake reply")


def test_previous_response_id_continues_where_the_response_is_stored(
        oai: openai.OpenAI, gateway: Proc) -> None:
    first = oai.responses.create(model="gpt-4o", input="remember this")
    # auto would choose the cheaper gpt-4o-mini; only gpt-4o's provider holds the response
    raw = oai.responses.with_raw_response.create(model="auto", input="and then?",
                                                 previous_response_id=first.id)
    assert raw.headers["x-router-model"] == "gpt-4o"
    assert raw.parse().output_text.startswith("Continuing:")
    # streamed, too
    with oai.responses.stream(model="auto", input="more", previous_response_id=first.id) as s:
        assert s.get_final_response().output_text.startswith("Continuing:")
    # a response the gateway never relayed, or relayed for another key
    with pytest.raises(openai.BadRequestError) as info:
        oai.responses.create(model="auto", input="x", previous_response_id="resp_unknown")
    assert info.value.code == "previous_response_not_found"
    other = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=LIMITED_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        other.responses.create(model="gpt-4o-mini", input="x", previous_response_id=first.id)
    assert info.value.code == "previous_response_not_found"
    # a concrete model that does not hold it: refused, naming why
    with pytest.raises(openai.BadRequestError) as info:
        oai.responses.create(model="gpt-4o-mini", input="x", previous_response_id=first.id)
    assert info.value.code == "model_cannot_serve" and "does not hold response" in str(info.value)


def test_previous_response_id_of_a_translated_response_is_a_clear_400(oai: openai.OpenAI) -> None:
    first = oai.responses.create(model="gpt-4o-mini", input="hello")
    assert first.store is False
    with pytest.raises(openai.BadRequestError) as info:
        oai.responses.create(model="auto", input="x", previous_response_id=first.id)
    assert info.value.code == "previous_response_not_stored"
    assert "send the whole conversation" in str(info.value)


def test_responses_refusals_are_precise(oai: openai.OpenAI) -> None:
    # a hosted tool cannot be translated: to a chat-only model it is a 400 naming it
    with pytest.raises(openai.BadRequestError) as info:
        oai.responses.create(model="gpt-4o-mini", input="x", tools=[{"type": "web_search"}])  # type: ignore[list-item]
    assert info.value.code == "model_cannot_serve" and "web_search" in str(info.value)
    with pytest.raises(openai.BadRequestError) as info:
        oai.responses.create(model="gpt-4o", input=5)  # type: ignore[arg-type]
    assert info.value.param == "input"


# ------------------------------------------------------------------------ Anthropic Messages


@pytest.mark.parametrize(("model", "native"), [("claude-fake", True), ("gpt-4o-mini", False)])
def test_messages_plain(claude: anthropic.Anthropic, fake: Proc, gateway: Proc, model: str,
                        native: bool) -> None:
    raw = claude.messages.with_raw_response.create(
        model=model, max_tokens=100,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi [[fake:tokens=4,cache_read=50,cache_write=20]]"}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == "This is a fake"
    assert message.stop_reason == "end_turn"
    assert raw.headers["x-router-model"] == model
    last = received(fake)[-1]
    headers = received(fake, "_headers")[-1]
    if native:  # passed through with cache_control and the beta header; priced with the cache
        assert last["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", headers["anthropic-version"])  # the SDK's
        assert headers["x-api-key"] == "[key]" and "authorization" not in headers
        assert message.usage.cache_read_input_tokens == 50
        assert message.usage.cache_creation_input_tokens == 20
    else:
        assert last["messages"][0] == {"role": "system", "content": "Be brief."}
    row = ledger_row(gateway, raw.headers["x-request-id"])
    assert row["api"] == "messages" and row["status"] == "ok"
    usage = message.usage
    prompt = usage.input_tokens + (usage.cache_read_input_tokens or 0) + \
        (usage.cache_creation_input_tokens or 0)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, usage.output_tokens)
    if native:  # claude-haiku-4-5 at litellm's list prices: $1 in, $0.10 cache read,
        # $1.25 cache write, $5 out per 1M tokens
        pico = usage.input_tokens * 1_000_000 + 50 * 100_000 + 20 * 1_250_000 + \
            usage.output_tokens * 5_000_000
        assert row["actual_micro"] == -(-pico // 1_000_000)


@pytest.mark.parametrize("model", ["claude-fake", "gpt-4o-mini"])
def test_messages_streamed(claude: anthropic.Anthropic, gateway: Proc, model: str) -> None:
    with claude.messages.with_streaming_response.create(
            model=model, max_tokens=50, stream=True,
            messages=[{"role": "user", "content": "[[fake:tokens=5]] go"}]) as raw:
        request_id = raw.headers["x-request-id"]
        types = [event.type for event in raw.parse()]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    with claude.messages.stream(model=model, max_tokens=50,
                                messages=[{"role": "user", "content": "[[fake:tokens=5]]"}]) as s:
        final = s.get_final_message()
    assert final.content[0].text == "This is a fake reply"  # type: ignore[union-attr]
    assert final.usage.output_tokens == 5
    row = ledger_row(gateway, request_id)
    assert (row["api"], row["status"], row["completion_tokens"]) == ("messages", "ok", 5)


@pytest.mark.parametrize("model", ["claude-fake", "gpt-4o-mini"])
def test_messages_tools(claude: anthropic.Anthropic, model: str) -> None:
    question = {"role": "user", "content": "weather in Paris?"}
    first = claude.messages.create(model=model, max_tokens=100, tools=[WEATHER_ANTHROPIC],  # type: ignore[list-item]
                                   messages=[question])  # type: ignore[list-item]
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"location": "Paris"}  # type: ignore[union-attr]
    second = claude.messages.create(model=model, max_tokens=100, tools=[WEATHER_ANTHROPIC],  # type: ignore[list-item]
                                    messages=[question,  # type: ignore[list-item]
                                              {"role": "assistant", "content": first.content},  # type: ignore[list-item]
                                              {"role": "user", "content": [{
                                                  "type": "tool_result", "tool_use_id": use.id,  # type: ignore[union-attr]
                                                  "content": "18C, sunny"}]}])
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"


def test_count_tokens(claude: anthropic.Anthropic) -> None:
    short = claude.messages.count_tokens(model="claude-fake",
                                         messages=[{"role": "user", "content": "hi"}])
    long = claude.messages.count_tokens(model="auto", tools=[WEATHER_ANTHROPIC],  # type: ignore[list-item]
                                        messages=[{"role": "user", "content": "hi " * 50}])
    assert 0 < short.input_tokens < long.input_tokens


def test_messages_errors_have_anthropics_shape(claude: anthropic.Anthropic,
                                               gateway: Proc) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model="claude-fake", max_tokens=0,
                               messages=[{"role": "user", "content": "x"}])
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == "max_tokens"
    bad = anthropic.Anthropic(base_url=gateway.url, api_key="sk-nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="claude-fake", max_tokens=5,
                            messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model="no-such-model", max_tokens=5,
                               messages=[{"role": "user", "content": "x"}])
    # thinking cannot be translated for a chat model: refused, naming it
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model="gpt-4o-mini", max_tokens=2000,
                               thinking={"type": "enabled", "budget_tokens": 1024},
                               messages=[{"role": "user", "content": "x"}])
    assert "'thinking'" in str(info.value)
    # ... and auto routes it to the model that serves Messages natively
    message = claude.messages.create(model="auto", max_tokens=2000,
                                     thinking={"type": "enabled", "budget_tokens": 1024},
                                     messages=[{"role": "user", "content": "x"}])
    assert message.model == "claude-haiku-4-5" and message.content[0].type == "thinking"


def test_a_claude_code_session(gateway: Proc, fake: Proc) -> None:
    """As Claude Code talks to ANTHROPIC_BASE_URL: x-api-key, anthropic-version and beta
    headers, streamed turns with tools, tool results sent back, on an Anthropic model and on
    an OpenAI-compatible one."""
    headers = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01",
               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
               "content-type": "application/json", "user-agent": "claude-cli/2.0.0 (external, cli)"}
    tools = [WEATHER_ANTHROPIC, {"name": "Bash", "description": "Run a command.",
                                 "input_schema": {"type": "object", "properties": {
                                     "command": {"type": "string"}}}}]
    for model in ("claude-fake", "gpt-4o-mini"):
        messages: list[dict[str, Any]] = [{"role": "user", "content": [
            {"type": "text", "text": "What's the weather?", "cache_control": {"type": "ephemeral"}}]}]
        for turn in range(2):
            body = {"model": model, "max_tokens": 1024, "stream": True, "tools": tools,
                    "system": [{"type": "text", "text": "You are Claude Code."}],
                    "messages": messages, "metadata": {"user_id": "user_abc_session_1"}}
            blocks: dict[int, dict[str, Any]] = {}
            stop = None
            with httpx.stream("POST", f"{gateway.url}/v1/messages", json=body, headers=headers,
                              timeout=30) as resp:
                assert resp.status_code == 200, resp.read()
                assert resp.headers["x-router-model"] == model
                name = ""
                for line in resp.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                        assert data["type"] == name
                        if name == "content_block_start":
                            blocks[data["index"]] = {**data["content_block"], "_json": ""}
                        elif name == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
                            blocks[data["index"]]["_json"] += data["delta"]["partial_json"]
                        elif name == "content_block_delta" and data["delta"]["type"] == "text_delta":
                            blocks[data["index"]]["text"] += data["delta"]["text"]
                        elif name == "message_delta":
                            stop = data["delta"]["stop_reason"]
            content = []
            for block in blocks.values():
                raw_json = block.pop("_json")
                if block["type"] == "tool_use":
                    block["input"] = json.loads(raw_json)
                content.append(block)
            messages.append({"role": "assistant", "content": content})
            if turn == 0:
                assert stop == "tool_use"
                use = content[-1]
                assert use["type"] == "tool_use" and use["input"] == {"location": "Paris"}
                messages.append({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": use["id"], "content": "18C"}]})
            else:
                assert stop == "end_turn" and content[0]["text"].startswith("This is a fake")
        if model == "claude-fake":
            sent = received(fake, "_headers")[-1]
            assert sent["anthropic-beta"] == headers["anthropic-beta"]
            assert received(fake)[-1]["messages"][0]["content"][0]["cache_control"] == {
                "type": "ephemeral"}


# --------------------------------------------------------------------- legacy Completions


@pytest.mark.parametrize(("model", "native"), [("gpt-4o", True), ("gpt-4o-mini", False)])
def test_completions(oai: openai.OpenAI, gateway: Proc, model: str, native: bool) -> None:
    raw = oai.completions.with_raw_response.create(model=model, prompt="Once upon a time",
                                                   max_tokens=5)
    done = raw.parse()
    assert done.object == "text_completion" and "This is a fake reply" in done.choices[0].text
    assert ledger_row(gateway, raw.headers["x-request-id"])["api"] == "completions"
    text = ""
    for chunk in oai.completions.create(model=model, prompt="Once", max_tokens=5, stream=True,
                                        stream_options={"include_usage": True}):
        if chunk.choices:
            text += chunk.choices[0].text
        elif chunk.usage is not None:
            assert chunk.usage.completion_tokens == 5
    assert text.strip() == "This is a fake reply"


# ------------------------------------------------------------------------ litellm as a client


def test_litellm_responses_and_text_completion(gateway: Proc) -> None:
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    for model in ("gpt-4o", "gpt-4o-mini"):  # native, then translated to chat completions
        resp = litellm.responses(model=f"openai/{model}", input="hello from litellm",
                                 api_base=f"{gateway.url}/v1", api_key=GATEWAY_KEY)
        assert resp.output[0].content[0].text.startswith("This is a fake reply")  # type: ignore[union-attr]
        text = litellm.text_completion(model=f"text-completion-openai/{model}", prompt="Hello",
                                       api_base=f"{gateway.url}/v1", api_key=GATEWAY_KEY,
                                       max_tokens=4)
        assert "This is a fake" in text.choices[0].text


# ------------------------------------------------------------------ capabilities, /v1/route


def test_requests_go_only_to_models_that_can_serve_them(oai: openai.OpenAI,
                                                        gateway: Proc) -> None:
    body = {"model": "auto-best", "logprobs": True,
            "messages": [{"role": "user", "content": "prove that sqrt 2 is irrational"}]}
    explained = httpx.post(f"{gateway.url}/v1/route", json=body,
                           headers={"authorization": f"Bearer {GATEWAY_KEY}"}).json()
    # claude-fake is the most capable, but Anthropic models give no logprobs
    assert explained["model"] == "gpt-4o"
    passed = {c["model"]: c for c in explained["candidates"]}["claude-fake"]
    assert not passed["eligible"] and any("does not support logprobs" in w for w in passed["reasons"])
    raw = oai.chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
    assert raw.headers["x-router-model"] == "gpt-4o"
    # gpt-4 (litellm's map: no vision) asked for by name with an image: a precise 400
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}])
    assert info.value.code == "model_cannot_serve" and "images" in str(info.value)
    assert "supports.vision" in str(info.value)
    card = oai.models.retrieve("claude-fake").model_dump()["router"]
    assert card["apis"] == ["chat", "messages"] and card["supports"]["logprobs"] is False


def test_ledger_and_router_spend_show_the_api(gateway: Proc, oai: openai.OpenAI,
                                              claude: anthropic.Anthropic) -> None:
    import subprocess
    import sys

    oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    oai.responses.create(model="gpt-4o-mini", input="x", store=False)
    oai.completions.create(model="gpt-4o-mini", prompt="x")
    claude.messages.create(model="gpt-4o-mini", max_tokens=5,
                           messages=[{"role": "user", "content": "x"}])
    db = gateway.log_path.parent / "router.db"
    out = subprocess.run([sys.executable, "-m", "router", "spend", "--store-url",
                          f"sqlite:///{db}", "--period", "total", "--group-by", "api", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    apis = {row["group"]["api"] for row in json.loads(out.stdout)["data"]}
    assert {"chat", "responses", "messages", "completions"} <= apis


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/messages", {"model": "claude-fake", "max_tokens": 100, "stream": True,
                      "messages": [{"role": "user", "content": "[[fake:tokens=20,drop_after=4]]"}]}),
    ("/v1/responses", {"model": "gpt-4o", "stream": True, "store": False,
                       "input": "[[fake:tokens=20,drop_after=4]]"}),
])
def test_a_native_stream_cut_short_ends_with_the_apis_error_and_pays_for_what_ran(
        gateway: Proc, path: str, body: dict[str, Any]) -> None:
    headers = {"authorization": f"Bearer {GATEWAY_KEY}", "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{gateway.url}{path}", json=body, headers=headers,
                      timeout=30) as resp:
        request_id = resp.headers["x-request-id"]
        events = [b for b in resp.read().decode().split("\n\n") if b]
    name, data = events[-1].split("\n")
    assert name == "event: error"
    error = json.loads(data[6:])
    if path == "/v1/messages":
        assert error["type"] == "error" and error["error"]["type"] == "api_error"
    else:
        assert error["type"] == "error" and error["code"] == "upstream_error"
    row = ledger_row(gateway, request_id)
    assert row["status"] == "upstream_error" and row["completion_tokens"] >= 4
    assert row["actual_micro"] > 0
