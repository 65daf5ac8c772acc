"""A fake OpenAI-compatible (and Anthropic Messages) upstream for tests and demos.

Run it: ``python tests/fake_upstream.py --port 9100``. It speaks the wire protocol as the real
providers do: JSON bodies, SSE streams (``data: {...}\\n\\n`` ... ``data: [DONE]``), usage with
``prompt_tokens`` computed the way OpenAI bills them (the cookbook's method, implemented here
independently of the gateway's own counter), errors in OpenAI's shape.

Behaviour is steered by directives in the last user message, e.g. ``[[fake:status=503]]``:

=================  ============================================================================
``status=N``       answer with HTTP N and an OpenAI-shaped error
``fail_times=N``   with ``id=X``: fail the first N requests carrying that id with 503, then succeed
``delay=S``        wait S seconds before the response headers
``chunk_delay=S``  wait S seconds between stream chunks
``tokens=N``       length of the reply in tokens (default 12, capped by max_tokens)
``drop_after=N``   stream: close the connection after N content chunks; non-stream: before answering
``no_usage``       never report usage (stream or not)
``bad_json``       non-stream: answer 200 with a body that is not JSON
``cached=N``       chat and Responses: report N of the prompt tokens as cached
``cache_read=N``   Messages: report N cache-read input tokens (``cache_write=N``: cache writes)
=================  ============================================================================

Besides chat completions and embeddings it speaks the Responses API (``/v1/responses``: stored
responses and ``previous_response_id``, function calls, the streaming event sequence), the
Anthropic Messages API (``/v1/messages`` and ``/v1/messages/count_tokens``: ``x-api-key`` and
``anthropic-version`` required, tool_use, thinking, cache usage, errors in Anthropic's shape) and
legacy completions (``/v1/completions``). ``GET /_headers`` returns the headers each request
came with (keys redacted).

Upstream model ids starting with ``broken-`` always answer 503; an upstream key ``wrong`` gets
401 with a message quoting the key, as OpenAI does. ``GET /_requests`` returns the bodies received
(lone surrogates as U+FFFD, as OpenAI reads them), ``GET /_raw`` the same as the text that arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import re
import struct
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

_DIRECTIVE = re.compile(r"\[\[fake:([^\]]*)\]\]")
WORDS = ["This", "is", "a", "fake", "reply", "from", "the", "test", "upstream", ",", "counting", "tokens", "as", "it", "goes", "."]


def _setup_tiktoken() -> Any:
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        import importlib.util

        spec = importlib.util.find_spec("litellm")
        if spec and spec.origin:
            os.environ["TIKTOKEN_CACHE_DIR"] = os.path.join(
                os.path.dirname(spec.origin), "litellm_core_utils", "tokenizers"
            )
    import tiktoken

    return tiktoken


tiktoken = _setup_tiktoken()


def encoding(model: str) -> Any:
    m = model.lower()
    if m.startswith(("gpt-4o", "gpt-4.1", "o1", "o3", "o4", "gpt-5", "chatgpt-4o")):
        return tiktoken.get_encoding("o200k_base")
    return tiktoken.get_encoding("cl100k_base")


def reference_prompt_tokens(body: dict[str, Any]) -> int:
    """OpenAI's billing of a chat prompt, following the cookbook (text, names, tools)."""
    model = str(body.get("model", ""))
    enc = encoding(model)
    n = 3
    for message in body.get("messages", []):
        n += 3
        for key, value in message.items():
            if isinstance(value, list):  # content parts
                for part in value:
                    if part.get("type") == "text":
                        n += len(enc.encode_ordinary(part["text"]))
                    elif part.get("type") == "image_url":
                        detail = (part.get("image_url") or {}).get("detail")
                        n += 85 if detail == "low" else 765
            elif isinstance(value, str):
                n += len(enc.encode_ordinary(value))
                if key == "name":
                    n += 1
    tools = body.get("tools") or []
    if tools:
        o200k = enc.name == "o200k_base"
        for tool in tools:
            f = tool["function"]
            n += 7 if o200k else 10
            n += len(enc.encode_ordinary(f["name"] + ":" + f.get("description", "").rstrip(".")))
            props = f.get("parameters", {}).get("properties", {})
            if props:
                n += 3
                for key, spec in props.items():
                    n += 3
                    if "enum" in spec:
                        n -= 3
                        for item in spec["enum"]:
                            n += 3 + len(enc.encode_ordinary(item))
                    desc = spec.get("description", "").rstrip(".")
                    n += len(enc.encode_ordinary(f"{key}:{spec.get('type')}:{desc}"))
        n += 12
    return n


