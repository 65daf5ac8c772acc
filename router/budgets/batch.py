"""Group commit: many concurrent settles in one Redis call, without waiting for company.

A settle must be in Redis before its request answers (no completed request may be lost, and a
stream settles before ``[DONE]``), so settles cannot be queued and flushed later. They can share
a round trip: the first settle starts a flush at once; settles that arrive while that call is in
flight wait for the next one, which takes them all (up to ``max_batch``). Alone, a settle costs
what it did (one call, one entry); under load, one call carries several and the per-call cost
(the socket write that wakes Redis, redis-py's pool and timeout machinery) is shared.

With ``linger_s`` and ``expected`` (how many more entries are on their way: requests in flight
that have reserved and not yet settled), a call waits up to ``linger_s`` for those to join it
before it starts, and starts at once when none is expected: a request alone is not delayed,
while under load the settles of a burst go in one call instead of one call and then another.
The wait is bounded, and the answer still waits for its settle, so nothing about what a settle
guarantees changes: only how many requests share a round trip.

Each caller gets its own entry's result or the call's exception, exactly as if it had made the
call itself; entries are applied in arrival order. The script applies every entry in one atomic
step, and each entry is idempotent per request id, so redis-py's retry of a failed call cannot
count one twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Runs one call for a batch: returns one result per entry, in order, or raises for all.
RunMany = Callable[[Sequence[T]], Awaitable[Sequence[R]]]


class GroupCommit(Generic[T, R]):
    """Batches concurrent :meth:`submit` calls of one event loop into calls of ``run_many``."""

    def __init__(self, run_many: RunMany[T, R], max_batch: int = 64, *, linger_s: float = 0.0,
                 expected: Callable[[], int] | None = None) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if linger_s < 0:
            raise ValueError("linger_s must be >= 0")
        self._run_many = run_many
        self.max_batch = max_batch
        self.linger_s = linger_s
        self._expected = expected
        #: Set while a call waits for the entries expected: woken when they are all there.
        self._wake: asyncio.Future[None] | None = None
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None
        #: Calls made and entries carried (for tests and the benchmark).
        self.calls = 0
        self.entries = 0

    async def submit(self, entry: T) -> R:
        """Apply ``entry`` in the next call; its result, or that call's exception."""
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, fut))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        elif self._wake is not None and not self._wake.done() and self._full():
            self._wake.set_result(None)
        # A cancelled caller cancels only its future, not the call: the entry is still applied
        # (as a cancelled direct call may already have reached Redis).
        return await fut

    def _full(self) -> bool:
        """Nothing to wait for: the batch is full, or no other entry is on its way."""
        return (len(self._pending) >= self.max_batch or self._expected is None
                or self._expected() <= 0)

    async def _linger(self) -> None:
        """Wait (up to ``linger_s``) for the entries expected to join the next call."""
        if self.linger_s <= 0 or self._full():
            return
        loop = asyncio.get_running_loop()
        wake = self._wake = loop.create_future()
        timer = loop.call_later(self.linger_s, _wake_up, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None

    async def _flush(self) -> None:
        try:
            while self._pending:
                await self._linger()
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self.calls += 1
                self.entries += len(batch)
                try:
                    results = await self._run_many([e for e, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(
                            f"run_many returned {len(results)} results for {len(batch)} entries")
                except BaseException as exc:  # every waiter gets the call's exception
                    for _, fut in batch:
                        _fail(fut, exc)
                    if not isinstance(exc, Exception):  # cancelled, or the process is ending
                        raise
                    continue
                for (_, fut), res in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(res)
        finally:
            self._flusher = None
            pending, self._pending = self._pending, []
            for _, fut in pending:  # left only if the flush itself was cancelled
                fut.cancel()

    async def aclose(self) -> None:
        """Wait for the calls in flight (at shutdown)."""
        task = self._flusher
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)


def _wake_up(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _fail(fut: asyncio.Future[R], exc: BaseException) -> None:
    if fut.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        fut.cancel()
    else:
        fut.set_exception(exc)
