"""Replaying outcome rows through the gateway's own decision.

Each row becomes the chat request a client would send (``{"model": route, "messages": ...}``)
and goes through steps 1-4 exactly as ``POST /v1/route`` runs them
(:func:`router.policy.request.facts_for_body`, then :func:`router.policy.engine.evaluate`): the
same token counting, classifier, prices and policy. No HTTP, no model call: the chosen model's
score in the row is the quality, and its cost is the row's tokens at the model's price.

Costs per row and model, in integer µ$: the prompt counted with that model's tokenizer (as the
gateway recounts for the model that answers), and the output tokens the row gives
(``output_tokens``, or ``responses`` counted with the model's tokenizer), else the policy's
expected output for the task on that model (what the engine ranks by).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from router.costs.estimate import cost_micro, expected_completion_tokens
from router.evaluate.outcomes import OutcomeRow
from router.evaluate.progress import Progress
from router.evaluate.world import World
from router.policy.compile import Policy
from router.policy.decision import RouteDecision, RouteFacts
from router.policy.engine import estimate_row, evaluate
from router.policy.request import Classify, facts_for_body
from router.tokens import count_chat_tokens, count_text_tokens, tokenizer_for

#: The knob values a sweep starts from: every bar shifted by -100 ... +100 points.
DEFAULT_SHIFTS: tuple[float, ...] = tuple(float(s) for s in range(-100, 101, 4))
#: A sweep refines between two knob values whose decisions differ on more than this share of
#: the rows (difficulty moves bars by fractions of a point: a coarse grid would jump), until
#: this many knob values are tried or the gap is this small.
REFINE_SHARE = 0.01
MAX_SETTINGS = 120
MIN_GAP = 0.01


@dataclass(frozen=True)
class Table:
    """What each model would have scored and cost on each row."""

    models: tuple[str, ...]
    #: (rows, models) scores in [0, 1].
    scores: npt.NDArray[np.float64]
    #: (rows, models) integer µ$.
    cost: npt.NDArray[np.int64]

    @property
    def n(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True)
class Prepared:
    """Rows turned into requests, counted and classified once, ready to decide many times."""

    world: World
    route: str
    rows: Sequence[OutcomeRow]
    facts: Sequence[RouteFacts]
    #: The decision at the policy's own settings.
    decisions: Sequence[RouteDecision]
    table: Table

    def index(self) -> Mapping[str, int]:
        return {m: i for i, m in enumerate(self.table.models)}


def body_of(row: OutcomeRow, route: str) -> dict[str, Any]:
    """The chat-completions body a client would send for ``row``."""
    return {"model": route, "messages": [dict(m) for m in row.messages]}


def prepare(world: World, rows: Sequence[OutcomeRow], route: str, classify: Classify | None,
            *, progress: bool | None = None) -> Prepared:
    """Count, classify and decide every row once; price every row on every model."""
    policy = world.policy
    if route not in policy.routes:
        known = ", ".join(policy.routes)
        from router.evaluate.errors import EvalInputError

        raise EvalInputError([f"unknown route {route!r} (the policy has: {known})"])
    models = tuple(world.catalogue)
    tokenizers = {m: tokenizer_for(world.config.models[m]) for m in models}
    n, k = len(rows), len(models)
    scores = np.zeros((n, k))
    cost = np.zeros((n, k), dtype=np.int64)
    facts: list[RouteFacts] = []
    decisions: list[RouteDecision] = []
    priced = policy.priced_by_name
    with Progress("pricing and classifying", n, enabled=progress) as bar:
        for i, row in enumerate(rows):
            body = body_of(row, route)
            f = facts_for_body(body, policy, classify=classify, tokenizers=tokenizers)
            d = evaluate(f, policy)
            facts.append(f)
            decisions.append(d)
            counts: dict[str, int] = {}
            for j, m in enumerate(models):
                tok = tokenizers[m]
                if tok not in counts:
                    counts[tok] = count_chat_tokens(body, tok)
                prompt = counts[tok]
                scores[i, j] = row.scores[m]
                cost[i, j] = cost_micro(world.catalogue[m].price, prompt,
                                        _output_tokens(row, m, tok, priced[m], d, prompt, policy))
            bar.advance()
    return Prepared(world, route, rows, facts, decisions, Table(models, scores, cost))


def _output_tokens(row: OutcomeRow, model: str, tokenizer: str, priced: Any,
                   decision: RouteDecision, prompt: int, policy: Policy) -> int:
    if row.output_tokens is not None and model in row.output_tokens:
        return row.output_tokens[model]
    if row.responses is not None and model in row.responses:
        return count_text_tokens(row.responses[model], tokenizer)
    base = expected_completion_tokens(None, decision.task, prompt, policy.costs)
    return estimate_row(priced, base, None, 1, prompt)[0]


def with_shift(policy: Policy, route: str, shift: float) -> Policy:
    """``policy`` with the route's ``bar_shift`` set to ``shift`` (the sweep's knob)."""
    r = policy.routes[route]
    return replace(policy, routes={**policy.routes, route: replace(r, shift=shift)},
                   _caller_cache={})


def choose(prep: Prepared, policy: Policy,
           facts: Sequence[RouteFacts] | None = None) -> npt.NDArray[np.int64]:
    """The model index each row goes to under ``policy`` (-1: the request is refused)."""
    index = prep.index()
    out = np.empty(len(prep.rows), dtype=np.int64)
    for i, f in enumerate(facts if facts is not None else prep.facts):
        d = evaluate(f, policy)
        out[i] = index[d.model] if d.ok else -1
    return out


def choose_between(prep: Prepared, policy: Policy, lower: npt.NDArray[np.int64],
                   upper: npt.NDArray[np.int64],
                   facts: Sequence[RouteFacts] | None = None) -> npt.NDArray[np.int64]:
    """:func:`choose` at a knob value between two already replayed ones, ``lower`` and
    ``upper`` their choices: only the rows they disagree on are evaluated again.

    Exact because a row's choice is monotone in ``bar_shift``: the shift raises every bar of
    the row together (the difficulty rule and floors are monotone in it), so the models
    clearing the bar at a higher shift are a subset of those at a lower one. A model that is
    the cheapest of the larger set and still in the smaller is the cheapest of every set in
    between; and when nothing clears the higher bar, the fallback (the most capable model)
    clears every bar that anything clears. ``tests/evaluate`` checks it against :func:`choose`
    on every knob value of a sweep."""
    index = prep.index()
    rows = facts if facts is not None else prep.facts
    out = lower.copy()
    for i in np.nonzero(lower != upper)[0].tolist():
        d = evaluate(rows[i], policy)
        out[i] = index[d.model] if d.ok else -1
    return out


def sweep(prep: Prepared, shifts: Sequence[float] = DEFAULT_SHIFTS,
          facts: Sequence[RouteFacts] | None = None, *, progress: bool | None = None,
          max_settings: int = MAX_SETTINGS, refine_share: float = REFINE_SHARE,
          ) -> list[tuple[float, npt.NDArray[np.int64]]]:
    """Choices at knob values (``bar_shift`` of the replayed route), by increasing value:
    ``shifts``, then midpoints wherever two neighbours' decisions differ on more than
    ``refine_share`` of the rows, until ``max_settings`` values have been tried.

    Only the two ends of ``shifts`` are replayed on every row; each value in between is
    replayed by bisection on the rows where its neighbours disagree (:func:`choose_between`)."""
    policy = prep.world.policy
    at: dict[float, npt.NDArray[np.int64]] = {}
    budget = max(max_settings, len(shifts))
    limit = max(1, int(refine_share * len(prep.rows)))
    grid = sorted(set(shifts))

    def at_shift(s: float, lower: float | None = None, upper: float | None = None) -> None:
        shifted = with_shift(policy, prep.route, s)
        if lower is None or upper is None:
            at[s] = choose(prep, shifted, facts)
        else:
            at[s] = choose_between(prep, shifted, at[lower], at[upper], facts)
        bar.advance()

    with Progress("sweeping the knob", budget, enabled=progress) as bar:
        at_shift(grid[0])
        if len(grid) > 1:
            at_shift(grid[-1])
        spans = [(0, len(grid) - 1)]
        while spans:  # bisection over the grid's indices
            i, j = spans.pop()
            if j - i < 2:
                continue
            m = (i + j) // 2
            at_shift(grid[m], grid[i], grid[j])
            spans += [(i, m), (m, j)]
        while len(at) < budget:
            keys = sorted(at)
            gaps = [(int((at[a] != at[b]).sum()), a, b) for a, b in itertools.pairwise(keys)
                    if b - a > MIN_GAP]
            gaps = [g for g in gaps if g[0] > limit]
            if not gaps:
                break
            for _, a, b in sorted(gaps, reverse=True)[: budget - len(at)]:
                at_shift(round((a + b) / 2, 4), a, b)
    return sorted(at.items())


# ------------------------------------------------------------------- refitting the difficulty


def with_difficulty(prep: Prepared, estimates: Sequence[Any]) -> list[RouteFacts]:
    """The prepared facts with these difficulty estimates instead of the policy's."""
    return [replace(f, difficulty=d) for f, d in zip(prep.facts, estimates, strict=True)]


