"""``router route``: explain which model a request would go to, and why, without calling it.

::

    router route "Prove that there are infinitely many primes"
    router route "写一首关于秋天的短诗" --json
    router route --messages-file chat.json --model auto-cheap --max-tokens 500
    router route "hello" --key local-dev --budget team:default=0.9

Prompt tokens are counted and the messages classified locally, as the gateway would; the output
is the same as ``POST /v1/route`` (``--json``) or a table of every candidate with its estimated
cost, capability, and why it lost.

Which models can be called follows the gateway's rule: a model whose key variable
(``api_key_env``) is unset in this environment is passed over, as a gateway started with this
environment would (circuits do not apply: nothing is called). The output says what was assumed
(on stderr with ``--json``, whose stdout stays the gateway's JSON); ``--all-keys`` decides as a
gateway with every key set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from router.cli import UsageError
from router.commands._config import add_config_argument, load

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
    parser.add_argument("--all-keys", action="store_true",
                        help="decide as a gateway with every provider key set (default: only "
                             "models whose key variable is set here, as the gateway would)")
    add_config_argument(parser)
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


def missing_keys(cfg: Any, env: Mapping[str, str]) -> dict[str, str]:
    """Model -> its key variable, for the models whose key variable is configured but unset or
    empty in ``env``: the gateway's rule (router.upstream.base.Target.missing_key)."""
    return {name: m.api_key_env for name, m in cfg.models.items()
            if m.api_key_env and not env.get(m.api_key_env)}


def assumed(cfg: Any, missing: Mapping[str, str], all_keys: bool) -> str:
    """What the decision assumed about provider keys, in one line."""
    chat = set(cfg.chat_models())
    gone = {m: v for m, v in missing.items() if m in chat}
    if all_keys:
        unset = sorted(set(gone.values()))
        return ("keys: assumed every provider key is set (--all-keys)"
                + (f"; unset here: {', '.join(unset)}" if unset else ""))
    if not gone:
        return "keys: every model's key is set here, as the gateway started here would have them"
    by_var: dict[str, list[str]] = {}
    for model, var in gone.items():
        by_var.setdefault(var, []).append(model)
    passed = "; ".join(f"{', '.join(models)} ({var} unset)"
                       for var, models in sorted(by_var.items()))
    return (f"keys: as a gateway started with this environment, passed over {passed}; "
            "--all-keys decides as if every key were set")


def _unavailable(cfg: Any, body: dict[str, Any], missing: Mapping[str, str]) -> Mapping[str, str]:
    """What the gateway's ``POST /v1/route`` passes over for ``body``: models without their key,
    then the models that cannot serve this request (images, tools, ...)."""
    from router.capabilities import resolve_all
    from router.faces import CHAT
    from router.faces.serving import ServingTable, merged

    keys = {name: f"{var} is not set here" for name, var in missing.items()}
    serving = ServingTable(resolve_all(cfg), cfg.chat_models())
    return merged(keys, serving.cannot_serve("chat", CHAT.parse(dict(body), {})))


def run(args: argparse.Namespace) -> int:
    from router.auth import caller_of
    from router.config import ConfigError
    from router.costs.pricing import resolve_catalogue
    from router.errors import GatewayError
    from router.policy.compile import default_policy_path, load_policy
    from router.policy.errors import PolicyError
    from router.policy.request import default_classifier, route_body

    body = _body(args)
    budget = _budget(args.budget)
    cfg, found = load(args.config)
    try:
        catalogue = resolve_catalogue(cfg)
        policy = load_policy(args.policy or default_policy_path(cfg), cfg, catalogue)
    except (ConfigError, PolicyError) as exc:
        raise UsageError("\n".join(exc.problems)) from None
    caller = None
    if args.key is not None:
        keys = {k.alias: k for k in cfg.auth.keys}
        if args.key not in keys:
            raise UsageError(f"no key {args.key!r} in {cfg.source} (known: {', '.join(keys)})")
        caller = caller_of(keys[args.key])
    classify = None if args.no_classify else default_classifier()
    missing = {} if args.all_keys else missing_keys(cfg, os.environ)
    try:
        explained = route_body(body, policy, classify=classify, caller=caller,
                               task_header=args.task, budget=budget,
                               unavailable=_unavailable(cfg, body, missing))
    except GatewayError as exc:
        raise UsageError(exc.message) from None
    note = assumed(cfg, missing_keys(cfg, os.environ) if args.all_keys else missing,
                   args.all_keys)
    if args.json:
        print(json.dumps(explained.json(policy), indent=2, ensure_ascii=False))
        print(f"router route: {note}", file=sys.stderr)
    else:
        print(explained.text(policy))
        print(f"\nconfig: {found.describe()}\n{note}")
    return 0 if explained.decision.ok else 1
