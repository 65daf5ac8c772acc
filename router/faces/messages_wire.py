"""Anthropic Messages <-> chat completions: pure translations (docs/apis.md lists what is kept).

* :func:`check` validates a Messages request as Anthropic does (the gateway's 400s).
* :func:`to_chat` turns it into a chat-completions request, and lists what chat cannot carry
  (``thinking``, server tools, ``top_k``, ...): such a request is routed only to models that
  serve the Messages API natively, or refused with a 400 naming it.
* :func:`from_chat` renders a chat completion as a Message; :class:`StreamTranslator` renders
  a chat-completions stream as Messages events; :func:`messages_usage` / :func:`chat_usage_of`
  map usage both ways (cache reads and writes included).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import orjson

from router.errors import GatewayError, InvalidRequest, UpstreamError
from router.faces.events import chat_usage, count, sse, usage_parts
from router.validate import json_type

#: Messages request keys the translation carries (or knowingly handles); any other key is
#: something only a native upstream can take.
KNOWN = frozenset({"model", "messages", "system", "max_tokens", "stream", "temperature", "top_p",
                   "stop_sequences", "metadata", "tools", "tool_choice", "thinking",
                   "service_tier", "output_format"})
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal"}
#: Gateway error status -> Anthropic's error type (what the anthropic SDKs map to classes).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 408: "timeout_error",
               413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error",
               504: "timeout_error", 529: "overloaded_error"}


def error_payload(exc: GatewayError) -> dict[str, Any]:
    """``exc`` in Anthropic's error shape (the gateway's ``code`` and ``param`` alongside)."""
    kind = ERROR_TYPES.get(exc.status_code, "api_error" if exc.status_code >= 500
                           else "invalid_request_error")
    err: dict[str, Any] = {"type": kind, "message": exc.message}
    if exc.code is not None:
        err["code"] = exc.code
    if exc.param is not None:
        err["param"] = exc.param
    return {"type": "error", "error": err}


def _blocks(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise InvalidRequest(f"{where}: Input should be a valid string or list of content "
                             f"blocks, not a {json_type(value)}.", param=where)
    for i, block in enumerate(value):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise InvalidRequest(f"{where}.{i}: each content block must be an object with a "
                                 "string 'type'.", param=f"{where}.{i}")
    return value


def check(body: dict[str, Any]) -> tuple[str, bool, int]:
    """(model, stream, max_tokens) of a valid Messages request; else a 400 naming the field."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required (a non-empty string).", param="model")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Field required (an integer of at least 1).",
                             param="max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Field required (a non-empty list).", param="messages")
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where}: must be an object.", param=where)
        if message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"{where}.role: Input should be 'user' or 'assistant'.",
                                 param=f"{where}.role")
        content = message.get("content")
        if not isinstance(content, str):
            _blocks(content, f"{where}.content")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _blocks(system, "system")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("stream: Input should be a valid boolean.", param="stream")
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list)
                              or not all(isinstance(t, dict) for t in tools)):
        raise InvalidRequest("tools: Input should be a list of tool objects.", param="tools")
    return model, stream, max_tokens


def _image(block: dict[str, Any], where: str, missing: list[str]) -> dict[str, Any] | None:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        return {"type": "image_url", "image_url": {"url": url}}
    if isinstance(source, dict) and source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url")}}
    kind = source.get("type") if isinstance(source, dict) else None
    missing.append(f"an image source of type {kind!r} ({where})")
    return None


def _document(block: dict[str, Any], where: str, missing: list[str]) -> dict[str, Any] | None:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict):
        name = block.get("title") or "document.pdf"
        return {"type": "file", "file": {
            "filename": name, "file_data": f"data:{source.get('media_type')};base64,"
                                           f"{source.get('data')}"}}
    if kind == "text" and isinstance(source, dict):
        return {"type": "text", "text": str(source.get("data", ""))}
    missing.append(f"a document source of type {kind!r} ({where})")
    return None


