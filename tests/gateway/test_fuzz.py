"""A property-based fuzzer of request bodies against the real gateway over loopback.

Hypothesis builds chat, embeddings and ``/v1/route`` bodies that are mostly well-formed with
some field replaced by any JSON value, plus raw bytes and cut or mutated JSON; each is sent to a
gateway of its own (the test catalogue on the fake upstream). Whatever the input, the answer is
never a 5xx: a 2xx, or a 4xx in OpenAI's error shape; a stream ends with ``[DONE]``; and the
gateway's log has no traceback. Runs are derandomized (the same examples every run, so CI is
stable) and bounded (a few hundred requests, seconds).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.conftest import ENV, GATEWAY_KEY, POLICY, write_config
from tests.support import Proc, start_gateway


def fuzz(examples: int) -> settings:
    """Derandomized (the same examples on every run), bounded, and without an example database
    written into the checkout."""
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])

#: Models whose upstream answers (never ``broken``, ``dead-host``, ``no-key``...: their 5xx are
#: the upstream's, not a reaction to the body), routes, and names that do not exist.
CHAT_MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4", "tiny-context", "auto", "auto:reasoning",
               "auto:expression", "auto-best", "claude-fake", "gpt-9", "auto:nothing", ""]
EMBEDDING_MODELS = ["text-embedding-3-small", "auto", "gpt-4o-mini", "nope"]

leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
any_json = st.recursive(
    leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                       max_size=3),
    max_leaves=8)
#: What a bad client puts where something else belongs: above all ``{}`` and ``[]``, which are
#: unhashable (a ``TypeError`` in any ``x in frozenset`` check), and numbers out of any range.
junk = st.one_of(st.sampled_from([{}, [], None, "", 0, -1, True, 2**63, 10**30, 1e308, [{}]]),
                 any_json)

# Well-formed bodies: every field of the right type (values still vary).
words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": words}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries(
        {"url": st.just("https://example.com/a.png")},
        optional={"detail": st.sampled_from(["low", "high", "auto"])})}),
    st.fixed_dictionaries({"type": st.sampled_from(["input_audio", "file", "refusal"]),
                           "text": words}))
tool_call = st.fixed_dictionaries({"id": st.just("call_1"), "type": st.just("function"),
                                   "function": st.fixed_dictionaries(
                                       {"name": st.just("f"), "arguments": st.just("{}")})})
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]),
     "content": words | st.lists(part, min_size=1, max_size=3)},
    optional={"name": words, "tool_calls": st.lists(tool_call, min_size=1, max_size=2),
              "tool_call_id": st.just("call_1")})
tool = st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries(
    {"name": st.just("get_weather")},
    optional={"description": words, "parameters": st.fixed_dictionaries(
        {"type": st.just("object"), "properties": st.dictionaries(
            st.text(max_size=5), st.fixed_dictionaries(
                {"type": st.sampled_from(["string", "number"])},
                optional={"enum": st.lists(words, max_size=2), "description": words}),
            max_size=2)})})})
chat_body = st.fixed_dictionaries(
    {"model": st.sampled_from(CHAT_MODELS), "messages": st.lists(message, min_size=1, max_size=4)},
    optional={"stream": st.booleans(),
              "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
              "max_tokens": st.integers(min_value=1, max_value=64),
              "max_completion_tokens": st.integers(min_value=1, max_value=64),
              "n": st.integers(min_value=1, max_value=3),
              "tools": st.lists(tool, min_size=1, max_size=2),
              "tool_choice": st.sampled_from(["auto", "none"]),
              "metadata": st.fixed_dictionaries({"router_task": st.sampled_from(
                  ["reasoning", "expression", "poetry"])}),
              "temperature": st.floats(0, 2), "user": words, "seed": st.integers(0, 2**31),
              "stop": words, "logprobs": st.booleans()})
embeddings_body = st.fixed_dictionaries(
    {"model": st.sampled_from(EMBEDDING_MODELS),
     "input": words | st.lists(words | st.lists(st.integers(0, 5000), min_size=1, max_size=4),
                               min_size=1, max_size=3)},
    optional={"encoding_format": st.sampled_from(["float", "base64"]),
              "dimensions": st.integers(min_value=1, max_value=16)})
task_header = st.none() | st.sampled_from(["reasoning", "expression", "", "poetry", "REASONING"])

Path_ = tuple[str | int, ...]


def _paths(node: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every path into a JSON value (keys and indices), the value's own path first."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A well-formed body with one to three places replaced by junk, or removed: every field,
    at any depth, is as likely to be hit (a field replaced near the top never reaches the code
    that reads the fields below it)."""
    body = copy.deepcopy(draw(base))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = list(_paths(body))[1:]
        if not paths:  # everything removed already
            break
        path = draw(st.sampled_from(paths))
        parent: Any = body
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.integers(0, 3)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(junk)
    return body


