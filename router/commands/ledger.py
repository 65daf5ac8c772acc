"""``router ledger``: move the spend ledger from the budget store into its archive, and see how
far the export is.

::

    router ledger export                  # export everything new, trim what retention allows, exit
    router ledger export --follow         # keep exporting (a sidecar or a Deployment of one)
    router ledger status [--json]         # backlog, hot floor, archive rows and sum, the lead

The target and retention come from ``store.ledger`` in config.yaml (docs/budgets.md). A single
run (a CronJob) does not take the fleet's lead: it may run beside the gateways' exporter, since
the Redis consumer group hands each entry to one reader and PostgreSQL skips a row it has (a
files archive is written by one process at a time: a run finding it busy exits 1).
``--follow`` takes part in the election like a gateway replica.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from router.cli import UsageError
from router.commands._config import add_config_argument, load

NAME = "ledger"
HELP = "Export the spend ledger to its archive (PostgreSQL, JSONL files) and trim the store."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("export", "move new ledger rows to the archive, then trim"),
                       ("status", "show the export's backlog and the archive's totals")):
        p = sub.add_parser(name, help=text, description=text)
        add_config_argument(p)
        p.add_argument("--store-url", help="the budget store instead of the config's store.url")
        p.add_argument("--prefix", default="router", help="Redis key prefix (default: router)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "export":
            p.add_argument("--follow", action="store_true",
                           help="keep exporting every store.ledger.interval_s (elected lead)")
            p.add_argument("--no-trim", action="store_true",
                           help="export only; leave the hot store as it is")


def _load(args: argparse.Namespace) -> Any:
    cfg, _ = load(args.config)
    store_cfg = cfg.store
    if args.store_url:
        store_cfg = store_cfg.model_copy(update={"url": args.store_url})
    return store_cfg


def _open(store_cfg: Any, prefix: str) -> Any:
    from router.budgets import open_store
    from router.budgets.factory import sqlite_path

    options: dict[str, Any] = {}
    if store_cfg.url.startswith("sqlite:"):
        path, _ = sqlite_path(store_cfg.url)
        if path == ":memory:" or not Path(path).exists():
            raise UsageError(f"no budget store at {path}: nothing has been recorded there")
    else:
        options["prefix"] = prefix
    return open_store(store_cfg.url, timezone=store_cfg.timezone, **options)


def _target(svc: Any) -> str:
    from router.budgets.export.postgres import redact

    p = svc.plan
    if p.target == "postgres":
        return f"postgres {redact(p.url)} table {p.table}"
    return f"files {p.url}" if p.target == "files" else "none (rows are trimmed, not kept)"


async def _export(args: argparse.Namespace, store_cfg: Any) -> tuple[int, dict[str, Any]]:
    from router.budgets.export.base import AlwaysLeader, ArchiveBusy
    from router.budgets.export.service import LedgerService, election

    store = _open(store_cfg, args.prefix)
    try:
        leader = election(store) if args.follow else AlwaysLeader()
        svc = LedgerService.open(store, store_cfg, leader=leader)
        if svc is None:
            raise UsageError("this store keeps no ledger to export")
        try:
            if args.follow:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, stop.set)
                await svc.exporter.run(svc.leader, stop)
                stats = svc.exporter.total
            else:
                try:
                    stats = await svc.exporter.export_once()
                    if not args.no_trim:
                        stats.trimmed = await svc.exporter.trim_once()
                except ArchiveBusy as e:
                    print(f"router ledger: {e}", file=sys.stderr)
                    return 1, {}
            out = {"object": "ledger_export", "target": _target(svc),
                   "exported": stats.exported, "new": stats.new,
                   "duplicates": stats.exported - stats.new, "trimmed": stats.trimmed,
                   "backlog": await svc.hot.backlog()}  # fmt: skip
            return 0, out
        finally:
            await svc.aclose()
    finally:
        await store.close()


async def _status(args: argparse.Namespace, store_cfg: Any) -> dict[str, Any]:
    from router.budgets.export.service import LedgerService

    store = _open(store_cfg, args.prefix)
    try:
        svc = LedgerService.open(store, store_cfg)
        if svc is None:
            raise UsageError("this store keeps no ledger to export")
        try:
            out: dict[str, Any] = {
                "object": "ledger_status", "store": svc.hot.kind, "target": _target(svc),
                "retain_hot_s": svc.plan.retain_hot_s, "backlog": await svc.hot.backlog(),
                "hot_floor": await svc.hot.floor(),
            }  # fmt: skip
            # every row from this instant on is still in the store (null: nothing trimmed)
            floor = out["hot_floor"]
            out["hot_floor_utc"] = (datetime.fromtimestamp(floor, UTC).isoformat()
                                    if floor else None)
            if svc.archive is not None:
                out["archive_rows"], out["archive_actual_micro"] = await svc.archive.count()
            group_info = getattr(svc.hot, "group_info", None)
            if group_info is not None:
                out["consumer_group"] = await group_info()
                lock = await store.client.get(f"{store.key_prefix}:ledger:exporter")
                out["exporter"] = lock.decode() if lock else None
            return out
        finally:
            await svc.aclose()
    finally:
        await store.close()


def _text(out: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in out.items() if k != "object")


def _unreachable() -> tuple[type[BaseException], ...]:
    """Errors that mean a store or the archive cannot be reached or refused the work."""
    from redis.exceptions import RedisError

    from router.budgets import StoreUnavailable

    errors: tuple[type[BaseException], ...] = (StoreUnavailable, OSError, ValueError, RedisError)
    try:
        import psycopg
    except ImportError:  # the postgres extra is not installed: no PostgreSQL target either
        return errors
    return (*errors, psycopg.Error)


def run(args: argparse.Namespace) -> int:
    store_cfg = _load(args)
    try:
        if args.action == "export":
            code, out = asyncio.run(_export(args, store_cfg))
        else:
            code, out = 0, asyncio.run(_status(args, store_cfg))
    except _unreachable() as exc:  # Redis, PostgreSQL, the files: say which, no traceback
        print(f"router ledger: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if out:
        with contextlib.suppress(BrokenPipeError):
            print(json.dumps(out, indent=2) if args.json else _text(out))
    return code
