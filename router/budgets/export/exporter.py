"""One exporter: move rows from a hot ledger to an archive, acknowledge, trim (see the package
docstring for why this order makes it exactly once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from router.budgets.export.base import Archive, ArchiveBusy, Entry, HotLedger, Leader

log = logging.getLogger(__name__)


@dataclass
class ExportStats:
    """What a pass did: entries handed to the archive, rows it did not have yet (the rest came
    again after a crash), entries trimmed from the hot store, archive transactions."""

    exported: int = 0
    new: int = 0
    trimmed: int = 0
    batches: int = 0

    def add(self, other: ExportStats) -> None:
        self.exported += other.exported
        self.new += other.new
        self.trimmed += other.trimmed
        self.batches += other.batches


class Exporter:
    """``archive`` None: ``export: none``, rows older than ``retain_hot_s`` are only deleted.

    ``batch``: rows per archive transaction. ``max_pass``: at most this many rows per pass of
    :meth:`run`, so that a long backlog does not keep the lead's renewal waiting.
    """

    def __init__(
        self,
        hot: HotLedger,
        archive: Archive | None,
        *,
        retain_hot_s: float,
        batch: int = 1000,
        interval_s: float = 2.0,
        max_pass: int = 50_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if batch < 1 or retain_hot_s < 0 or interval_s <= 0:
            raise ValueError("batch >= 1, retain_hot_s >= 0 and interval_s > 0")
        self.hot = hot
        self.archive = archive
        self.retain_hot_s = retain_hot_s
        self.batch = batch
        self.interval_s = interval_s
        self.max_pass = max(batch, max_pass)
        self.clock = clock
        self.total = ExportStats()
        self._source: str | None = None
        self._carry: list[Entry] = []

    async def export_once(self, max_rows: int | None = None,
                          leader: Leader | None = None, *, drain: bool = True) -> ExportStats:
        """Export until the hot store has nothing new (or ``max_rows`` were moved). With a
        ``leader``, its lead is renewed before each batch, and the pass ends if it was lost
        (another process leads now: two exporters at once would break the order).

        ``drain=False`` (the periodic passes of :meth:`run`): stop after a batch that was not
        full. Under steady traffic new rows keep arriving, so draining would chase them in
        batches of a few rows, each with its own archive commit (fsyncs) and two Redis calls;
        the rest waits for the next pass, ``interval_s`` later."""
        stats = ExportStats()
        if self.archive is None:
            return stats
        if self._source is None:
            self._source = await self.hot.source_id()
        while max_rows is None or stats.exported < max_rows:
            if leader is not None and stats.batches and not await leader.hold():
                break
            # a batch whose write or acknowledgement failed goes again first (the hot store
            # hands out only new entries until a restart): nothing overtakes it
            entries = self._carry or await self.hot.fetch(self.batch)
            if not entries:
                break
            self._carry = entries
            stats.new += await self.archive.write(self._source, entries)
            await self.hot.ack(entries)  # only now: the archive has them
            self._carry = []
            stats.exported += len(entries)
            stats.batches += 1
            if not drain and len(entries) < self.batch:
                break
        self.total.add(stats)
        return stats

    async def trim_once(self) -> int:
        """Delete what the retention allows: acknowledged rows older than ``retain_hot_s`` (or
        every row that old, with no archive)."""
        n = await self.hot.trim(self.clock() - self.retain_hot_s,
                                exported_only=self.archive is not None)
        self.total.trimmed += n
        return n

    async def run_pass(self, leader: Leader | None = None) -> ExportStats:
        stats = await self.export_once(self.max_pass, leader, drain=False)
        if leader is None or await leader.hold():
            stats.trimmed = await self.trim_once()
        return stats

    async def run(self, leader: Leader, stop: asyncio.Event) -> None:
        """Export and trim every ``interval_s`` while this process holds the lead, until
        ``stop`` is set. Errors (archive or Redis unreachable) are logged and retried with a
        growing pause; nothing is trimmed that the archive did not acknowledge."""
        failures = 0
        busy_logged = False
        leading = False
        try:
            while not stop.is_set():
                pause = self.interval_s
                try:
                    held = await leader.hold()
                    if held and not leading:  # just took the lead: a dead leader's batch first
                        await self.hot.resync()
                        self._carry = []
                    leading = held
                    if held:
                        stats = await self.run_pass(leader)
                        if stats.exported >= self.max_pass:
                            pause = 0.0  # a backlog: go on at once
                    if failures:
                        log.info("ledger export works again")
                    failures, busy_logged = 0, False
                except ArchiveBusy as e:
                    if not busy_logged:
                        log.warning("ledger export waits: %s", e)
                        busy_logged = True
                except Exception as e:
                    failures += 1
                    if failures in (1, 10) or failures % 100 == 0:
                        log.error("ledger export failed (%d in a row; retrying): %s: %s",
                                  failures, type(e).__name__, e)
                    pause = min(60.0, self.interval_s * 2 ** min(failures, 6))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
        finally:
            with contextlib.suppress(Exception):
                await leader.release()
