"""``open_store(url, ...)``: the store a URL names (``sqlite:///path``, ``redis://...``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from router.budgets.store import BudgetStore


def sqlite_path(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///rel/path`` -> ``rel/path``; ``sqlite:////abs`` -> ``/abs``;
    ``sqlite:///:memory:``; query options (``?synchronous=full``) returned apart."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/"):
        raise ValueError(f"sqlite url must be sqlite:///path, got {url!r}")
    path, _, query = rest[1:].partition("?")
    if not path:
        raise ValueError(f"sqlite url has no path: {url!r}")
    return path, dict(parse_qsl(query))


def open_store(
    url: str,
    *,
    timezone: str = "UTC",
    fail_mode: str = "closed",
    reservation_ttl_s: float = 1800.0,
    settle_dedup_s: float = 86400.0,
    **options: Any,
) -> BudgetStore:
    """Open the budget store ``url`` names. Nothing connects until the first call.

    ``timezone``: IANA zone the daily/weekly/monthly windows follow. ``fail_mode``: what a Redis
    store does when Redis is unreachable (``closed``: refuse with StoreUnavailable; ``open``:
    serve from the replica's own view and reconcile later); SQLite has no such outage.
    ``reservation_ttl_s``: an unsettled reservation is freed this long after it was made; set
    it above the longest request (the largest total timeout). ``settle_dedup_s``: how long a
    finished request id is remembered, making a retried settle a no-op (SQLite's ledger also
    remembers forever). Other ``options`` go to the store: SqliteStore(``synchronous``,
    ``busy_timeout_ms``), RedisStore(``prefix``, ``journal_path``, ``socket_timeout_s``,
    ``retry_interval_s``, ``max_connections``, and leasing: ``lease_fraction`` (0: off),
    ``lease_max_micro``, ``lease_ttl_s`` (default: 30 s, or ``reservation_ttl_s`` if smaller, which
    it may not exceed), ``replica_id``).
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from router.budgets.sqlite import SqliteStore

        path, query = sqlite_path(url)
        opts: dict[str, Any] = {**query, **options}
        if "busy_timeout_ms" in opts:
            opts["busy_timeout_ms"] = int(opts["busy_timeout_ms"])
        return SqliteStore(
            path,
            timezone=timezone,
            reservation_ttl_s=reservation_ttl_s,
            settle_dedup_s=settle_dedup_s,
            **opts,
        )
    if scheme in ("redis", "rediss", "unix"):
        from router.budgets.redis_store import RedisStore

        return RedisStore(
            url,
            timezone=timezone,
            fail_mode=fail_mode,
            reservation_ttl_s=reservation_ttl_s,
            settle_dedup_s=settle_dedup_s,
            **options,
        )
    raise ValueError(
        f"unknown budget store url {url!r}: use sqlite:///path or redis://host:port/db"
    )
