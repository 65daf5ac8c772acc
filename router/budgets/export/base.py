"""The exporter's three interfaces: the hot ledger rows come from (:class:`HotLedger`), the
archive they go to (:class:`Archive`), and who may export (:class:`Leader`)."""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from router.budgets.spec import LedgerRow, SpendRow

#: An entry's position in its hot store, comparable: Redis ``(ms, seq)``, SQLite ``(rowid, 0)``.
Position = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger row as the hot store holds it: ``id`` is the stream entry id or rowid."""

    id: str
    pos: Position
    row: LedgerRow


class ArchiveBusy(Exception):
    """Another process is writing this archive (the files target takes a lock)."""


class HotLedger(abc.ABC):
    """The ledger rows of a budget store, as the exporter sees them."""

    #: "redis" or "sqlite".
    kind: str = "hot"
    #: Errors that mean "cannot be reached" (reports answer 503 on them).
    unavailable: tuple[type[BaseException], ...] = (OSError,)

    @abc.abstractmethod
    async def source_id(self) -> str:
        """A name for this ledger that stays the same across restarts (archives keep their
        progress per source)."""

    @abc.abstractmethod
    async def fetch(self, limit: int) -> list[Entry]:
        """The next entries not acknowledged yet, oldest first; first those handed out before
        and never acknowledged (a crashed exporter's batch)."""

    async def resync(self) -> None:  # noqa: B027 - SQLite's cursor needs nothing
        """This process just took the lead: read again first what is handed out and not
        acknowledged (a previous leader's batch), before anything new."""

    @abc.abstractmethod
    async def ack(self, entries: Sequence[Entry]) -> None:
        """The archive has ``entries``: never hand them out again."""

    @abc.abstractmethod
    async def trim(self, before: float, *, exported_only: bool = True) -> int:
        """Delete entries older than ``before`` (Unix s) that are acknowledged (all of them if
        not ``exported_only``: export none). Returns how many went."""

    @abc.abstractmethod
    async def floor(self) -> float:
        """Every row with ``time >= floor()`` is still in the hot store (0: nothing trimmed)."""

    @abc.abstractmethod
    async def unexported(
        self, since: float, until: float, filters: Mapping[str, str] | None = None
    ) -> list[LedgerRow]:
        """Rows with ``since <= time < until`` (and ``filters``) the archive may not have yet:
        every row not acknowledged (and maybe a few that were, just now)."""

    @abc.abstractmethod
    async def backlog(self) -> int:
        """How many entries wait for export."""

    async def close(self) -> None:  # noqa: B027 - optional: most hold nothing to release
        """Release connections."""


class Archive(abc.ABC):
    """Where ledger rows are kept for good."""

    #: "postgres" or "files".
    kind: str = "archive"

    def unavailable(self) -> tuple[type[BaseException], ...]:
        """Errors that mean "cannot be reached" (reports answer 503 on them)."""
        return (OSError,)

    @abc.abstractmethod
    async def write(self, source: str, entries: Sequence[Entry]) -> int:
        """Store ``entries`` (in order) durably before returning; an entry already stored is
        skipped. Returns how many rows were new."""

    @abc.abstractmethod
    async def query(
        self,
        since: float,
        until: float,
        group_by: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
        exclude: Collection[str] = (),
    ) -> list[SpendRow]:
        """A spend report over the archived rows with ``since <= time < until``, leaving out
        the request ids in ``exclude``; like :meth:`BudgetStore.ledger_query`."""

    @abc.abstractmethod
    async def count(self) -> tuple[int, int]:
        """(rows, sum of actual_micro) of the whole archive."""

    async def close(self) -> None:  # noqa: B027 - optional
        """Release connections and locks."""


class Leader(abc.ABC):
    """Who exports: one process per hot store at a time."""

    @abc.abstractmethod
    async def hold(self) -> bool:
        """Take or keep the lead; True while this process has it."""

    async def release(self) -> None:  # noqa: B027 - optional
        """Give the lead up (at shutdown)."""


class AlwaysLeader(Leader):
    """No election (one process, or the archive deduplicates: ``router ledger export``)."""

    async def hold(self) -> bool:
        return True
