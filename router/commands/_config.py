"""The config every command reads: found by :func:`router.configpath.find_config`, loaded
strictly, and a problem raised as a :class:`~router.cli.UsageError` (one line per problem after
the command's name, exit code 2), with a hint where the lookup explains it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from router.cli import UsageError

if TYPE_CHECKING:
    from router.config import Config
    from router.configpath import FoundConfig

CONFIG_HELP = ("config file (default: $ROUTER_CONFIG, ./config.yaml, "
               "~/.config/federated-router/config.yaml, else the packaged default)")


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=CONFIG_HELP)


def _hint(found: FoundConfig) -> str:
    if found.origin == "ROUTER_CONFIG":
        return ("(it is $ROUTER_CONFIG: fix the path or unset it to use ./config.yaml, "
                "the user config or the packaged default; `router init` writes an editable copy)")
    return "(`router init` writes an editable copy of the default config)"


def load(given: Path | str | None) -> tuple[Config, FoundConfig]:
    """The config ``--config`` names, else the one the lookup finds, and where it came from."""
    from router.config import ConfigError, load_config
    from router.configpath import find_config

    found = find_config(given)
    try:
        return load_config(found.path), found
    except ConfigError as exc:
        problems = list(exc.problems)
        if len(problems) == 1 and ": cannot read" in problems[0]:
            problems[0] += " " + _hint(found)
        raise UsageError("\n".join(problems)) from None


def load_config_only(given: Path | str | None) -> Config:
    return load(given)[0]