def _text_of(messages: Any) -> str:
    text = ""
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            text += content
        elif isinstance(content, list):
            text += " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return text


def directives(body: dict[str, Any]) -> dict[str, str]:
    text = _text_of(body.get("messages", []))
    if isinstance(body.get("input"), str):
        text += body["input"]
    elif isinstance(body.get("input"), list):
        text += _text_of(body["input"])
    if isinstance(body.get("prompt"), str):
        text += body["prompt"]
    out: dict[str, str] = {}
    for group in _DIRECTIVE.findall(text):
        for item in group.split(","):
            k, _, v = item.partition("=")
            out[k.strip()] = v.strip()
    return out


def _without_surrogates(value: Any) -> Any:
    """``value`` with U+FFFD for lone surrogates (so that ``/_requests`` can encode it)."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def error(status: int, message: str, kind: str = "server_error", code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


@web.middleware
async def _reject_unreadable(request: web.Request, handler: Any) -> web.StreamResponse:
    """A body this fake cannot read (a parameter of the wrong type, say ``tools: 5``) gets a 400
    in OpenAI's shape, as OpenAI answers malformed parameters, never a 500 (which the gateway
    would rightly retry as an upstream failure)."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        return error(400, f"Invalid request body (fake upstream: {type(exc).__name__}).",
                     "invalid_request_error")


