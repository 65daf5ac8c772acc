"""``router models``: the catalogue with each model's price, where it came from, and its limits."""

from __future__ import annotations

import argparse
import json

from router.cli import UsageError
from router.commands._config import add_config_argument, load

NAME = "models"
HELP = "List the model catalogue with prices (USD per 1M tokens), price source and context window."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from router.costs.report import format_models_table, models_rows, resolve

    cfg, _ = load(args.config)
    try:
        rows = models_rows(resolve(cfg))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps({"object": "list", "data": rows}, indent=2, ensure_ascii=False))
    else:
        print(format_models_table(rows))
    return 0
