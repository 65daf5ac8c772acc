"""Quality against cost: the figures of a replay, as RouteLLM and RouterBench report routers.

Everything here is arithmetic on a :class:`~router.evaluate.replay.Table` (score and µ$ cost of
every row on every model) and the model each row went to. Definitions:

* **quality**: mean score of the chosen models over all rows (a refused row scores 0 and costs
  nothing); **cost**: total µ$.
* **single model**: every row to that model. **Oracle**: each row to the cheapest model that got
  the row's best score. **Random mixture**: the best random mix of single models at a given cost
  (RouterBench's "zero router": the upper concave hull of the single models' points; for two
  models, RouteLLM's random router).
* **curve**: the router at every value of its knob; **cost at X%**: the cheapest curve point whose
  quality is at least X% of the reference model's.
* **CPT(X%)** (RouteLLM, two-model files): the strong (reference) model's share of calls at that
  point.
* **APGR** (RouteLLM): the average, over the curve, of the performance gap recovered,
  ``(quality - weak) / (strong - weak)``, against the strong model's share of calls; with more
  than two models, against cost normalised from the cheapest single model (0) to the reference
  model (1), with "weak" the cheapest single model.
* **AIQ** (RouterBench): the area under the non-decreasing concave hull of the curve's (cost,
  quality) points, divided by the cost range it spans: the average quality the router offers
  over its range of budgets.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from router.evaluate.replay import Table

TARGETS: tuple[float, ...] = (0.90, 0.95, 0.99)


@dataclass(frozen=True)
class Point:
    """One way of serving every row: a router setting or a baseline."""

    name: str
    quality: float
    #: Total over the rows, integer µ$.
    cost_micro: int
    #: Share of the rows each model served (refused rows are in ``refused``).
    shares: dict[str, float] = field(default_factory=dict)
    refused: int = 0
    #: The knob value (``bar_shift``) for router points.
    knob: float | None = None


def point(table: Table, choices: npt.NDArray[np.int64], name: str,
          knob: float | None = None) -> Point:
    ok = choices >= 0
    rows = np.arange(table.n)
    picked = np.where(ok, choices, 0)
    q = np.where(ok, table.scores[rows, picked], 0.0)
    c = np.where(ok, table.cost[rows, picked], 0)
    counts = np.bincount(choices[ok], minlength=len(table.models))
    shares = {m: float(counts[j]) / table.n for j, m in enumerate(table.models)}
    return Point(name, float(q.mean()), int(c.sum()), shares, int((~ok).sum()), knob)


def single(table: Table, j: int) -> Point:
    return point(table, np.full(table.n, j, dtype=np.int64), table.models[j])


def oracle(table: Table) -> Point:
    """Each row to the cheapest model with the row's best score (ties: map order)."""
    best = table.scores.max(axis=1, keepdims=True)
    big = np.iinfo(np.int64).max
    cost = np.where(table.scores >= best - 1e-12, table.cost, big)
    return point(table, cost.argmin(axis=1).astype(np.int64), "oracle")


def upper_hull(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-decreasing upper concave hull of (cost, quality) points, by cost: what mixing
    the settings at random can reach (a point under it is beaten by a mix of two others)."""
    pts = sorted(set(points))
    hull: list[tuple[float, float]] = []
    for p in pts:
        if hull and p[1] <= hull[-1][1]:
            continue  # costs at least as much for no more quality
        if hull and p[0] == hull[-1][0]:
            hull.pop()  # same cost, more quality
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # drop the middle point if it lies on or under the segment from hull[-2] to p
            if (y2 - y1) * (p[0] - x1) <= (p[1] - y1) * (x2 - x1):
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def on_hull(hull: Sequence[tuple[float, float]], cost: float) -> float:
    """Quality of the hull at ``cost`` (flat beyond its ends)."""
    xs = [p[0] for p in hull]
    ys = [p[1] for p in hull]
    return float(np.interp(cost, xs, ys))


def random_quality(singles: Sequence[Point], cost: float) -> float:
    """The best random mixture of single models at ``cost`` (the zero router)."""
    return on_hull(upper_hull([(p.cost_micro, p.quality) for p in singles]), cost)


def cheapest_reaching(curve: Sequence[Point], quality: float) -> Point | None:
    """The cheapest curve point with at least ``quality`` (None: no point reaches it)."""
    ok = [p for p in curve if p.quality >= quality - 1e-12]
    return min(ok, key=lambda p: (p.cost_micro, -p.quality)) if ok else None


def random_cost_for(singles: Sequence[Point], quality: float) -> float | None:
    """The lowest cost at which a random mixture reaches ``quality`` (None: none does)."""
    hull = upper_hull([(p.cost_micro, p.quality) for p in singles])
    if quality > hull[-1][1] + 1e-12:
        return None
    if quality <= hull[0][1]:
        return hull[0][0]
    for (x1, y1), (x2, y2) in itertools.pairwise(hull):
        if y1 <= quality <= y2:
            return x1 + (quality - y1) / (y2 - y1) * (x2 - x1) if y2 > y1 else x1
    return hull[-1][0]


def _area(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> float:
    """Trapezoid rule (numpy renamed ``trapz``; this works with every version)."""
    return float(((x[1:] - x[:-1]) * (y[1:] + y[:-1])).sum() / 2)


def _x(curve: Sequence[Point], strong: str, two_models: bool, lo_cost: float,
       ref_cost: float) -> list[float]:
    if two_models:
        return [p.shares.get(strong, 0.0) for p in curve]
    span = ref_cost - lo_cost
    return [(p.cost_micro - lo_cost) / span if span else 0.0 for p in curve]


def apgr(curve: Sequence[Point], weak: Point, strong: Point, two_models: bool) -> float | None:
    """RouteLLM's average performance gap recovered (see the module docstring)."""
    gap = strong.quality - weak.quality
    if gap <= 0 or len(curve) < 2:
        return None
    xs = _x(curve, strong.name, two_models, weak.cost_micro, strong.cost_micro)
    pts = sorted(zip(xs, (p.quality for p in curve), strict=True))
    x = np.array([p[0] for p in pts])
    y = (np.array([p[1] for p in pts]) - weak.quality) / gap
    width = x[-1] - x[0]
    if width <= 0:
        return float(y.mean())
    return float(_area(x, y) / width)


def aiq(curve: Sequence[Point]) -> float | None:
    """RouterBench's AIQ: mean quality of the curve's non-decreasing hull over its cost range."""
    hull = upper_hull([(float(p.cost_micro), p.quality) for p in curve])
    if not hull:
        return None
    lo, hi = min(p.cost_micro for p in curve), hull[-1][0]
    if hi <= lo:
        return hull[-1][1]
    xs = np.array([lo, *(x for x, _ in hull if x > lo)])
    ys = np.array([on_hull(hull, float(x)) for x in xs])
    return float(_area(xs, ys) / (hi - lo))


def random_aiq(singles: Sequence[Point], lo: float, hi: float) -> float | None:
    """The random mixture's AIQ over the cost range [lo, hi] (to compare with :func:`aiq`)."""
    hull = upper_hull([(p.cost_micro, p.quality) for p in singles])
    if hi <= lo:
        return on_hull(hull, lo)
    xs = np.unique(np.array([lo, hi, *(x for x, _ in hull if lo < x < hi)], dtype=np.float64))
    ys = np.array([on_hull(hull, float(x)) for x in xs])
    return float(_area(xs, ys) / (hi - lo))
