"""The policy file's schema: strict, frozen pydantic models (phase one of loading).

Unknown keys are errors (``extra="forbid"``) so that a typo such as ``min_capabilty`` is reported
with its file and line instead of being silently ignored. Phase two (cross-checking names
against the config's model catalogue, impossible bars) is in :mod:`router.policy.compile`.

Money is written in US dollars in the file (people edit it) and turned into integer
micro-dollars once, at load time.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router.policy.budgets import BudgetsSpec, RateLimitsSpec

#: The task classes of the classifier (:data:`router.classify.model.TASKS`), repeated here so
#: that loading a policy never imports numpy; a test keeps the two in step.
Task = Literal["reasoning", "expression"]
TASKS: tuple[Task, Task] = ("reasoning", "expression")

#: Built-in routes (virtual models): the classifier decides, or the task is fixed by the name.
BUILTIN_ROUTES: dict[str, Task | None] = {
    "auto": None,
    "auto:reasoning": "reasoning",
    "auto:expression": "expression",
}

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)

Score = Annotated[int, Field(ge=0, le=100)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Usd = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(_Strict):
    """What a task class needs."""

    #: A model qualifies for the task when its capability for it is at least this (0-100).
    min_capability: Score


class TasksSpec(_Strict):
    reasoning: TaskSpec
    expression: TaskSpec

    def bar(self, task: Task) -> int:
        return int(getattr(self, task).min_capability)


class LowConfidenceSpec(_Strict):
    """What a classification below ``below`` means.

    ``treat_as``:

    * ``all_tasks`` - the model must meet the bar of every task class (the stricter choice);
    * ``reasoning`` / ``expression`` - treat the request as that task;
    * ``classified`` - ignore the low confidence and use the classifier's answer.

    A request with no classification at all (classifier off or failed) is treated as low
    confidence; with ``classified`` it falls back to ``all_tasks``.
    """

    below: float = Field(0.6, ge=0, le=1)
    treat_as: Literal["all_tasks", "reasoning", "expression", "classified"] = "all_tasks"


class DifficultySpec(_Strict):
    """How a prompt's estimated difficulty moves the capability bar of its task.

    A capability bar is read as the chance (in %) that a model does a *typical* prompt of the
    class well. For a prompt of difficulty ``z`` (log-odds of failure against a typical
    prompt), the bar becomes ``100 * sigmoid(logit(bar / 100) + weight * z)``: an easy prompt
    (``z < 0``) lets a less capable model qualify, a hard one (``z > 0``) asks for a more
    capable one. Monotone: a harder prompt never gets a lower bar.
    """

    #: How strongly difficulty moves the bars (0: not at all, 1: as estimated).
    weight: float = Field(1.0, ge=0, le=4, allow_inf_nan=False)
    #: Per task, the lowest a bar may be moved down to, however easy the prompt (a bar already
    #: below it is not moved down at all).
    floor: dict[Task, Score] = Field(default_factory=dict)
    #: A refitted estimate (``router eval calibrate --difficulty-out``), relative to this file.
    #: Default: the estimate shipped with the gateway.
    model: str | None = None


class ModelSpec(_Strict):
    """A catalogue model's capability per task class (0-100; omit a task it must never serve)."""

    reasoning: Score | None = None
    expression: Score | None = None
    #: Completion tokens this model produces relative to a typical model, used only to rank by
    #: estimated cost. Thinking models bill hidden reasoning tokens as output: give them > 1.
    #: Capped by the request's ``max_tokens`` (which bounds all output, reasoning included).
    output_multiplier: float = Field(1.0, ge=0.1, le=100, allow_inf_nan=False)

    @model_validator(mode="after")
    def _some_task(self) -> ModelSpec:
        if self.reasoning is None and self.expression is None:
            raise ValueError("give a capability for at least one task (reasoning, expression)")
        return self

    def capability(self, task: Task) -> int | None:
        value: int | None = getattr(self, task)
        return value


class AccessRule(_Strict):
    """Models a team, user or key may use: ``allow`` (only these) and/or ``deny`` (never these)."""

    allow: tuple[Name, ...] | None = None
    deny: tuple[Name, ...] = ()


class AccessSpec(_Strict):
    teams: dict[str, AccessRule] = Field(default_factory=dict)
    users: dict[str, AccessRule] = Field(default_factory=dict)
    #: By key alias (``auth.keys[].alias`` in config.yaml, or a key created through the admin API).
    keys: dict[str, AccessRule] = Field(default_factory=dict)


