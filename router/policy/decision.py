"""What the engine takes and returns: request facts, budget state, the decision.

Kept apart from :mod:`router.policy.engine` (the rule itself) so that code which only handles
decisions (the pipeline, explain output) reads in one place what a decision carries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from router.policy.difficulty import DifficultyGuess
from router.policy.errors import RouteError
from router.policy.schema import NearBudgetStep

if TYPE_CHECKING:
    from router.auth import Caller


class TaskGuess(Protocol):
    """What the engine needs of a classification (:class:`router.classify.Classification`)."""

    @property
    def task(self) -> str: ...

    @property
    def confidence(self) -> float: ...


@dataclass(frozen=True, slots=True)
class RouteFacts:
    """What is known about a request before choosing: the engine's only input besides policy."""

    #: As the client sent it: ``auto``, ``auto:reasoning``, a route name, or a catalogue model.
    model: str
    #: Counted once with one tokenizer (see :mod:`router.policy.engine`).
    prompt_tokens: int
    #: ``max_completion_tokens`` or ``max_tokens``; None when the request gives neither.
    max_tokens: int | None = None
    n: int = 1
    classification: TaskGuess | None = None
    #: ``x-router-task`` header (``reasoning`` / ``expression``); ignored by fixed-task routes.
    task_override: str | None = None
    caller: Caller | None = None
    stream: bool = False
    #: The prompt's estimated difficulty (None: not estimated; bars stay the task's).
    difficulty: DifficultyGuess | None = None


@dataclass(frozen=True, slots=True)
class BudgetState:
    """Fraction used (0.0-1.0, may exceed 1) of each budget that applies, by scope label.

    Labels are free-form (``team:search/monthly``); the engine only needs the most-used one.
    """

    used: Mapping[str, float] = field(default_factory=dict)

    def worst(self) -> tuple[str, float] | None:
        if not self.used:
            return None
        scope = max(self.used, key=lambda s: (self.used[s], s))
        return scope, self.used[scope]


class Candidate(NamedTuple):
    """One catalogue model as considered for one request."""

    model: str
    provider: str
    #: For the task (under ``all_tasks``: the lowest of the tasks checked); None: not scored.
    capability: int | None
    #: Expected completion tokens used for the estimate (all ``n`` choices).
    completion_tokens: int
    cost_micro: int
    eligible: bool
    #: ``chosen``, ``fallback``, ``eligible`` (qualifies, lost on rank) or ``ineligible``.
    role: str
    #: Why it is not the choice (every failed check for an ineligible one).
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The choice, the fallbacks and the reasons. Usable where :class:`router.decide.Decision`
    is (``model``, ``chain``, ``reason``, ``task``, ``confidence``, ``notes``)."""

    model: str
    chain: tuple[str, ...]
    reason: str
    task: str | None
    confidence: float | None
    notes: tuple[str, ...]
    requested: str
    #: ``requested`` after ``rewrites``.
    target: str
    #: The route that decided (after a near-budget switch); None for a concrete model.
    route: str | None
    #: ``route``, ``override``, ``classifier``, ``low_confidence`` or ``none``.
    task_source: str
    #: The tasks whose bar a model had to meet, and the bars (after the route's ``bar_shift``,
    #: near-budget lowering and the prompt's difficulty).
    checked_tasks: tuple[str, ...]
    bars: Mapping[str, int]
    prompt_tokens: int
    max_tokens: int | None
    n: int
    stream: bool
    cost_micro: int | None
    reference_model: str | None
    reference_cost_micro: int | None
    budget_scope: str | None
    budget_used: float | None
    budget_step: NearBudgetStep | None
    policy_version: str
    error: RouteError | None = None
    #: The prompt's estimated difficulty, and the bars before it moved them.
    difficulty: DifficultyGuess | None = None
    base_bars: Mapping[str, int] = field(default_factory=dict)
    #: Builds :attr:`candidates` on first use: the request path never pays for the table.
    _table: Callable[[], tuple[Candidate, ...]] = field(default=tuple, repr=False, compare=False)
    _cache: list[tuple[Candidate, ...]] = field(default_factory=list, repr=False, compare=False)

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        """Every catalogue chat model: the choice, the fallbacks, then the rest by cost, each
        with its estimated cost and why it is not the choice."""
        if not self._cache:
            self._cache.append(self._table())
        return self._cache[0]

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def fallbacks(self) -> tuple[str, ...]:
        return self.chain[1:]

    @property
    def savings_micro(self) -> int | None:
        """Estimated cost on the reference model minus on the choice (negative: costlier)."""
        if self.cost_micro is None or self.reference_cost_micro is None:
            return None
        return self.reference_cost_micro - self.cost_micro
