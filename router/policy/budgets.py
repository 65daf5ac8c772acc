"""Budgets and rate limits in the policy: the ``budgets:`` and ``rate_limits:`` sections.

```yaml
budgets:
  global: {monthly: {limit_usd: 5000, soft_usd: 4000}}
  teams:
    search: {daily: {limit_usd: 50}, monthly: {limit_usd: 1000}}
  users:
    alice: {weekly: {limit_usd: 20}}
  keys:
    app-prod: {total: {limit_usd: 300}}
rate_limits:
  teams: {search: {requests_per_minute: 600, tokens_per_minute: 2000000}}
  keys: {app-prod: {requests_per_minute: 120}}
```

Limits are in US dollars in the file and integer micro-dollars once loaded. Every budget that
applies to a request (global, its team, its user, its key; any period) must have room for it.
A key's own budget and limits from config.yaml or the admin API apply on top (see
:class:`router.auth.Caller`). Compiled once per policy load into :class:`BudgetRules`, which
answers "which budgets apply to this caller" with a dict lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router.budgets.spec import BudgetSpec, Period, RateLimitSpec, Scope

if TYPE_CHECKING:
    from router.auth import Caller

Usd = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PeriodName = Literal["daily", "weekly", "monthly", "total"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LimitSpec(_Strict):
    #: Hard limit: requests that would pass it are refused (429 budget_exceeded).
    limit_usd: Usd
    #: Soft limit: marks the budget as nearly spent (policy near_budget steps, a metric).
    soft_usd: Usd | None = None
    #: Also refuse zero-cost requests (self-hosted at zero marginal price) once spent.
    block_zero_cost: bool = False

    @model_validator(mode="after")
    def _soft_below_hard(self) -> LimitSpec:
        if self.soft_usd is not None and self.soft_usd > self.limit_usd:
            raise ValueError("soft_usd must not exceed limit_usd")
        return self


Periods = dict[PeriodName, LimitSpec]


class BudgetsSpec(_Strict):
    global_: Periods = Field(default_factory=dict, alias="global")
    teams: dict[str, Periods] = Field(default_factory=dict)
    users: dict[str, Periods] = Field(default_factory=dict)
    keys: dict[str, Periods] = Field(default_factory=dict)


class RateSpec(_Strict):
    requests_per_minute: int | None = Field(None, gt=0)
    tokens_per_minute: int | None = Field(None, gt=0)


class RateLimitsSpec(_Strict):
    global_: RateSpec | None = Field(None, alias="global")
    teams: dict[str, RateSpec] = Field(default_factory=dict)
    users: dict[str, RateSpec] = Field(default_factory=dict)
    keys: dict[str, RateSpec] = Field(default_factory=dict)


def usd_micro(usd: float) -> int:
    return round(usd * 1_000_000)


def budget_specs(scope: Scope, scope_id: str, periods: Periods) -> tuple[BudgetSpec, ...]:
    return tuple(
        BudgetSpec(
            scope,
            scope_id,
            Period(period),
            usd_micro(limit.limit_usd),
            None if limit.soft_usd is None else usd_micro(limit.soft_usd),
            limit.block_zero_cost,
        )
        for period, limit in periods.items()
    )


def rate_spec(scope: Scope, scope_id: str, rate: RateSpec | None) -> tuple[RateLimitSpec, ...]:
    if rate is None or (rate.requests_per_minute is None and rate.tokens_per_minute is None):
        return ()
    return (RateLimitSpec(scope, scope_id, rate.requests_per_minute, rate.tokens_per_minute),)


@dataclass(frozen=True)
class BudgetRules:
    """The policy's budgets and rate limits, indexed by scope for the request path."""

    global_budgets: tuple[BudgetSpec, ...] = ()
    teams: dict[str, tuple[BudgetSpec, ...]] = field(default_factory=dict)
    users: dict[str, tuple[BudgetSpec, ...]] = field(default_factory=dict)
    keys: dict[str, tuple[BudgetSpec, ...]] = field(default_factory=dict)
    global_rate: tuple[RateLimitSpec, ...] = ()
    team_rates: dict[str, tuple[RateLimitSpec, ...]] = field(default_factory=dict)
    user_rates: dict[str, tuple[RateLimitSpec, ...]] = field(default_factory=dict)
    key_rates: dict[str, tuple[RateLimitSpec, ...]] = field(default_factory=dict)
    _cache: dict[tuple[object, ...], tuple[tuple[BudgetSpec, ...], tuple[RateLimitSpec, ...]]] = (
        field(default_factory=dict, compare=False, repr=False)
    )

    def for_caller(
        self, caller: Caller
    ) -> tuple[tuple[BudgetSpec, ...], tuple[RateLimitSpec, ...]]:
        """Every budget and rate limit that applies to ``caller``, most specific first (the
        key's, then the user's, the team's, the global ones); cached per caller."""
        key = (caller.alias, caller.user, caller.team, caller.budgets, caller.rate_limits)
        found = self._cache.get(key)
        if found is None:
            budgets = (
                *caller.budgets,
                *self.keys.get(caller.alias, ()),
                *self.users.get(caller.user, ()),
                *self.teams.get(caller.team, ()),
                *self.global_budgets,
            )
            rates = (
                *caller.rate_limits,
                *self.key_rates.get(caller.alias, ()),
                *self.user_rates.get(caller.user, ()),
                *self.team_rates.get(caller.team, ()),
                *self.global_rate,
            )
            found = (_tightest(budgets), rates)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = found
        return found


def compile_rules(budgets: BudgetsSpec, rates: RateLimitsSpec) -> BudgetRules:
    return BudgetRules(
        global_budgets=budget_specs(Scope.GLOBAL, "global", budgets.global_),
        teams={t: budget_specs(Scope.TEAM, t, p) for t, p in budgets.teams.items()},
        users={u: budget_specs(Scope.USER, u, p) for u, p in budgets.users.items()},
        keys={k: budget_specs(Scope.KEY, k, p) for k, p in budgets.keys.items()},
        global_rate=rate_spec(Scope.GLOBAL, "global", rates.global_),
        team_rates={t: rate_spec(Scope.TEAM, t, r) for t, r in rates.teams.items()},
        user_rates={u: rate_spec(Scope.USER, u, r) for u, r in rates.users.items()},
        key_rates={k: rate_spec(Scope.KEY, k, r) for k, r in rates.keys.items()},
    )


def _tightest(budgets: tuple[BudgetSpec, ...]) -> tuple[BudgetSpec, ...]:
    """One budget per (scope, id, period): a key's own budget and the policy's for the same
    key and period are one window in the store, so the tighter limit is the one enforced."""
    by_key: dict[tuple[str, str, str], BudgetSpec] = {}
    for b in budgets:
        k = (str(b.scope), b.scope_id, str(b.period))
        seen = by_key.get(k)
        if seen is None or b.limit_micro < seen.limit_micro:
            by_key[k] = b
    return budgets if len(by_key) == len(budgets) else tuple(by_key.values())
