"""``router route``: explain which model a request would go to, and why, without calling it.

::

    router route "Prove that there are infinitely many primes"
    router route "写一首关于秋天的短诗" --json
    router route --messages-file chat.json --model auto-cheap --max-tokens 500
    router route "hello" --key local-dev --budget team:default=0.9

Prompt tokens are counted and the messages classified locally, as the gateway would; the output
is the same as ``POST /v1/route`` (``--json``) or a table of every candidate with its estimated
cost, capability, and why it lost.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from router.cli import UsageError

NAME = "route"
HELP = "Explain the routing decision for a prompt (no model is called)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="?", help="the user message ('-' reads stdin)")
    parser.add_argument("--messages-file", type=Path,
                        help="JSON file: a messages array or a whole chat-completions body")
    parser.add_argument("--system", help="a system message to put first")
    parser.add_argument("--model", default=None, help="model or route to ask for (default: auto)")
    parser.add_argument("--max-tokens", type=int, default=None, help="max_tokens of the request")
    parser.add_argument("--task", choices=("reasoning", "expression"),
                        help="force the task, as the x-router-task header does")
    parser.add_argument("--key", metavar="ALIAS",
                        help="decide as this configured key (its team, user and allowed models)")
    parser.add_argument("--budget", action="append", default=[], metavar="SCOPE=FRACTION",
                        help="pretend a budget is this much used, e.g. team:search=0.85")
    parser.add_argument("--no-classify", action="store_true", help="do not run the classifier")
    parser.add_argument("--config", type=Path,
                        help="config file (default: $ROUTER_CONFIG or ./config.yaml)")
    parser.add_argument("--policy", type=Path,
                        help="policy file or directory (default: the config's policy)")
    parser.add_argument("--json", action="store_true", help="print the POST /v1/route JSON")


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any]
    if args.messages_file is not None:
        try:
            data = json.loads(args.messages_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{args.messages_file}: {exc}") from None
        if isinstance(data, list):
            body = {"messages": data}
        elif isinstance(data, dict) and isinstance(data.get("messages"), list):
            body = dict(data)
        else:
            raise UsageError(f"{args.messages_file}: expected a messages array or a chat body")
    else:
        text = args.text
        if text == "-":
            text = sys.stdin.read()
        if not text:
            raise UsageError("give the prompt text, '-' for stdin, or --messages-file")
        body = {"messages": [{"role": "user", "content": text}]}
    if args.system:
        body["messages"] = [{"role": "system", "content": args.system}, *body["messages"]]
    if args.model is not None or "model" not in body:
        body["model"] = args.model or "auto"
    if args.max_tokens is not None:
        body["max_tokens"] = args.max_tokens
    return body


def _budget(specs: list[str]) -> Any:
    from router.policy.engine import BudgetState

    used: dict[str, float] = {}
    for spec in specs:
        scope, sep, value = spec.rpartition("=")
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not sep or not scope or not 0 <= fraction <= 10:
            raise UsageError(f"--budget wants SCOPE=FRACTION (e.g. team:search=0.85), got {spec!r}")
        used[scope] = fraction
    return BudgetState(used) if used else None


def run(args: argparse.Namespace) -> int:
    from router.auth import caller_of
    from router.config import ConfigError, default_config_path, load_config
    from router.costs.pricing import resolve_catalogue
    from router.errors import GatewayError
    from router.policy.compile import default_policy_path, load_policy
    from router.policy.errors import PolicyError
    from router.policy.request import default_classifier, route_body

    body = _body(args)
    budget = _budget(args.budget)
    try:
        cfg = load_config(args.config if args.config is not None else default_config_path())
        catalogue = resolve_catalogue(cfg)
        policy = load_policy(args.policy or default_policy_path(cfg), cfg, catalogue)
    except (ConfigError, PolicyError) as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    caller = None
    if args.key is not None:
        keys = {k.alias: k for k in cfg.auth.keys}
        if args.key not in keys:
            raise UsageError(f"no key {args.key!r} in {cfg.source} (known: {', '.join(keys)})")
        caller = caller_of(keys[args.key])
    classify = None if args.no_classify else default_classifier()
    try:
        explained = route_body(body, policy, classify=classify, caller=caller,
                               task_header=args.task, budget=budget)
    except GatewayError as exc:
        raise UsageError(exc.message) from None
    if args.json:
        print(json.dumps(explained.json(policy), indent=2, ensure_ascii=False))
    else:
        print(explained.text(policy))
    return 0 if explained.decision.ok else 1