def _cut(data: st.DataObject, raw: bytes) -> bytes:
    """``raw`` cut short, with a byte changed, or with bytes inserted."""
    how = data.draw(st.sampled_from(["cut", "flip", "insert"]))
    at = data.draw(st.integers(min_value=0, max_value=max(0, len(raw) - 1)))
    if how == "cut":
        return raw[:at]
    if how == "flip":
        return raw[:at] + bytes([data.draw(st.integers(0, 255))]) + raw[at + 1:]
    return raw[:at] + data.draw(st.binary(min_size=1, max_size=6)) + raw[at:]


@pytest.fixture(scope="module")
def fuzzed(fake: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A gateway of its own: what the fuzzer sends does not disturb the session gateway."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    # Budgets, so that every body that passes the checks is also reserved and settled.
    policy = POLICY + "budgets:\n  global: {daily: {limit_usd: 100000}}\n" \
        "  teams:\n    search: {monthly: {limit_usd: 100000}}\n"
    config = write_config(tmp, fake.url, policy=policy)
    # The catalogue's always-failing models are unknown to litellm's map, so they are assumed
    # to take images, audio, tools...: a route would send a request only they "support" to
    # them, and the fuzzer would see their 503s. Say what they support, as a deployment would.
    config.write_text(config.read_text().replace(
        "upstream_model: broken-model\n", "upstream_model: broken-model\n    supports: {vision: false, "
        "audio: false, tools: false, logprobs: false, json_schema: false}\n"))
    proc = start_gateway(config, tmp, env=ENV)
    yield proc
    proc.stop()
    log = proc.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]
    assert "unexpected error" not in log


@pytest.fixture(scope="module")
def http(fuzzed: Proc) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzzed.url, timeout=30,
                      headers={"Authorization": f"Bearer {GATEWAY_KEY}",
                               "Content-Type": "application/json"}) as client:
        yield client


def check(http: httpx.Client, path: str, content: bytes, headers: dict[str, str] | None = None
          ) -> int:
    """Send one body; assert the answer is not a 5xx and is well-formed. Returns the status."""
    response = http.post(path, content=content, headers=headers)
    shown = content[:2000]
    assert response.status_code < 500, (response.status_code, response.text, shown)
    if response.status_code >= 400:
        payload = response.json()
        assert set(payload) == {"error"}, (payload, shown)
        err = payload["error"]
        assert set(err) == {"message", "type", "param", "code"}, (payload, shown)
        assert isinstance(err["message"], str) and err["message"], (payload, shown)
    elif response.headers["content-type"].startswith("text/event-stream"):
        events = [line for line in response.text.splitlines() if line.startswith("data: ")]
        assert events and events[-1] == "data: [DONE]", (response.text[-500:], shown)
        assert not any(e.startswith('data: {"error"') for e in events), (response.text, shown)
    else:
        assert isinstance(response.json(), dict), shown
    return response.status_code


def _dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


@fuzz(200)
@given(body=mutated(chat_body), task=task_header)
def test_fuzz_chat_bodies(http: httpx.Client, body: dict[str, Any], task: str | None) -> None:
    check(http, "/v1/chat/completions", _dumps(body), {"x-router-task": task} if task else None)


@fuzz(60)
@given(body=chat_body)
def test_fuzz_well_formed_chat_bodies(http: httpx.Client, body: dict[str, Any]) -> None:
    check(http, "/v1/chat/completions", _dumps(body))


@fuzz(120)
@given(body=mutated(chat_body))
def test_fuzz_route_explanations(http: httpx.Client, body: dict[str, Any]) -> None:
    check(http, "/v1/route", _dumps(body))


@fuzz(80)
@given(body=mutated(embeddings_body))
def test_fuzz_embeddings_bodies(http: httpx.Client, body: dict[str, Any]) -> None:
    check(http, "/v1/embeddings", _dumps(body))


@fuzz(60)
@given(path=st.sampled_from(["/v1/chat/completions", "/v1/embeddings", "/v1/route"]),
       raw=st.binary(max_size=64) | any_json.map(_dumps))
def test_fuzz_any_bytes_or_json_value(http: httpx.Client, path: str, raw: bytes) -> None:
    check(http, path, raw)


@fuzz(60)
@given(data=st.data(), body=chat_body)
def test_fuzz_cut_and_mutated_json(http: httpx.Client, data: st.DataObject,
                                   body: dict[str, Any]) -> None:
    check(http, "/v1/chat/completions", _cut(data, _dumps(body)))


with_surrogates = st.text(alphabet=st.characters(categories=["Cs", "L", "So"]), max_size=12)


@fuzz(40)
@given(body=chat_body, text=with_surrogates, path=st.sampled_from(
    ["/v1/chat/completions", "/v1/route"]))
def test_fuzz_lone_surrogates(http: httpx.Client, body: dict[str, Any], text: str,
                              path: str) -> None:
    """Strings with lone surrogates, written as ``\\udXXX`` escapes (as JavaScript does)."""
    body["messages"][0]["content"] = text
    body["user"] = text
    check(http, path, json.dumps(body, ensure_ascii=True).encode())


