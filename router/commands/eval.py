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
from router.commands._config import add_config_argument

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
        add_config_argument(p)
        p.add_argument("--route", default="auto", help="the route requests ask for "
                       "(default: auto)")
        p.add_argument("--json", action="store_true", help="print JSON")
        if action == "calibrate":
            p.add_argument("--difficulty-out", type=Path, metavar="JSON",
                           help="also refit the difficulty estimate on these outcomes and write "
                                "it here (use it with the policy's difficulty.model)")
            p.add_argument("--map-out", type=Path, metavar="YAML",
                           help="also write MAP with the measured capabilities, to replay "
                                "other outcome files with them")
        if action == "replay":
            p.add_argument("--plot", type=Path, metavar="PNG",
                           help="draw quality against cost (needs pip install -e '.[eval]')")
            how = p.add_mutually_exclusive_group()
            how.add_argument("--refit", metavar="kfold[:K]",
                             help="estimate each row's difficulty with a model refitted on the "
                                  "other folds of FILE (what a team gets on its own traffic)")
            how.add_argument("--train-on", nargs="+", type=Path, metavar="OUTCOMES",
                             help="estimate difficulty with a model fitted on these outcome "
                                  "files only (leave FILE out: a new kind of traffic)")
            p.add_argument("--difficulty-weight", type=float, metavar="W",
                           help="replay with the policy's difficulty weight set to W (0: bars "
                                "by task class only)")
            p.add_argument("--difficulty-model", type=Path, metavar="JSON",
                           help="replay with this difficulty estimate (router eval calibrate "
                                "--difficulty-out) instead of the policy's")
            p.add_argument("--hashed", action=argparse.BooleanOptionalAction, default=None,
                           help="let a refitted estimate learn the wording (hashed n-grams); "
                                "default: on for --refit, off for --train-on")


def _load(args: argparse.Namespace) -> Any:
    from router.evaluate.modelmap import check_rows, load_model_map
    from router.evaluate.outcomes import read_all
    from router.evaluate.world import build_world, load_base, with_difficulty_rule

    config, doc = load_base(args.config, args.policy)
    mm = load_model_map(args.models, config, doc)
    rows = check_rows(mm, read_all(args.files))
    world = build_world(config, doc, mm)
    weight = getattr(args, "difficulty_weight", None)
    model = getattr(args, "difficulty_model", None)
    if weight is not None or model is not None:
        world = with_difficulty_rule(world, weight, model)
    return world, rows


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
    from router.evaluate.replay import choose, prepare, sweep
    from router.evaluate.report import build_report, format_report, report_json

    prep = prepare(world, rows, args.route, _classifier())
    facts, difficulty = _difficulty(args, prep)
    policy_choices = choose(prep, world.policy, facts)
    curve = sweep(prep, facts=facts)
    report = build_report(prep, [str(f) for f in args.files], curve, policy_choices,
                          difficulty=difficulty)
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


def _difficulty(args: argparse.Namespace, prep: Any) -> tuple[Any, str | None]:
    """The facts to decide with, and how their difficulty was estimated (for the report)."""
    from router.evaluate.errors import EvalInputError
    from router.evaluate.outcomes import read_all
    from router.evaluate.replay import kfold_difficulty, trained_difficulty, with_difficulty

    rule = prep.world.policy.difficulty
    if rule is None or not rule.on:
        if args.refit or args.train_on:
            raise EvalInputError(["--refit and --train-on need a policy with a difficulty: "
                                  "section (docs/policy.md)"])
        return None, None
    if args.refit:
        kind, _, k = args.refit.partition(":")
        if kind != "kfold" or (k and not k.isdigit()) or (k and not 2 <= int(k) <= 50):
            raise EvalInputError([f"--refit wants kfold or kfold:K (2-50), got {args.refit!r}"])
        folds = int(k) if k else 5
        hashed = True if args.hashed is None else args.hashed
        est = kfold_difficulty(prep, folds, hashed=hashed)
        return with_difficulty(prep, est), (
            f"refitted on the other folds ({folds}-fold cross-fitting"
            f"{', with wording' if hashed else ''}); weight {rule.weight:g}")
    if args.train_on:
        hashed = False if args.hashed is None else args.hashed
        est = trained_difficulty(prep, read_all(args.train_on), hashed=hashed)
        names = ", ".join(p.name for p in args.train_on)
        return with_difficulty(prep, est), (
            f"fitted on {names} only{' (with wording)' if hashed else ''}; weight "
            f"{rule.weight:g}")
    return None, f"{rule.source} estimate; weight {rule.weight:g}"


def _calibrate(args: argparse.Namespace, world: Any, rows: Any) -> int:
    from router.evaluate.calibrate import calibrate, format_fragment

    estimator = None
    if args.difficulty_out is not None:
        from router.difficulty.fit import fit_difficulty
        from router.difficulty.model import difficulty_featurizer
        from router.difficulty.train import training_sets

        estimator = fit_difficulty(training_sets(rows), difficulty_featurizer(),
                                   hashed=True, meta={"fitted_with": "router eval calibrate",
                                                      "files": [Path(f).name
                                                                for f in args.files]})
        estimator.save(args.difficulty_out)
        print(f"router eval: wrote the refitted difficulty estimate to {args.difficulty_out}; "
              "set difficulty.model in your policy to use it", file=sys.stderr)
    result = calibrate(world, rows, args.route, _classifier(),
                       [Path(f).name for f in args.files], estimator)
    if args.map_out is not None:
        from router.evaluate.calibrate import write_map

        write_map(result, args.models, args.map_out)
        print(f"router eval: wrote {args.map_out}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.json(), indent=2, ensure_ascii=False))
    else:
        print(format_fragment(result))
    return 0
