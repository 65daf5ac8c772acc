"""OpenAI Responses <-> chat completions: pure translations (docs/apis.md lists what is kept).

* :func:`check` validates a Responses request (the gateway's own 400s).
* :func:`to_chat` turns it into a chat-completions request and lists what chat cannot carry
  (hosted tools, ``previous_response_id``, ``background``, ...).
* :func:`from_chat` renders a chat completion as a Response; :class:`StreamTranslator` renders
  a chat-completions stream as Responses events; :func:`responses_usage` /
  :func:`chat_usage_of` map usage both ways.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from router.errors import GatewayError, InvalidRequest
from router.faces.events import chat_usage, count, sse, usage_parts
from router.validate import json_type

#: Request keys the translation carries or knowingly handles (docs/apis.md); any other key is
#: something only a native upstream can take.
KNOWN = frozenset({"model", "input", "instructions", "stream", "store", "max_output_tokens",
                   "temperature", "top_p", "tools", "tool_choice", "parallel_tool_calls",
                   "text", "reasoning", "metadata", "user", "include", "top_logprobs",
                   "truncation", "service_tier", "prompt_cache_key", "safety_identifier",
                   "stream_options", "background"})
_PART_TEXT = ("input_text", "output_text", "text")


def check(body: dict[str, Any]) -> tuple[str, bool, int | None]:
    """(model, stream, max_output_tokens) of a valid Responses request; else a 400."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    value = body.get("input")
    if value is None and body.get("previous_response_id") is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    if value is not None and not isinstance(value, str | list):
        raise InvalidRequest(f"Invalid type for 'input': expected a string or an array of "
                             f"input items, but got {json_type(value)}.", param="input")
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise InvalidRequest(f"Invalid type for 'input[{i}]': expected an object.",
                                     param=f"input[{i}]")
    for key in ("instructions", "previous_response_id"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise InvalidRequest(f"Invalid type for '{key}': expected a string.", param=key)
    for key in ("stream", "store"):
        if body.get(key) is not None and not isinstance(body[key], bool):
            raise InvalidRequest(f"Invalid type for '{key}': expected a boolean.", param=key)
    limit = body.get("max_output_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidRequest("Invalid 'max_output_tokens': expected an integer of at least 1.",
                             param="max_output_tokens")
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list)
                              or not all(isinstance(t, dict) for t in tools)):
        raise InvalidRequest("Invalid type for 'tools': expected an array of objects.",
                             param="tools")
    for key in ("reasoning", "text", "metadata"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise InvalidRequest(f"Invalid type for '{key}': expected an object, but got "
                                 f"{json_type(body[key])}.", param=key)
    fmt = (body.get("text") or {}).get("format")
    if fmt is not None and not isinstance(fmt, dict):
        raise InvalidRequest("Invalid type for 'text.format': expected an object.",
                             param="text.format")
    include = body.get("include")
    if include is not None and (not isinstance(include, list)
                                or not all(isinstance(i, str) for i in include)):
        raise InvalidRequest("Invalid type for 'include': expected an array of strings.",
                             param="include")
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, str | dict):
        raise InvalidRequest("Invalid type for 'tool_choice': expected a string or an object.",
                             param="tool_choice")
    top = body.get("top_logprobs")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int)
                            or not 0 <= top <= 20):
        raise InvalidRequest("Invalid 'top_logprobs': expected an integer from 0 to 20.",
                             param="top_logprobs")
    return model, bool(body.get("stream")), limit


def _part(part: Any, where: str, missing: list[str]) -> dict[str, Any] | None:
    if not isinstance(part, dict):
        raise InvalidRequest(f"Invalid type for '{where}': expected an object.", param=where)
    kind = part.get("type")
    if kind in _PART_TEXT:
        return {"type": "text", "text": str(part.get("text", ""))}
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal", ""))}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and isinstance(part.get("file_data"), str):
        file = {"file_data": part["file_data"]}
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    if kind == "input_audio" and isinstance(part.get("input_audio"), dict):
        return {"type": "input_audio", "input_audio": part["input_audio"]}
    what = kind if kind != "input_image" and kind != "input_file" else f"{kind} by file id"
    missing.append(f"{what!r} content ({where})")
    return None


