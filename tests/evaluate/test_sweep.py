"""The knob sweep replays the values between two others only on the rows those two disagree on
(:func:`router.evaluate.replay.choose_between`); that must give exactly what replaying every row
gives, on the nine-model dcrouter file and on GSM8K, at every knob value the sweep visits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router.evaluate.modelmap import check_rows, load_model_map
from router.evaluate.outcomes import read_all
from router.evaluate.replay import choose, prepare, sweep, with_shift
from router.evaluate.world import build_world, load_base

REPO = Path(__file__).resolve().parents[2]
OUTCOMES = REPO.parent / "shared" / "data" / "outcomes"


@pytest.mark.parametrize(("name", "mapfile", "route", "every"), [
    ("dcrouter_test.jsonl", "dcrouter.yaml", "auto", 1),
    ("routellm_gsm8k.jsonl", "routellm.yaml", "auto:reasoning", 3),
])
def test_bisection_equals_replaying_every_row(name: str, mapfile: str, route: str,
                                              every: int) -> None:
    path = OUTCOMES / name
    if not path.exists():
        pytest.skip(f"no {path}")
    from router.commands.eval import _classifier

    config, doc = load_base(None, None)
    mm = load_model_map(REPO / "eval" / "maps" / mapfile, config, doc)
    rows = check_rows(mm, read_all([path]))[::every]
    world = build_world(config, doc, mm)
    prep = prepare(world, rows, route, _classifier(), progress=False)
    curve = sweep(prep, progress=False)
    assert len(curve) > 40
    changed = 0
    for shift, got in curve:
        want = choose(prep, with_shift(world.policy, route, shift))
        assert np.array_equal(got, want), shift
        changed += int((got != curve[0][1]).sum())
    assert changed > 0  # the knob moves decisions: the comparison is not vacuous