def kfold_difficulty(prep: Prepared, k: int, *, hashed: bool, seed: int = 0,
                     progress: bool | None = None) -> list[Any]:
    """Each row's difficulty from an estimate fitted on the other ``k - 1`` folds of the
    replayed rows (cross-fitting: no row is estimated by a model that saw it)."""
    from router.difficulty.fit import fit_difficulty
    from router.difficulty.model import difficulty_featurizer
    from router.difficulty.train import training_sets

    n = len(prep.rows)
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.RandomState(seed).permutation(n)] = np.arange(n) % k
    out: list[Any] = [None] * n
    featurizer = difficulty_featurizer()
    with Progress(f"refitting the difficulty ({k} folds)", k, enabled=progress) as bar:
        for j in range(k):
            train = [r for r, f in zip(prep.rows, fold, strict=True) if f != j]
            model = fit_difficulty(training_sets(train), featurizer, hashed=hashed)
            for i in np.nonzero(fold == j)[0].tolist():
                out[i] = model.estimate(prep.rows[i].text)
            bar.advance()
    return out


def trained_difficulty(prep: Prepared, train_rows: Sequence[OutcomeRow], *, hashed: bool,
                       ) -> list[Any]:
    """Each row's difficulty from an estimate fitted on other outcome files only (leave one
    file out: a new kind of traffic)."""
    from router.difficulty.fit import fit_difficulty
    from router.difficulty.model import difficulty_featurizer
    from router.difficulty.train import training_sets

    model = fit_difficulty(training_sets(train_rows), difficulty_featurizer(), hashed=hashed)
    return [model.estimate(r.text) for r in prep.rows]