class Fake:
    def __init__(self) -> None:
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)
        #: The request bodies as they arrived (text), for tests of what went on the wire.
        self.raw: collections.deque[str] = collections.deque(maxlen=200)
        self.fail_counts: dict[str, int] = collections.defaultdict(int)
        #: The headers of each request (lower-case names; keys redacted), for header tests.
        self.headers: collections.deque[dict[str, str]] = collections.deque(maxlen=200)
        #: Responses stored (``store`` not false): id -> output items, as OpenAI keeps them.
        self.stored: dict[str, list[dict[str, Any]]] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_reject_unreadable])
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/messages", self.anthropic)
        app.router.add_post("/v1/messages/count_tokens", self.anthropic_count)
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/_headers", self.recorded_headers)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/_requests", self.recorded)
        app.router.add_get("/_raw", self.recorded_raw)
        app.router.add_post("/_reset", self.reset)
        return app

    async def recorded(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(list(self.requests)), content_type="application/json")

    async def recorded_raw(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(list(self.raw)), content_type="application/json")

    async def recorded_headers(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(list(self.headers)), content_type="application/json")

    async def reset(self, request: web.Request) -> web.Response:
        self.headers.clear()
        self.requests.clear()
        self.raw.clear()
        self.fail_counts.clear()
        return web.Response(text="ok")

    async def models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in ("gpt-4o",)]
        return web.json_response({"object": "list", "data": data})

    async def _common(self, request: web.Request) -> tuple[dict[str, Any] | None, web.StreamResponse | None]:
        auth = request.headers.get("Authorization", "") or ("Bearer " + request.headers.get("x-api-key", ""))
        key = auth.removeprefix("Bearer ").strip()
        if not key:
            return None, error(401, "You didn't provide an API key.", "invalid_request_error")
        if key == "wrong" or key.startswith("sk-wrong"):
            return None, error(401, f"Incorrect API key provided: {key}. You can find your API key at "
                               "https://platform.openai.com/account/api-keys.", "invalid_request_error",
                               "invalid_api_key")
        raw = await request.read()
        self.headers.append({k.lower(): ("[key]" if k.lower() in ("authorization", "x-api-key") else v)
                             for k, v in request.headers.items()})
        self.raw.append(raw.decode("utf-8", "replace"))
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:  # lone surrogate escapes ("\ud83d"): valid JSON, which OpenAI accepts
                body = _without_surrogates(json.loads(raw.decode("utf-8")))
            except ValueError:
                return None, error(400, "We could not parse the JSON body of your request.",
                                   "invalid_request_error")
        self.requests.append(body)
        d = directives(body)
        if "delay" in d:
            await asyncio.sleep(float(d["delay"]))
        if str(body.get("model", "")).startswith("broken-"):
            return None, error(503, "The server is overloaded. Please try again later.")
        if "status" in d:
            status = int(d["status"])
            kind = "invalid_request_error" if status < 500 and status != 429 else "server_error"
            return None, error(status, f"Fake failure with status {status}.", kind)
        if "fail_times" in d:
            ident = d.get("id", "")
            self.fail_counts[ident] += 1
            if self.fail_counts[ident] <= int(d["fail_times"]):
                return None, error(503, "Temporarily unavailable (fake).")
        if "drop_after" in d and not body.get("stream"):
            assert request.transport is not None
            request.transport.close()
            return None, web.Response(status=500)
        return body, None

    def _reply_tokens(self, body: dict[str, Any], d: dict[str, str]) -> list[str]:
        n = int(d.get("tokens", 12))
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(cap, int):
            n = min(n, cap)
        return [WORDS[i % len(WORDS)] for i in range(n)]

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, failure = await self._common(request)
        if failure is not None:
            return failure
        assert body is not None
        d = directives(body)
        model = str(body["model"])
        enc = encoding(model)
        prompt = reference_prompt_tokens(body)
        words = self._reply_tokens(body, d)
        n = int(body.get("n") or 1)
        rf = body.get("response_format") or {}
        tools = body.get("tools") or []
        messages = body.get("messages") or [{}]
        use_tool = (bool(tools) and body.get("tool_choice") != "none"
                    and messages[-1].get("role") != "tool")
        if rf.get("type") in ("json_object", "json_schema"):
            text = '{"answer": "fake"}'
        else:
            text = " ".join(words)
        pieces = [" " + w if i else w for i, w in enumerate(text.split(" "))]
        tool_calls = None
        if use_tool:
            fn = tools[0]["function"]
            tool_calls = [{"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                           "function": {"name": fn["name"], "arguments": '{"location": "Paris"}'}}]
        completion = (len(enc.encode_ordinary(tool_calls[0]["function"]["arguments"])) + 7
                      if tool_calls else len(enc.encode_ordinary(text))) * n
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion,
                 "prompt_tokens_details": {"cached_tokens": min(prompt, int(d.get("cached", 0))),
                                           "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0,
                                               "rejected_prediction_tokens": 0}}
        cid, created = "chatcmpl-" + uuid.uuid4().hex[:29], int(time.time())
        if not body.get("stream"):
            if "bad_json" in d:
                return web.Response(text="<html>oops</html>", content_type="text/html")
            choices = []
            for i in range(n):
                msg: dict[str, Any] = {"role": "assistant", "content": None if tool_calls else text,
                                       "refusal": None}
                if tool_calls:
                    msg["tool_calls"] = tool_calls
                choice: dict[str, Any] = {"index": i, "message": msg, "logprobs": None,
                                          "finish_reason": "tool_calls" if tool_calls else "stop"}
                if body.get("logprobs"):
                    choice["logprobs"] = {"content": [
                        {"token": p, "logprob": -0.1, "bytes": list(p.encode()), "top_logprobs": []}
                        for p in pieces], "refusal": None}
                choices.append(choice)
            resp: dict[str, Any] = {"id": cid, "object": "chat.completion", "created": created,
                                    "model": model, "choices": choices,
                                    "system_fingerprint": "fp_fake"}
            if "no_usage" not in d:
                resp["usage"] = usage
            return web.Response(body=orjson.dumps(resp), content_type="application/json")

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                             "Cache-Control": "no-cache"})
        await stream.prepare(request)
        chunk_delay = float(d.get("chunk_delay", 0))
        drop_after = int(d["drop_after"]) if "drop_after" in d else None

        def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
            c: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                                 "model": model, "system_fingerprint": "fp_fake",
                                 "choices": [{"index": index, "delta": delta, "logprobs": None,
                                              "finish_reason": finish}]}
            if include_usage:
                c["usage"] = None
            return b"data: " + orjson.dumps(c) + b"\n\n"

        for i in range(n):
            await stream.write(chunk({"role": "assistant", "content": "", "refusal": None}, index=i))
        sent = 0
        if tool_calls:
            call = tool_calls[0]
            for i in range(n):
                await stream.write(chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                          "function": {"name": call["function"]["name"], "arguments": ""}}]},
                                         index=i))
                await stream.write(chunk({"tool_calls": [{"index": 0, "function": {
                    "arguments": call["function"]["arguments"]}}]}, index=i))
        else:
            for piece in pieces:
                if drop_after is not None and sent >= drop_after:
                    assert request.transport is not None
                    request.transport.close()
                    return stream
                if chunk_delay:
                    await asyncio.sleep(chunk_delay)
                for i in range(n):
                    await stream.write(chunk({"content": piece}, index=i))
                sent += 1
        for i in range(n):
            await stream.write(chunk({}, "tool_calls" if tool_calls else "stop", index=i))
        if include_usage and "no_usage" not in d:
            final = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                     "system_fingerprint": "fp_fake", "choices": [], "usage": usage}
            await stream.write(b"data: " + orjson.dumps(final) + b"\n\n")
        await stream.write(b"data: [DONE]\n\n")
        await stream.write_eof()
        return stream

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body, failure = await self._common(request)
        if failure is not None:
            return failure
        assert body is not None
        enc = encoding(str(body["model"]))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if inputs and all(isinstance(x, int) for x in inputs):
            inputs = [inputs]
        dims = body.get("dimensions") or 8
        if not isinstance(dims, int) or not 1 <= dims <= 3072:  # as OpenAI's range check
            return error(400, "Invalid 'dimensions': must be an integer from 1 to 3072.",
                         "invalid_request_error")
        as_base64 = body.get("encoding_format") == "base64"
        data, tokens = [], 0
        for i, item in enumerate(inputs):
            tokens += len(item) if isinstance(item, list) else len(enc.encode_ordinary(item))
            vector = [round(((i + 1) * (j + 1)) % 7 / 7, 4) for j in range(dims)]
            embedding: Any = (base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
                              if as_base64 else vector)
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    # ---------------------------------------------------------------- Anthropic Messages

    @staticmethod
    def anthropic_error(status: int, message: str, kind: str = "api_error") -> web.Response:
        body = {"type": "error", "error": {"type": kind, "message": message},
                "request_id": "req_fake"}
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")

    def anthropic_input_tokens(self, body: dict[str, Any]) -> int:
        """Input tokens the way this fake bills them (cl100k over every text, plus 3 a block)."""
        enc = tiktoken.get_encoding("cl100k_base")
        n = 0
        system = body.get("system")
        if isinstance(system, str):
            n += len(enc.encode_ordinary(system))
        elif isinstance(system, list):
            n += sum(len(enc.encode_ordinary(str(b.get("text", "")))) + 3 for b in system)
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                n += len(enc.encode_ordinary(content)) + 3
                continue
            for block in content or ():
                n += 3 + len(enc.encode_ordinary(orjson.dumps(block).decode()
                                                 if block.get("type") != "text" else block["text"]))
        for tool in body.get("tools") or ():
            n += len(enc.encode_ordinary(orjson.dumps(tool).decode()))
        return n

    async def anthropic_common(self, request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
        if not request.headers.get("x-api-key"):
            return None, self.anthropic_error(401, "x-api-key header is required", "authentication_error")
        if not request.headers.get("anthropic-version"):
            return None, self.anthropic_error(400, "anthropic-version: header is required",
                                              "invalid_request_error")
        self.headers.append({k.lower(): ("[key]" if k.lower() == "x-api-key" else v)
                             for k, v in request.headers.items()})
        raw = await request.read()
        self.raw.append(raw.decode("utf-8", "replace"))
        body = orjson.loads(raw)
        self.requests.append(body)
        if not isinstance(body.get("messages"), list):
            return None, self.anthropic_error(400, "messages: Field required", "invalid_request_error")
        return body, None

    async def anthropic_count(self, request: web.Request) -> web.StreamResponse:
        body, failure = await self.anthropic_common(request)
        if failure is not None:
            return failure
        assert body is not None
        return web.json_response({"input_tokens": self.anthropic_input_tokens(body)})

    async def anthropic(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's Messages API: text, tool_use, thinking, cache usage, errors, streaming with
        the real event sequence (message_start, ping, content blocks, message_delta, message_stop)."""
        body, failure = await self.anthropic_common(request)
        if failure is not None:
            return failure
        assert body is not None
        d = directives(body)
        if "delay" in d:
            await asyncio.sleep(float(d["delay"]))
        if "status" in d:
            status = int(d["status"])
            kind = {400: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
            return self.anthropic_error(status, "Fake anthropic failure.", kind)
        if not isinstance(body.get("max_tokens"), int):
            return self.anthropic_error(400, "max_tokens: Field required", "invalid_request_error")
        enc = tiktoken.get_encoding("cl100k_base")
        text = " ".join(self._reply_tokens(body, d))
        last = body["messages"][-1]
        after_tool = isinstance(last.get("content"), list) and any(
            b.get("type") == "tool_result" for b in last["content"])
        tools = [t for t in body.get("tools") or () if t.get("type") in (None, "custom")]
        choice = (body.get("tool_choice") or {}).get("type")
        use_tool = bool(tools) and choice != "none" and not after_tool
        blocks: list[dict[str, Any]] = []
        thinking = body.get("thinking") or {}
        if thinking.get("type") == "enabled":
            blocks.append({"type": "thinking", "thinking": "Let me think.", "signature": "sig_fake"})
        if use_tool:
            blocks.append({"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20],
                           "name": tools[0]["name"], "input": {"location": "Paris"}})
        else:
            blocks.append({"type": "text", "text": text})
        out_tok = sum(len(enc.encode_ordinary(b.get("text") or b.get("thinking") or orjson.dumps(b.get("input")).decode()))
                      for b in blocks)
        cache_read, cache_write = int(d.get("cache_read", 0)), int(d.get("cache_write", 0))
        usage = {"input_tokens": self.anthropic_input_tokens(body), "output_tokens": out_tok,
                 "cache_creation_input_tokens": cache_write, "cache_read_input_tokens": cache_read}
        stop = "tool_use" if use_tool else "end_turn"
        mid = "msg_" + uuid.uuid4().hex[:24]
        if not body.get("stream"):
            return web.json_response({
                "id": mid, "type": "message", "role": "assistant", "model": body["model"],
                "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage})
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await stream.write(f"event: {name}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n")

        await event("message_start", {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": body["model"], "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}})
        await event("ping", {"type": "ping"})
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                await event("content_block_start", {"type": "content_block_start", "index": i,
                                                    "content_block": {"type": "text", "text": ""}})
                for j, word in enumerate(block["text"].split(" ")):
                    if "drop_after" in d and j >= int(d["drop_after"]):
                        assert request.transport is not None
                        request.transport.close()
                        return stream
                    await event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                        "delta": {"type": "text_delta",
                                                                  "text": (" " if j else "") + word}})
            elif block["type"] == "thinking":
                await event("content_block_start", {"type": "content_block_start", "index": i,
                                                    "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
                await event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                    "delta": {"type": "thinking_delta", "thinking": block["thinking"]}})
                await event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                    "delta": {"type": "signature_delta", "signature": block["signature"]}})
            else:
                await event("content_block_start", {"type": "content_block_start", "index": i,
                                                    "content_block": {**block, "input": {}}})
                args = orjson.dumps(block["input"]).decode()
                for part in (args[: len(args) // 2], args[len(args) // 2 :]):
                    await event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                        "delta": {"type": "input_json_delta", "partial_json": part}})
            await event("content_block_stop", {"type": "content_block_stop", "index": i})
        await event("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": stop, "stop_sequence": None},
                                      "usage": {"output_tokens": out_tok}})
        await event("message_stop", {"type": "message_stop"})
        await stream.write_eof()
        return stream

    # ----------------------------------------------------------------- OpenAI Responses

    def responses_input_tokens(self, body: dict[str, Any]) -> int:
        enc = encoding(str(body.get("model", "")))
        n = 0
        if isinstance(body.get("instructions"), str):
            n += len(enc.encode_ordinary(body["instructions"])) + 4
        value = body.get("input")
        items = [{"role": "user", "content": value}] if isinstance(value, str) else value or []
        for item in items:
            n += 4 + len(enc.encode_ordinary(orjson.dumps(item.get("content") if "content" in item else item).decode()
                                             if not isinstance(item.get("content"), str) else item["content"]))
        for tool in body.get("tools") or ():
            n += len(enc.encode_ordinary(orjson.dumps(tool).decode()))
        if body.get("previous_response_id") in self.stored:
            n += sum(4 + len(enc.encode_ordinary(orjson.dumps(i).decode())) for i in self.stored[body["previous_response_id"]])
        return n

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's Responses API: message and function_call output items, stored responses and
        previous_response_id, usage with cached and reasoning tokens, the streaming event
        sequence with sequence numbers, errors in OpenAI's shape."""
        body, failure = await self._common(request)
        if failure is not None:
            return failure
        assert body is not None
        d = directives(body)
        prev = body.get("previous_response_id")
        if prev is not None and prev not in self.stored:
            return error(400, f"Previous response with id '{prev}' not found.",
                         "invalid_request_error", "previous_response_not_found")
        model = str(body["model"])
        enc = encoding(model)
        value = body.get("input")
        last = value[-1] if isinstance(value, list) and value else {}
        tools = [t for t in body.get("tools") or () if t.get("type") == "function"]
        use_tool = bool(tools) and body.get("tool_choice") != "none" \
            and last.get("type") != "function_call_output"
        rid = "resp_" + uuid.uuid4().hex
        if use_tool:
            item: dict[str, Any] = {"id": "fc_" + uuid.uuid4().hex[:24], "type": "function_call",
                                    "status": "completed", "call_id": "call_" + uuid.uuid4().hex[:24],
                                    "name": tools[0]["name"], "arguments": '{"location": "Paris"}'}
            out_tok = len(enc.encode_ordinary(item["arguments"])) + 7
        else:
            text = " ".join(self._reply_tokens({"max_tokens": body.get("max_output_tokens")}, d))
            if prev is not None:
                text = "Continuing: " + text
            item = {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "status": "completed",
                    "role": "assistant", "content": [{"type": "output_text", "text": text,
                                                      "annotations": [], "logprobs": []}]}
            out_tok = len(enc.encode_ordinary(text))
        in_tok = self.responses_input_tokens(body)
        usage = {"input_tokens": in_tok,
                 "input_tokens_details": {"cached_tokens": min(in_tok, int(d.get("cached", 0)))},
                 "output_tokens": out_tok, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": in_tok + out_tok}
        incomplete = isinstance(body.get("max_output_tokens"), int) and not use_tool \
            and int(d.get("tokens", 12)) > body["max_output_tokens"]
        response: dict[str, Any] = {
            "id": rid, "object": "response", "created_at": int(time.time()),
            "status": "incomplete" if incomplete else "completed", "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": model, "output": [item], "parallel_tool_calls": True,
            "previous_response_id": prev, "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True) is not False, "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [], "top_p": 1.0, "truncation": "disabled",
            "usage": usage, "user": None, "metadata": body.get("metadata") or {}}
        if response["store"]:
            self.stored[rid] = [item]
        if not body.get("stream"):
            return web.json_response(response)
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        seq = 0

        async def event(kind: str, data: dict[str, Any]) -> None:
            nonlocal seq
            await stream.write(f"event: {kind}\n".encode() + b"data: "
                               + orjson.dumps({"type": kind, "sequence_number": seq, **data}) + b"\n\n")
            seq += 1

        shell = {**response, "status": "in_progress", "output": [], "usage": None,
                 "incomplete_details": None}
        await event("response.created", {"response": shell})
        await event("response.in_progress", {"response": shell})
        if item["type"] == "function_call":
            await event("response.output_item.added", {"output_index": 0, "item": {
                **item, "status": "in_progress", "arguments": ""}})
            await event("response.function_call_arguments.delta", {
                "item_id": item["id"], "output_index": 0, "delta": item["arguments"]})
            await event("response.function_call_arguments.done", {
                "item_id": item["id"], "output_index": 0, "arguments": item["arguments"]})
        else:
            await event("response.output_item.added", {"output_index": 0, "item": {
                **item, "status": "in_progress", "content": []}})
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            await event("response.content_part.added", {"item_id": item["id"], "output_index": 0,
                                                        "content_index": 0, "part": part})
            words = item["content"][0]["text"].split(" ")
            for j, word in enumerate(words):
                if "drop_after" in d and j >= int(d["drop_after"]):
                    assert request.transport is not None
                    request.transport.close()
                    return stream
                if "chunk_delay" in d:
                    await asyncio.sleep(float(d["chunk_delay"]))
                await event("response.output_text.delta", {
                    "item_id": item["id"], "output_index": 0, "content_index": 0,
                    "delta": (" " if j else "") + word, "logprobs": []})
            await event("response.output_text.done", {
                "item_id": item["id"], "output_index": 0, "content_index": 0,
                "text": item["content"][0]["text"], "logprobs": []})
            await event("response.content_part.done", {"item_id": item["id"], "output_index": 0,
                                                       "content_index": 0, "part": item["content"][0]})
        await event("response.output_item.done", {"output_index": 0, "item": item})
        if "no_usage" in d:
            response["usage"] = None
        await event("response.incomplete" if incomplete else "response.completed", {"response": response})
        await stream.write_eof()
        return stream

    # ---------------------------------------------------------------- legacy Completions

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """Legacy text completions: a string prompt, ``max_tokens`` 16 by default, streams of
        ``text_completion`` chunks with a usage chunk when asked, then ``[DONE]``."""
        body, failure = await self._common(request)
        if failure is not None:
            return failure
        assert body is not None
        d = directives(body)
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            return error(400, "This fake takes one string prompt.", "invalid_request_error")
        model = str(body["model"])
        enc = encoding(model)
        words = self._reply_tokens({"max_tokens": body.get("max_tokens") or 16}, d)
        text = " " + " ".join(words)
        prompt_tokens = len(enc.encode_ordinary(prompt))
        completion = len(enc.encode_ordinary(text))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                 "total_tokens": prompt_tokens + completion}
        cid, created = "cmpl-" + uuid.uuid4().hex[:24], int(time.time())
        finish = "length" if len(words) >= (body.get("max_tokens") or 16) else "stop"
        if not body.get("stream"):
            return web.json_response({"id": cid, "object": "text_completion", "created": created,
                                      "model": model, "choices": [{"text": text, "index": 0, "logprobs": None,
                                                                   "finish_reason": finish}],
                                      "usage": usage})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        pieces = [" " + w for w in words]
        for i, piece in enumerate(pieces):
            chunk = {"id": cid, "object": "text_completion", "created": created, "model": model,
                     "choices": [{"text": piece, "index": 0, "logprobs": None,
                                  "finish_reason": finish if i == len(pieces) - 1 else None}]}
            await stream.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        if include_usage:
            await stream.write(b"data: " + orjson.dumps({"id": cid, "object": "text_completion",
                                                          "created": created, "model": model,
                                                          "choices": [], "usage": usage}) + b"\n\n")
        await stream.write(b"data: [DONE]\n\n")
        await stream.write_eof()
        return stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    web.run_app(Fake().app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
