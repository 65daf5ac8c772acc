"""The ``router`` command line.

Each sub-command lives in its own module under :mod:`router.commands` and exposes::

    NAME: str                     # the sub-command, e.g. "serve"
    HELP: str                     # one line for ``router --help``
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

Modules are discovered, so adding a command never means editing this file. Command modules
import heavy dependencies (litellm, numpy, the app) inside ``run`` so that ``router --help``
stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from router import __version__, commands


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


def _command_modules(only: str | None = None) -> list[ModuleType]:
    """Command modules; with ``only`` (the sub-command on the command line), just that one, so
    running a command never depends on importing the others."""
    names = sorted(i.name for i in pkgutil.iter_modules(commands.__path__))
    if only is not None and only in names:
        names = [only]
    mods = []
    for name in names:
        if name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return mods


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="router",
        description="federated-router: cost-aware OpenAI-compatible LLM gateway.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules(only):
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first)
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        return int(run(args))
    except UsageError as exc:
        print(f"router {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

