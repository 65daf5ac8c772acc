"""``router policy``: check policy files against the config, print the policy JSON Schema.

::

    router policy check                          # the config's policy (policies/default.yaml)
    router policy check policies/*.yaml --config config.yaml
    router policy schema > policy.schema.json    # for editors (yaml-language-server)

``check`` prints ``router policy: error: file:line: key: message`` for every problem on stderr
and exits 1 if any file is invalid (2 if the config itself does not load); warnings (e.g. a
catalogue model without capabilities) do not fail the check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from router.cli import UsageError, error_lines
from router.commands._config import add_config_argument, load

NAME = "policy"
HELP = "Check routing policy files (file:line: key errors) or print their JSON Schema."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION")
    check = sub.add_parser("check", help="validate policy files against the config's catalogue")
    check.add_argument("files", nargs="*", type=Path,
                       help="policy files or directories (default: the config's policy)")
    add_config_argument(check)
    check.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    sub.add_parser("schema", help="print the JSON Schema of a policy file")


def _summary(path: Path, policy: object) -> str:
    from router.policy.compile import Policy

    assert isinstance(policy, Policy)
    scored = sum(1 for r in policy.rows if any(v is not None for v in r.caps.values()))
    bars = ", ".join(f"{t} >= {policy.spec.tasks.bar(t)}" for t in ("reasoning", "expression"))
    return (f"{path}: ok (version {policy.version}; {scored} models scored; {bars}; "
            f"routes: {', '.join(policy.routes)}; reference: {policy.reference_model})")


def _check(args: argparse.Namespace) -> int:
    from router.config import ConfigError
    from router.costs.pricing import resolve_catalogue
    from router.policy.compile import default_policy_path, load_policy
    from router.policy.errors import PolicyError

    cfg, _ = load(args.config)
    try:
        catalogue = resolve_catalogue(cfg)
    except ConfigError as exc:  # a model without a price
        raise UsageError("\n".join(exc.problems)) from None
    files = list(args.files) or [default_policy_path(cfg)]
    failed = 0
    for path in files:
        try:
            policy = load_policy(path, cfg, catalogue)
        except PolicyError as exc:
            failed += 1
            print(error_lines(NAME, "\n".join(exc.problems)), file=sys.stderr)
            continue
        if not args.quiet:
            print(_summary(path, policy))
            for warning in policy.warnings:
                print(f"warning: {warning}")
    if failed:
        print(error_lines(NAME, f"{failed} of {len(files)} policy file(s) invalid"),
              file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    if args.policy_command == "schema":
        from router.policy.schema import json_schema_text

        sys.stdout.write(json_schema_text())
        return 0
    if args.policy_command == "check":
        return _check(args)
    raise UsageError("give an action: check or schema (router policy --help)")