def _message(item: dict[str, Any], where: str, missing: list[str]) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise InvalidRequest(f"Invalid value for '{where}.role': expected user, assistant, "
                             "system or developer.", param=f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid type for '{where}.content': expected a string or an "
                             "array of content parts.", param=f"{where}.content")
    parts = [p for j, c in enumerate(content)
             if (p := _part(c, f"{where}.content[{j}]", missing)) is not None]
    if role != "user" or all(p["type"] == "text" for p in parts):
        if any(p["type"] != "text" for p in parts):
            missing.append(f"non-text content in a {role} message ({where})")
        return {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": role, "content": parts}


def _output_text(output: Any, where: str, missing: list[str]) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        parts = [_part(p, f"{where}[{j}]", missing) for j, p in enumerate(output)]
        texts = [p["text"] for p in parts if p is not None and p["type"] == "text"]
        if any(p is not None and p["type"] != "text" for p in parts):
            missing.append(f"non-text output of a function call ({where})")
        return "\n".join(texts)
    raise InvalidRequest(f"Invalid type for '{where}': expected a string or an array.",
                         param=where)


def _items(items: list[dict[str, Any]], missing: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_message(item, where, missing))
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"),
                                 "arguments": item.get("arguments") or ""}}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last is not None and last["role"] == "assistant":
                last["tool_calls"] = [call]
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": item.get("call_id"),
                        "content": _output_text(item.get("output"), f"{where}.output",
                                                missing)})
        elif kind == "reasoning":
            continue  # the model's own reasoning: chat completions takes none back
        else:
            missing.append(f"input items of type {kind!r} ({where})")
    return out


def _tools(body: dict[str, Any], chat: dict[str, Any], missing: list[str]) -> None:
    tools = body.get("tools")
    if tools:
        out = []
        for i, tool in enumerate(tools):
            if tool.get("type") != "function":
                missing.append(f"the hosted tool {tool.get('type')!r} (tools[{i}])")
                continue
            fn: dict[str, Any] = {"name": tool.get("name"),
                                  "parameters": tool.get("parameters") or {"type": "object"}}
            for key in ("description", "strict"):
                if tool.get(key) is not None:
                    fn[key] = tool[key]
            out.append({"type": "function", "function": fn})
        chat["tools"] = out
    choice = body.get("tool_choice")
    if choice in ("auto", "none", "required"):
        chat["tool_choice"] = choice
    elif isinstance(choice, dict) and choice.get("type") == "function":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice is not None:
        missing.append("this 'tool_choice'")