def _tool_result(block: dict[str, Any], where: str, missing: list[str]) -> dict[str, Any]:
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        texts = []
        for j, part in enumerate(_blocks(content, f"{where}.content")):
            if part["type"] == "text":
                texts.append(str(part.get("text", "")))
            else:
                missing.append(f"a {part['type']!r} block inside a tool_result "
                               f"({where}.content.{j})")
        text = "\n".join(texts)
    if block.get("is_error") is True:
        text = "Error: " + text
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


def _user(message: dict[str, Any], where: str, missing: list[str]) -> list[dict[str, Any]]:
    content = message["content"]
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at, kind = f"{where}.content.{j}", block["type"]
        part: dict[str, Any] | None = None
        if kind == "text":
            part = {"type": "text", "text": str(block.get("text", ""))}
        elif kind == "image":
            part = _image(block, at, missing)
        elif kind == "document":
            part = _document(block, at, missing)
        elif kind == "tool_result":
            tools.append(_tool_result(block, at, missing))
        else:
            missing.append(f"{kind!r} content blocks ({at})")
        if part is not None:
            parts.append(part)
    out = tools
    if parts:
        if all(p["type"] == "text" for p in parts) and len(parts) == 1:
            out.append({"role": "user", "content": parts[0]["text"]})
        else:
            out.append({"role": "user", "content": parts})
    return out


def _assistant(message: dict[str, Any], where: str, missing: list[str]) -> dict[str, Any]:
    content = message["content"]
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block["type"]
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"),
                "arguments": orjson.dumps(block.get("input", {})).decode()}})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # a model's own reasoning: chat completions takes none back (docs/apis.md)
        else:
            missing.append(f"{kind!r} content blocks ({where}.content.{j})")
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        out["tool_calls"] = calls
    return out


def _tools(body: dict[str, Any], chat: dict[str, Any], missing: list[str]) -> None:
    tools = body.get("tools")
    if tools:
        out = []
        for i, tool in enumerate(tools):
            kind = tool.get("type")
            if kind not in (None, "custom"):
                missing.append(f"tool type {kind!r} (tools.{i})")
                continue
            fn: dict[str, Any] = {"name": tool.get("name"),
                                  "parameters": tool.get("input_schema") or {"type": "object"}}
            if tool.get("description") is not None:
                fn["description"] = tool["description"]
            if tool.get("strict") is not None:
                fn["strict"] = tool["strict"]
            out.append({"type": "function", "function": fn})
        chat["tools"] = out
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "auto":
            chat["tool_choice"] = "auto"
        elif kind == "any":
            chat["tool_choice"] = "required"
        elif kind == "none":
            chat["tool_choice"] = "none"
        elif kind == "tool":
            chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        else:
            missing.append(f"tool_choice of type {kind!r}")
        if choice.get("disable_parallel_tool_use") is True:
            chat["parallel_tool_calls"] = False
    elif choice is not None:
        raise InvalidRequest("tool_choice: Input should be an object.", param="tool_choice")


def to_chat(body: dict[str, Any], stream: bool, max_tokens: int) -> tuple[dict[str, Any],
                                                                        tuple[str, ...]]:
    """The chat-completions request for a (checked) Messages request, and what it cannot carry
    (empty: the translation is complete)."""
    missing: list[str] = [f"{key!r}" for key in body if key not in KNOWN]
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, str):
        if system:
            messages.append({"role": "system", "content": system})
    elif system:
        texts = []
        for i, block in enumerate(system):
            if block["type"] == "text":
                texts.append(str(block.get("text", "")))
            else:
                missing.append(f"{block['type']!r} blocks in system (system.{i})")
        messages.append({"role": "system", "content": "\n\n".join(texts)})
    for i, message in enumerate(body["messages"]):
        where = f"messages.{i}"
        if message["role"] == "user":
            messages.extend(_user(message, where, missing))
        else:
            messages.append(_assistant(message, where, missing))
    chat: dict[str, Any] = {"model": body["model"], "messages": messages,
                            "max_tokens": max_tokens}
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    meta = body.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("user_id"), str):
        chat["user"] = meta["user_id"]
    _tools(body, chat, missing)
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled"):
        missing.append("'thinking'")
    if body.get("service_tier") not in (None, "auto"):
        missing.append("'service_tier'")
    fmt = body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "output", "schema": fmt.get("schema") or {}, "strict": True}}
    elif fmt is not None:
        missing.append("'output_format'")
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat, tuple(missing)


