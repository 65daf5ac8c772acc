"""Seeding a budget window's counter from the ledger when the counter is first created.

A budget added in the middle of its period (a policy reload, a new key budget) would otherwise
start from zero although the ledger already holds that period's spend for its scope. The first
reserve or status read that finds the window's counter missing creates it with the ledger's sum
for the scope over the window, in the same transaction (SQLite) or script (Redis), so no settle
can slip in between. From then on settles keep it, as for any counter.

What the seed cannot see: requests reserved before the counter existed and settled after it was
created. Their reservations did not include the new budget, so their spend is in the ledger and
not in the counter (they were admitted without it); ``router spend --check`` shows it.

SQLite sums the ledger rows of the window (by its time index) when the budget is new, i.e. has
no counter in any window yet. A budget that has counters of earlier windows was in force, so a
request of its scope in the new window would have created the counter: the new window starts
at 0 without reading the ledger (the first request of the day of each key with a daily budget
would otherwise scan the day's rows). The one case this misses: a budget taken out of the policy
for a whole window so far and put back. Keeping the ledger indexed by team, user and key
instead cost ~22 µs per settle (measured: 28 -> 51 µs for the ledger insert alone).

Redis keeps per-day sums of the ledger by scope (``{P}:a:<day>``, and ``{P}:a:total``), added by
the settle script in the same step as the ledger entry, because a window's stream may hold
millions of rows: a seed adds up the window's 1 to 31 days, exact in every case.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from router.budgets.spec import BudgetSpec, LedgerRow, Period, Scope, Window

#: The ledger column a scope's budgets sum (global: every row).
SCOPE_COLUMN: Mapping[Scope, str | None] = {
    Scope.GLOBAL: None,
    Scope.TEAM: "team",
    Scope.USER: "user",
    Scope.KEY: "key_alias",
}

_PREFIX = {Scope.TEAM: "t:", Scope.USER: "u:", Scope.KEY: "k:"}


def aggregate_field(budget: BudgetSpec) -> str:
    """The field of a Redis day sum that holds ``budget``'s scope."""
    if budget.scope is Scope.GLOBAL:
        return "g"
    return _PREFIX[budget.scope] + budget.scope_id


def row_fields(row: LedgerRow) -> list[str]:
    """The day-sum fields a ledger row adds to: global, and its team, user and key if set (an id
    a budget could not be named by, e.g. with a newline, is left out)."""
    out = ["g"]
    for prefix, value in (("t:", row.team), ("u:", row.user), ("k:", row.key_alias)):
        if value and "\n" not in value:
            out.append(prefix + value)
    return out


def window_days(window: Window, tz: ZoneInfo) -> list[str]:
    """The ids of the local days a daily, weekly or monthly window is made of."""
    if window.period is Period.TOTAL or window.reset_at is None:
        raise ValueError("a total window has no days")
    day = datetime.fromtimestamp(window.start, tz).date()
    end = datetime.fromtimestamp(window.reset_at, tz).date()
    out = []
    while day < end:
        out.append(day.isoformat())
        day += timedelta(days=1)
    return out
