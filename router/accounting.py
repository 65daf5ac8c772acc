"""Steps 5, 7 and 8 of the request flow: reserve, settle, record.

Before the call the worst-case cost is reserved atomically on every budget that applies (or the
request is refused with 429 before any upstream call); after it the actual cost from the usage
is settled and the ledger row written in the same atomic step; a failed call releases the
reservation and records a zero-cost row. Every request writes a ledger row, budgets or not.

The worst case includes the prompt as the provider may bill it: where the gateway's count is an
estimate, its upper bound (:func:`router.tokens.chat_prompt_bound`), never more than the
model's context window, so a settle on the provider's usage cannot pass a limit the reservation
kept. What a settle may still exceed (a provider billing more than the bound: images, unusual
templates, drift of an exact count) is at most the rest of the context window at the input
price (:attr:`Hold.overshoot_bound_micro`), and is reported.

The policy's near-budget behaviour needs "how much of each budget is used" *before* the choice,
while the store reports it *after* a reservation: :class:`BudgetView` keeps the fractions from
this process's latest reservations (one request stale, no extra store call per request).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from router.auth import Caller
from router.budgets import (
    STATUS_DISCONNECTED,
    STATUS_ERROR,
    STATUS_OK,
    BudgetExceeded,
    BudgetSpec,
    BudgetStore,
    LedgerRow,
    RateLimited,
    RateLimitSpec,
    Reservation,
    ReservePlan,
    StoreUnavailable,
    reservation_amount,
)
from router.budgets.spec import BudgetStatus
from router.config import Config
from router.costs.estimate import FALLBACK_MAX_OUTPUT_TOKENS, cost_micro, expected_completion_tokens
from router.costs.pricing import PricedModel
from router.errors import BudgetExceededError, ServiceUnavailable, TooManyRequests
from router.metrics import Metrics
from router.policy import BudgetState, Policy

log = logging.getLogger("router.budgets")


def budget_error(exc: BudgetExceeded) -> BudgetExceededError:
    d = exc.details()
    reset = d.get("reset_at") or "never (total budget)"
    message = (
        f"Budget exceeded: the {exc.period} budget of {exc.scope} '{exc.scope_id}' is "
        f"${exc.limit_micro / 1e6:.6f}; ${exc.spent_micro / 1e6:.6f} is spent or reserved and "
        f"this request needs up to ${exc.requested_micro / 1e6:.6f}. It resets at {reset}."
    )
    headers = {}
    if exc.reset_at is not None:
        headers["retry-after"] = str(max(1, int(exc.reset_at - time.time()) + 1))
    return BudgetExceededError(message, headers=headers)


def rate_error(exc: RateLimited) -> TooManyRequests:
    return TooManyRequests(str(exc), headers={"retry-after": exc.retry_after_header})


class BudgetView:
    """Fraction used per budget, from this process's latest reservations."""

    def __init__(self) -> None:
        self._used: dict[str, float] = {}
        #: Every budget seen by this process (for the budget gauges).
        self.seen: dict[str, BudgetSpec] = {}
        self._labels: dict[str, str] = {}  # BudgetSpec.key -> label: read on every request

    def label(self, b: BudgetSpec) -> str:
        label = self._labels.get(b.key)
        if label is None:
            label = self._labels[b.key] = f"{b.scope.value}:{b.scope_id}/{b.period.value}"
        return label

    def update(self, statuses: tuple[BudgetStatus, ...]) -> None:
        for s in statuses:
            limit = s.budget.limit_micro
            label = self.label(s.budget)
            self._used[label] = s.used_micro / limit if limit > 0 else 1.0
            self.seen[label] = s.budget  # the latest spec: a policy reload may change a limit

    def state(self, budgets: tuple[BudgetSpec, ...]) -> BudgetState | None:
        if not budgets or not self._used:
            return None
        used = {}
        for b in budgets:
            label = self.label(b)
            fraction = self._used.get(label)
            if fraction is not None:
                used[label] = fraction
        return BudgetState(used=used) if used else None


@dataclass(slots=True)
class Hold:
    """A live reservation and the plan it came from.

    ``model``: the catalogue model it was priced for. ``prompt_tokens``: the prompt tokens
    reserved (the count, or its bound where the count is an estimate). ``overshoot_bound_micro``:
    the most a settle of that model can exceed the reservation, i.e. prompt tokens billed beyond
    those, up to its context window, at its input price (None: the context window is unknown).
    A fallback to another model is priced as that model, and not bounded by this.
    """

    reservation: Reservation
    plan: ReservePlan
    model: str = ""
    prompt_tokens: int = 0
    overshoot_bound_micro: int | None = None

    @property
    def capped_output(self) -> int | None:
        """Admitted on the expected (not worst-case) output: the max_tokens to enforce."""
        r = self.reservation.amount_micro
        return self.plan.output_cap(r) if r < self.plan.amount_micro else None


