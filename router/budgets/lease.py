"""Leases: a replica's slice of a budget, so most reservations need no Redis round trip.

A lease is reserved in Redis like a long-lived reservation of one budget window (it counts in
the window's ``r``, sits in the expiry set, and is swept like any reservation when its replica
stops renewing it). The replica then reserves against its leases in memory; the settle script
moves each request's cost from the lease to the window's spend and writes its ledger row, one
script per request as without leases, so a completed request is as durable as before.

Exactness: every µ$ a replica admits locally is held in Redis by one of its leases, and leases
are only granted out of the window's free money, so the limit holds across replicas. A lease is
used only while its local expiry, minus a margin of a third of the TTL, has not passed, so a
lease Redis may already have swept (clock skew below that margin) is never spent. What leasing
costs: money leased by one replica and not used is unavailable to the others until given back
(leases idle for one renewal period are returned; near the limit the grant shrinks to exactly
what the request needs, i.e. per-request reservations).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from router.budgets.rules import exceeded
from router.budgets.spec import BudgetSpec, BudgetStatus, CounterRef, Reservation, Window

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Lease:
    key: str  # Redis key of the lease record ({P}:r:L.<replica>.<n>)
    ckey: str  # the budget window counter it holds money of
    held: int = 0  # µ$ held in Redis (as this replica knows it)
    in_flight: int = 0  # µ$ of it reserved by requests not yet settled or released
    expires_at: float = 0.0  # as set by this replica's last grant or renewal
    used: bool = False  # reserved against since the last renewal
    spent: int = 0  # the window's s and r as of the last lease call (for status)
    reserved: int = 0
    limit: int = -1  # the budget limit the last grant was checked against

    @property
    def free(self) -> int:
        return self.held - self.in_flight


class Leases:
    """This replica's leases, by counter key. Single event loop: no locking needed for the
    in-memory part; grants and renewals are serialised by the store."""

    def __init__(
        self,
        tag: str,
        *,
        ttl_s: float,
        fraction: float,
        max_micro: int,
        replica_id: str | None = None,
    ) -> None:
        if not 0 < fraction <= 1:
            raise ValueError("lease_fraction must be in (0, 1]")
        if ttl_s <= 0:
            raise ValueError("lease_ttl_s must be > 0")
        self.tag = tag
        self.ttl_s = ttl_s
        self.margin_s = ttl_s / 3
        self.fraction = fraction
        self.max_micro = max_micro
        self.replica_id = replica_id or uuid.uuid4().hex[:12]
        self.by_ckey: dict[str, Lease] = {}
        self.by_key: dict[str, Lease] = {}
        self._ids = itertools.count()

    def usable(self, ckey: str, now: float) -> Lease | None:
        lease = self.by_ckey.get(ckey)
        if lease is None or lease.expires_at == 0.0:  # none, or its first grant is under way
            return None
        if now >= lease.expires_at - self.margin_s:
            self.drop(lease)  # Redis may sweep it any moment: never spend it again
            return None
        return lease

    def get_or_new(self, ckey: str) -> Lease:
        lease = self.by_ckey.get(ckey)
        if lease is None:
            key = f"{self.tag}:r:L.{self.replica_id}.{next(self._ids)}"
            lease = self.by_ckey[ckey] = self.by_key[key] = Lease(key, ckey)
        return lease

    def drop(self, lease: Lease) -> None:
        if self.by_ckey.get(lease.ckey) is lease:
            del self.by_ckey[lease.ckey]
        self.by_key.pop(lease.key, None)


@dataclass(slots=True)
class _Pending:
    amount: int
    keys: tuple[str, ...]
    expires_at: float
    expired: bool = False  # freed locally after the reservation TTL; a late settle still counts


class LeaseManager:
    """Reserves against this replica's leases, takes and renews them. ``lease_script`` and
    ``renew_script`` are the store's LEASE and RENEW scripts (router/budgets/lua.py)."""

    def __init__(
        self,
        leases: Leases,
        *,
        expiry_key: str,
        dedup_ms: str,
        reservation_ttl_s: float,
        lease_script: Callable[..., Any],
        renew_script: Callable[..., Any],
        on_error: Callable[[BaseException], None],
        errors: tuple[type[BaseException], ...],
        on_seen: Callable[[str, int], None] = lambda ckey, used: None,
        seed: Callable[[BudgetSpec, Window, str], Awaitable[None]],
    ) -> None:
        self.leases = leases
        self._x = expiry_key
        self._dedup_ms = dedup_ms
        self._ttl_r = reservation_ttl_s
        self._lease = lease_script
        self._renew = renew_script
        self._on_error = on_error
        self._on_seen = on_seen  # a counter's settled + reserved, as a LEASE reply gave it
        self._seed = seed  # create a budget window's counter from the ledger (seed.py)
        self._errors = errors
        self._lock = asyncio.Lock()
        self._pending: dict[str, _Pending] = {}
        self._beat: asyncio.Task[None] | None = None

    # -- reserving ---------------------------------------------------------------------------

    def _take(
        self,
        request_id: str,
        budgets: Sequence[BudgetSpec],
        windows: Sequence[Window],
        refs: tuple[CounterRef, ...],
        ckeys: Sequence[str],
        amount: int,
        now: float,
    ) -> Reservation | list[tuple[int, int]]:
        """Reserve in memory if every lease has room (no await: atomic on the loop), else
        say what each budget lacks."""
        found: list[Lease | None] = [self.leases.usable(k, now) for k in ckeys]
        needs = []
        for i, lease in enumerate(found):
            free = lease.free if lease else 0
            if lease is not None and lease.limit != budgets[i].limit_micro:
                # the limit changed (policy reload): hand the unused part back and take what
                # this request needs under the new limit before spending any of it
                needs.append((i, amount))
            elif free < amount:
                needs.append((i, amount - free))
        if needs:
            return needs
        held = [lease for lease in found if lease is not None]
        for lease in held:
            lease.in_flight += amount
            lease.used = True
        keys = tuple(lease.key for lease in held)
        exp = now + self._ttl_r
        if keys:  # (a zero-cost request with no lease holds nothing: nothing to track)
            self._pending[request_id] = _Pending(amount, keys, exp)
        status = tuple(
            BudgetStatus(b, w.id, lease.spent if lease else 0, lease.reserved if lease else 0,
                         w.reset_at)
            for b, w, lease in zip(budgets, windows, found, strict=True)
        )  # fmt: skip
        return Reservation(request_id, amount, now, exp, refs, status, leases=keys)

    async def reserve(
        self,
        request_id: str,
        budgets: Sequence[BudgetSpec],
        windows: Sequence[Window],
        refs: tuple[CounterRef, ...],
        ckeys: Sequence[str],
        amount_micro: int,
        fallback_micro: int | None,
        now: float,
        *,
        can_grant: bool,
    ) -> Reservation | None:
        """A reservation from leases (taking or topping them up in one script when short), or
        None when that needs Redis and Redis is down. Raises BudgetExceeded like the store."""
        if request_id in self._pending:
            raise ValueError(f"request {request_id!r} is already reserved")
        amounts = [amount_micro]
        if fallback_micro is not None and fallback_micro < amount_micro:
            amounts.append(fallback_micro)
        over: tuple[int, int] = (0, 0)
        for amount in amounts:
            while True:
                got = self._take(request_id, budgets, windows, refs, ckeys, amount, now)
                if isinstance(got, Reservation):
                    return got
                if not can_grant:
                    return None
                async with self._lock:  # one grant at a time; others then find room
                    got = self._take(request_id, budgets, windows, refs, ckeys, amount, now)
                    if isinstance(got, Reservation):
                        return got
                    res = await self._grant(budgets, ckeys, got, amount, now)
                    if res is None:  # granted: take it before anything else runs
                        got = self._take(request_id, budgets, windows, refs, ckeys, amount, now)
                        if isinstance(got, Reservation):
                            return got
                        continue
                if res[0] == "over":
                    over = (res[1], res[2])
                    break
                if res[0] == "seed":
                    await self._seed(budgets[res[1]], windows[res[1]], ckeys[res[1]])
        i, used = over
        lease = self.leases.by_ckey.get(ckeys[i])
        idle = lease.free if lease else 0  # our own idle lease is not spend
        raise exceeded(budgets[i], windows[i], used - idle, amounts[-1])

    async def _grant(
        self,
        budgets: Sequence[BudgetSpec],
        ckeys: Sequence[str],
        needs: Sequence[tuple[int, int]],
        unit: int,
        now: float,
    ) -> tuple[str, int, int] | None:
        """Run LEASE for the budgets in ``needs``. None when granted; ("over", index, used),
        ("gone", index, 0) or ("seed", index, 0) otherwise (a gone lease is dropped; a missing
        counter is to be seeded; the caller retries)."""
        leases = [self.leases.get_or_new(ckeys[i]) for i, _ in needs]
        keys = [self._x]
        gives = []
        for (i, _), lease in zip(needs, leases, strict=True):
            keys += [ckeys[i], lease.key]
            give = lease.free if lease.limit not in (-1, budgets[i].limit_micro) else 0
            lease.held -= give  # before the call: never spent meanwhile, whatever happens
            gives.append(give)
        lv = self.leases
        head = f"{now!r} {lv.ttl_s!r} {lv.fraction!r} {lv.max_micro} {len(needs)} {self._dedup_ms}"
        ln = " ".join(
            f"{budgets[i].limit_micro} {need} {give} {unit}"
            for (i, need), give in zip(needs, gives, strict=True)
        )
        try:
            res = (await self._lease(keys=keys, args=(head, ln))).decode().split(" ")
        except BaseException:
            for lease in leases:
                if lease.held == 0:
                    lv.drop(lease)
            raise
        if res[0] == "ok":
            for j, ((i, _), lease) in enumerate(zip(needs, leases, strict=True)):
                lease.limit = budgets[i].limit_micro
                if lease.ckey not in lv.by_ckey:  # dropped past its margin meanwhile: the
                    lv.by_ckey[lease.ckey] = lv.by_key[lease.key] = lease  # grant renewed it
                lease.held += int(res[1 + 3 * j])
                lease.spent, lease.reserved = int(res[2 + 3 * j]), int(res[3 + 3 * j])
                lease.expires_at = now + lv.ttl_s
                self._on_seen(lease.ckey, lease.spent + lease.reserved)
            self._start_heartbeat()
            return None
        if res[0] in ("gone", "seed"):  # answered before giving anything back
            for lease, give in zip(leases, gives, strict=True):
                lease.held += give
        for lease in leases:
            if lease.held == 0:
                lv.drop(lease)
        j = int(res[1]) - 1
        if res[0] == "gone":
            lv.drop(leases[j])
            return ("gone", needs[j][0], 0)
        if res[0] == "seed":
            return ("seed", needs[j][0], 0)
        self._on_seen(leases[j].ckey, int(res[2]))
        return ("over", needs[j][0], int(res[2]))

    # -- finishing, expiry, renewal ----------------------------------------------------------

    def finish(self, request_id: str, keys: Sequence[str], consumed: int) -> bool:
        """A leased reservation ended: ``consumed`` µ$ of each lease becomes spend (0 for a
        release). Returns whether the FINISH script should take ``consumed`` from the lease
        records too: only for a request this replica still tracks, so both sides always move
        together. (An unknown one — a retried settle, or one forgotten long after it expired —
        leaves the leases alone: at worst its money stays leased until the lease is returned.)"""
        p = self._pending.pop(request_id, None)
        if p is None:
            return False
        for key in keys:
            lease = self.leases.by_key.get(key)
            if lease is None:
                continue
            if not p.expired:
                lease.in_flight -= p.amount
            lease.held -= consumed
        return True

    def expire(self, now: float) -> int:
        """Free leased reservations never settled (their money stays in the lease); forget
        them a reservation TTL later (see :meth:`finish` for a settle after that)."""
        n = 0
        for rid, p in list(self._pending.items()):
            if p.expired and p.expires_at + self._ttl_r <= now:
                del self._pending[rid]
            elif not p.expired and p.expires_at <= now:
                for key in p.keys:
                    lease = self.leases.by_key.get(key)
                    if lease is not None:
                        lease.in_flight -= p.amount
                p.expired = True
                n += 1
        return n

    def _start_heartbeat(self) -> None:
        if self._beat is None or self._beat.done():
            self._beat = asyncio.get_running_loop().create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        while self.leases.by_ckey or self._pending:
            await asyncio.sleep(self.leases.margin_s)
            try:
                await self.renew(time.time())
            except self._errors as e:
                self._on_error(e)

    async def renew(self, now: float, *, give_back_all: bool = False) -> None:
        """Renew every lease; give back what idle leases (or, at shutdown, all) do not hold
        for requests in flight. Local state is lowered before the call, so nothing given back
        can be reserved meanwhile."""
        self.expire(now)
        async with self._lock:
            items: list[tuple[Lease, int, bool]] = []
            for lease in list(self.leases.by_ckey.values()):
                give = lease.free if (give_back_all or not lease.used) else 0
                drop = give == lease.held
                lease.used = False
                lease.held -= give
                if drop:
                    self.leases.drop(lease)
                items.append((lease, give, drop))
            if not items:
                return
            keys = [self._x, *(lease.key for lease, _, _ in items)]
            gd = " ".join(f"{give} {1 if drop else 0}" for _, give, drop in items)
            res = await self._renew(keys=keys, args=(f"{now!r} {self.leases.ttl_s!r}", gd))
            for (lease, _, drop), r in zip(items, res.decode().split(" "), strict=True):
                if r == "gone":
                    self.leases.drop(lease)
                elif not drop:
                    lease.expires_at = now + self.leases.ttl_s

    async def close(self) -> None:
        task, self._beat = self._beat, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.renew(time.time(), give_back_all=True)
        except self._errors as e:
            log.warning("could not give leases back (they expire on their own): %s", e)
