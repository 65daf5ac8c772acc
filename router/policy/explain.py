"""Explaining a decision: the JSON of ``POST /v1/route``, the table of ``router route``, and the
response headers of routed requests.

Money is integer micro-dollars (``*_micro_usd``) with a float in dollars next to it for people
(``*_usd``); headers carry dollars with six decimals, which is exact for integer µ$.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from router.costs.report import text_table
from router.policy.compile import Policy
from router.policy.engine import RouteDecision


def _money(micro: int | None) -> dict[str, Any] | None:
    if micro is None:
        return None
    return {"micro_usd": micro, "usd": micro / 1_000_000}


def usd6(micro: int) -> str:
    """µ$ as dollars with exactly six decimals (``0.000875``); exact for integers."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), 1_000_000)
    return f"{sign}{whole}.{frac:06d}"


def savings_fraction(decision: RouteDecision) -> float | None:
    s, ref = decision.savings_micro, decision.reference_cost_micro
    if s is None or not ref:
        return None
    return s / ref


def explain_json(
    decision: RouteDecision,
    policy: Policy | None = None,
    *,
    signals: Sequence[str] = (),
    difficulty_signals: Sequence[tuple[str, float]] = (),
) -> dict[str, Any]:
    """The body ``POST /v1/route`` returns (and ``router route --json`` prints).

    ``policy`` adds each candidate's capability for every task class; ``signals`` are the
    classifier's explanation (``Classification.signals``), ``difficulty_signals`` what moved the
    difficulty estimate most (:meth:`DifficultyModel.contributions`).
    """
    d = decision
    candidates = []
    for c in d.candidates:
        entry: dict[str, Any] = {
            "model": c.model,
            "provider": c.provider,
            "role": c.role,
            "eligible": c.eligible,
            "capability": c.capability,
            "completion_tokens": c.completion_tokens,
            "estimated_cost": _money(c.cost_micro),
            "reasons": list(c.reasons),
        }
        if policy is not None and c.model in policy.by_name:
            entry["capabilities"] = dict(policy.by_name[c.model].caps)
        candidates.append(entry)
    budget = None
    if d.budget_scope is not None:
        step = d.budget_step
        budget = {
            "scope": d.budget_scope,
            "used": d.budget_used,
            "step": step.model_dump(exclude_none=True) if step is not None else None,
        }
    error = d.error.to_gateway_error().payload()["error"] if d.error is not None else None
    difficulty = None
    if d.difficulty is not None:
        difficulty = {
            "value": round(d.difficulty.value, 4),
            "logit": round(d.difficulty.logit, 4),
            "band": d.difficulty.band,
            "signals": [{"signal": n, "contribution": v} for n, v in difficulty_signals],
            "bars_before": dict(d.base_bars),
            "weight": policy.difficulty.weight if policy is not None and policy.difficulty
            else None,
            "estimate": policy.difficulty.source if policy is not None and policy.difficulty
            else None,
        }
    fraction = savings_fraction(d)
    return {
        "object": "router.route",
        "policy": {
            "version": d.policy_version,
            "source": policy.source if policy is not None else None,
        },
        "requested_model": d.requested,
        "target": d.target,
        "route": d.route,
        "prompt_tokens": d.prompt_tokens,
        "max_tokens": d.max_tokens,
        "n": d.n,
        "stream": d.stream,
        "task": {
            "name": d.task,
            "confidence": d.confidence,
            "source": d.task_source,
            "checked": list(d.checked_tasks),
            "bars": dict(d.bars),
            "signals": list(signals),
        },
        "difficulty": difficulty,
        "budget": budget,
        "model": d.model or None,
        "fallbacks": list(d.fallbacks),
        "chain": list(d.chain),
        "reason": d.reason,
        "estimated_cost": _money(d.cost_micro),
        "reference": {
            "model": d.reference_model,
            "estimated_cost": _money(d.reference_cost_micro),
        },
        "savings": (
            None if d.savings_micro is None
            else {**(_money(d.savings_micro) or {}), "fraction": fraction}
        ),
        "candidates": candidates,
        "notes": list(d.notes),
        "error": error,
    }


