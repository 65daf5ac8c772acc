"""Shared pieces of the ``router cost`` and ``router models`` commands: loading, tables, numbers.

Errors are raised as one-line ``ValueError`` messages; the commands turn them into usage errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router.config import Config
    from router.costs.pricing import PricedModel

_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def fmt_count(n: float) -> str:
    """1.776e12 -> '1.776T', 5e11 -> '500B', 6700 -> '6.7K' (4 significant digits)."""
    for scale, suffix in _SUFFIXES:
        if abs(n) >= scale:
            return f"{n / scale:.4g}{suffix}"
    return f"{n:.4g}"


def fmt_sig(v: float, digits: int = 6) -> str:
    """``digits`` significant digits without exponent: 2.95611e-05 -> '0.0000295611'."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f}"


def fmt_usd(v: float) -> str:
    """Dollars: '$0.0071656', '$12.6', '$1,059,091 ($1.059M)'."""
    if abs(v) >= 1e6:
        return f"${v:,.0f} (${fmt_count(v)})"
    if abs(v) >= 100:
        return f"${v:,.2f}"
    return f"${v:.5g}"


def _one_line(problems: list[str]) -> str:
    return (
        problems[0]
        if len(problems) == 1
        else f"{problems[0]} (and {len(problems) - 1} more: " + ("; ".join(problems[1:]) + ")")
    )


def load_config(path: Path | None) -> Config:
    """``path``, else ``$ROUTER_CONFIG``, else ./config.yaml; ValueError on any problem."""
    from router.config import ConfigError, default_config_path, load_config

    p = path if path is not None else default_config_path()
    try:
        return load_config(p)
    except ConfigError as exc:
        raise ValueError(_one_line(exc.problems)) from None


def resolve(cfg: Config) -> dict[str, PricedModel]:
    from router.config import ConfigError
    from router.costs.pricing import resolve_catalogue

    try:
        return resolve_catalogue(cfg)
    except ConfigError as exc:
        raise ValueError(_one_line(exc.problems)) from None


# ------------------------------------------------------------------------------ request costs


def _embedding_text(body: Mapping[str, Any] | None, text: str | None) -> str:
    if text is not None:
        return text
    parts = []
    for m in (body or {}).get("messages", []):
        content = m.get("content") if isinstance(m, dict) else m
        parts.append(content if isinstance(content, str) else str(content or ""))
    return "\n".join(parts)


def cost_table(
    catalogue: Mapping[str, PricedModel],
    cfg: Config,
    model_name: str,
    body: Mapping[str, Any] | None,
    text: str | None,
    prompt_tokens: int | None,
    max_tokens: int | None,
    task: str | None,
    fixed_output: bool = False,
) -> list[dict[str, Any]]:
    """Tokens and cost of one request on every catalogue model of the same mode, cheapest first.

    Each model counts the prompt with its own tokenizer (router.tokens). ``max_tokens`` (or the
    expected output for ``task``) is capped by each model's output limit unless ``fixed_output``.
    """
    from router.costs.estimate import cost_micro, expected_completion_tokens
    from router.tokens import count_chat_tokens, count_text_tokens

    requested = catalogue[model_name]
    mode = requested.config.mode
    rows: list[dict[str, Any]] = []
    for name, pm in catalogue.items():
        if pm.config.mode != mode:
            continue
        if prompt_tokens is not None:
            prompt = prompt_tokens
        elif mode == "chat":
            prompt = count_chat_tokens(body or {"messages": []}, pm.config)
        else:
            prompt = count_text_tokens(_embedding_text(body, text), pm.config)
        if mode == "embedding":
            output = 0
        else:
            output = expected_completion_tokens(max_tokens, task, prompt, cfg.costs)
            cap = pm.limits.max_output_tokens
            if cap is not None and output > cap and not fixed_output:
                output = cap
        micro = cost_micro(pm.price, prompt, output)
        window = pm.limits.context_window
        rows.append(
            {
                "model": name,
                "provider": pm.config.provider,
                "prompt_tokens": prompt,
                "output_tokens": output,
                "cost_micro": micro,
                "cost_usd": micro / 1e6,
                "price_source": pm.price.source,
                "price_detail": pm.price.detail,
                "context_window": window,
                "fits": window is None or prompt + output <= window,
                "requested": name == model_name,
            }
        )
    rows.sort(key=lambda r: (r["cost_micro"], r["model"]))
    base = next(r["cost_micro"] for r in rows if r["requested"])
    for r in rows:
        r["vs_requested"] = (r["cost_micro"] / base) if base else None
    return rows


def text_table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    """Columns separated by two spaces under a dashed rule; the columns in ``right`` (by index)
    right-aligned, the rest left-aligned; no trailing spaces."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def format_cost_table(rows: list[dict[str, Any]], model_name: str) -> str:
    cells = []
    for r in rows:
        ratio = r["vs_requested"]
        cells.append(
            [
                ("* " if r["requested"] else "  ") + r["model"],
                f"{r['prompt_tokens']:,}",
                f"{r['output_tokens']:,}",
                f"${r['cost_usd']:.6f}",
                "-" if ratio is None else f"{ratio:.3g}x",
                r["price_source"]
                + ("" if r["fits"] else f"  (exceeds context {r['context_window']:,})"),
            ]
        )
    table = text_table(
        ["model", "prompt", "output", "cost", f"vs {model_name}", "price"], cells, {1, 2, 3, 4}
    )
    return table + "\n* the requested model; prompt tokens counted with each model's tokenizer"


# ----------------------------------------------------------------------------------- models


def models_rows(catalogue: Mapping[str, PricedModel]) -> list[dict[str, Any]]:
    return [pm.metadata() for pm in catalogue.values()]


def format_models_table(rows: list[dict[str, Any]]) -> str:
    def usd(v: float | None) -> str:
        return "-" if v is None else f"{v:.4g}"

    def count(v: int | None) -> str:
        return "-" if v is None else f"{v:,}"

    cells = [
        [
            r["id"],
            r["mode"],
            r["provider"],
            usd(r["pricing"]["input_per_1m_usd"]),
            usd(r["pricing"]["output_per_1m_usd"]),
            usd(r["pricing"]["cached_input_per_1m_usd"]),
            count(r["context_window"]),
            count(r["max_output_tokens"]),
            f"{r['pricing']['source']}: {r['pricing']['detail']}",
        ]
        for r in rows
    ]
    header = [
        "model",
        "mode",
        "provider",
        "in $/1M",
        "out $/1M",
        "cached",
        "context",
        "max out",
        "price source",
    ]
    return text_table(header, cells, {3, 4, 5, 6, 7})
