"""``router demo``: see the gateway work with no provider key and no network.

Starts the gateway on the default catalogue and policy in front of a simulated upstream (every
model answers from this machine, marked ``[simulated]``), sends a mix of English and Chinese,
easy and hard, reasoning and writing prompts through it with the ``openai`` SDK, prints what each
cost against the reference model and the budget left, then keeps the gateway running to try.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

NAME = "demo"
HELP = "Try the gateway with simulated models: no keys, no network."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="the gateway's port (default: 8000, or a free "
                        "one when 8000 is taken)")
    parser.add_argument("--dir", type=Path, help="where the demo's config, policy and ledger go "
                        "(default: a new temporary directory)")
    parser.add_argument("--once", action="store_true",
                        help="print the results and stop, instead of keeping the gateway running")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="divide the simulated latencies by this (default 1: realistic)")


def run(args: argparse.Namespace) -> int:
    from router.cli import UsageError

    if args.speed <= 0:
        raise UsageError("--speed must be positive")
    try:
        import openai  # noqa: F401 - the demo's client
    except ImportError:
        print("router demo: needs the openai package: pip install openai", file=sys.stderr)
        return 2
    from router.demo.run import demo
    from router.tokens import configure_offline

    configure_offline()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="router-demo-"))
    try:
        return asyncio.run(demo(directory.resolve(), args.port, args.once, args.speed))
    except KeyboardInterrupt:
        print("\nrouter demo: stopped.", file=sys.stderr)
        return 0
