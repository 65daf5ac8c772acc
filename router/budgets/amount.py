"""How much to reserve for a request: :func:`reservation_amount`, a pure function.

The worst case of a request is its prompt cost plus ``max_tokens`` output tokens at the output
price. When the request gives no ``max_tokens`` the worst case is the model's whole output limit
(e.g. 32K or 100K tokens), and reserving that refuses requests needlessly: a $1 daily key budget
cannot admit one call to a model whose 100K-token worst case costs $1.50, though the typical
answer costs a cent. (This is the usual complaint about other gateways.)

The rule, when ``max_tokens`` is absent and ``strict`` is off:

1. Prefer the worst case (``amount_micro``). While it fits, nothing can overshoot.
2. If it does not fit in some budget, reserve the *expected* output instead
   (``fallback_micro``: prompt + ``expected_output_tokens``, a high percentile of completions
   for the task class, from ``config.costs.expected_output_tokens``). The store makes this
   choice inside the same atomic reserve, so there is no race between looking and reserving.
3. A request admitted on the fallback is bounded by
   :meth:`ReservePlan.output_cap`: the gateway either passes that as the upstream
   ``max_tokens`` (the stream ends with ``finish_reason: "length"``; the limit is never passed),
   or lets it run and settles the actual cost, reporting the overshoot, which is at most
   ``overshoot_bound_micro`` per request (``SettleResult.overshoot_micro``, a metric).

So a fallback is only ever used near the end of a budget, and a refusal happens only when even
the expected cost does not fit. With an explicit ``max_tokens``, or with ``strict``, the plan is
the worst case alone: nothing is ever admitted that could pass a limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def output_cost_micro(tokens: int, output_micro_per_1m: int | float) -> int:
    """Cost of ``tokens`` output tokens at ``output_micro_per_1m`` µ$ per million, rounded up
    (a reservation must never be short by a rounding)."""
    price = math.ceil(output_micro_per_1m)
    return -(-tokens * price // 1_000_000)


@dataclass(frozen=True, slots=True)
class ReservePlan:
    """What to pass to ``BudgetStore.reserve``: ``amount_micro`` and ``fallback_micro``."""

    amount_micro: int
    output_tokens: int
    fallback_micro: int | None = None
    fallback_output_tokens: int | None = None

    def output_cap(self, reserved_micro: int) -> int:
        """Output tokens covered by a reservation of ``reserved_micro`` (one of the plan's two
        amounts): the ``max_tokens`` to enforce so the request cannot overshoot."""
        if self.fallback_micro is not None and reserved_micro < self.amount_micro:
            assert self.fallback_output_tokens is not None
            return self.fallback_output_tokens
        return self.output_tokens

    @property
    def overshoot_bound_micro(self) -> int:
        """Most a fallback-admitted request can spend beyond its reservation if not capped."""
        return 0 if self.fallback_micro is None else self.amount_micro - self.fallback_micro


def reservation_amount(
    *,
    prompt_cost_micro: int,
    output_micro_per_1m: int | float,
    max_tokens: int | None,
    output_limit: int,
    expected_output_tokens: int,
    strict: bool = False,
) -> ReservePlan:
    """The reservation plan of one request (see the module docstring for the rule).

    ``prompt_cost_micro``: cost of the prompt (exact: tokens are counted before the call).
    ``output_micro_per_1m``: output price, µ$ per million tokens. ``max_tokens``: the request's
    ``max_tokens``/``max_completion_tokens`` or None. ``output_limit``: the model's output limit.
    ``expected_output_tokens``: a high percentile of output length for the task class.
    ``strict``: always reserve the worst case (no fallback).
    """
    if prompt_cost_micro < 0 or output_limit <= 0 or expected_output_tokens <= 0:
        raise ValueError("costs must be >= 0 and token limits > 0")
    if max_tokens is not None and max_tokens < 0:
        raise ValueError("max_tokens must be >= 0")
    worst = output_limit if max_tokens is None else min(max_tokens, output_limit)
    amount = prompt_cost_micro + output_cost_micro(worst, output_micro_per_1m)
    if strict or max_tokens is not None or expected_output_tokens >= worst:
        return ReservePlan(amount, worst)
    fallback = prompt_cost_micro + output_cost_micro(expected_output_tokens, output_micro_per_1m)
    if fallback >= amount:  # a zero output price: nothing to gain
        return ReservePlan(amount, worst)
    return ReservePlan(amount, worst, fallback, expected_output_tokens)
