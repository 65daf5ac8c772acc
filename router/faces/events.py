"""Relays for the typed-event streams (``event: <type>`` / ``data: {...}``) of the Responses and
Messages APIs: passed through as they come, or produced by translating a chat-completions stream.

:class:`EventRelay` relays a native stream: each event costs a look at its ``event:`` line; only
the few events that carry ids and usage are parsed. The terminal event (``response.completed``,
``message_stop``, ...) is held back until the gateway has recorded the request, as ``[DONE]`` is
for chat. :class:`TranslatingRelay` reads a chat-completions stream with the chat relay and
hands each chunk to a face's :class:`Translator`, which writes the client's events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import orjson

from router.errors import GatewayError
from router.sse import DONE, StreamRelay


def sse(name: str, data: Mapping[str, Any]) -> bytes:
    """One typed SSE event."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _name_and_data(event: bytes) -> tuple[bytes, bytes]:
    """An event's ``event:`` name (b"" if none) and its ``data:`` payload."""
    name = b""
    data = b""
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            name = line[6:].strip()
        elif line.startswith(b"data:"):
            data = line[5:].strip()
    return name, data


def _json(data: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


Handler = Callable[["EventRelay", dict[str, Any]], None]


class EventRelay:
    """A native typed-event stream, relayed as it comes.

    ``handlers``: event name -> what to read from it (ids, usage); ``terminal``: the names that
    end a successful stream (held back); ``failed``: the names that end a failed one (relayed,
    then the stream is over); ``texts``: reads the generated text out of the kept events;
    ``error``: renders the gateway's own error event.
    """

    def __init__(self, *, handlers: Mapping[bytes, Handler], terminal: frozenset[bytes],
                 failed: frozenset[bytes], texts: Callable[[bytes, dict[str, Any]], Iterator[str]],
                 text_events: frozenset[bytes],
                 error: Callable[[GatewayError], bytes]) -> None:
        self.handlers = handlers
        self.terminal = terminal
        self.failed = failed
        self.texts = texts
        self.text_events = text_events
        self._error = error
        self.usage: dict[str, Any] | None = None
        self.response_id: str | None = None
        self.done = False
        self.holding = False
        #: The upstream ended its stream with an error event of its own.
        self.upstream_failed = False
        #: Scratch space for handlers (e.g. Anthropic's input usage until the output usage).
        self.state: dict[str, Any] = {}
        self._held: list[bytes] = []
        self._events: list[tuple[bytes, bytes]] = []
        self._rest = b""

    def feed(self, data: bytes) -> bytes:
        buffer = self._rest + data if self._rest else data
        if b"\r\n" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        parts = buffer.split(b"\n\n")
        self._rest = parts.pop()
        out = []
        for event in parts:
            if not event or event.isspace():
                continue
            if self.holding:
                self._held.append(event)
                continue
            name, payload = _name_and_data(event)
            if name in self.text_events:
                self._events.append((name, payload))
            handler = self.handlers.get(name)
            if handler is not None:
                parsed = _json(payload)
                if parsed is not None:
                    handler(self, parsed)
            if name in self.terminal:
                self.done = self.holding = True
                self._held.append(event)
                continue
            if name in self.failed:
                self.done = self.upstream_failed = True
            out.append(event)
        return b"\n\n".join(out) + b"\n\n" if out else b""

    def release(self) -> bytes:
        held, self._held, self.holding = self._held, [], False
        return b"\n\n".join(held) + b"\n\n" if held else b""

    def generated_text(self) -> Iterator[str]:
        for name, payload in self._events:
            parsed = _json(payload)
            if parsed is not None:
                yield from self.texts(name, parsed)

    def error_event(self, exc: GatewayError) -> bytes:
        return self._error(exc)


class Translator(Protocol):
    """Writes a client's stream from chat-completions chunks (pure: dicts in, bytes out)."""

    response_id: str | None

    def chunk(self, chunk: dict[str, Any]) -> bytes: ...

    def finish(self, usage: dict[str, Any] | None) -> bytes: ...

    def error(self, exc: GatewayError) -> bytes: ...


class TranslatingRelay:
    """A chat-completions stream from the upstream, relayed as another API's events."""

    upstream_failed = False

    def __init__(self, translator: Translator) -> None:
        self.inner = StreamRelay(strip_usage_chunk=True)
        self.translator = translator
        self.holding = False

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.inner.usage

    @property
    def done(self) -> bool:
        return self.inner.done

    @property
    def response_id(self) -> str | None:
        return self.translator.response_id

    def feed(self, data: bytes) -> bytes:
        relayed = self.inner.feed(data)
        out = []
        if relayed:
            for event in relayed.split(b"\n\n"):
                if not event or event.startswith(DONE):
                    continue
                i = event.find(b"{")
                chunk = _json(event[i:]) if i >= 0 else None
                if chunk is not None and isinstance(chunk.get("choices"), list):
                    out.append(self.translator.chunk(chunk))
        if self.inner.holding:
            self.holding = True
        return b"".join(out)

    def release(self) -> bytes:
        self.inner.release()
        self.holding = False
        return self.translator.finish(self.inner.usage)

    def generated_text(self) -> Iterator[str]:
        return self.inner.generated_text()

    def error_event(self, exc: GatewayError) -> bytes:
        return self.translator.error(exc)


def chat_usage(prompt: int, completion: int, cached: int = 0, cache_write: int = 0,
               reasoning: int = 0) -> dict[str, Any]:
    """A usage object in the chat-completions shape (what the ledger is priced from)."""
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    details: dict[str, int] = {}
    if cached:
        details["cached_tokens"] = cached
    if cache_write:
        details["cache_creation_tokens"] = cache_write
    if details:
        usage["prompt_tokens_details"] = details
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def count(value: Any) -> int:
    """A token count from a usage field (anything else: 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_parts(usage: Mapping[str, Any] | None) -> tuple[int, int, int, int, int]:
    """(prompt, completion, cached, cache write, reasoning) of a chat-shaped usage."""
    if not usage:
        return 0, 0, 0, 0, 0
    from router.costs.estimate import usage_counts

    u = usage_counts(usage)
    return u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.cache_write_tokens, \
        u.reasoning_tokens
