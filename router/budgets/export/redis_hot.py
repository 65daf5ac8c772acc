"""The Redis Stream ledger (``{P}:ledger``) as the exporter's source, through a consumer group.

The group ``export`` hands each entry to one reader, so exporters on several replicas never get
the same new entries. Every exporter reads as the one consumer ``exporter``: a process that
starts (or takes the lead after one died) first re-reads that consumer's pending entries as they
were when it started, those delivered and never acknowledged, then new ones; so a crashed batch
is exported before anything after it, in stream order. (A batch another live exporter has in
flight at that moment is read twice; the archive keeps one copy.)

Trimming keeps every entry not acknowledged: ``XTRIM MINID`` to the smallest of the oldest
pending entry, the entry after the last delivered one, the retention cutoff, and the last entry
(always kept: the settle script orders a new entry after the last one it can see). Entry ids are
``max(row time, previous id)`` in ms (router/budgets/lua.py), so after trimming at ``T`` every
row with ``time >= T`` is still there: ``{P}:ledger:floor`` remembers the largest such ``T``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis, RedisCluster

from router.budgets.export.base import Entry, HotLedger, Position
from router.budgets.journal import decode_row
from router.budgets.redis_store import UNAVAILABLE
from router.budgets.rules import matches
from router.budgets.spec import LedgerRow

GROUP = "export"
CONSUMER = "exporter"

_PRELUDE = r"""
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function before(ams, aseq, bms, bseq)
  return ams < bms or (ams == bms and aseq < bseq)
end
-- The oldest id the group may not have acknowledged: the oldest pending entry, or the one
-- after the last delivered. nil: no stream or no group (nothing was ever exported).
local function unacked_from(stream, group)
  if redis.call('EXISTS', stream) == 0 then return nil end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local t = {}
    for i = 1, #g, 2 do t[g[i]] = g[i + 1] end
    if t['name'] == group then
      local ms, seq = parts(t['last-delivered-id'])
      seq = seq + 1
      if tonumber(t['pending']) > 0 then
        local p = redis.call('XPENDING', stream, group)
        local pms, pseq = parts(p[2])
        if before(pms, pseq, ms, seq) then ms, seq = pms, pseq end
      end
      return ms, seq
    end
  end
  return nil
end
"""

#: Create the group (at the start of the stream, created if missing) unless it exists.
#: KEYS: stream; ARGV: group. Returns 1 if created.
_ENSURE = _PRELUDE + r"""
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    if g[2] == ARGV[1] then return 0 end
  end
end
redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
return 1
"""

#: KEYS: stream; ARGV: group. Returns "ms-seq", or "" (no group: everything is unexported).
_UNACKED = _PRELUDE + r"""
local ms, seq = unacked_from(KEYS[1], ARGV[1])
if ms == nil then return '' end
return string.format('%d-%d', ms, seq)
"""

#: Trim entries older than ARGV[1] (ms) and, if ARGV[2] is '1', acknowledged; raise the floor.
#: KEYS: stream, floor; ARGV: cutoff ms, exported_only, group. Returns {deleted, floor ms}.
_TRIM = _PRELUDE + r"""
local cms, cseq = tonumber(ARGV[1]), 0
if ARGV[2] == '1' then
  local ms, seq = unacked_from(KEYS[1], ARGV[3])
  if ms == nil then return {0, 0} end
  if before(ms, seq, cms, cseq) then cms, cseq = ms, seq end
