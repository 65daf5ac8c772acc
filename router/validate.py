"""Just enough checking of request bodies to give precise 400s; the rest passes through untouched.

The gateway does not re-validate the whole OpenAI schema (the upstream does that, and new
parameters must pass through without a gateway release). It checks what it relies on itself:
the model, the messages it counts and classifies, and the numbers it budgets with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import ClientDisconnect

from router.errors import ClientDisconnected, InvalidRequest, MalformedJSON, PayloadTooLarge
from router.upstream.wire import SURROGATE_ESCAPE, parse_lone_surrogates

if TYPE_CHECKING:
    from starlette.requests import Request

    from router.hotrequest import HotRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


async def read_body(request: Request | HotRequest, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes: up front when the declared
    ``content-length`` is over it, else as soon as what has arrived is. A client that leaves
    while sending it raises :class:`ClientDisconnected` (nothing to answer; logged)."""
    try:
        return await _read_body(request, limit)
    except ClientDisconnect:
        raise ClientDisconnected("The client closed the connection while sending the request "
                                 "body.") from None


async def _read_body(request: Request | HotRequest, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"Request body is {length} bytes; the limit is {limit}.")
    if length is not None:
        body = await request.body()
        if len(body) > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        return body
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise MalformedJSON("The request body is empty: send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if not SURROGATE_ESCAPE.search(raw):
            raise MalformedJSON(f"The request body is not valid JSON: {exc}.") from None
        try:  # a lone surrogate escape, as JavaScript writes half an emoji (upstream/wire.py)
            body = parse_lone_surrogates(raw)
        except ValueError:
            raise MalformedJSON(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, not {type(body).__name__}.")
    return body


def _int_field(body: dict[str, Any], name: str, lo: int, hi: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{name}' must be an integer.", param=name)
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise InvalidRequest(f"'{name}' must be {bound}, got {value}.", param=name)
    return value


def model_field(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' must be a non-empty string.", param="model")
    return model


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _check_parts(parts: list[Any], i: int) -> None:
    """Content parts are objects with a string ``type`` (as OpenAI requires): counting and
    classifying dispatch on it."""
    for j, part in enumerate(parts):
        where = f"messages[{i}].content[{j}]"
        if not isinstance(part, dict):
            raise InvalidRequest(f"'{where}' must be an object, not a {json_type(part)}.",
                                 param=where)
        kind = part.get("type")
        if kind is None:
            raise InvalidRequest(f"Missing required parameter: '{where}.type'.",
                                 param=f"{where}.type")
        if not isinstance(kind, str):
            raise InvalidRequest(f"'{where}.type' must be a string, not a {json_type(kind)}.",
                                 param=f"{where}.type")


def check_chat(body: dict[str, Any]) -> tuple[str, bool, int | None, int]:
    """Check a chat-completions body; return (model, stream, max_tokens, n)."""
    model = model_field(body)
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("Missing required parameter: 'messages'.", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"'messages[{i}]' must be an object.", param=f"messages[{i}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            got = repr(role) if isinstance(role, str) else f"a {json_type(role)}"
            raise InvalidRequest(
                f"'messages[{i}].role' must be one of {', '.join(sorted(ROLES))}; got {got}.",
                param=f"messages[{i}].role",
            )
        content = message.get("content")
        if isinstance(content, list):
            _check_parts(content, i)
        elif content is not None and not isinstance(content, str):
            raise InvalidRequest(
                f"'messages[{i}].content' must be a string or an array of content parts.",
                param=f"messages[{i}].content",
            )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
    max_tokens = _int_field(body, "max_completion_tokens", 1)
    legacy = _int_field(body, "max_tokens", 1)
    n = _int_field(body, "n", 1, 128) or 1
    return model, stream, max_tokens if max_tokens is not None else legacy, n


def check_embeddings(body: dict[str, Any]) -> str:
    model = model_field(body)
    value = body.get("input")
    if value is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    if isinstance(value, str):
        return model
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "'input' must be a string, an array of strings, or an array of token arrays.",
            param="input",
        )
    for item in value:
        if not isinstance(item, str | int | list) or isinstance(item, bool):
            raise InvalidRequest("'input' items must be strings or token arrays.", param="input")
    return model
