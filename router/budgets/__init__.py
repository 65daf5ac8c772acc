"""Budgets, rate limits and the spend ledger (issue 6): everything below the HTTP gateway.

The gateway calls, per request::

    plan = reservation_amount(...)                       # pure: what to hold
    r = await store.reserve(request_id, budgets, plan.amount_micro, now,
                            fallback_micro=plan.fallback_micro,
                            rate_limits=limits, tokens=prompt_tokens)
    ...call upstream...
    await store.settle(r, actual_micro, LedgerRow(...))    # or store.release(r, row) on failure

and maps :class:`BudgetExceeded` / :class:`RateLimited` to 429 and :class:`StoreUnavailable` to
503. See docs/budgets.md.
"""

from router.budgets.amount import ReservePlan, reservation_amount
from router.budgets.errors import BudgetError, BudgetExceeded, RateLimited, StoreUnavailable
from router.budgets.factory import open_store
from router.budgets.spec import (
    STATUS_DISCONNECTED,
    STATUS_ERROR,
    STATUS_OK,
    BudgetSpec,
    BudgetStatus,
    Calendar,
    LedgerRow,
    Period,
    RateLimitSpec,
    Reservation,
    Scope,
    SettleResult,
    SpendRow,
    Window,
    window_of,
)
from router.budgets.store import BudgetStore

__all__ = [
    "STATUS_DISCONNECTED",
    "STATUS_ERROR",
    "STATUS_OK",
    "BudgetError",
    "BudgetExceeded",
    "BudgetSpec",
    "BudgetStatus",
    "BudgetStore",
    "Calendar",
    "LedgerRow",
    "Period",
    "RateLimitSpec",
    "RateLimited",
    "Reservation",
    "ReservePlan",
    "Scope",
    "SettleResult",
    "SpendRow",
    "StoreUnavailable",
    "Window",
    "open_store",
    "reservation_amount",
    "window_of",
]
