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
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from router import __version__, commands


class UsageError(Exception):
    """Bad input (arguments, a config or policy that does not load): printed on stderr, each
    line after the command's name (``router models: ...``), exit code 2."""


#: Exit code after the reader of our output went away (``router route x | head -3``): 128 +
#: SIGPIPE, what a command killed by the signal reports to the shell.
EXIT_BROKEN_PIPE = 141


def error_lines(command: str, message: str) -> str:
    """``message`` with every line after ``router COMMAND: error: ``."""
    lines = [ln for ln in str(message).splitlines() if ln.strip()] or ["error"]
    return "\n".join(f"router {command}: error: {ln}" for ln in lines)


def _document_problems(exc: BaseException) -> list[str] | None:
    """The ``file:line: key: message`` lines of a config or policy file that does not load
    (router.yamlfile is imported lazily: ``router --help`` stays instant)."""
    yamlfile = sys.modules.get("router.yamlfile")
    if yamlfile is not None and isinstance(exc, yamlfile.DocumentError):
        return list(exc.problems)
    return None


def _stdout_gone() -> int:
    """The reader of stdout closed it: the Python docs' recipe (point stdout at devnull so the
    flush at exit cannot fail again), and the shell's code for SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout already closed or not a real file: nothing to flush
        pass
    return EXIT_BROKEN_PIPE


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
    """Run one command; every command's errors are lines after its name on stderr (exit 2 for
    bad input), and a reader that closes our output early (``| head``) ends it quietly."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, so that a reader gone away is caught below, not at exit
        return code
    except BrokenPipeError:
        return _stdout_gone()


def _main(argv: Sequence[str] | None) -> int:
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
        print(error_lines(args.command, str(exc)), file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise
    except Exception as exc:
        problems = _document_problems(exc)
        if problems is None:
            raise
        print(error_lines(args.command, "\n".join(problems)), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
