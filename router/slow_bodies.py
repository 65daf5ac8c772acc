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
#: How often the requests waiting for body bytes are checked against their deadlines. One timer
#: per process, running only while some request waits: a request whose body is already there
#: (nearly all of them) costs a dict insert and pop, no timer of its own.
TICK_S = 0.25


class PendingBodies:
    """The requests of one process waiting for body bytes, and how many requests of each client
    address have a slow body. The sweep (every :data:`TICK_S` while any request waits) cancels a
    wait past its deadline, or one that turned slow beyond its client's cap; the guard turns
    that cancellation into the error."""

    __slots__ = ("_sweep_handle", "counts", "waiting")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.waiting: dict[BodyGuard, asyncio.Task[object]] = {}
        self._sweep_handle: asyncio.TimerHandle | None = None

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

    def wait(self, guard: BodyGuard, task: asyncio.Task[object]) -> None:
        self.waiting[guard] = task
        if self._sweep_handle is None:
            loop = task.get_loop()
            self._sweep_handle = loop.call_later(TICK_S, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweep_handle = None
        now = loop.time()
        for guard, task in list(self.waiting.items()):
            if now >= guard.deadline:
                guard.expire(task, RequestTimeout(
                    f"The request body did not arrive in full within {guard.timeout_s:g} s.",
                    headers={"connection": "close"}))
            elif not guard.counted and now >= guard.slow_at:
                guard.counted = True
                client = guard.client
                if self.enter(client) > guard.cap > 0:
                    guard.expire(task, TooManyPendingBodies(
                        f"Too many requests from {client} are still sending their body "
                        f"(at most {guard.cap} at once); send each body in full.",
                        headers={"connection": "close"}))
        if self.waiting:
            self._sweep_handle = loop.call_later(TICK_S, self._sweep, loop)


class BodyGuard:
    """One request's ``receive`` under its deadline and its client's cap, and its ``send``.

    Built for every request, so the common case is lean: the clock is read on the first
    ``receive`` (right after the headers: handlers read the body first), and a request whose body
    is already there costs a dict insert and pop.
    """

    __slots__ = ("_receive", "_send", "cap", "complete", "counted", "deadline", "error",
                 "pending", "scope", "slow_at", "timeout_s")

    def __init__(self, scope: Scope, receive: Receive, send: Send, pending: PendingBodies, *,
                 timeout_s: float, cap: int) -> None:
        self._receive = receive
        self._send = send
        self.pending = pending
        self.scope = scope
        self.timeout_s = timeout_s
        self.cap = cap
        self.deadline = self.slow_at = 0.0  # set by the first receive
        self.complete = False  # the whole body has been received (or the client left)
        self.counted = False  # this request is in ``pending.counts``
        self.error: Exception | None = None  # why the sweep cancelled the wait

    @property
    def client(self) -> str:
        client = self.scope.get("client")
        return str(client[0]) if client else "unknown"

    def expire(self, task: asyncio.Task[object], error: Exception) -> None:
        if self.error is None:
            self.error = error
            task.cancel()

    async def receive(self) -> Message:
        if self.complete:  # e.g. a streaming response watching for the client to leave
            return await self._receive()
        if self.error is not None:
            raise self.error
        task = asyncio.current_task()
        assert task is not None
        if not self.deadline:
            now = task.get_loop().time()
            self.deadline = now + self.timeout_s
            self.slow_at = now + min(SLOW_AFTER_S, self.timeout_s)
        cancelling = task.cancelling()
        self.pending.wait(self, task)
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            # Ours (the sweep's) unless someone else cancelled the task too.
            if self.error is not None and task.uncancel() <= cancelling:
                raise self.error from None
            raise
        finally:
            self.pending.waiting.pop(self, None)
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