# ---------------------------------------------------------- Responses, Messages, Completions

API_MODELS = ["gpt-4o", "gpt-4o-mini", "claude-fake", "auto", "auto-best", "nope"]
r_part = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["input_text", "output_text"]), "text": words}),
    st.fixed_dictionaries({"type": st.just("input_image"),
                           "image_url": st.just("https://example.com/a.png")}))
r_item = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "developer"]),
                           "content": words | st.lists(r_part, min_size=1, max_size=2)}),
    st.fixed_dictionaries({"type": st.just("function_call"), "call_id": st.just("call_1"),
                           "name": st.just("f"), "arguments": st.just("{}")}),
    st.fixed_dictionaries({"type": st.just("function_call_output"), "call_id": st.just("call_1"),
                           "output": words}))
responses_body = st.fixed_dictionaries(
    {"model": st.sampled_from(API_MODELS),
     "input": words | st.lists(r_item, min_size=1, max_size=3)},
    optional={"stream": st.booleans(), "store": st.booleans(), "instructions": words,
              "max_output_tokens": st.integers(1, 64),
              "tools": st.lists(st.fixed_dictionaries({
                  "type": st.just("function"), "name": st.just("f"),
                  "parameters": st.just({"type": "object", "properties": {}})}), max_size=1),
              "text": st.just({"format": {"type": "json_object"}}),
              "reasoning": st.just({"effort": "low"}), "previous_response_id": st.just("resp_x")})
m_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": words}),
    st.fixed_dictionaries({"type": st.just("image"), "source": st.just(
        {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})}),
    st.fixed_dictionaries({"type": st.just("tool_result"), "tool_use_id": st.just("toolu_1"),
                           "content": words}))
messages_body = st.fixed_dictionaries(
    {"model": st.sampled_from(API_MODELS), "max_tokens": st.integers(1, 64),
     "messages": st.lists(st.fixed_dictionaries(
         {"role": st.sampled_from(["user", "assistant"]),
          "content": words | st.lists(m_block, min_size=1, max_size=2)}), min_size=1, max_size=3)},
    optional={"stream": st.booleans(), "system": words,
              "tools": st.just([{"name": "f", "input_schema": {"type": "object"}}]),
              "tool_choice": st.sampled_from([{"type": "auto"}, {"type": "any"}]),
              "stop_sequences": st.lists(words, max_size=2), "temperature": st.floats(0, 1),
              "thinking": st.just({"type": "enabled", "budget_tokens": 1024})})
completions_body = st.fixed_dictionaries(
    {"model": st.sampled_from(API_MODELS), "prompt": words},
    optional={"stream": st.booleans(), "max_tokens": st.integers(1, 32),
              "stream_options": st.just({"include_usage": True}), "logprobs": st.integers(0, 3),
              "n": st.integers(1, 2), "echo": st.booleans(), "suffix": words})


def check_api(http: httpx.Client, path: str, content: bytes) -> None:
    """Like :func:`check`, in the API's own shapes (Anthropic's errors and events on
    ``/v1/messages``; the Responses events)."""
    response = http.post(path, content=content, headers={"anthropic-version": "2023-06-01"})
    shown = content[:2000]
    assert response.status_code < 500, (response.status_code, response.text, shown)
    if response.status_code >= 400:
        payload = response.json()
        if path.startswith("/v1/messages"):
            assert payload["type"] == "error" and payload["error"]["message"], (payload, shown)
        else:
            assert set(payload["error"]) == {"message", "type", "param", "code"}, (payload, shown)
    elif response.headers["content-type"].startswith("text/event-stream"):
        text = response.text
        last = [b for b in text.split("\n\n") if b.strip()][-1]
        ends = {"/v1/messages": "event: message_stop", "/v1/responses": "event: response."}
        assert last.startswith(ends.get(path, "data: [DONE]")), (text[-500:], shown)
        assert "event: error" not in text and 'data: {"error"' not in text, (text, shown)
    else:
        assert isinstance(response.json(), dict), shown


@fuzz(60)
@given(body=mutated(responses_body) | responses_body)
def test_fuzz_responses_bodies(http: httpx.Client, body: dict[str, Any]) -> None:
    check_api(http, "/v1/responses", _dumps(body))


@fuzz(60)
@given(body=mutated(messages_body) | messages_body,
       path=st.sampled_from(["/v1/messages", "/v1/messages/count_tokens"]))
def test_fuzz_messages_bodies(http: httpx.Client, body: dict[str, Any], path: str) -> None:
    check_api(http, path, _dumps(body))


@fuzz(40)
@given(body=mutated(completions_body) | completions_body)
def test_fuzz_completions_bodies(http: httpx.Client, body: dict[str, Any]) -> None:
    check_api(http, "/v1/completions", _dumps(body))
