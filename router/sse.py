"""Relaying an upstream SSE stream: forward events as they come, learn the usage on the way.

The gateway asks every OpenAI-compatible upstream for ``stream_options.include_usage`` so the
final usage is known. When the client did not ask for it, the extra usage-only chunk (empty
``choices``) is dropped, so the client sees exactly the stream it asked for. Each event costs a
substring search (``"usage":null``, in every chunk of such a stream but the last, is recognised
right there); only an event carrying a non-null ``usage`` is parsed. Raw events are kept (by
reference, without their blank line) so that, if the upstream never sends usage or the client
disconnects, the generated text can be counted at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from router.errors import GatewayError

DONE = b"data: [DONE]"


def _has_usage(event: bytes, i: int) -> bool:
    """Whether the ``"usage"`` key at ``event[i:]`` has an object value."""
    j = event.find(b":", i + 7)
    if j < 0:
        return False
    k = j + 1
    while k < len(event) and event[k] in b" \t":
        k += 1
    return event[k : k + 1] == b"{"


class StreamRelay:
    """The chat-completions relay (a :class:`router.faces.base.Relay`)."""

    #: Chat completions have no id the gateway keeps.
    response_id: str | None = None
    #: A chat stream has no error event of its own to end with.
    upstream_failed = False

    def __init__(self, *, strip_usage_chunk: bool) -> None:
        self.strip_usage_chunk = strip_usage_chunk
        self.usage: dict[str, Any] | None = None
        self.done = False
        #: ``[DONE]`` (and anything after it) is held back until :meth:`release` (the gateway
        #: records the request first): the events before it need not wait for that.
        self.holding = False
        self._held: list[bytes] = []
        self.events: list[bytes] = []
        self._rest = b""

    def feed(self, data: bytes) -> bytes:
        """Take upstream bytes; return the bytes to send to the client now."""
        buffer = self._rest + data if self._rest else data
        if b"\r\n" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        parts = buffer.split(b"\n\n")
        self._rest = parts.pop()
        if not parts:
            return b""
        keep = self.events.append
        out = []
        for event in parts:  # each without its blank line; whitespace-only ones are dropped
            if not event or event.isspace():
                continue
            if event.startswith(DONE) or self.holding:
                if not self.done:
                    self.done = self.holding = True
                if self.holding:
                    self._held.append(event)
                else:
                    out.append(event)
                continue
            keep(event)
            i = event.find(b'"usage"')
            # `"usage":null`, in every chunk but the last of an include_usage stream: no usage
            if i >= 0 and not event.startswith(b":null", i + 7) and _has_usage(event, i) \
                    and self._take_usage(event):
                continue
            out.append(event)
        return b"\n\n".join(out) + b"\n\n" if out else b""

    def release(self) -> bytes:
        """The held-back ``[DONE]`` event (and anything that followed it), once; later events
        pass straight through."""
        held, self._held, self.holding = self._held, [], False
        return b"\n\n".join(held) + b"\n\n" if held else b""

    def _take_usage(self, event: bytes) -> bool:
        """Record usage from ``event``; True if the event should be dropped."""
        try:
            chunk = orjson.loads(event[event.index(b"{") :])
        except (ValueError, orjson.JSONDecodeError):
            return False
        usage = chunk.get("usage") if isinstance(chunk, dict) else None
        if isinstance(usage, dict):
            self.usage = usage
        return self.strip_usage_chunk and not chunk.get("choices")

    @staticmethod
    def error_event(exc: GatewayError) -> bytes:
        """The OpenAI-shaped error event that ends a failed stream."""
        return error_event(exc.payload())

    def generated_text(self) -> Iterator[str]:
        """The text the upstream generated so far (content, reasoning, tool-call arguments)."""
        for event in self.events:
            try:
                chunk = orjson.loads(event[event.index(b"{") :])
            except (ValueError, orjson.JSONDecodeError):
                continue
            choices = chunk.get("choices") if isinstance(chunk, dict) else None
            if not isinstance(choices, list):
                continue
            for choice in choices:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if not isinstance(delta, dict):
                    continue
                for key in ("content", "reasoning_content", "refusal"):
                    value = delta.get(key)
                    if isinstance(value, str):
                        yield value
                for call in delta.get("tool_calls") or ():
                    fn = call.get("function") if isinstance(call, dict) else None
                    if isinstance(fn, dict):
                        yield str(fn.get("name") or "") + str(fn.get("arguments") or "")


def error_event(payload: dict[str, Any]) -> bytes:
    """An SSE event carrying an OpenAI-shaped error (the SDKs raise it as an APIError)."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"