class ConstraintsSpec(_Strict):
    #: A candidate whose estimated cost for the request exceeds this loses ("too expensive");
    #: a concrete model request over it is refused. None: no limit.
    max_cost_per_request_usd: Usd | None = None
    #: Providers never routed to (e.g. for data residency), by ``provider`` in config.yaml.
    avoid_providers: tuple[str, ...] = ()
    #: Models never routed to nor served, for anyone.
    deny_models: tuple[Name, ...] = ()
    #: Fallbacks after the chosen model (next cheapest that qualify).
    max_fallbacks: int = Field(2, ge=0, le=16)


class NearBudgetStep(_Strict):
    """When any budget that applies to the request is at least ``at`` used (0-1 fraction)."""

    at: float = Field(gt=0, le=1)
    #: Lower every capability bar by this many points.
    lower_bar_by: int = Field(0, ge=0, le=100)
    #: Serve requests for a route (``auto``, ``auto:reasoning``, ...) by this route instead,
    #: e.g. an economy route. Requests for a concrete model are not switched.
    route: Name | None = None

    @model_validator(mode="after")
    def _does_something(self) -> NearBudgetStep:
        if self.lower_bar_by == 0 and self.route is None:
            raise ValueError("give lower_bar_by or route (or both)")
        return self


class RouteSpec(_Strict):
    """A virtual model clients can ask for (``model: "auto-cheap"``)."""

    description: str | None = None
    #: Fix the task class (the classifier and the ``x-router-task`` header are ignored).
    task: Task | None = None
    #: Override the bars of ``tasks`` for this route, per task.
    min_capability: dict[Task, Score] = Field(default_factory=dict)
    #: The route's quality/cost knob: points added to every bar of this route (negative: cheaper
    #: models qualify, quality drops; positive: the reverse). ``router eval replay`` sweeps it.
    bar_shift: float = Field(0, ge=-100, le=100, allow_inf_nan=False)
    #: Consider only these models.
    models: tuple[Name, ...] | None = None
    #: ``cheapest`` qualifying model (default) or the ``most_capable`` one (ties: cheaper).
    objective: Literal["cheapest", "most_capable"] = "cheapest"
    max_cost_per_request_usd: Usd | None = None
    max_fallbacks: int | None = Field(None, ge=0, le=16)


class PolicyFile(_Strict):
    """A routing policy (``policies/*.yaml``): what to do with each request."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="federated-router policy",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    version: Literal[1] = 1
    description: str | None = None
    tasks: TasksSpec
    low_confidence: LowConfidenceSpec = LowConfidenceSpec()
    #: No model meets the bar: serve the ``most_capable`` allowed model that fits, or ``refuse``.
    when_none_qualify: Literal["most_capable", "refuse"] = "most_capable"
    #: Capability per task class, by catalogue model name. Models not listed are never chosen
    #: by a route (they can still be asked for by name).
    models: dict[Name, ModelSpec]
    constraints: ConstraintsSpec = ConstraintsSpec()
    access: AccessSpec = AccessSpec()
    #: Savings are computed against this model. Default: the strongest (highest sum of
    #: capabilities; ties: higher input price, then name).
    reference_model: Name | None = None
    #: Steps by increasing ``at``; the highest step reached applies.
    near_budget: tuple[NearBudgetStep, ...] = ()
    routes: dict[Name, RouteSpec] = Field(default_factory=dict)
    #: Requests naming the key are served as if they named the value (a model or a route).
    #: Applied once: rewrites do not chain.
    rewrites: dict[str, Name] = Field(default_factory=dict)
    #: Difficulty-aware bars; absent: bars depend on the task class only.
    difficulty: DifficultySpec | None = None
    #: Spending limits per scope and period (see router/policy/budgets.py).
    budgets: BudgetsSpec = BudgetsSpec()
    #: Requests and tokens per minute per scope.
    rate_limits: RateLimitsSpec = RateLimitsSpec()

    @field_validator("models")
    @classmethod
    def _not_empty(cls, v: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        if not v:
            raise ValueError("list at least one model with its capabilities")
        return v


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file, for editors (``router policy schema``)."""
    return PolicyFile.model_json_schema()


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))