def decision_headers(decision: RouteDecision) -> dict[str, str]:
    """Response headers describing the decision (added to normal chat responses).

    ``x-router-task`` and ``x-router-task-confidence`` are already set by the pipeline's
    ``Outcome.headers`` from ``decision.task`` / ``.confidence``; these complete them.
    """
    d = decision
    h = {"x-router-policy": d.policy_version, "x-router-task-source": d.task_source}
    if d.route is not None:
        h["x-router-route"] = d.route
    if d.cost_micro is not None:
        h["x-router-cost-estimate-usd"] = usd6(d.cost_micro)
    if d.reference_model is not None and d.reference_cost_micro is not None:
        h["x-router-reference-model"] = d.reference_model
        h["x-router-reference-cost-estimate-usd"] = usd6(d.reference_cost_micro)
    if d.budget_step is not None and d.budget_scope is not None:
        h["x-router-near-budget"] = f"{d.budget_scope}={d.budget_used:.3f}"
    if d.difficulty is not None:
        h["x-router-difficulty"] = f"{d.difficulty.value:.3f}"
        h["x-router-difficulty-band"] = d.difficulty.band
        if d.bars:
            h["x-router-bars"] = ",".join(f"{t}={b}" for t, b in d.bars.items())
    return h


def format_explain(decision: RouteDecision, policy: Policy | None = None,
                   *, signals: Sequence[str] = (),
                   difficulty_signals: Sequence[tuple[str, float]] = ()) -> str:
    """``router route``'s human-readable output."""
    d = decision
    lines = []
    where = f"route {d.route}" if d.route else f"model {d.target}"
    if d.target != d.requested:
        where += f" (asked for {d.requested})"
    conf = f", confidence {d.confidence:.2f}" if d.confidence is not None else ""
    task = d.task or "unknown"
    lines.append(f"{where} · policy {d.policy_version} · {d.prompt_tokens} prompt tokens"
                 f" · max_tokens {d.max_tokens if d.max_tokens is not None else '-'}")
    lines.append(f"task {task} ({d.task_source}{conf})"
                 + (" · bars " + ", ".join(f"{t} >= {b}" for t, b in d.bars.items())
                    if d.bars else ""))
    if signals:
        lines.append("signals: " + "; ".join(signals))
    if d.difficulty is not None:
        moved = [f"{t} bar {d.base_bars[t]} -> {b}" for t, b in d.bars.items()
                 if t in d.base_bars and d.base_bars[t] != b]
        why = "; ".join(f"{n} {v:+.2f}" for n, v in difficulty_signals)
        lines.append(f"difficulty {d.difficulty.value:.2f} ({d.difficulty.band})"
                     + (f": {', '.join(moved)}" if moved else ": bars unchanged")
                     + (f" · signals: {why}" if why else ""))
    if d.error is not None:
        err = d.error.to_gateway_error()
        lines.append(f"REFUSED ({err.status_code} {err.code}): {d.error.message}")
    else:
        lines.append(f"choice {d.model}" + (f" -> fallbacks {', '.join(d.fallbacks)}"
                                            if d.fallbacks else "") + f"  [{d.reason}]")
        if d.cost_micro is not None:
            text = f"estimated ${usd6(d.cost_micro)}"
            if d.reference_cost_micro is not None and d.savings_micro is not None:
                pct = savings_fraction(d)
                text += (f" vs ${usd6(d.reference_cost_micro)} on {d.reference_model} "
                         f"(reference): saves ${usd6(d.savings_micro)}"
                         + (f" ({pct:.0%})" if pct is not None else ""))
            lines.append(text)
    for note in d.notes:
        lines.append(f"note: {note}")
    rows = []
    for c in d.candidates:
        caps = ""
        if policy is not None and c.model in policy.by_name:
            caps = "/".join("-" if v is None else str(v)
                            for v in policy.by_name[c.model].caps.values())
        rows.append([c.model, c.provider, caps or (str(c.capability) if c.capability is not None
                                                   else "-"),
                     f"{c.completion_tokens:,}", usd6(c.cost_micro), c.role,
                     "; ".join(c.reasons)])
    cap_header = "reas/expr" if policy is not None else "cap"
    lines.append("")
    lines.append(text_table(["model", "provider", cap_header, "out tok", "est. $", "role", "why"],
                            rows, {2, 3, 4}))
    return "\n".join(lines)