end
-- Never the last entry: the settle script gives a new entry max(row time, last entry's id), so
-- an empty stream (whose last id Redis still remembers) would refuse an older row's XADD.
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if not top[1] then return {0, 0} end
local tms, tseq = parts(top[1][1])
if before(tms, tseq, cms, cseq) then cms, cseq = tms, tseq end
if cms <= 0 then return {0, 0} end
local n = redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', cms, cseq))
-- ids are >= their row's time: rows from this ms (the next, if the cut is inside it) remain
local floor = cms
if cseq > 0 then floor = cms + 1 end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
if floor > cur then redis.call('SET', KEYS[2], string.format('%d', floor)) end
return {n, floor}
"""


def position(entry_id: str) -> Position:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class RedisHotLedger(HotLedger):
    """``client``: the store's Redis client; ``prefix``: its ``{prefix}`` hash tag."""

    kind = "redis"
    unavailable = UNAVAILABLE

    def __init__(self, client: Redis | RedisCluster, prefix: str, *,
                 stale_s: float = 60.0) -> None:  # fmt: skip
        """``stale_s``: a pending entry idle this long belongs to an exporter that died (one
        acknowledges each batch as soon as the archive has it): it is read again."""
        self._r = client
        self.stale_ms = int(stale_s * 1000)
        self._next_check = 0.0
        self._p = prefix
        self.stream = f"{prefix}:ledger"
        self._floor_key = f"{prefix}:ledger:floor"
        self._id_key = f"{prefix}:ledger:id"
        self._ensure = client.register_script(_ENSURE)
        self._unacked = client.register_script(_UNACKED)
        self._trim = client.register_script(_TRIM)
        self._ready = False  # the group is known to exist
        #: Re-reading the consumer's pending entries up to this one (None: new entries).
        self._replay_until: Position | None = None
        self._source: str | None = None

    async def source_id(self) -> str:
        if self._source is None:
            await self._r.set(self._id_key, os.urandom(8).hex(), nx=True)
            token = _text(await self._r.get(self._id_key))
            self._source = f"redis:{self._p}:{token}"
        return self._source

    async def fetch(self, limit: int) -> list[Entry]:
        if not self._ready:
            await self._ensure(keys=[self.stream], args=[GROUP])
            self._ready = True
            # re-read what was pending when this exporter started (a crashed batch), and no
            # more: later pending entries are another live exporter's batch in flight
            summary = await self._r.xpending(self.stream, GROUP)
            top = summary.get("max") if summary.get("pending") else None
            self._replay_until = position(_text(top)) if top else None
        elif self._replay_until is None and time.monotonic() >= self._next_check:
            # every few seconds: another exporter's batch left pending (it died, e.g. a
            # `router ledger export` run killed beside the gateways) is read again, not
            # left to hold the trim back until a restart
            self._next_check = time.monotonic() + min(30.0, self.stale_ms / 2000)
            oldest: Any = await self._r.xpending_range(self.stream, GROUP, min="-", max="+",
                                                      count=1, idle=self.stale_ms)
            if oldest:
                summary = await self._r.xpending(self.stream, GROUP)
                self._replay_until = position(_text(summary["max"]))
        try:
            return await self._fetch(limit)
        except Exception:
            # e.g. Redis came back empty (no group): create it again and re-read the pending
            # entries first, on the next call
            self._ready = False
            raise

    async def resync(self) -> None:
        self._ready = False  # the next fetch re-reads what is pending now, first

    async def _fetch(self, limit: int) -> list[Entry]:
        while True:
            until = self._replay_until
            start = "0" if until is not None else ">"
            reply: Any = await self._r.xreadgroup(GROUP, CONSUMER, {self.stream: start},
                                                  count=limit)
            items: list[Any] = reply[0][1] if reply else []
            if until is not None:
                items = [it for it in items if position(_text(it[0])) <= until]
                if not items:
                    self._replay_until = None
                    continue
            out: list[Entry] = []
            gone: list[bytes] = []
            for raw_id, fields in items:
                if not fields:  # pending, but trimmed meanwhile (never: trims keep pending)
                    gone.append(raw_id)
                    continue
                eid = raw_id.decode()
                out.append(Entry(eid, position(eid), decode_row(fields[b"r"])))
            if gone:
                await self._r.xack(self.stream, GROUP, *gone)
                if not out:
                    continue
            return out

    async def ack(self, entries: Sequence[Entry]) -> None:
        if entries:
            await self._r.xack(self.stream, GROUP, *(e.id for e in entries))

    async def trim(self, before: float, *, exported_only: bool = True) -> int:
        n, _floor = await self._trim(
            keys=[self.stream, self._floor_key],
            args=[max(0, math.floor(before * 1000)), 1 if exported_only else 0, GROUP])
        return int(n)

    async def floor(self) -> float:
        v = await self._r.get(self._floor_key)
        return int(v) / 1000 if v else 0.0

    async def unexported(
        self, since: float, until: float, filters: Mapping[str, str] | None = None
    ) -> list[LedgerRow]:
        start = (await self._unacked(keys=[self.stream], args=[GROUP])).decode() or "-"
        out: list[LedgerRow] = []
        while True:
            batch: list[Any] = list(
                await self._r.xrange(self.stream, min=start, max="+", count=1000) or [])
            for _id, fields in batch:
                row = decode_row(fields[b"r"])
                if since <= row.time < until and matches(row, filters):
                    out.append(row)
            if len(batch) < 1000:
                return out
            start = "(" + batch[-1][0].decode()

    async def _group(self) -> dict[str, Any] | None:
        if not await self._r.exists(self.stream):
            return None
        groups = await self._r.xinfo_groups(self.stream)
        return next((g for g in groups if _text(g.get("name")) == GROUP), None)

    async def backlog(self) -> int:
        g = await self._group()
        if g is None:
            return int(await self._r.xlen(self.stream))
        lag = g.get("lag")
        if lag is None:  # Redis cannot tell (entries deleted in the middle): count them
            after: Any = await self._r.xrange(
                self.stream, min="(" + _text(g["last-delivered-id"]), max="+")
            lag = len(after or ())
        return int(lag) + int(g.get("pending") or 0)

    async def group_info(self) -> dict[str, Any]:
        """The consumer group as Redis reports it (``router ledger status``)."""
        g = await self._group()
        return {k: _text(v) if isinstance(v, bytes) else v for k, v in (g or {}).items()}


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
