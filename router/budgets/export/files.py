"""Append-only JSONL files as the ledger's archive, one directory per UTC day::

    <dir>/day=2026-12-03/ledger.jsonl     one JSON object per line, in export order
    <dir>/_export.json                    what is committed (per source: the last id)
    <dir>/.lock                           held by the one process writing here

The ``day=`` directories are what warehouse loaders call Hive partitioning (DuckDB, Spark,
BigQuery, Athena read them as a ``day`` column).

Exactly once, through crashes: before a batch is appended, ``_export.json`` records the size of
every file the batch touches (``pending``); the lines are appended and fsynced; then
``_export.json`` is replaced (write, fsync, rename) by one without ``pending`` and with the
first and last id of the batch, per source. On opening, a ``pending`` left by a crash means its
batch never committed: each file is cut back to the recorded size, and the rows come again
from the hot store. Rows within the last committed batch of their source are skipped: the
exporter acknowledges each batch right after its commit, so only that batch can come again
(the exporter died in between). One writer at a time: ``.lock`` (``flock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from router.budgets.export.base import Archive, ArchiveBusy, Entry
from router.budgets.rules import aggregate, check_fields, matches
from router.budgets.spec import LedgerRow, SpendRow

STATE = "_export.json"
FILE = "ledger.jsonl"

_FIELDS = ("request_id", "time", "key_alias", "user", "team", "model", "task", "prompt_tokens",
           "completion_tokens", "estimated_micro", "actual_micro", "reference_micro", "status",
           "api")


def day_of(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).date().isoformat()


def encode(entry: Entry) -> bytes:
    r = entry.row
    obj = {f: getattr(r, f) for f in _FIELDS}
    obj["ts"] = datetime.fromtimestamp(r.time, UTC).isoformat(timespec="microseconds")
    obj["source_id"] = entry.id
    return orjson.dumps(obj) + b"\n"


def decode(line: bytes) -> LedgerRow | None:
    """A line back as a row; None for a torn last line (being written, or cut by a crash)."""
    if not line.endswith(b"\n"):
        return None
    try:
        obj = orjson.loads(line)
        return LedgerRow(**{f: obj[f] for f in _FIELDS if f in obj})  # (api: newer lines)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileArchive(Archive):
    """JSONL day files under ``directory`` (created if missing)."""

    kind = "files"

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self._lock_fd: int | None = None
        self._state: dict[str, Any] = {}

    # -- writing (one process: the lock) ----------------------------------------------------------

    def _open(self) -> None:
        if self._lock_fd is not None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ArchiveBusy(f"{self.dir} is being written by another exporter") from None
        self._lock_fd = fd
        path = self.dir / STATE
        self._state = json.loads(path.read_text()) if path.exists() else {}
        self._state.setdefault("sources", {})
        pending = self._state.get("pending")
        if pending:  # a batch that never committed: cut its lines off
            for rel, size in pending.items():
                f = self.dir / rel
                if f.exists():
                    os.truncate(f, size)
            self._state["pending"] = None
            self._save()

    def _save(self) -> None:
        tmp = self.dir / (STATE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(self._state, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / STATE)
        _fsync_dir(self.dir)

    def _write(self, source: str, entries: Sequence[Entry]) -> int:
        self._open()
        # the last batch committed from this source: the one a crash may have left
        # unacknowledged in the hot store (the exporter acknowledges each batch at once)
        last = self._state["sources"].get(source)
        lo, hi = (tuple(last[0]), tuple(last[1])) if last else ((0, 0), (-1, -1))
        fresh = [e for e in entries if not lo <= e.pos <= hi]
        if not fresh:
            return 0
        by_day: dict[str, list[bytes]] = {}
        for e in fresh:
            by_day.setdefault(day_of(e.row.time), []).append(encode(e))
        files = {f"day={d}/{FILE}": lines for d, lines in by_day.items()}
        sizes = {}
        for rel in files:
            p = self.dir / rel
            sizes[rel] = p.stat().st_size if p.exists() else 0
        self._state["pending"] = sizes
        self._save()
        for rel, lines in files.items():
            p = self.dir / rel
            new_dir = not p.parent.exists()
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "ab") as f:
                f.write(b"".join(lines))
                f.flush()
                os.fsync(f.fileno())
            if new_dir:
                _fsync_dir(self.dir)
        self._state["pending"] = None
        self._state["sources"][source] = [list(fresh[0].pos), list(fresh[-1].pos)]
        self._save()
        return len(fresh)

    async def write(self, source: str, entries: Sequence[Entry]) -> int:
        n: int = await asyncio.to_thread(self._write, source, entries)
        return n

    # -- reading (any process, no lock) -----------------------------------------------------------

    def _day_files(self, since: float, until: float) -> Iterator[Path]:
        if not self.dir.exists():
            return
        first = day_of(max(0.0, since))
        last = day_of(min(until, 253402214400.0 - 1))  # at most 9999-12-31
        for d in sorted(self.dir.glob(f"day=*/{FILE}")):
            day = d.parent.name[4:]
            if first <= day <= last:
                yield d

    def _rows(self, since: float, until: float, filters: Mapping[str, str] | None,
              exclude: Collection[str]) -> Iterator[LedgerRow]:  # fmt: skip
        for path in self._day_files(since, until):
            with open(path, "rb") as f:
                for line in f:
                    row = decode(line)
                    if (row is not None and since <= row.time < until and matches(row, filters)
                            and row.request_id not in exclude):
                        yield row

    def _query(self, since: float, until: float, group_by: Sequence[str],
               filters: Mapping[str, str] | None,
               exclude: Collection[str]) -> list[SpendRow]:  # fmt: skip
        check_fields(group_by, filters)
        return aggregate(self._rows(since, until, filters, exclude), group_by)

    async def query(
        self,
        since: float,
        until: float,
        group_by: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
        exclude: Collection[str] = (),
    ) -> list[SpendRow]:
        out: list[SpendRow] = await asyncio.to_thread(
            self._query, since, until, group_by, filters, frozenset(exclude))
        return out

    def rows(self, since: float = 0.0, until: float = 1e11) -> list[LedgerRow]:
        """Every archived row in the range, in file order (tests, audits)."""
        return list(self._rows(since, until, None, ()))

    def _count(self) -> tuple[int, int]:
        n = s = 0
        for row in self._rows(0.0, 1e11, None, ()):
            n += 1
            s += row.actual_micro
        return n, s

    async def count(self) -> tuple[int, int]:
        out: tuple[int, int] = await asyncio.to_thread(self._count)
        return out

    async def close(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