class Accountant:
    def __init__(self, store: BudgetStore, config: Config, metrics: Metrics | None = None) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics
        self.view = BudgetView()

    def applicable(
        self, policy: Policy | None, caller: Caller
    ) -> tuple[tuple[BudgetSpec, ...], tuple[RateLimitSpec, ...]]:
        if policy is not None:
            return policy.budget_rules.for_caller(caller)
        return caller.budgets, caller.rate_limits

    async def reserve(
        self,
        request_id: str,
        caller: Caller,
        policy: Policy | None,
        priced: PricedModel,
        prompt_tokens: int,
        max_tokens: int | None,
        n: int,
        task: str | None,
        *,
        prompt_bound: int | None = None,
    ) -> Hold:
        """Reserve this request's worst case on every applicable budget, or raise 429/503.

        ``prompt_bound``: where ``prompt_tokens`` is an estimate, the most the provider can
        bill (:func:`router.tokens.chat_prompt_bound`); that is reserved instead, up to the
        model's context window."""
        budgets, rates = self.applicable(policy, caller)
        price = priced.price
        limit = priced.limits.max_output_tokens or FALLBACK_MAX_OUTPUT_TOKENS
        window = priced.limits.context_window
        held = prompt_tokens
        if prompt_bound is not None and prompt_bound > prompt_tokens:
            held = prompt_bound if window is None else max(prompt_tokens, min(prompt_bound, window))
        expected = expected_completion_tokens(None, task, prompt_tokens, self.config.costs)
        plan = reservation_amount(
            prompt_cost_micro=cost_micro(price, held, 0),
            output_micro_per_1m=price.output_per_1m_micro * n,
            max_tokens=max_tokens,
            output_limit=limit,
            expected_output_tokens=min(expected, limit),
            strict=self.config.store.strict_reservations,
        )
        try:
            reservation = await self.store.reserve(
                request_id, budgets, plan.amount_micro, fallback_micro=plan.fallback_micro,
                rate_limits=rates, tokens=prompt_tokens,
            )
        except BudgetExceeded as exc:
            raise budget_error(exc) from None
        except RateLimited as exc:
            raise rate_error(exc) from None
        except StoreUnavailable as exc:
            if self.metrics is not None:
                self.metrics.child(self.metrics.store_errors, "reserve").inc()
            raise ServiceUnavailable(f"The budget store is unavailable: {exc}") from None
        if reservation.status:
            self.view.update(reservation.status)
        bound = None if window is None else cost_micro(price, max(0, window - held), 0)
        return Hold(reservation, plan, priced.name, held, bound)

    async def settle(self, hold: Hold, actual_micro: int, row: LedgerRow) -> int:
        """Settle to the actual cost and write the ledger row; returns the overshoot in µ$
        (the caller reports it). One above the hold's bound means the catalogue is wrong about
        the model (its context window or price): logged as an error."""
        result = await self.store.settle(hold.reservation, actual_micro, row)
        bound = hold.overshoot_bound_micro
        if bound is not None and result.overshoot_micro > bound and row.model == hold.model:
            log.error(
                "request_id=%s model=%s settled %d µ$ above its reservation, past the bound of "
                "%d µ$ (%d prompt tokens reserved, %d billed): check the catalogue's "
                "context_window and price", row.request_id, row.model, result.overshoot_micro,
                bound, hold.prompt_tokens, row.prompt_tokens)  # fmt: skip
        return result.overshoot_micro

    async def release(self, hold: Hold, row: LedgerRow) -> None:
        await self.store.release(hold.reservation, row)


#: Length of a budget window in hours, for the burn rate (a month taken as its average length).
WINDOW_HOURS = {"daily": 24.0, "weekly": 168.0, "monthly": 730.5}


def hours_to_exhaustion(status: BudgetStatus, now: float) -> float:
    """Hours until the budget is spent at the window's average burn rate so far (inf: no burn)."""
    hours = WINDOW_HOURS.get(str(status.budget.period))
    if hours is None or status.reset_at is None:
        return math.inf
    elapsed = hours - max(0.0, status.reset_at - now) / 3600
    if elapsed <= 0 or status.used_micro <= 0:
        return math.inf
    return status.remaining_micro / (status.used_micro / elapsed)


async def publish_budgets(accountant: Accountant, metrics: Metrics) -> None:
    """Set the budget gauges for every budget this process has seen (off the request path)."""
    specs = list(accountant.view.seen.values())
    if not specs:
        return
    try:
        statuses = await accountant.store.budget_status(specs)
    except StoreUnavailable:
        metrics.child(metrics.store_errors, "budget_status").inc()
        return
    now = time.time()
    for s in statuses:
        labels = (str(s.budget.scope), s.budget.scope_id, str(s.budget.period))
        metrics.child(metrics.budget_limit, *labels).set(s.budget.limit_micro)
        metrics.child(metrics.budget_spent, *labels).set(s.used_micro)
        metrics.child(metrics.budget_remaining, *labels).set(s.remaining_micro)
        metrics.child(metrics.budget_seconds_left, *labels).set(hours_to_exhaustion(s, now) * 3600)
    accountant.view.update(tuple(statuses))


__all__ = [
    "STATUS_DISCONNECTED",
    "STATUS_ERROR",
    "STATUS_OK",
    "Accountant",
    "BudgetView",
    "Hold",
]
