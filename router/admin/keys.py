"""Keys created through the admin API, as the request path sees them.

:class:`DynamicKeys` keeps ``SHA-256 -> Caller`` for every live admin-created key in a plain
dict, reloaded from the :class:`~router.budgets.keys.KeyStore` by a background task whenever the
store's version token changes (polled every ``refresh_s``, default 2 s). Authentication is then a
dict lookup, never a store call; a key revoked on any replica stops working on every replica
within one poll. :class:`~router.auth.KeyRing` consults it after its static keys (config.yaml).

If the store cannot be reached, the last loaded keys stay in force (a revocation made meanwhile
applies once the store answers again) and the failure is logged once, not at every poll.

This module also turns a ``POST /admin/keys`` body into a :class:`KeyRecord` plus the secret,
which is returned to the caller once and never stored, logged or put in an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, TypeVar, overload

from router.auth import Caller, caller_of
from router.budgets.errors import StoreUnavailable
from router.budgets.keys import ALIAS_RE, KeyExists, KeyRecord, KeyStore
from router.budgets.spec import Period
from router.config import Config, KeyConfig
from router.errors import GatewayError, InvalidRequest, NotFound, ServiceUnavailable

log = logging.getLogger("router.admin")

_T = TypeVar("_T")

#: ``sk-router-`` + 32 URL-safe characters (192 random bits).
SECRET_PREFIX = "sk-router-"

#: Period names accepted in requests (``period=day`` or ``daily``).
PERIOD_NAMES: Mapping[str, Period] = {
    "day": Period.DAILY, "daily": Period.DAILY, "week": Period.WEEKLY, "weekly": Period.WEEKLY,
    "month": Period.MONTHLY, "monthly": Period.MONTHLY, "total": Period.TOTAL,
}  # fmt: skip

_MAX_USD = Decimal(1_000_000_000)


def new_secret() -> tuple[str, str]:
    """A fresh gateway key and its SHA-256 (the only part that is stored)."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(24)
    return secret, hashlib.sha256(secret.encode()).hexdigest()


