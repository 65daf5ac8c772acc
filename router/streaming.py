"""A lean streaming response for the SSE relay.

Starlette's ``StreamingResponse`` watches for a client disconnect through an anyio task group
(a task, cancel scopes and a wrapper per response) when the server speaks ASGI spec 2.3, as
uvicorn does: under load that machinery cost more per streamed request than relaying the events.
This response does the same with two plain asyncio tasks: one streams, one waits for
``http.disconnect`` and cancels the first, whose ``finally`` blocks (settling the budget as a
disconnect) then run as they would under starlette. The relay is closed on every exit, so a
relay left suspended at its ``yield`` (the client left mid-``send``) runs its ``finally`` then,
not at garbage collection. If the relay never started (the client left before its first step,
so its ``finally`` cannot run), ``on_unstarted`` does that cleanup.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class EventStreamResponse(Response):
    """Relays ``body`` (an async iterator of bytes) as it comes; stops when the client leaves."""

    media_type = "text/event-stream"

    def __init__(self, body: AsyncIterator[bytes], headers: Mapping[str, str], *,
                 on_unstarted: Callable[[], Awaitable[None]] | None = None) -> None:
        self.body_iterator = body
        self.on_unstarted = on_unstarted
        self._started = False
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streamer = asyncio.ensure_future(self._stream(send))
        watcher = asyncio.ensure_future(self._watch(receive, streamer))
        try:
            await streamer
        except asyncio.CancelledError:
            if not watcher.done() or watcher.cancelled():  # we were cancelled, not the client
                raise
        finally:
            watcher.cancel()
            if not streamer.done():  # this task was cancelled while streaming: stop too
                streamer.cancel()
                await asyncio.gather(streamer, return_exceptions=True)
            # A relay suspended at its ``yield`` (the client left while ``send`` was blocked)
            # runs its ``finally`` only when closed; closing a finished one is a no-op.
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()
            if not self._started and self.on_unstarted is not None:
                await self.on_unstarted()

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        # From here to the relay's first await nothing can be cancelled: once this is set, the
        # relay has started and its own ``finally`` runs on any exit.
        self._started = True
        async for chunk in self.body_iterator:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _watch(receive: Receive, streamer: asyncio.Future[None]) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not streamer.done():
                    streamer.cancel()
                return
