"""The replay's figures on tables small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from router.evaluate import metrics as M
from router.evaluate.metrics import Point
from router.evaluate.replay import Table

# Four rows, two models. small costs 10 µ$ a row, big 100 µ$.
#            row:   0    1    2    3
SMALL_SCORES = [1.0, 0.0, 1.0, 0.0]
BIG_SCORES = [1.0, 1.0, 1.0, 0.0]
TABLE = Table(("small", "big"), np.array([SMALL_SCORES, BIG_SCORES]).T,
              np.array([[10, 100]] * 4, dtype=np.int64))


def test_point_quality_cost_and_shares() -> None:
    p = M.point(TABLE, np.array([0, 1, 0, -1]), "router", knob=3)
    # rows 0 and 2 on small (1 + 1), row 1 on big (1), row 3 refused (0, free)
    assert p.quality == pytest.approx(3 / 4)
    assert p.cost_micro == 10 + 100 + 10
    assert p.shares == {"small": 0.5, "big": 0.25}
    assert p.refused == 1 and p.knob == 3


def test_single_models_and_oracle() -> None:
    small, big = M.single(TABLE, 0), M.single(TABLE, 1)
    assert (small.quality, small.cost_micro) == (0.5, 40)
    assert (big.quality, big.cost_micro) == (0.75, 400)
    o = M.oracle(TABLE)
    # 0: both right -> small; 1: only big; 2: both -> small; 3: both wrong -> the cheapest, small
    assert o.quality == 0.75 and o.cost_micro == 10 + 100 + 10 + 10
    assert o.shares == {"small": 0.75, "big": 0.25}


def test_upper_hull_drops_dominated_and_concave_points() -> None:
    pts = [(0, 0.0), (1, 0.6), (2, 0.7), (3, 0.65), (1.5, 0.5), (2, 0.69)]
    # (3, .65) costs more for less; (1.5, .5) lies under the segment (1, .6)-(2, .7)
    assert M.upper_hull(pts) == [(0, 0.0), (1, 0.6), (2, 0.7)]
    # (1, .3) lies under the segment from (0, 0) to (2, .7): not on the hull
    assert M.upper_hull([(0, 0.0), (1, 0.3), (2, 0.7)]) == [(0, 0.0), (2, 0.7)]


def test_random_mixture_is_the_line_between_two_models() -> None:
    singles = [M.single(TABLE, 0), M.single(TABLE, 1)]
    # half way in cost between 40 and 400 µ$: half way in quality between .5 and .75
    assert M.random_quality(singles, 220) == pytest.approx(0.625)
    assert M.random_quality(singles, 10) == 0.5 and M.random_quality(singles, 999) == 0.75
    # 90% of big's quality (.675) costs 40 + (.175 / .25) * 360 = 292 µ$ at random
    assert M.random_cost_for(singles, 0.675) == pytest.approx(292)
    assert M.random_cost_for(singles, 0.8) is None


def _curve(xs: list[float], qs: list[float], costs: list[int]) -> list[Point]:
    return [Point("router", q, c, {"big": x, "small": 1 - x}, 0, i)
            for i, (x, q, c) in enumerate(zip(xs, qs, costs, strict=True))]


def test_apgr_two_models_is_mean_gap_recovered_over_strong_calls() -> None:
    weak, strong = Point("small", 0.5, 40), Point("big", 0.75, 400)
    curve = _curve([0.0, 0.5, 1.0], [0.5, 0.7, 0.75], [40, 220, 400])
    # PGR: 0, .8, 1 at 0, .5, 1 strong calls: area (0 + .8)/2 * .5 + (.8 + 1)/2 * .5 = .65
    assert M.apgr(curve, weak, strong, two_models=True) == pytest.approx(0.65)
    # a router no better than random recovers half the gap
    line = _curve([0.0, 1.0], [0.5, 0.75], [40, 400])
    assert M.apgr(line, weak, strong, two_models=True) == pytest.approx(0.5)


def test_apgr_many_models_uses_normalised_cost() -> None:
    weak, strong = Point("a", 0.4, 100), Point("c", 0.8, 500)
    curve = [Point("r", 0.4, 100), Point("r", 0.7, 200), Point("r", 0.8, 500)]
    # x = (cost - 100) / 400: 0, .25, 1; PGR 0, .75, 1
    # area: (0 + .75)/2 * .25 + (.75 + 1)/2 * .75 = .09375 + .65625 = .75
    assert M.apgr(curve, weak, strong, two_models=False) == pytest.approx(0.75)


def test_aiq_is_mean_quality_of_the_hull_over_its_cost_range() -> None:
    curve = [Point("r", 0.5, 40), Point("r", 0.7, 200), Point("r", 0.75, 400),
             Point("r", 0.6, 300)]  # the last one is under the hull
    # (.5 + .7)/2 * 160 + (.7 + .75)/2 * 200 = 96 + 145 = 241 over 360 µ$
    assert M.aiq(curve) == pytest.approx(241 / 360)
    singles = [Point("small", 0.5, 40), Point("big", 0.75, 400)]
    assert M.random_aiq(singles, 40, 400) == pytest.approx(0.625)


def test_cheapest_point_reaching_a_quality() -> None:
    curve = _curve([0.0, 0.4, 0.6, 1.0], [0.5, 0.7, 0.7, 0.75], [40, 180, 250, 400])
    hit = M.cheapest_reaching(curve, 0.7)
    assert hit is not None and hit.cost_micro == 180
    assert M.cheapest_reaching(curve, 0.9) is None