def usd_to_micro(value: object, param: str) -> int:
    """Dollars (a JSON number or a decimal string) to integer µ$, exactly (no float sums)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequest(f"'{param}' must be a number of US dollars.", param=param)
    try:
        usd = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequest(f"'{param}' must be a number of US dollars.", param=param) from None
    if not usd.is_finite() or usd < 0 or usd > _MAX_USD:
        raise InvalidRequest(f"'{param}' must be between 0 and {_MAX_USD} US dollars.",
                             param=param)  # fmt: skip
    return int((usd * 1_000_000).to_integral_value(ROUND_HALF_UP))


def _name(body: Mapping[str, Any], field: str, default: str | None = None) -> str:
    value = body.get(field, default)
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{field}'.", param=field)
    if (not isinstance(value, str) or not value or len(value) > 256
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)):  # fmt: skip
        raise InvalidRequest(f"'{field}' must be 1-256 printable characters.", param=field)
    return value


def _per_minute(body: Mapping[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 10**12:
        raise InvalidRequest(f"'{field}' must be a positive integer.", param=field)
    return value


#: The fields of ``POST /admin/keys``: config.yaml's ``auth.keys`` entry without the secret.
KEY_FIELDS = frozenset({"alias", "user", "team", "models", "budget_usd", "requests_per_minute",
                        "tokens_per_minute"})  # fmt: skip


def parse_key_request(
    body: Mapping[str, Any], *, known_models: Collection[str] | None = None
) -> dict[str, Any]:
    """Check a ``POST /admin/keys`` body; returns the :class:`KeyRecord` fields it sets.

    The body is shaped like a config.yaml key: ``alias``, ``user`` and ``team`` (default
    ``default``), ``models`` (allowed models or routes; omitted or null: all), ``budget_usd``
    (``{period: USD}``, periods daily/weekly/monthly/total or day/week/month),
    ``requests_per_minute``, ``tokens_per_minute``. Unknown fields are refused.
    """
    for field in body:
        if field not in KEY_FIELDS:
            raise InvalidRequest(f"Unknown parameter: '{field}'.", param=field)
    alias = body.get("alias")
    if not isinstance(alias, str) or not ALIAS_RE.match(alias):
        raise InvalidRequest("'alias' must be 1-64 of A-Z a-z 0-9 . _ - (starting with a letter "
                             "or digit).", param="alias")  # fmt: skip
    out: dict[str, Any] = {"alias": alias, "user": _name(body, "user", "default"),
                           "team": _name(body, "team", "default")}  # fmt: skip
    models = body.get("models")
    if models is not None:
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise InvalidRequest("'models' must be a list of model names.", param="models")
        unknown = sorted(set(models) - set(known_models)) if known_models is not None else []
        if unknown:
            raise InvalidRequest(f"Unknown model(s): {', '.join(map(repr, unknown))}.",
                                 param="models", code="model_not_found")  # fmt: skip
        out["models"] = tuple(dict.fromkeys(models))
    budgets = body.get("budget_usd") or {}
    if not isinstance(budgets, dict):
        raise InvalidRequest("'budget_usd' must map a period to US dollars, e.g. "
                             '{"monthly": 20}.', param="budget_usd")  # fmt: skip
    limits: dict[Period, int] = {}
    for name, usd in budgets.items():
        period = PERIOD_NAMES.get(name)
        if period is None or period in limits:
            raise InvalidRequest(f"Bad budget period {name!r}: use daily, weekly, monthly or "
                                 "total (once each).", param=f"budget_usd.{name}")  # fmt: skip
        limits[period] = usd_to_micro(usd, f"budget_usd.{name}")
    out["budgets"] = tuple(limits.items())
    out["requests_per_minute"] = _per_minute(body, "requests_per_minute")
    out["tokens_per_minute"] = _per_minute(body, "tokens_per_minute")
    return out


def _key_json(alias: str, source: str, user: str, team: str, models: Sequence[str] | None,
              budgets: Sequence[tuple[Period, int]], rpm: int | None,
              tpm: int | None) -> dict[str, Any]:  # fmt: skip
    return {
        "alias": alias, "source": source, "user": user, "team": team,
        "models": list(models) if models is not None else None,
        "budget_usd": {p.value: v / 1_000_000 for p, v in budgets},
        "budget_micro": {p.value: v for p, v in budgets},
        "requests_per_minute": rpm, "tokens_per_minute": tpm,
    }  # fmt: skip


def record_json(rec: KeyRecord) -> dict[str, Any]:
    """A key as the admin API shows it: never the secret, nor its hash."""
    return {
        **_key_json(rec.alias, "admin", rec.user, rec.team, rec.models, rec.budgets,
                    rec.requests_per_minute, rec.tokens_per_minute),
        "created": rec.created, "revoked": rec.revoked is not None, "revoked_at": rec.revoked,
    }  # fmt: skip


def caller_of_record(rec: KeyRecord) -> Caller:
    """The request path's view of a stored key: owner, allowed models, and the key's own
    budgets and rate limit (applied on top of the policy's, like config.yaml keys')."""
    rate = rec.rate_limit()
    return Caller(rec.alias, rec.user, rec.team,
                  frozenset(rec.models) if rec.models is not None else None,
                  rec.budget_specs(), (rate,) if rate is not None else ())  # fmt: skip


class DynamicKeys(Mapping[str, Caller]):
    """``SHA-256 -> Caller`` of the live admin-created keys (see the module doc).

    ``reserved_aliases``: aliases of config.yaml keys; a stored key with one of them is ignored
    (config wins; the admin API refuses to create such keys, but config may gain one later).
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        refresh_s: float = 2.0,
        reserved_aliases: Collection[str] = (),
    ) -> None:
        if refresh_s <= 0:
            raise ValueError("refresh_s must be > 0")
        self.store = store
        self.refresh_s = refresh_s
        self.reserved_aliases = frozenset(reserved_aliases)
        self._by_hash: dict[str, Caller] = {}
        self._version: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._warned: set[str] = set()

    # -- the hot path: plain dict reads -----------------------------------------------------------

    def __getitem__(self, key_sha256: str) -> Caller:
        return self._by_hash[key_sha256]

    @overload
    def get(self, key: str, /) -> Caller | None: ...
    @overload
    def get(self, key: str, default: Caller | _T, /) -> Caller | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        return self._by_hash.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_hash)

    def __len__(self) -> int:
        return len(self._by_hash)

    # -- refreshing -------------------------------------------------------------------------------

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload from the store if its version changed (or ``force``). True if reloaded.
        Raises what the store raises (e.g. StoreUnavailable)."""
        version = await self.store.version()
        if not force and version == self._version:
            return False
        records = await self.store.records()
        by_hash: dict[str, Caller] = {}
        for rec in records:
            if not rec.active:
                continue
            if rec.alias in self.reserved_aliases:
                if rec.alias not in self._warned:
                    self._warned.add(rec.alias)
                    log.warning("gateway key %r from the admin API is ignored: config.yaml "
                                "declares a key with the same alias", rec.alias)  # fmt: skip
                continue
            by_hash[rec.key_sha256] = caller_of_record(rec)
        self._by_hash, self._version = by_hash, version  # one swap: no await in between
        return True

    async def _poll_once(self) -> None:
        try:
            await self.refresh()
        except Exception as e:  # the store is down, or a bug: keep the keys we have
            if not self._failing:
                self._failing = True
                log.warning("gateway keys: reload from the %s store failed (%s: %s); keeping the "
                            "%d keys loaded", self.store.kind, type(e).__name__, e,
                            len(self._by_hash))  # fmt: skip
        else:
            if self._failing:
                self._failing = False
                log.info("gateway keys: store reachable again, %d keys", len(self._by_hash))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self._poll_once()

    async def start(self) -> None:
        """Load once now (a failure is logged, not raised), then poll in the background."""
        await self._poll_once()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dynamic-keys")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def aclose(self) -> None:
        """Stop polling and close the key store."""
        await self.stop()
        await self.store.close()


# -- the admin operations (the HTTP handlers only parse and render) --------------------------------


class KeyConflict(GatewayError):
    """409: the alias is taken (aliases are never reused), or names a read-only config key."""

    status = 409
    type = "invalid_request_error"
    default_code = "key_exists"


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """The store's own errors as gateway errors (503 when it cannot be reached)."""
    try:
        yield
    except StoreUnavailable as e:
        raise ServiceUnavailable(f"The key and budget store cannot be reached ({e.reason}).",
                                 code="store_unavailable") from None  # fmt: skip


