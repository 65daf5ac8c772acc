"""The ledger exporter: ledger rows move, exactly once and in order, from the hot store (the
SQLite ``ledger`` table, the Redis Stream) into a durable archive (PostgreSQL, or append-only
JSONL files by day), and are trimmed from the hot store only after the archive has them.

One pass (:class:`Exporter`): take the next unacknowledged rows of the hot store (``fetch``),
write them to the archive (``write``: durable when it returns), acknowledge them (``ack``), and
from time to time delete acknowledged rows older than ``store.ledger.retain_hot`` (``trim``).

* A crash before the archive's commit leaves the rows unacknowledged: they come again.
* A crash after the commit and before the acknowledgement makes the archive see them twice:
  PostgreSQL skips a ``request_id`` it has (``ON CONFLICT DO NOTHING``); the files archive
  skips rows up to the last id it committed for that source (kept with the files).
* Redis: a consumer group (``export``) hands each entry to one reader; a restarted exporter,
  or one that just took the lead, first re-reads the entries delivered but not acknowledged,
  and a batch pending for ``stale_s`` (its exporter died beside this one) is re-read too. In a
  fleet one replica is elected to export (a lock key); another exporter running meanwhile
  (``router ledger export``) gets other entries, never the same ones, except an unacknowledged
  batch re-read as above, which the archive deduplicates.
* SQLite: a cursor (the last exported rowid) in the same file.

Reports (:class:`History`) read the hot store for periods it still holds, and archive + the
hot store's unexported rows for older ones. See docs/budgets.md, "Ledger retention and export".
"""

from router.budgets.export.base import Archive, ArchiveBusy, Entry, HotLedger, Leader
from router.budgets.export.exporter import Exporter, ExportStats
from router.budgets.export.reader import History

__all__ = [
    "Archive",
    "ArchiveBusy",
    "Entry",
    "ExportStats",
    "Exporter",
    "History",
    "HotLedger",
    "Leader",
]
