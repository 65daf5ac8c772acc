"""Whether Redis is reachable, and replaying what it has not seen yet.

A failed call marks the store down; while down, admission follows ``fail_mode`` and settles go
to the journal. A background task pings Redis every ``retry_interval_s`` and, once it answers,
replays the journal (oldest first, through the idempotent settle script) and only then marks
the store up again, so nothing is served from Redis while older spend is still missing from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from router.budgets.errors import StoreUnavailable
from router.budgets.journal import Journal, JournalEntry
from router.budgets.localview import LocalView

log = logging.getLogger(__name__)


class Outbox:
    def __init__(
        self,
        journal: Journal,
        local: LocalView,
        *,
        ping: Callable[[], Awaitable[Any]],
        apply: Callable[[JournalEntry], Awaitable[bool]],
        errors: tuple[type[BaseException], ...],
        retry_interval_s: float,
        fail_mode: str,
    ) -> None:
        self.journal = journal
        self.local = local
        self._ping = ping
        self._apply = apply
        self._errors = errors
        self.retry_interval_s = retry_interval_s
        self.fail_mode = fail_mode
        self.down = False
        #: Since when Redis has been out of reach (Unix seconds); infinity until the first
        #: outage, i.e. also while a journal left by an earlier run waits to be replayed.
        self.lost_at = math.inf
        self.reason = ""
        self._task: asyncio.Task[None] | None = None
        self._replaying = asyncio.Lock()

    @property
    def available(self) -> bool:
        """False from a failed call until Redis answers and the journal is replayed; also while
        a journal left by an earlier run is being replayed (its spend is not in Redis yet)."""
        if not self.down and len(self.journal):
            if self._task is None:
                with contextlib.suppress(RuntimeError):  # no running loop: on the next call
                    self._start(delay=False)
            return False
        return not self.down

    def mark_down(self, exc: BaseException) -> None:
        if not self.down:
            log.warning("budget store redis unreachable (%s): fail_mode=%s", exc, self.fail_mode)
            self.lost_at = time.time()
        self.down = True
        self.reason = f"{type(exc).__name__}: {exc}"
        self._start(delay=True)

    def unavailable(self) -> StoreUnavailable:
        return StoreUnavailable(store="redis", reason=self.reason or "unreachable")

    def _start(self, *, delay: bool) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._recover(delay))

    async def _recover(self, delay: bool) -> None:
        try:
            while True:
                if delay:
                    await asyncio.sleep(self.retry_interval_s)
                delay = True
                try:
                    await self._ping()
                    await self.reconcile()
                except self._errors as e:
                    self.reason = f"{type(e).__name__}: {e}"
                    continue
                if not len(self.journal):
                    if self.down:
                        log.warning("budget store redis reachable again; journal replayed")
                    self.down = False
                    return
        finally:
            self._task = None

    async def reconcile(self) -> int:
        """Replay the journal into Redis (oldest first); returns how many entries were applied.
        Raises the connection error if Redis is still unreachable."""
        done = 0
        async with self._replaying:
            while True:
                entries = self.journal.head(100)
                if not entries:
                    return done
                for e in entries:
                    await self._apply(e)  # its reply refreshes the local view of its counters
                    self.journal.delete(e.id)
                    self.local.replayed(e.id)
                    done += 1

    async def close(self) -> None:
        """Stop probing; try once more (5 s at most) to hand the journal to Redis."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if len(self.journal):
            errors: tuple[type[BaseException], ...] = (*self._errors, asyncio.CancelledError)
            try:
                await asyncio.wait_for(self.reconcile(), timeout=5)
            except errors as e:
                log.warning("closing with %d unreplayed journal entries: %s", len(self.journal), e)
        self.journal.close()
