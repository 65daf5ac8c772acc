"""``router spend``: the spend ledger as a table, read straight from the configured store.

::

    router spend                                   # this month, one total line
    router spend --period day --group-by team,model
    router spend --since 2025-01-01 --until 2025-02-01 --period week --group-by key
    router spend --team search --json              # the same JSON as GET /admin/spend
    router spend --group-by api                    # chat, responses, messages, completions, ...
    router spend --check                           # counters vs ledger; exit 1 if any differ

It opens the store of ``config.yaml`` (``store.url``) itself, without a running gateway, and only
reads: a SQLite file that does not exist is an error, never created. Periods older than what
the store keeps (``store.ledger.retain_hot``) are read from the ledger's archive (PostgreSQL or
the JSONL files ``store.ledger`` names), so a report over a year works. Windows follow the store's
time zone (``store.timezone`` in the config, else UTC; ``--timezone`` overrides), which must be
the gateway's for "this month" and ``--check`` to mean the same windows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from router.cli import UsageError
from router.commands._config import add_config_argument, load

NAME = "spend"
HELP = ("Report spend from the ledger (by team, user, key, model, task, api) or check it against "
        "budgets.")

_FILTERS = ("team", "user", "key", "model", "task", "status", "api")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--store-url", help="read this store instead of the config's store.url")
    parser.add_argument("--prefix", help="Redis key prefix of the store (default: the config's, "
                        "else router)")
    parser.add_argument("--timezone",
                        help="IANA zone of the budget windows (default: the config's)")
    parser.add_argument("--period", help="day, week, month (default) or total; with --since, split "
                        "the range into such windows")
    parser.add_argument("--since", help="start: ISO date or date-time (store's zone), or Unix time")
    parser.add_argument("--until", help="end (exclusive), same forms as --since")
    parser.add_argument("--group-by", action="append", metavar="FIELDS",
                        help="team, user, key, model, task, status, api (comma-separated or "
                        "repeated)")
    for name in _FILTERS:
        parser.add_argument(f"--{name}", help=f"only rows with this {name}")
    parser.add_argument("--check", action="store_true",
                        help="compare every budget counter of the current windows with the ledger")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _store_settings(args: argparse.Namespace) -> tuple[str, str, str, Any, str]:
    """(url, timezone, redis prefix, the config's store section or None, where the url came
    from) from the flags and the config."""
    from router.configpath import find_config

    store_cfg: Any = None
    found = find_config(args.config)
    if args.store_url is None or args.timezone is None or found.path.exists():
        cfg, _ = load(args.config)
        store_cfg = cfg.store
    url = args.store_url or store_cfg.url
    tz = args.timezone or getattr(store_cfg, "timezone", None) or "UTC"
    prefix = args.prefix or getattr(store_cfg, "prefix", None) or "router"
    if store_cfg is not None and store_cfg.url != url:
        store_cfg = store_cfg.model_copy(update={"url": url})
    where = "--store-url" if args.store_url else f"store.url of {found.describe()}"
    return url, tz, prefix, store_cfg, where


async def _report(args: argparse.Namespace, url: str, tz: str, prefix: str,
                  store_cfg: Any, where: str) -> tuple[int, str]:
    from router.admin.spend import (
        format_check,
        format_report,
        parse_filters,
        parse_group_by,
        resolve_range,
        spend_check,
        spend_report,
    )
    from router.budgets import open_store
    from router.budgets.export.service import LedgerService
    from router.budgets.factory import sqlite_path
    from router.budgets.keys import open_key_store

    sqlite = url.startswith("sqlite:")
    if sqlite:
        path, _ = sqlite_path(url)
        if path == ":memory:" or not Path(path).exists():
            raise UsageError(f"no budget store at {path}: nothing has been recorded there "
                             f"({where})")
    options: dict[str, Any] = {} if sqlite else {"prefix": prefix}
    store = open_store(url, timezone=tz, **options)
    # the ledger's archive (store.ledger), for periods the store itself no longer holds
    ledger = LedgerService.open(store, store_cfg) if store_cfg is not None else None
    try:
        if args.check:
            keys = open_key_store(url, prefix=prefix, read_only=True)
            try:
                check = await spend_check(store, keys, time.time())
            finally:
                await keys.close()
            text = json.dumps(check, indent=2) if args.json else format_check(check)
            return (0 if check["ok"] else 1), text
        rng = resolve_range(period=args.period, since=args.since, until=args.until,
                            now=time.time(), tz=store.calendar.tz)  # fmt: skip
        report = await spend_report(store, rng, parse_group_by(args.group_by),
                                    parse_filters({f: getattr(args, f) for f in _FILTERS}))
        return 0, json.dumps(report, indent=2) if args.json else format_report(report)
    finally:
        if ledger is not None:
            await ledger.aclose()
        await store.close()


def run(args: argparse.Namespace) -> int:
    from router.admin.spend import ReportError
    from router.budgets import StoreUnavailable

    url, tz, prefix, store_cfg, where = _store_settings(args)
    try:
        code, text = asyncio.run(_report(args, url, tz, prefix, store_cfg, where))
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    except (StoreUnavailable, ValueError) as exc:  # unreachable Redis, bad url or time zone
        raise UsageError(str(exc)) from None
    print(text)
    return code
