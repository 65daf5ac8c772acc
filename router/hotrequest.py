"""The request object of the hot POST paths: the little of starlette's ``Request`` they use.

:class:`GatewayApp` hands the hot endpoints (chat, embeddings, Responses, Messages,
Completions) a :class:`HotRequest` instead of a starlette ``Request``: its headers are one dict
built from the ASGI scope (starlette's ``Headers`` decodes and scans the raw list on every
lookup, and the endpoint looks up five to eight of them), and the body is read straight from
``receive``. The same endpoints, reached through FastAPI, get a starlette ``Request``; both
offer ``headers.get``, ``body()`` and ``stream()`` with the same meaning.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope


def header_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-cased names to values; of a repeated header, the first (as starlette's ``get``)."""
    out: dict[str, str] = {}
    for k, v in raw:
        name = k.decode("latin-1").lower()
        if name not in out:
            out[name] = v.decode("latin-1")
    return out


class HotRequest:
    """``headers`` (a dict, lower-case names), ``body()`` and ``stream()`` of one request."""

    __slots__ = ("_body", "_receive", "headers", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self.headers = header_dict(scope["headers"])
        self._body: bytes | None = None

    async def stream(self) -> AsyncIterator[bytes]:
        if self._body is not None:
            yield self._body
            return
        while True:
            message = await self._receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    return
            elif message["type"] == "http.disconnect":
                raise ClientDisconnect()

    async def body(self) -> bytes:
        if self._body is None:
            message = await self._receive()  # the usual case: the whole body in one message
            if message["type"] == "http.request" and not message.get("more_body", False):
                self._body = message.get("body", b"")
            elif message["type"] == "http.disconnect":
                raise ClientDisconnect()
            else:
                chunks = [message.get("body", b"")]
                while True:
                    message = await self._receive()
                    if message["type"] == "http.disconnect":
                        raise ClientDisconnect()
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body", False):
                        break
                self._body = b"".join(chunks)
        return self._body
