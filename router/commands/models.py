"""``router models``: the catalogue with each model's price, where it came from, and its limits."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from router.cli import UsageError

NAME = "models"
HELP = "List the model catalogue with prices (USD per 1M tokens), price source and context window."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="config file (default: $ROUTER_CONFIG or ./config.yaml)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from router.costs.report import format_models_table, load_config, models_rows, resolve

    try:
        rows = models_rows(resolve(load_config(args.config)))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps({"object": "list", "data": rows}, indent=2, ensure_ascii=False))
    else:
        print(format_models_table(rows))
    return 0