async def create_key(
    keys: DynamicKeys, fields: Mapping[str, Any], now: float | None = None
) -> tuple[str, KeyRecord]:
    """Create a key from :func:`parse_key_request`'s fields; returns (secret, record). The key
    works on this replica at once, on the others within one poll."""
    alias = fields["alias"]
    if alias in keys.reserved_aliases:
        raise KeyConflict(f"config.yaml already declares a key with alias {alias!r}.",
                          param="alias")  # fmt: skip
    secret, digest = new_secret()
    rec = KeyRecord(key_sha256=digest, created=time.time() if now is None else now, **fields)
    with store_errors():
        try:
            await keys.store.create(rec)
        except KeyExists:
            raise KeyConflict(f"A key with alias {alias!r} exists or existed (aliases of "
                              "revoked keys are not reused).", param="alias") from None
        await keys.refresh()
    log.info("admin: created gateway key alias=%s user=%s team=%s", alias, rec.user, rec.team)
    return secret, rec


async def revoke_key(keys: DynamicKeys, alias: str, now: float | None = None) -> KeyRecord:
    """Revoke an admin-created key (idempotent); config.yaml keys are read-only."""
    if alias in keys.reserved_aliases:
        raise KeyConflict(f"The key {alias!r} comes from config.yaml and is read-only there: "
                          "remove it from the file instead.", code="key_read_only")  # fmt: skip
    with store_errors():
        rec = await keys.store.revoke(alias, now)
        if rec is None:
            raise NotFound(f"No gateway key with alias {alias!r}.", code="key_not_found")
        await keys.refresh()
    log.info("admin: revoked gateway key alias=%s", alias)
    return rec


def config_key_json(key: KeyConfig) -> dict[str, Any]:
    """A config.yaml key in the list: read-only, same fields as an admin-created key."""
    budgets = [(b.period, b.limit_micro) for b in caller_of(key).budgets]
    return {
        **_key_json(key.alias, "config", key.user, key.team, key.models, budgets,
                    key.requests_per_minute, key.tokens_per_minute),
        "created": None, "revoked": False, "revoked_at": None,
    }  # fmt: skip


async def list_keys(
    keys: DynamicKeys | None, config_keys: Sequence[KeyConfig]
) -> list[dict[str, Any]]:
    out = [config_key_json(k) for k in config_keys]
    if keys is not None:
        with store_errors():
            records = await keys.store.records()
        out += [record_json(r) for r in records if r.alias not in keys.reserved_aliases]
    return out


async def get_key(keys: DynamicKeys | None, config_keys: Sequence[KeyConfig],
                  alias: str) -> dict[str, Any]:  # fmt: skip
    for k in config_keys:
        if k.alias == alias:
            return config_key_json(k)
    rec = None
    if keys is not None:
        with store_errors():
            rec = await keys.store.get(alias)
    if rec is None:
        raise NotFound(f"No gateway key with alias {alias!r}.", code="key_not_found")
    return record_json(rec)


def dynamic_keys_for(config: Config, **options: Any) -> DynamicKeys:
    """The :class:`DynamicKeys` of a config: the key store on ``config.store.url`` (Redis:
    under the ``router`` prefix), config.yaml aliases reserved, polled every
    ``admin.refresh_s`` (default 2 s). Call ``await keys.start()`` in the lifespan and
    ``await keys.aclose()`` at shutdown."""
    from router.budgets.keys import open_key_store

    store = open_key_store(config.store.url, prefix="router", **options)
    return DynamicKeys(store, refresh_s=config.admin.refresh_s,
                       reserved_aliases={k.alias for k in config.auth.keys})  # fmt: skip
