"""``router cost``: the seed article's cost calculator.

::

    router cost inference --params 8x222B --gpu a100            # $/1K tokens
    router cost pretrain  --params 175B --tokens 500B --gpu a100 --discount 0.5
    router cost breakeven --pretrain-usd 145e6 --refresh-months 6 \\
                          --inference-per-1k 0.007 --price-per-1k 0.02
    router cost request   --model gpt-4o-mini --text-file article.txt

Every sub-command takes ``--json``. Bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, NoReturn

from router.cli import UsageError
from router.commands._config import add_config_argument, load_config_only
from router.costs.report import (
    cost_table,
    fmt_count,
    fmt_sig,
    fmt_usd,
    format_cost_table,
    resolve,
)

NAME = "cost"
HELP = "Cost calculator: the article's formulas, break-even analysis, and request costs."


# Values are parsed in run(), not by argparse ``type=``, so that a bad value is a UsageError:
# router.cli.main prints it as one line and returns 2.


def _count(text: str) -> float:
    from router.config import parse_count

    return parse_count(text)


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"must be a positive number, got {text!r}")
    return v


def _fraction(text: str) -> float:
    v = _positive(text)
    if v > 1:
        raise ValueError(f"must be in (0, 1], got {text!r}")
    return v


def _tokens_int(text: str) -> int:
    v = _count(text)
    if v != int(v):
        raise ValueError(f"must be a whole number of tokens, got {text!r}")
    return int(v)


_CONVERT = {
    "params": _count,
    "active_params": _count,
    "tokens": _count,
    "tflops": _positive,
    "usd_per_hour": _positive,
    "utilisation": _fraction,
    "prefill_utilisation": _fraction,
    "decode_utilisation": _fraction,
    "discount": _positive,
    "pretrain_usd": _count,
    "fixed_monthly_usd": _count,
    "refresh_months": _positive,
    "inference_per_1k": _positive,
    "price_per_1k": _positive,
    "subscription": _positive,
    "tokens_per_user_month": _count,
    "tokens_per_user_day": _count,
    "users": _count,
    "days_per_month": _positive,
    "prompt_tokens": _tokens_int,
    "output_tokens": _tokens_int,
}


def _convert(args: argparse.Namespace) -> None:
    for dest, parse in _CONVERT.items():
        value = getattr(args, dest, None)
        if isinstance(value, str):
            try:
                setattr(args, dest, parse(value))
            except ValueError as exc:
                raise UsageError(f"argument --{dest.replace('_', '-')}: {exc}") from None


class _Parser(argparse.ArgumentParser):
    """Sub-parser that reports a missing or unknown argument on one line (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)

    def parse_known_args(  # type: ignore[override]
        self, args: Any = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, extras = super().parse_known_args(args, namespace)
        if extras:  # otherwise the top-level parser reports them, with its usage text
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="cost_command", metavar="WHAT", parser_class=_Parser)

    def gpu_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--gpu", default="a100", help="GPU from the catalogue (default: a100)")
        p.add_argument("--tflops", help="override the GPU's dense TFLOP/s")
        p.add_argument("--usd-per-hour", help="override the GPU's rent per hour")
        p.add_argument("--utilisation", default=1.0, help="MFU in (0, 1] (1.0)")
        p.add_argument(
            "--discount", default=1.0, help="multiplier on the rent, e.g. 0.5 for 50%% off (1.0)"
        )
        p.add_argument("--config", type=Path, help="take GPUs (and overrides) from this config "
                       "(default: the built-in GPUs only)")
        p.add_argument("--json", action="store_true", help="machine-readable output")

    inf = sub.add_parser(
        "inference", help="inference cost per 1K tokens: 1000 x 2 x params / FLOP/s x rent/s"
    )
    inf.add_argument("--params", required=True, help="e.g. 8B, 8x222B, 1.8T, 70e9")
    inf.add_argument(
        "--active-params",
        help="MoE: parameters active per token (default: all, the article's method)",
    )
    inf.add_argument("--prefill-utilisation", help="MFU for input tokens")
    inf.add_argument("--decode-utilisation", help="MFU for output tokens")
    gpu_args(inf)

    pre = sub.add_parser(
        "pretrain", help="pre-training cost: 6 x params x tokens / FLOP/s x rent/s"
    )
    pre.add_argument("--params", required=True, help="e.g. 175B, 1.8T")
    pre.add_argument("--tokens", required=True, help="training tokens, e.g. 500B, 13T")
    gpu_args(pre)

    be = sub.add_parser(
        "breakeven", help="section 7: tokens or subscribers a month to recover compute"
    )
    fixed = be.add_mutually_exclusive_group(required=True)
    fixed.add_argument("--pretrain-usd", help="pre-training cost, e.g. 145e6")
    fixed.add_argument(
        "--fixed-monthly-usd", help="monthly fixed cost instead of --pretrain-usd/--refresh-months"
    )
    be.add_argument("--refresh-months", default=6.0, help="months between training runs (6)")
    be.add_argument("--inference-per-1k", required=True, help="cost per 1K tokens, $")
    be.add_argument("--price-per-1k", help="average price per 1K tokens, $")
    be.add_argument("--subscription", help="monthly fee per subscriber, $")
    per_user = be.add_mutually_exclusive_group()
    per_user.add_argument("--tokens-per-user-month", help="e.g. 1.8e6")
    per_user.add_argument("--tokens-per-user-day", help="e.g. 6700 (x days-per-month)")
    be.add_argument("--users", help="spread break-even tokens over this many users")
    be.add_argument("--days-per-month", default=30.0, help="(30, as the article)")
    be.add_argument("--json", action="store_true", help="machine-readable output")

    req = sub.add_parser("request", help="a request's tokens and cost on every catalogue model")
    req.add_argument("--model", required=True, help="catalogue model the request is for")
    src = req.add_mutually_exclusive_group(required=True)
    src.add_argument("--text-file", type=Path, help="UTF-8 text sent as one user message")
    src.add_argument(
        "--messages-file",
        type=Path,
        help="JSON: a messages list or a whole chat-completions request body",
    )
    src.add_argument("--prompt-tokens", help="skip counting: this many prompt tokens")
    req.add_argument(
        "--output-tokens",
        help="completion tokens (default: max_tokens of the body, else expected by task)",
    )
    req.add_argument("--task", help="task class for the expected output (reasoning, expression)")
    add_config_argument(req)
    req.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    if args.cost_command is None:
        raise UsageError("say what to price: inference, pretrain, breakeven or request")
    _convert(args)
    handler = {
        "inference": _inference,
        "pretrain": _pretrain,
        "breakeven": _breakeven,
        "request": _request,
    }[args.cost_command]
    try:
        result, text = handler(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(text)
    return 0


# --------------------------------------------------------------------------------- formulas


def _gpu(args: argparse.Namespace) -> dict[str, Any]:
    from router.costs.gpus import Gpu, gpu_catalogue, lookup_gpu

    cfg = load_config_only(args.config) if args.config else None
    gpu = lookup_gpu(args.gpu, gpu_catalogue(cfg))
    if args.tflops or args.usd_per_hour:
        gpu = Gpu(
            gpu.name,
            args.tflops or gpu.tflops,
            args.usd_per_hour or gpu.usd_per_hour,
            "command line" + (f" (over {gpu.source})" if gpu.source else ""),
        )
    return {
        "name": gpu.name,
        "tflops": gpu.tflops,
        "usd_per_hour": gpu.usd_per_hour,
        "source": gpu.source,
    }


def _inference(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from router.costs import formulas

    gpu = _gpu(args)
    params = args.active_params or args.params
    if args.active_params and args.active_params > args.params:
        raise ValueError("--active-params cannot exceed --params")
    flops = gpu["tflops"] * 1e12
    per_1k = formulas.inference_cost_usd_per_1k_tokens(
        params, flops, gpu["usd_per_hour"], args.utilisation, args.discount
    )
    in_1k, out_1k = formulas.inference_rates_usd_per_1k_tokens(
        params,
        flops,
        gpu["usd_per_hour"],
        args.utilisation,
        args.discount,
        args.prefill_utilisation,
        args.decode_utilisation,
    )
    seconds = formulas.gpu_seconds(
        formulas.inference_flops_per_1k_tokens(params), flops, args.utilisation
    )
    result = {
        "params": args.params,
        "active_params": args.active_params,
        "priced_params": params,
        "gpu": gpu,
        "utilisation": args.utilisation,
        "prefill_utilisation": args.prefill_utilisation,
        "decode_utilisation": args.decode_utilisation,
        "discount": args.discount,
        "gpu_seconds_per_1k_tokens": seconds,
        "usd_per_1k_tokens": per_1k,
        "usd_per_1m_tokens": per_1k * 1000,
        "input_usd_per_1k_tokens": in_1k,
        "output_usd_per_1k_tokens": out_1k,
    }
    lines = [
        "Inference cost per 1K tokens = 1000 x 2 x params / (GPU FLOP/s x utilisation) x rent/s",
        f"  params        {fmt_count(params)}"
        + (f" active of {fmt_count(args.params)}" if args.active_params else ""),
        f"  GPU           {gpu['name']}: {gpu['tflops']:g} TFLOP/s, ${gpu['usd_per_hour']:g}/h"
        f" ({gpu['source']})",
        f"  utilisation   {args.utilisation:g}    discount {args.discount:g}",
        f"  GPU time      {seconds:.4g} s per 1K tokens",
        f"  cost          ${fmt_sig(per_1k)} per 1K tokens  (${fmt_sig(per_1k * 1000)} per 1M)",
    ]
    if args.prefill_utilisation or args.decode_utilisation:
        lines.append(
            f"  input/output  ${fmt_sig(in_1k)} / ${fmt_sig(out_1k)} per 1K tokens "
            f"(prefill {args.prefill_utilisation or args.utilisation:g}, "
            f"decode {args.decode_utilisation or args.utilisation:g})"
        )
    return result, "\n".join(lines)


def _pretrain(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from router.costs import formulas

    gpu = _gpu(args)
    flops = gpu["tflops"] * 1e12
    total_flops = formulas.training_flops(args.params, args.tokens)
    seconds = formulas.gpu_seconds(total_flops, flops, args.utilisation)
    full = formulas.pretrain_cost_usd(
        args.params, args.tokens, flops, gpu["usd_per_hour"], args.utilisation
    )
    cost = full * args.discount
    result = {
        "params": args.params,
        "training_tokens": args.tokens,
        "gpu": gpu,
        "utilisation": args.utilisation,
        "discount": args.discount,
        "training_flops": total_flops,
        "gpu_hours": seconds / 3600,
        "usd_before_discount": full,
        "usd": cost,
    }
    lines = [
        "Pre-training cost = 6 x params x tokens / (GPU FLOP/s x utilisation) x rent/s",
        f"  params        {fmt_count(args.params)}    tokens {fmt_count(args.tokens)}",
        f"  GPU           {gpu['name']}: {gpu['tflops']:g} TFLOP/s, ${gpu['usd_per_hour']:g}/h"
        f" ({gpu['source']})",
        f"  compute       {total_flops:.4g} FLOPs = {seconds / 3600:,.0f} GPU-hours"
        f" at utilisation {args.utilisation:g}",
        f"  cost          {fmt_usd(full)}"
        + (f" -> {fmt_usd(cost)} at discount {args.discount:g}" if args.discount != 1 else ""),
    ]
    return result, "\n".join(lines)


def _breakeven(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from router.costs import formulas

    if args.price_per_1k is None and args.subscription is None:
        raise ValueError("give --price-per-1k (token sales) and/or --subscription (subscribers)")
    if args.pretrain_usd is not None:
        fixed = formulas.fixed_monthly_cost_usd(args.pretrain_usd, args.refresh_months)
        fixed_how = f"${fmt_count(args.pretrain_usd)} pre-training / {args.refresh_months:g} months"
    else:
        fixed = args.fixed_monthly_usd
        fixed_how = "given"
    inf = args.inference_per_1k
    result: dict[str, Any] = {
        "fixed_monthly_usd": fixed,
        "inference_usd_per_1k": inf,
    }
    lines = [
        "Monthly compute cost = pre-training / refresh months + tokens/1000 x cost per 1K",
        f"  fixed         {fmt_usd(fixed)} a month ({fixed_how})",
        f"  inference     ${inf:g} per 1K tokens",
    ]
    if args.price_per_1k is not None:
        tokens = formulas.breakeven_monthly_tokens(fixed, inf, args.price_per_1k)
        result.update(
            price_usd_per_1k=args.price_per_1k,
            inference_share_of_price=inf / args.price_per_1k,
            breakeven_tokens_per_month=tokens,
        )
        lines += [
            f"Token sales at ${args.price_per_1k:g} per 1K (inference is "
            f"{inf / args.price_per_1k:.0%} of the price):",
            f"  break-even    {fmt_count(tokens)} tokens a month ({tokens:,.0f})",
        ]
        if args.users:
            per_day = formulas.tokens_per_user_per_day(tokens, args.users, args.days_per_month)
            result.update(users=args.users, breakeven_tokens_per_user_day=per_day)
            lines.append(
                f"{'':16}= {per_day:,.0f} tokens a day for each of {fmt_count(args.users)} users"
            )
    if args.subscription is not None:
        per_month = args.tokens_per_user_month
        if per_month is None and args.tokens_per_user_day is not None:
            per_month = args.tokens_per_user_day * args.days_per_month
        if per_month is None:
            raise ValueError(
                "--subscription needs --tokens-per-user-month or --tokens-per-user-day"
            )
        subs = formulas.breakeven_subscribers(fixed, args.subscription, per_month, inf)
        per_sub = formulas.subscriber_monthly_cost_usd(per_month, inf)
        result.update(
            subscription_usd_per_month=args.subscription,
            tokens_per_subscriber_month=per_month,
            inference_usd_per_subscriber_month=per_sub,
            breakeven_subscribers=subs,
        )
        lines += [
            f"Subscriptions at ${args.subscription:g} a month, {fmt_count(per_month)} tokens each "
            f"(inference ${per_sub:.4g} each):",
            f"  break-even    {subs:,.0f} subscribers",
        ]
    return result, "\n".join(lines)


# --------------------------------------------------------------------------------- requests


def _read_body(args: argparse.Namespace) -> tuple[dict[str, Any] | None, str | None]:
    path: Path | None = args.text_file or args.messages_file
    if path is None:
        return None, None
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    if args.text_file:
        return {"messages": [{"role": "user", "content": raw}]}, raw
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON: {exc.msg} (line {exc.lineno})") from None
    if isinstance(data, list):
        data = {"messages": data}
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("messages"), list)
        or not data["messages"]
    ):
        raise ValueError(f"{path}: expected a messages list or a request body with messages")
    return data, None


def _request(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    cfg = load_config_only(args.config)
    if args.model not in cfg.models:
        raise ValueError(f"unknown model {args.model!r} (known: {', '.join(sorted(cfg.models))})")
    catalogue = resolve(cfg)
    body, text = _read_body(args)
    max_tokens = args.output_tokens
    if max_tokens is None and body is not None:
        for key in ("max_completion_tokens", "max_tokens"):
            v = body.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                max_tokens = v
                break
    rows = cost_table(
        catalogue,
        cfg,
        args.model,
        body,
        text,
        args.prompt_tokens,
        max_tokens,
        args.task,
        fixed_output=args.output_tokens is not None,
    )
    result = {"model": args.model, "task": args.task, "rows": rows}
    return result, format_cost_table(rows, args.model)


if __name__ == "__main__":  # pragma: no cover
    from router.cli import main

    sys.exit(main(["cost", *sys.argv[1:]]))
