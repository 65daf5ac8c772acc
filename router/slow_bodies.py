"""Request bodies that arrive too slowly: a deadline, and a cap per client address.

A client that sends its headers and then part of its body (or nothing) holds a connection and a
handler until it finishes, which it may never do. :class:`BodyGuard` wraps one request's ASGI
``receive`` and ``send``:

* the body must have arrived in full ``server.body_timeout_s`` after the headers; the read then
  fails with :class:`~router.errors.RequestTimeout` (408);
* at most ``server.max_pending_bodies_per_client`` requests of one client address may have a
  slow body (still arriving :data:`SLOW_AFTER_S` after the headers) at once; one more fails
  with :class:`~router.errors.TooManyPendingBodies` (429) as soon as it turns slow. A body that
  arrives within that second is never counted, however many requests a client sends at once;
* any response sent before the body was read in full says ``connection: close``, so the server
  closes the connection instead of waiting for the rest of a body nobody will read.

The counts are per process (each worker counts its own connections). Behind a proxy every client
has the proxy's address: nginx buffers request bodies by default, so they reach the gateway
whole; with a proxy that streams them, raise the cap or set it to 0 (off).
"""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive, Scope, Send

from router.errors import RequestTimeout, TooManyPendingBodies

_CLOSE = (b"connection", b"close")
#: A body still arriving this long after its request's headers counts as slow (and against its
#: client's cap); a burst of requests whose bodies follow their headers within milliseconds
#: never does.
SLOW_AFTER_S = 1.0


class PendingBodies:
    """How many requests of each client address are waiting for their body (one process)."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def enter(self, client: str) -> int:
        n = self.counts.get(client, 0) + 1
        self.counts[client] = n
        return n

    def leave(self, client: str) -> None:
        n = self.counts.get(client, 0) - 1
        if n > 0:
            self.counts[client] = n
        else:
            self.counts.pop(client, None)


class BodyGuard:
    """One request's ``receive`` with a deadline and the per-client cap, and its ``send``."""

    __slots__ = ("_receive", "_send", "cap", "client", "complete", "counted", "deadline", "loop",
                 "pending", "slow_at", "timeout_s")

    def __init__(self, scope: Scope, receive: Receive, send: Send, pending: PendingBodies, *,
                 timeout_s: float, cap: int) -> None:
        self._receive = receive
        self._send = send
        self.pending = pending
        client = scope.get("client")
        self.client = str(client[0]) if client else "unknown"
        self.timeout_s = timeout_s
        self.loop = asyncio.get_running_loop()
        now = self.loop.time()
        self.deadline = now + timeout_s
        self.slow_at = now + min(SLOW_AFTER_S, timeout_s)
        self.cap = cap
        self.complete = False  # the whole body has been received (or the client left)
        self.counted = False  # this request is in ``pending``

    async def receive(self) -> Message:
        if self.complete:  # e.g. a streaming response watching for the client to leave
            return await self._receive()
        if not self.counted:
            if self.loop.time() < self.slow_at:  # not slow (yet): most bodies end here
                try:
                    async with asyncio.timeout_at(self.slow_at):
                        return self._seen(await self._receive())
                except TimeoutError:
                    pass
            # Still arriving SLOW_AFTER_S after the headers: a slow body, counted per client.
            self.counted = True
            if self.pending.enter(self.client) > self.cap > 0:
                raise TooManyPendingBodies(
                    f"Too many requests from {self.client} are still sending their body "
                    f"(at most {self.cap} at once); send each body in full.",
                    headers={"connection": "close"},
                )
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self._receive()
        except TimeoutError:
            raise RequestTimeout(
                f"The request body did not arrive in full within {self.timeout_s:g} s.",
                headers={"connection": "close"},
            ) from None
        return self._seen(message)

    def _seen(self, message: Message) -> Message:
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.complete = True
            self.release()
        return message

    def release(self) -> None:
        if self.counted:
            self.counted = False
            self.pending.leave(self.client)

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and not self.complete:
            headers = list(message.get("headers", ()))
            if _CLOSE not in headers:
                headers.append(_CLOSE)
            message = {**message, "headers": headers}
        await self._send(message)
