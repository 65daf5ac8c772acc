"""``router eval``: replay graded outcomes through the routing policy; calibrate capabilities.

::

    router eval replay outcomes.jsonl --models map.yaml [--policy P] [--config C]
                       [--route auto] [--json] [--plot curve.png]
    router eval calibrate outcomes.jsonl --models map.yaml

``replay`` sends every row through the gateway's own decision (no HTTP, no model call) and
reports quality kept against cost beside every single model, a random mixture and the oracle,
and the curve of the route's quality/cost knob (``bar_shift``). ``calibrate`` measures each
model's capability per task class on the rows and prints a policy ``models:`` fragment.
The file formats: docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from router.cli import UsageError

NAME = "eval"
HELP = "Replay graded model outcomes through the policy: quality kept per dollar."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="eval_command", metavar="ACTION")
    for action, text in (("replay", "replay outcome files through the policy and report"),
                         ("calibrate", "measure capabilities per task class from outcomes")):
        p = sub.add_parser(action, help=text, description=text)
        p.add_argument("files", nargs="+", type=Path, metavar="FILE",
                       help="outcome files (JSON lines; docs/evaluation.md)")
        p.add_argument("--models", type=Path, required=True, metavar="MAP",
                       help="YAML: the catalogue entry and capability of each model in FILE")
        p.add_argument("--policy", type=Path, help="policy file or directory "
                       "(default: the config's policy)")
        p.add_argument("--config", type=Path,
                       help="config file (default: $ROUTER_CONFIG or ./config.yaml)")
        p.add_argument("--route", default="auto", help="the route requests ask for "
                       "(default: auto)")
        p.add_argument("--json", action="store_true", help="print JSON")
        if action == "replay":
            p.add_argument("--plot", type=Path, metavar="PNG",
                           help="draw quality against cost (needs pip install -e '.[eval]')")


def _load(args: argparse.Namespace) -> Any:
    from router.evaluate.modelmap import check_rows, load_model_map
    from router.evaluate.outcomes import read_all
    from router.evaluate.world import build_world, load_base

    config, doc = load_base(args.config, args.policy)
    mm = load_model_map(args.models, config, doc)
    rows = check_rows(mm, read_all(args.files))
    return build_world(config, doc, mm), rows


def run(args: argparse.Namespace) -> int:
    from router.evaluate.errors import EvalInputError

    if args.eval_command is None:
        raise UsageError("give an action: replay or calibrate (router eval --help)")
    if getattr(args, "plot", None) is not None:
        from router.evaluate.plot import require_matplotlib

        why = require_matplotlib()
        if why is not None:
            raise UsageError(why)
    try:
        world, rows = _load(args)
        if args.eval_command == "replay":
            return _replay(args, world, rows)
        return _calibrate(args, world, rows)
    except EvalInputError as exc:
        first = exc.problems[0]
        more = len(exc.problems) - 1
        raise UsageError(first + (f" (and {more} more problem{'s' * (more > 1)})"
                                  if more else "")) from None


def _classifier() -> Any:
    from router.policy.request import load_classifier, without_signals

    classify, why = load_classifier()
    if classify is None:
        print(f"router eval: warning: classifier unavailable ({why}): every row is unsure",
              file=sys.stderr)
    return without_signals(classify)


def _replay(args: argparse.Namespace, world: Any, rows: Any) -> int:
    from router.evaluate.replay import prepare, sweep
    from router.evaluate.report import build_report, format_report, report_json

    prep = prepare(world, rows, args.route, _classifier())
    import numpy as np

    index = prep.index()
    policy_choices = np.array([index[d.model] if d.ok else -1 for d in prep.decisions])
    curve = sweep(prep)
    report = build_report(prep, [str(f) for f in args.files], curve, policy_choices)
    if args.plot is not None:
        from router.evaluate.plot import plot_report

        plot_report(report, args.plot)
    if args.json:
        print(json.dumps(report_json(report), indent=2, ensure_ascii=False))
    else:
        print(format_report(report))
        if args.plot is not None:
            print(f"plot: {args.plot}")
    return 0


def _calibrate(args: argparse.Namespace, world: Any, rows: Any) -> int:
    from router.evaluate.calibrate import calibrate, format_fragment

    result = calibrate(world, rows, args.route, _classifier(),
                       [Path(f).name for f in args.files])
    if args.json:
        print(json.dumps(result.json(), indent=2, ensure_ascii=False))
    else:
        print(format_fragment(result))
    return 0