def _text_format(body: dict[str, Any], chat: dict[str, Any], missing: list[str]) -> None:
    text = body.get("text")
    if not isinstance(text, dict):
        return
    fmt = text.get("format")
    if isinstance(fmt, dict):
        kind = fmt.get("type")
        if kind == "json_object":
            chat["response_format"] = {"type": "json_object"}
        elif kind == "json_schema":
            schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
            chat["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif kind != "text":
            missing.append(f"text.format of type {kind!r}")
    if text.get("verbosity") not in (None, "medium"):
        missing.append("'text.verbosity'")


def to_chat(body: dict[str, Any], stream: bool, max_tokens: int | None
            ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The chat-completions request for a (checked) Responses request, and what it cannot carry
    (empty: the translation is complete)."""
    missing = [f"{k!r}" for k in body if k not in KNOWN and k != "previous_response_id"]
    if body.get("previous_response_id") is not None:
        missing.append("'previous_response_id'")
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    value = body.get("input")
    if isinstance(value, str):
        messages.append({"role": "user", "content": value})
    elif isinstance(value, list):
        messages.extend(_items(value, missing))
    if not messages:
        messages.append({"role": "user", "content": ""})
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    if max_tokens is not None:
        chat["max_tokens"] = max_tokens
    for key in ("temperature", "top_p", "parallel_tool_calls", "user"):
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("top_logprobs"):
        chat["logprobs"] = True
        chat["top_logprobs"] = body["top_logprobs"]
    if "message.output_text.logprobs" in (body.get("include") or ()):
        chat["logprobs"] = True
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    if isinstance(body.get("metadata"), dict):  # read by the gateway (router_task), not sent
        chat["metadata"] = body["metadata"]
    if body.get("background"):
        missing.append("'background'")
    if body.get("truncation") not in (None, "disabled"):
        missing.append("'truncation'")
    if body.get("service_tier") not in (None, "auto", "default"):
        missing.append("'service_tier'")
    _tools(body, chat, missing)
    _text_format(body, chat, missing)
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat, tuple(missing)


def responses_usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """A chat-shaped usage in the Responses shape (cache reads and writes are input tokens)."""
    prompt, completion, cached, write, reasoning = usage_parts(usage)
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": write},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion}


def chat_usage_of(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Responses usage in the chat shape."""
    details = usage.get("input_tokens_details")
    out_details = usage.get("output_tokens_details")
    cached = count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    write = count(details.get("cache_write_tokens")) if isinstance(details, dict) else 0
    reasoning = count(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) \
        else 0
    return chat_usage(count(usage.get("input_tokens")), count(usage.get("output_tokens")),
                      cached, write, reasoning)


def new_id(prefix: str = "resp_") -> str:
    return prefix + os.urandom(16).hex()


def _status(finish: str | None) -> tuple[str, dict[str, str] | None]:
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def shell(body: Mapping[str, Any], response_id: str, model: str, created: int) -> dict[str, Any]:
    """A Response without output yet (``status: in_progress``), echoing the request."""
    return {"id": response_id, "object": "response", "created_at": created,
            "status": "in_progress", "background": False, "error": None,
            "incomplete_details": None, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "model": model, "output": [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"),
                          "summary": None},
            # answered through translation: nothing upstream stores it
            "store": False, "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0), "truncation": "disabled", "usage": None,
            "user": body.get("user"), "metadata": body.get("metadata") or {}}


def _logprobs(choice: Mapping[str, Any]) -> list[dict[str, Any]]:
    lp = choice.get("logprobs")
    content = lp.get("content") if isinstance(lp, dict) else None
    if not isinstance(content, list):
        return []
    return [{"token": t.get("token"), "logprob": t.get("logprob"), "bytes": t.get("bytes") or [],
             "top_logprobs": [{"token": x.get("token"), "logprob": x.get("logprob"),
                               "bytes": x.get("bytes") or []}
                              for x in t.get("top_logprobs") or ()]}
            for t in content if isinstance(t, dict)]


def from_chat(data: Mapping[str, Any], body: Mapping[str, Any],
              response_id: str) -> dict[str, Any]:
    """A chat completion rendered as a Response."""
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        output.append({"id": new_id("rs_"), "type": "reasoning", "summary": [],
                       "content": [{"type": "reasoning_text", "text": reasoning}]})
    text, refusal = message.get("content"), message.get("refusal")
    if (isinstance(text, str) and text) or (isinstance(refusal, str) and refusal):
        part = ({"type": "output_text", "text": text, "annotations": [],
                 "logprobs": _logprobs(choice)} if isinstance(text, str) and text
                else {"type": "refusal", "refusal": refusal})
        output.append({"id": new_id("msg_"), "type": "message", "status": "completed",
                       "role": "assistant", "content": [part]})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        output.append({"id": new_id("fc_"), "type": "function_call", "status": "completed",
                       "call_id": call.get("id"), "name": fn.get("name"),
                       "arguments": fn.get("arguments") or ""})
    response = shell(body, response_id, str(data.get("model", "")),
                     int(data.get("created") or time.time()))
    response["status"], response["incomplete_details"] = _status(choice.get("finish_reason"))
    response["output"] = output
    usage = data.get("usage")
    response["usage"] = responses_usage(usage if isinstance(usage, dict) else None)
    return response


class StreamTranslator:
    """Chat-completions chunks in, Responses events out (``response.created`` ...
    ``response.completed``), numbered by ``sequence_number``."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.response_id: str | None = new_id()
        self._seq = 0
        self._started = False
        self._model = ""
        self._created = int(time.time())
        self._output: list[dict[str, Any]] = []
        self._open: str | None = None  # "reasoning", "text", "tool:<index>"
        self._finish: str | None = None

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **data}
        self._seq += 1
        return sse(kind, data)

    def _response(self) -> dict[str, Any]:
        assert self.response_id is not None
        return shell(self.body, self.response_id, self._model, self._created)

    def _start(self, chunk: Mapping[str, Any]) -> bytes:
        self._started = True
        self._model = str(chunk.get("model", ""))
        response = self._response()
        return (self._event("response.created", {"response": response})
                + self._event("response.in_progress", {"response": response}))

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        index = len(self._output) - 1
        item = self._output[index]
        item["status"] = "completed"
        out = b""
        if item["type"] == "message":
            part = item["content"][0]
            out += self._event("response.output_text.done", {
                "item_id": item["id"], "output_index": index, "content_index": 0,
                "text": part["text"], "logprobs": []})
            out += self._event("response.content_part.done", {
                "item_id": item["id"], "output_index": index, "content_index": 0, "part": part})
        elif item["type"] == "function_call":
            out += self._event("response.function_call_arguments.done", {
                "item_id": item["id"], "output_index": index, "name": item["name"],
                "arguments": item["arguments"]})
        elif item["type"] == "reasoning":
            item.pop("status")
            out += self._event("response.reasoning_text.done", {
                "item_id": item["id"], "output_index": index, "content_index": 0,
                "text": item["content"][0]["text"]})
        self._open = None
        return out + self._event("response.output_item.done", {"output_index": index,
                                                                "item": item})

    def _item(self, key: str, item: dict[str, Any]) -> bytes:
        out = self._close()
        self._open = key
        self._output.append(item)
        index = len(self._output) - 1
        added = {k: (list(v) if isinstance(v, list) else v) for k, v in item.items()}
        if item["type"] == "message":
            added["content"] = []
        if item["type"] == "reasoning":
            added["content"] = []
        out += self._event("response.output_item.added", {"output_index": index, "item": added})
        if item["type"] == "message":
            out += self._event("response.content_part.added", {
                "item_id": item["id"], "output_index": index, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
        return out

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        out = b"" if self._started else self._start(chunk)
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                if self._open != "reasoning":
                    out += self._item("reasoning", {
                        "id": new_id("rs_"), "type": "reasoning", "summary": [],
                        "content": [{"type": "reasoning_text", "text": ""}],
                        "status": "in_progress"})
                item = self._output[-1]
                item["content"][0]["text"] += reasoning
                out += self._event("response.reasoning_text.delta", {
                    "item_id": item["id"], "output_index": len(self._output) - 1,
                    "content_index": 0, "delta": reasoning})
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._open != "text":
                    out += self._item("text", {
                        "id": new_id("msg_"), "type": "message", "status": "in_progress",
                        "role": "assistant", "content": [
                            {"type": "output_text", "text": "", "annotations": [],
                             "logprobs": []}]})
                item = self._output[-1]
                item["content"][0]["text"] += text
                out += self._event("response.output_text.delta", {
                    "item_id": item["id"], "output_index": len(self._output) - 1,
                    "content_index": 0, "delta": text, "logprobs": []})
            for call in delta.get("tool_calls") or ():
                key = f"tool:{call.get('index', 0)}"
                fn = call.get("function") or {}
                if self._open != key:
                    out += self._item(key, {
                        "id": new_id("fc_"), "type": "function_call", "status": "in_progress",
                        "call_id": call.get("id"), "name": fn.get("name"), "arguments": ""})
                args = fn.get("arguments")
                if args:
                    item = self._output[-1]
                    item["arguments"] += args
                    out += self._event("response.function_call_arguments.delta", {
                        "item_id": item["id"], "output_index": len(self._output) - 1,
                        "delta": args})
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def finish(self, usage: dict[str, Any] | None) -> bytes:
        out = b"" if self._started else self._start({})
        out += self._close()
        response = self._response()
        status, details = _status(self._finish)
        response.update(status=status, incomplete_details=details, output=self._output,
                        usage=responses_usage(usage))
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._event(kind, {"response": response})

    def error(self, exc: GatewayError) -> bytes:
        return self._event("error", {"code": exc.code, "message": exc.message,
                                     "param": exc.param})
