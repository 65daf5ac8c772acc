"""The Anthropic Messages face: ``POST /v1/messages`` (and ``/v1/messages/count_tokens``).

Anthropic upstreams get the client's body with only ``model`` rewritten, and its
``anthropic-version`` and ``anthropic-beta`` headers: ``cache_control``, thinking blocks and
every beta field reach them as sent. Other upstreams get the chat-completions translation of
:mod:`router.faces.messages_wire`, and their answers come back as Messages, streams included.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from router.errors import GatewayError, InvalidRequest
from router.faces.base import Face, FaceRequest, Relay, Rendered
from router.faces.events import EventRelay, TranslatingRelay, sse
from router.faces.messages_wire import (
    StreamTranslator,
    chat_usage_of,
    check,
    error_payload,
    from_chat,
    to_chat,
)
from router.upstream.base import Target
from router.upstream.dispatch import Leg

DEFAULT_VERSION = "2023-06-01"
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _native_headers(req: FaceRequest, target: Target) -> dict[str, str]:
    headers = {"Content-Type": "application/json", **req.headers}
    if target.cfg.provider == "anthropic":
        if target.api_key:
            headers["x-api-key"] = target.api_key
    else:  # another upstream serving the Messages API: its own authorization
        headers.update({k: v for k, v in target.headers.items() if k.lower() == "authorization"})
    headers.update(target.cfg.extra_headers)
    return headers


def _on_start(relay: EventRelay, data: dict[str, Any]) -> None:
    message = data.get("message")
    if isinstance(message, dict):
        if isinstance(message.get("id"), str):
            relay.response_id = message["id"]
        usage = message.get("usage")
        if isinstance(usage, dict):  # the input side; the output is known at message_delta (a
            relay.state["usage"] = dict(usage)  # stream cut before it is counted from its text)


def _on_delta(relay: EventRelay, data: dict[str, Any]) -> None:
    usage = data.get("usage")
    if isinstance(usage, dict):  # cumulative; input counts may be restated here
        merged = {**relay.state.get("usage", {}),
                  **{k: v for k, v in usage.items() if v is not None}}
        relay.state["usage"] = merged
        relay.usage = chat_usage_of(merged)


def _texts(name: bytes, data: dict[str, Any]) -> Iterator[str]:
    delta = data.get("delta")
    if isinstance(delta, dict):
        for key in ("text", "partial_json", "thinking"):
            value = delta.get(key)
            if isinstance(value, str):
                yield value


def _error_event(exc: GatewayError) -> bytes:
    return sse("error", error_payload(exc))


class MessagesFace(Face):
    api = "messages"
    endpoint = "messages"

    def parse(self, body: dict[str, Any], headers: Mapping[str, str]) -> FaceRequest:
        model, stream, max_tokens = check(body)
        chat, missing = to_chat(body, stream, max_tokens)
        forward = {}
        version = headers.get("anthropic-version") or DEFAULT_VERSION
        if not _VERSION.match(version):
            raise InvalidRequest(f"anthropic-version: {version!r} is not a version date "
                                 "(e.g. 2023-06-01).", param="anthropic-version")
        forward["anthropic-version"] = version
        beta = headers.get("anthropic-beta")
        if beta:
            forward["anthropic-beta"] = beta
        return FaceRequest("messages", chat, model, stream, max_tokens, 1, native=body,
                           native_only=missing, headers=forward)

    def cap_output(self, req: FaceRequest, cap: int) -> None:
        req.chat["max_tokens"] = cap
        assert req.native is not None
        req.native["max_tokens"] = cap

    def native_leg(self, req: FaceRequest, target: Target) -> Leg:
        assert req.native is not None
        return Leg("messages", req.native, True, _native_headers(req, target), "openai")

    def render(self, req: FaceRequest, data: Any, raw: bytes, native: bool) -> Rendered:
        if not isinstance(data, dict):
            data = {}
        if native:
            usage = data.get("usage")
            return Rendered(raw, chat_usage_of(usage) if isinstance(usage, dict) else None,
                            data.get("id") if isinstance(data.get("id"), str) else None)
        message = from_chat(data)
        usage = data.get("usage")
        return Rendered(orjson.dumps(message), usage if isinstance(usage, dict) else None,
                        message["id"])

    def relay(self, req: FaceRequest, native: bool) -> Relay:
        if not native:
            return TranslatingRelay(StreamTranslator())
        return EventRelay(
            handlers={b"message_start": _on_start, b"message_delta": _on_delta},
            terminal=frozenset({b"message_stop"}), failed=frozenset({b"error"}),
            texts=_texts, text_events=frozenset({b"content_block_delta"}), error=_error_event)

    def error_body(self, exc: GatewayError) -> bytes:
        return orjson.dumps(error_payload(exc))



class CountTokensFace(MessagesFace):
    """``POST /v1/messages/count_tokens``: a Messages body without ``max_tokens``."""

    def parse(self, body: dict[str, Any], headers: Mapping[str, str]) -> FaceRequest:
        if "max_tokens" not in body:
            body = {**body, "max_tokens": 1}
        req = super().parse(body, headers)
        req.native_only = ()  # counting needs no upstream
        req.stream = False
        req.chat.pop("stream", None)
        req.chat.pop("stream_options", None)
        return req

    def render_count(self, tokens: int) -> bytes:
        return orjson.dumps({"input_tokens": tokens})
