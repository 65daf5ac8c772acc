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
=================  ============================================================================

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


def directives(body: dict[str, Any]) -> dict[str, str]:
    text = ""
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            text += content
        elif isinstance(content, list):
            text += " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    if isinstance(body.get("input"), str):
        text += body["input"]
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

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_reject_unreadable])
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/messages", self.anthropic)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/_requests", self.recorded)
        app.router.add_get("/_raw", self.recorded_raw)
        app.router.add_post("/_reset", self.reset)
        return app

    async def recorded(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(list(self.requests)), content_type="application/json")

    async def recorded_raw(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(list(self.raw)), content_type="application/json")

    async def reset(self, request: web.Request) -> web.Response:
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
        use_tool = bool(tools) and body.get("tool_choice") != "none"
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
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
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

    async def anthropic(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's Messages API, enough for litellm's translation (text, usage, streaming)."""
        if not request.headers.get("x-api-key"):
            return error(401, "x-api-key header is required", "authentication_error")
        body = orjson.loads(await request.read())
        self.requests.append(body)
        d = directives(body)
        if "status" in d:
            return error(int(d["status"]), "Fake anthropic failure.", "api_error")
        text = " ".join(self._reply_tokens(body, d))
        in_tok = sum(len(str(m.get("content"))) // 4 + 1 for m in body.get("messages", []))
        out_tok = len(text.split())
        mid = "msg_" + uuid.uuid4().hex[:24]
        if not body.get("stream"):
            return web.json_response({
                "id": mid, "type": "message", "role": "assistant", "model": body["model"],
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": in_tok, "output_tokens": out_tok}})
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await stream.write(f"event: {name}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n")

        await event("message_start", {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": body["model"], "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": in_tok, "output_tokens": 1}}})
        await event("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "text", "text": ""}})
        for i, word in enumerate(text.split(" ")):
            await event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta",
                                                          "text": (" " if i else "") + word}})
        await event("content_block_stop", {"type": "content_block_stop", "index": 0})
        await event("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                      "usage": {"output_tokens": out_tok}})
        await event("message_stop", {"type": "message_stop"})
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
