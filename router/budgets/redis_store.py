"""Redis budget store: a fleet of gateway replicas sharing one Redis 7.

Each reserve is one ``EVALSHA`` (sweep expired reservations, check every budget and rate limit,
reserve on all or none); each settle or release is one more (release the reservation, add the
actual cost to the windows it was made in, append the ledger row to a Stream, mark the request
done). Counters and ledger change in the same script, so they always agree. Scripts: lua.py.

Why the ledger is a Redis Stream: it is the only place a row can be written in the same atomic
step as the counters it explains, without a second store and a two-phase commit; entries are
ordered by time, so a report from ``since`` scans only from there. Its cost is memory (about
155 bytes a row, plus a ~100 byte tombstone per request for ``settle_dedup_s``): the exporter
(router/budgets/export) moves rows to an archive and trims the stream (docs/budgets.md).

Outages: admission (``reserve``, ``check_rate``, ``budget_status``) raises
:class:`StoreUnavailable` with ``fail_mode="closed"``, or serves from the replica's
:class:`LocalView` with ``fail_mode="open"``. Settles and releases never fail: what cannot
reach Redis goes to the :class:`Journal` and is replayed by a background task when Redis
answers again; the settle script is idempotent per request id, so nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.budgets import lua
from router.budgets.batch import GroupCommit
from router.budgets.errors import RateLimited, StoreUnavailable
from router.budgets.journal import Journal, JournalEntry, decode_row, encode_row
from router.budgets.lease import LeaseManager, Leases
from router.budgets.localview import LocalView
from router.budgets.outbox import Outbox
from router.budgets.rules import exceeded, matches
from router.budgets.seed import aggregate_field, row_fields, window_days
from router.budgets.spec import (
    BudgetSpec,
    BudgetStatus,
    CounterRef,
    LedgerRow,
    Period,
    RateLimitSpec,
    Reservation,
    SettleResult,
    Window,
)
from router.budgets.store import BudgetStore, _now, check_request

log = logging.getLogger(__name__)

#: Errors that mean "Redis cannot be reached" (as opposed to a bug in a script or argument).
UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,  # a replica promoted/demoted during a Sentinel failover
    OSError,
    asyncio.TimeoutError,
)

#: How long a lease outlives its replica's last renewal, unless reservations expire sooner.
DEFAULT_LEASE_TTL_S = 30.0

#: How long a day's ledger sums are kept after the day (a monthly window has 31 days at most).
DAY_SUMS_KEPT_S = 40 * 86400.0

_RateItem = tuple[str, int, int, RateLimitSpec, str]  # key, per_minute, cost, spec, kind


class RedisStore(BudgetStore):
    """Budgets, rate limits and ledger in Redis, shared by every replica (see module doc).

    ``url`` or ``client``: a ready client instead of a URL, e.g. a Sentinel
    ``master_for(...)`` client or a ``RedisCluster`` (docs/budgets.md). ``prefix``: the hash tag
    of every key. ``journal_path``: durable journal of spend waiting for Redis (None: memory,
    lost with the process; give a persistent path in production). ``socket_timeout_s``: how long
    a call may wait before Redis counts as unreachable. ``retry_interval_s``: how often a down
    store probes Redis. ``finish_batch``: most settles/releases in one group-committed call
    (:mod:`router.budgets.batch`). ``finish_linger_s``: how long such a call may wait for the
    settles of requests still in flight to join it (none in flight: it does not wait).
    ``lease_ttl_s`` (leasing on): how long a dead replica's
    leases hold money, at most ``reservation_ttl_s`` (default: 30 s or that, if smaller).
    """

    kind = "redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | RedisCluster | None = None,
        timezone: str = "UTC",
        reservation_ttl_s: float = 1800.0,
        settle_dedup_s: float = 86400.0,
        fail_mode: str = "closed",
        prefix: str = "router",
        journal_path: str | None = None,
        socket_timeout_s: float = 0.5,
        retry_interval_s: float = 1.0,
        max_connections: int = 64,
        lease_fraction: float = 0.0,
        lease_max_micro: int = 0,
        lease_ttl_s: float | None = None,
        replica_id: str | None = None,
        finish_batch: int = 64,
        finish_linger_s: float = 0.001,
    ) -> None:
        super().__init__(timezone=timezone, reservation_ttl_s=reservation_ttl_s)
        if lease_ttl_s is None:
            lease_ttl_s = min(DEFAULT_LEASE_TTL_S, self.reservation_ttl_s)
        elif lease_ttl_s > self.reservation_ttl_s:
            raise ValueError("lease_ttl_s may not exceed reservation_ttl_s")
        if fail_mode not in ("closed", "open"):
            raise ValueError("fail_mode must be 'closed' or 'open'")
        if not prefix or any(ch in prefix for ch in "{}\n"):
            raise ValueError(f"bad key prefix {prefix!r}")
        if client is None:
            if url is None:
                raise ValueError("give a redis:// url or a client")
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                # waiting for a free connection is load, not an outage: wait longer for it
                timeout=max(5.0, socket_timeout_s),
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=socket_timeout_s,
                # One immediate retry: a pooled connection may have died with a restart. Every
                # script is idempotent per request id, so a retry cannot double-count.
                retry=Retry(NoBackoff(), 1),
            )
            client = Redis(connection_pool=pool)
            # Settles go through the group commit, one call in flight at a time: their own
            # connection, without the blocking pool's wait machinery (~40 µs a call here).
            finish_client: Redis | RedisCluster = Redis(connection_pool=ConnectionPool.from_url(
                url, max_connections=1, socket_timeout=socket_timeout_s,
                socket_connect_timeout=socket_timeout_s, retry=Retry(NoBackoff(), 1)))
        else:
            finish_client = client
        self._r: Redis | RedisCluster = client
        self._finish_r = finish_client
        self.fail_mode = fail_mode
        self._p = "{" + prefix + "}"
        self._x = f"{self._p}:x"
        self._ledger = f"{self._p}:ledger"
        self._dedup_ms = str(math.ceil(float(settle_dedup_s) * 1000))
        self._reserve = client.register_script(lua.RESERVE)
        self._finish = finish_client.register_script(lua.FINISH)
        self._finish_batch = finish_client.register_script(lua.FINISH_MANY)
        #: Reservations made and not yet settled or released: their settles are on the way.
        #: Weak: one its request dropped without settling (a bug, a cancellation; its hold
        #: expires in Redis) leaves this when it is collected, so it never keeps every later
        #: settle waiting for it.
        self._live: weakref.WeakValueDictionary[int, Reservation] = weakref.WeakValueDictionary()
        self._finisher: GroupCommit[JournalEntry, bytes] = GroupCommit(
            self._finish_many, max_batch=finish_batch, linger_s=finish_linger_s,
            expected=lambda: len(self._live))
        self._status = client.register_script(lua.STATUS)
        self._seed_script = client.register_script(lua.SEED)
        self._expire = client.register_script(lua.EXPIRE)
        self._rate = client.register_script(lua.RATE)
        self.leasing: LeaseManager | None = None
        if lease_fraction > 0:
            leases = Leases(self._p, ttl_s=lease_ttl_s, fraction=lease_fraction,
                            max_micro=lease_max_micro, replica_id=replica_id)  # fmt: skip
            self.leasing = LeaseManager(
                leases,
                expiry_key=self._x,
                dedup_ms=self._dedup_ms,
                reservation_ttl_s=self.reservation_ttl_s,
                lease_script=client.register_script(lua.LEASE),
                renew_script=client.register_script(lua.RENEW),
                on_error=self._mark_down,
                on_seen=self._seen,
                seed=self._seed,
                errors=UNAVAILABLE,
            )
        self.journal = Journal(journal_path)
        self.local = LocalView()
        for e in self.journal.head(limit=1_000_000):  # spend a crashed run left unreplayed
            if e.op == "settle":
                self.local.journaled(e.id, e.counters, e.actual_micro)
        self.outbox = Outbox(
            self.journal,
            self.local,
            ping=client.ping,
            apply=self._finish_call,
            errors=UNAVAILABLE,
            retry_interval_s=retry_interval_s,
            fail_mode=fail_mode,
        )
        self._closed = False

    @property
    def client(self) -> Redis | RedisCluster:
        """The Redis client (the ledger exporter reads the stream with it)."""
        return self._r

    @property
    def key_prefix(self) -> str:
        """``{prefix}``: the hash tag every key starts with."""
        return self._p

    # -- keys and availability -------------------------------------------------------------------

    def _ckey(self, ref: CounterRef) -> str:
        return f"{self._p}:c:{ref[0]}:{ref[1]}"

    def _ref(self, key: str) -> CounterRef:
        b, w = key[len(self._p) + 3 :].rsplit(":", 1)
        return (b, w)

    def _rate_items(self, specs: Sequence[RateLimitSpec], tokens: int) -> list[_RateItem]:
        out: list[_RateItem] = []
        for s in specs:
            for kind, per in s.limits():
                cost = 1 if kind == "requests" else tokens
                if cost > 0:
                    out.append((f"{self._p}:rl:{s.scope.value}:{s.scope_id}:{kind}", per, cost,
                                s, kind))  # fmt: skip
        return out

    @staticmethod
    def _rate_error(item: _RateItem, wait: float) -> RateLimited:
        return RateLimited(
            scope=item[3].scope.value,
            scope_id=item[3].scope_id,
            kind=item[4],
            limit_per_minute=item[1],
            retry_after_s=wait,
        )

    @property
    def available(self) -> bool:
        """False from a failed call until Redis answers and the journal is replayed."""
        return self.outbox.available

    def _mark_down(self, exc: BaseException) -> None:
        self.outbox.mark_down(exc)

    def _unavailable(self) -> StoreUnavailable:
        return self.outbox.unavailable()

    def _seen(self, ckey: str, used: int) -> None:
        self.local.seen(ckey, used)

    async def _seed(self, budget: BudgetSpec, window: Window, ckey: str) -> None:
        """Create ``ckey`` with the ledger's spend of ``budget``'s scope in ``window`` (from
        the day sums; see router/budgets/seed.py), unless it exists already."""
        if window.period is Period.TOTAL:
            sums = [f"{self._p}:a:total"]
        else:
            sums = [f"{self._p}:a:{d}" for d in window_days(window, self.calendar.tz)]
        s, r = (await self._seed_script(keys=[ckey, *sums], args=[aggregate_field(budget)])).split()
        self.local.seen(ckey, int(s) + int(r))

    async def _seed_missing(
        self,
        reply: bytes,
        budgets: Sequence[BudgetSpec],
        windows: Sequence[Window],
        ckeys: Sequence[str],
    ) -> None:
        """A script answered "seed i ...": seed those counters (1-based indices)."""
        for i in (int(x) - 1 for x in reply.split()[1:]):
            await self._seed(budgets[i], windows[i], ckeys[i])

    def _check_known(
        self, budgets: Sequence[BudgetSpec], windows: Sequence[Window], ckeys: Sequence[str]
    ) -> None:
        """fail_mode open, Redis down: refuse budgets whose spend this replica does not know."""
        i = self.local.unknown(ckeys, windows, self.outbox.lost_at)
        if i >= 0:
            raise StoreUnavailable(
                store="redis",
                reason=f"{self.outbox.reason or 'unreachable'}; no spend known on this replica "
                f"for budget {budgets[i].key} window {windows[i].id}",
            )

    async def reconcile(self) -> int:
        """Replay the journal into Redis now (also done in the background after an outage)."""
        return await self.outbox.reconcile()

    async def _finish_call(self, e: JournalEntry) -> bool:
        """Settle/release ``e`` (in a group commit with concurrent ones); False if the request
        was already done. The reply's counters refresh the local view."""
        f = (await self._finisher.submit(e)).split(b" ")
        skip = 1 if f[0] == b"dup" else 2
        for i, ck in enumerate(e.counters):
            self.local.seen(ck, int(f[skip + 2 * i]) + int(f[skip + 1 + 2 * i]))
        return f[0] != b"dup"

    def _finish_args(self, e: JournalEntry) -> tuple[list[str], tuple[str, str, bytes, str]]:
        keys = [self._x, f"{self._p}:r:{e.request_id}", self._ledger, *e.counters, *e.leases]
        sums, expiry, fields = 0, 0, ""
        if e.op == "settle" and e.actual_micro > 0 and e.row:  # the day sums seeding reads
            day = self.calendar.window(Period.DAILY, e.row_ms / 1000)
            assert day.reset_at is not None
            keys += [f"{self._p}:a:{day.id}", f"{self._p}:a:total"]
            sums, expiry = 2, math.ceil(day.reset_at + DAY_SUMS_KEPT_S)
            names = e.fields if e.fields is not None else row_fields(decode_row(e.row))
            fields = "\n".join(names)
        head = (f"{e.actual_micro} {self._dedup_ms} {e.row_ms} {e.op} {len(e.leases)} "
                f"{e.consumed} {sums} {expiry}")  # fmt: skip
        return keys, (head, e.request_id, e.row, fields)

    async def _finish_many(self, entries: Sequence[JournalEntry]) -> Sequence[bytes]:
        """One call for a batch of settles/releases (FINISH alone, FINISH_MANY for several)."""
        if len(entries) == 1:
            keys, args = self._finish_args(entries[0])
            return [await self._finish(keys=keys, args=args)]
        all_keys: list[str] = []
        all_args: list[str | bytes | int] = []
        for e in entries:
            keys, args = self._finish_args(e)
            all_keys += keys
            all_args.append(len(keys))
            all_args += args
        res: list[bytes] = await self._finish_batch(keys=all_keys, args=all_args)
        return res

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except UNAVAILABLE:
            return False

    # -- reserve ---------------------------------------------------------------------------------

    async def reserve(
        self,
        request_id: str,
        budgets: Sequence[BudgetSpec],
        amount_micro: int,
        now: float | None = None,
        *,
        fallback_micro: int | None = None,
        rate_limits: Sequence[RateLimitSpec] = (),
        tokens: int = 0,
    ) -> Reservation:
        r = await self._reserve_any(request_id, budgets, amount_micro, now,
                                    fallback_micro=fallback_micro, rate_limits=rate_limits,
                                    tokens=tokens)  # fmt: skip
        self._live[id(r)] = r
        return r

    async def _reserve_any(
        self,
        request_id: str,
        budgets: Sequence[BudgetSpec],
        amount_micro: int,
        now: float | None,
        *,
        fallback_micro: int | None,
        rate_limits: Sequence[RateLimitSpec],
        tokens: int,
    ) -> Reservation:
        now = _now(now)
        check_request(request_id, budgets, amount_micro, fallback_micro)
        windows, refs = self._windows(budgets, now)
        ckeys = [self._ckey(r) for r in refs]
        items = self._rate_items(rate_limits, tokens)
        zero_blocked = amount_micro == 0 and any(b.block_zero_cost for b in budgets)
        if self.leasing is not None and budgets and not items and not zero_blocked:
            try:
                leased = await self.leasing.reserve(
                    request_id, budgets, windows, refs, ckeys, amount_micro, fallback_micro, now,
                    can_grant=self.available,
                )  # fmt: skip
            except UNAVAILABLE as e:
                self._mark_down(e)
            else:
                if leased is not None:
                    return leased
        if self.available:
            fb = -1 if fallback_micro is None else fallback_micro
            head = (
                f"{now!r} {self.reservation_ttl_s!r} {self._dedup_ms} {amount_micro} {fb} "
                f"{len(budgets)} {len(items)}"
            )
            limits = " ".join(f"{b.limit_micro} {1 if b.block_zero_cost else 0}" for b in budgets)
            rates = " ".join(f"{it[1]} {it[2]}" for it in items)
            keys = [self._x, f"{self._p}:r:{request_id}", *ckeys, *(it[0] for it in items)]
            try:
                while True:
                    res = await self._reserve(keys=keys, args=(head, request_id, limits, rates))
                    if not res.startswith(b"seed "):
                        break
                    await self._seed_missing(res, budgets, windows, ckeys)
            except UNAVAILABLE as e:
                self._mark_down(e)
            else:
                return self._reserved(res, request_id, budgets, windows, refs, ckeys, items)
        if self.fail_mode == "closed":
            raise self._unavailable()
        self._check_known(budgets, windows, ckeys)
        return self.local.reserve(
            request_id, budgets, windows, refs, ckeys, [it[:3] for it in items], amount_micro,
            fallback_micro, now, self.reservation_ttl_s,
            lambda j, wait: self._rate_error(items[j], wait),
        )  # fmt: skip

    def _reserved(
        self,
        res: bytes,
        request_id: str,
        budgets: Sequence[BudgetSpec],
        windows: Sequence[Window],
        refs: tuple[CounterRef, ...],
        ckeys: Sequence[str],
        items: Sequence[_RateItem],
    ) -> Reservation:
        text, _, tail = res.decode().partition("\n")
        f = text.split(" ")
        tag = f[0]
        if tag == "rate":
            raise self._rate_error(items[int(f[1]) - 1], float(f[2]))
        if tag == "over":
            i = int(f[1]) - 1
            self.local.seen(ckeys[i], int(f[2]))
            raise exceeded(budgets[i], windows[i], int(f[2]), int(f[3]))
        if tag == "final":
            raise ValueError(f"request {request_id!r} was already {f[1]}")
        amount, t0, exp = int(f[1]), float(f[2]), float(f[3])
        added = amount
        if tag == "dup":  # a retried reserve: the live reservation stands
            refs = tuple(self._ref(k) for k in tail.split("\n") if k)
            added = 0
        status = []
        for i, (b, w) in enumerate(zip(budgets, windows, strict=True)):
            spent, held = int(f[4 + 2 * i]), int(f[5 + 2 * i]) + added
            self.local.seen(ckeys[i], spent + held)
            status.append(BudgetStatus(b, w.id, spent, held, w.reset_at))
        return Reservation(request_id, amount, t0, exp, refs, tuple(status))

    # -- settle and release ----------------------------------------------------------------------

    async def _finish_or_journal(
        self, op: str, reservation: Reservation, actual: int, row: LedgerRow | None, now: float
    ) -> tuple[bool, bool]:
        """Run the finish script, or journal it. Returns (applied, deferred)."""
        rid = reservation.request_id
        self._live.pop(id(reservation), None)
        blob = b"" if row is None else encode_row(row)
        ckeys = [self._ckey(r) for r in reservation.counters] if op == "settle" else []
        row_ms = math.floor(reservation.time * 1000)
        self.local.unhold(rid)
        leases: tuple[str, ...] = ()
        consumed = 0
        if reservation.leases and self.leasing is not None:
            consumed = min(actual, reservation.amount_micro) if op == "settle" else 0
            if not self.leasing.finish(rid, reservation.leases, consumed):
                consumed = 0
            if consumed:
                leases = reservation.leases
        fields = tuple(row_fields(row)) if row is not None and op == "settle" else ()
        entry = JournalEntry(0, op, rid, tuple(ckeys), actual, row_ms, blob, leases, consumed,
                             fields)  # fmt: skip
        if self.available:
            try:
                applied = await self._finish_call(entry)
            except UNAVAILABLE as e:
                self._mark_down(e)
            else:
                return applied, False
        entry_id = self.journal.append(op, rid, ckeys, actual, row_ms, blob, leases, consumed)
        if op == "settle":
            released = self._released(reservation, consumed, now)
            self.local.journaled(entry_id, ckeys, actual - released)
        return True, True

    @staticmethod
    def _released(reservation: Reservation, consumed: int, now: float) -> int:
        """How much of ``reservation``'s hold, counted in Redis (and so in the local view's
        snapshot), its settle will release there: the part of a lease it consumes, or a live
        per-request reservation's amount (a local one's hold was only ever local)."""
        if reservation.leases:
            return consumed
        if reservation.local or now >= reservation.expires_at:
            return 0  # (expired: Redis's sweep may have released it already; count it again)
        return reservation.amount_micro

    async def settle(
        self,
        reservation: Reservation,
        actual_micro: int,
        row: LedgerRow,
        *,
        now: float | None = None,
    ) -> SettleResult:
        if row.request_id != reservation.request_id:
            raise ValueError(
                f"ledger row is for {row.request_id!r}, not {reservation.request_id!r}"
            )
        if actual_micro < 0:
            raise ValueError("actual_micro must be >= 0")
        row = row.stamped(reservation.time, actual_micro)
        applied, deferred = await self._finish_or_journal(
            "settle", reservation, actual_micro, row, _now(now))
        over = max(0, actual_micro - reservation.amount_micro) if applied else 0
        return SettleResult(applied=applied, overshoot_micro=over, deferred=deferred)

    async def release(
        self,
        reservation: Reservation,
        row: LedgerRow | None = None,
        *,
        now: float | None = None,
    ) -> bool:
        if row is not None:
            if row.request_id != reservation.request_id:
                raise ValueError(
                    f"ledger row is for {row.request_id!r}, not {reservation.request_id!r}"
                )
            row = row.stamped(reservation.time, 0)
        elif reservation.local or reservation.leases:  # nothing in Redis to free or record
            self._live.pop(id(reservation), None)
            self.local.unhold(reservation.request_id)
            if reservation.leases and self.leasing is not None:
                self.leasing.finish(reservation.request_id, reservation.leases, 0)
            return True
        applied, _ = await self._finish_or_journal("release", reservation, 0, row, _now(now))
        return applied

    # -- status, rate limits, expiry -------------------------------------------------------------

    async def budget_status(
        self, budgets: Sequence[BudgetSpec], now: float | None = None
    ) -> list[BudgetStatus]:
        now = _now(now)
        windows, refs = self._windows(budgets, now)
        ckeys = [self._ckey(r) for r in refs]
        if self.available:
            try:
                while True:
                    res = await self._status(keys=[self._x, *ckeys],
                                             args=[repr(now), self._dedup_ms])  # fmt: skip
                    if not res.startswith(b"seed "):
                        break
                    await self._seed_missing(res, budgets, windows, ckeys)
            except UNAVAILABLE as e:
                self._mark_down(e)
            else:
                out = []
                f = res.decode().split(" ")
                for i, (b, w) in enumerate(zip(budgets, windows, strict=True)):
                    s, r = int(f[2 * i]), int(f[2 * i + 1])
                    self.local.seen(ckeys[i], s + r)
                    out.append(BudgetStatus(b, w.id, s, r, w.reset_at))
                return out
        if self.fail_mode == "closed":
            raise self._unavailable()
        self._check_known(budgets, windows, ckeys)
        self.local.expire(now)
        return [
            BudgetStatus(b, w.id, self.local.used(k), 0, w.reset_at)
            for b, w, k in zip(budgets, windows, ckeys, strict=True)
        ]

    async def check_rate(
        self, specs: Sequence[RateLimitSpec], tokens: int = 0, now: float | None = None
    ) -> None:
        now = _now(now)
        items = self._rate_items(specs, tokens)
        if not items:
            return
        if self.available:
            spec = " ".join(f"{it[1]} {it[2]}" for it in items)
            try:
                res = await self._rate(
                    keys=[self._x, *(it[0] for it in items)], args=(repr(now), spec)
                )
            except UNAVAILABLE as e:
                self._mark_down(e)
            else:
                if res:
                    j, wait = res.decode().split(" ")
                    raise self._rate_error(items[int(j) - 1], float(wait))
                return
        if self.fail_mode == "closed":
            raise self._unavailable()
        fail = self.local.rate([(it[0], it[1], it[2]) for it in items], now)
        if fail is not None:
            raise self._rate_error(items[fail[0]], fail[1])

    async def expire_reservations(self, now: float | None = None) -> int:
        now = _now(now)
        freed = self.local.expire(now)
        if self.leasing is not None:
            freed += self.leasing.expire(now)
        if not self.available:
            return freed
        try:
            while True:
                f, seen = await self._expire(keys=[self._x], args=[repr(now), self._dedup_ms, 1000])
                freed += int(f)
                if int(seen) < 1000:
                    return freed
        except UNAVAILABLE as e:
            self._mark_down(e)
            return freed

    # -- ledger ----------------------------------------------------------------------------------

    async def iter_ledger(
        self, since: float, until: float, filters: Mapping[str, str] | None = None
    ) -> AsyncIterator[LedgerRow]:
        # Entry ids are >= their row's time (see lua.py), so rows from `since` on are all at or
        # after id `since`; rows later than `until` may sit anywhere after, so scan to the end.
        start = f"{max(0, math.floor(since * 1000))}-0"
        while True:
            try:
                raw = await self._r.xrange(self._ledger, min=start, max="+", count=1000)
            except UNAVAILABLE as e:
                self._mark_down(e)
                raise self._unavailable() from e
            batch: list[Any] = list(raw or [])
            for _id, fields in batch:
                row = decode_row(fields[b"r"])
                if since <= row.time < until and matches(row, filters):
                    yield row
            if len(batch) < 1000:
                return
            start = "(" + batch[-1][0].decode()

    async def trim_ledger(self, before: float) -> int:
        """Delete ledger entries older than ``before`` whether exported or not (``export:
        none``; the exporter trims only what its archive has), keeping the last entry. Budget
        counters are not touched, so afterwards only windows after ``before`` still equal
        their ledger sums. Returns how many entries were deleted."""
        from router.budgets.export.redis_hot import RedisHotLedger

        return await RedisHotLedger(self._r, self._p).trim(before, exported_only=False)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._finisher.aclose()
        if self.leasing is not None:
            await self.leasing.close()
        await self.outbox.close()
        await self._r.aclose()
        if self._finish_r is not self._r:
            await self._finish_r.aclose()