def messages_usage(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """A chat-shaped usage as Anthropic reports it: ``input_tokens`` are the uncached ones."""
    prompt, completion, cached, write, _ = usage_parts(usage)
    return {"input_tokens": max(0, prompt - cached - write), "output_tokens": completion,
            "cache_creation_input_tokens": write, "cache_read_input_tokens": cached}


def chat_usage_of(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Anthropic usage in the chat shape: cache reads and writes are part of the prompt."""
    read = count(usage.get("cache_read_input_tokens"))
    write = count(usage.get("cache_creation_input_tokens"))
    prompt = count(usage.get("input_tokens")) + read + write
    return chat_usage(prompt, count(usage.get("output_tokens")), read, write)


def new_id() -> str:
    return "msg_" + os.urandom(12).hex()


def _arguments(raw: Any, model: str) -> Any:
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{model} returned tool-call arguments that are not JSON, which a "
                            "Messages tool_use block cannot carry") from None


def from_chat(data: Mapping[str, Any]) -> dict[str, Any]:
    """A chat completion rendered as a Message."""
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    message = choice.get("message") or {}
    model = str(data.get("model", ""))
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content") or message.get("refusal")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"),
                        "input": _arguments(fn.get("arguments"), model)})
    finish = choice.get("finish_reason")
    usage = data.get("usage")
    return {"id": new_id(), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": STOP_REASONS.get(finish or "stop", "end_turn"),
            "stop_sequence": None,
            "usage": messages_usage(usage if isinstance(usage, dict) else None)}


class StreamTranslator:
    """Chat-completions chunks in, Messages events out (message_start, content blocks,
    message_delta with the usage, message_stop)."""

    def __init__(self) -> None:
        self.response_id: str | None = new_id()
        self._started = False
        self._index = -1
        self._open: str | None = None  # "text", "thinking" or "tool:<chat index>"
        self._finish: str | None = None
        self._model = ""

    def _start(self, chunk: Mapping[str, Any]) -> bytes:
        self._started = True
        self._model = str(chunk.get("model", ""))
        return sse("message_start", {"type": "message_start", "message": {
            "id": self.response_id, "type": "message", "role": "assistant", "model": self._model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return sse("content_block_stop", {"type": "content_block_stop", "index": self._index})

    def _block(self, key: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._index += 1
        self._open = key
        return out + sse("content_block_start", {"type": "content_block_start",
                                                 "index": self._index, "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                           "delta": delta})

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        out = b"" if self._started else self._start(chunk)
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                if self._open != "thinking":
                    out += self._block("thinking", {"type": "thinking", "thinking": "",
                                                    "signature": ""})
                out += self._delta({"type": "thinking_delta", "thinking": reasoning})
            text = delta.get("content") or delta.get("refusal")
            if isinstance(text, str) and text:
                if self._open != "text":
                    out += self._block("text", {"type": "text", "text": ""})
                out += self._delta({"type": "text_delta", "text": text})
            for call in delta.get("tool_calls") or ():
                key = f"tool:{call.get('index', 0)}"
                fn = call.get("function") or {}
                if self._open != key:
                    out += self._block(key, {"type": "tool_use", "id": call.get("id"),
                                             "name": fn.get("name"), "input": {}})
                args = fn.get("arguments")
                if args:
                    out += self._delta({"type": "input_json_delta", "partial_json": args})
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def finish(self, usage: dict[str, Any] | None) -> bytes:
        out = b"" if self._started else self._start({})
        out += self._close()
        return out + sse("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": STOP_REASONS.get(self._finish or "stop", "end_turn"),
                      "stop_sequence": None},
            "usage": messages_usage(usage)}) + sse("message_stop", {"type": "message_stop"})

    def error(self, exc: GatewayError) -> bytes:
        return sse("error", error_payload(exc))
