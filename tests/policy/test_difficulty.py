"""The policy's difficulty rule: how an estimated difficulty moves the bars, and its file."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.config import Config
from router.costs.pricing import PricedModel
from router.policy import PolicyError, RouteFacts, evaluate
from router.policy.difficulty import move_bar
from tests.policy.conftest import Guess, make


@dataclass(frozen=True)
class D:
    """An estimate (the engine takes it as a fact)."""

    logit: float

    @property
    def value(self) -> float:
        return 1 / (1 + math.exp(-self.logit))

    @property
    def band(self) -> str:
        return "easy" if self.value < 0.35 else ("hard" if self.value >= 0.65 else "medium")


zs = st.floats(-8, 8, allow_nan=False)
bars = st.integers(0, 100)


@given(bar=bars, z1=zs, z2=zs, w=st.floats(0, 4), floor=st.none() | bars)
def test_a_harder_prompt_never_gets_a_lower_bar(bar: int, z1: float, z2: float, w: float,
                                               floor: int | None) -> None:
    lo, hi = sorted((z1, z2))
    assert move_bar(bar, lo, w, floor) <= move_bar(bar, hi, w, floor)


@given(b1=bars, b2=bars, z=zs, w=st.floats(0, 4), floor=st.none() | bars)
def test_a_higher_bar_stays_higher(b1: int, b2: int, z: float, w: float,
                                   floor: int | None) -> None:
    lo, hi = sorted((b1, b2))
    assert move_bar(lo, z, w, floor) <= move_bar(hi, z, w, floor)


def test_the_rule_on_numbers_worked_out_by_hand() -> None:
    # bar 78 is logit(.78) = 1.2657; an easy prompt at z = -1: sigmoid(.2657) = .566 -> 57
    assert move_bar(78, -1.0, 1.0, None) == 57
    assert move_bar(78, 1.0, 1.0, None) == 91  # sigmoid(2.2657) = .906 -> 91
    assert move_bar(78, 0.0, 1.0, None) == 78 and move_bar(78, -3.0, 0.0, None) == 78
    assert move_bar(50, -2.0, 1.0, 42) == 42  # 12 would be below the floor
    assert move_bar(30, -2.0, 1.0, 42) == 30  # a bar below the floor is not moved down
    assert move_bar(0, 5.0, 1.0, None) == 0 and move_bar(100, -5.0, 1.0, None) == 100


DIFF = """
difficulty:
  weight: 1.0
  floor: {reasoning: 30}
"""


def facts(z: float | None, task: str = "reasoning", model: str = "auto") -> RouteFacts:
    return RouteFacts(model, 500, None, 1, Guess(task, 0.99),
                      difficulty=D(z) if z is not None else None)


def test_easy_prompts_go_cheaper_and_hard_ones_dearer(cfg: Config,
                                                      cat: dict[str, PricedModel]) -> None:
    p = make(DIFF, cfg=cfg, cat=cat)
    plain = evaluate(facts(None), p)
    assert plain.bars == {"reasoning": 70} and plain.model == "mid"
    easy, hard = evaluate(facts(-2.0), p), evaluate(facts(+2.0), p)
    assert easy.base_bars == {"reasoning": 70} and easy.bars["reasoning"] < 70
    assert hard.bars["reasoning"] > 70
    assert easy.cost_micro is not None and hard.cost_micro is not None
    assert easy.cost_micro < plain.cost_micro < hard.cost_micro  # type: ignore[operator]
    assert (easy.difficulty, easy.model) == (D(-2.0), "small")


@settings(max_examples=150, deadline=None)
@given(z=zs, s1=st.integers(-100, 100), s2=st.integers(-100, 100),
       task=st.sampled_from(["reasoning", "expression"]), prompt=st.integers(0, 100_000))
def test_the_knob_is_monotone_in_cost(cfg: Config, cat: dict[str, PricedModel], z: float,
                                      s1: int, s2: int, task: str, prompt: int) -> None:
    """A higher bar_shift never chooses a cheaper model (for one request, any difficulty)."""
    p = make(DIFF, cfg=cfg, cat=cat)
    lo, hi = sorted((s1, s2))
    route = p.routes["auto"]
    f = replace(facts(z, task), prompt_tokens=prompt)
    a = evaluate(f, replace(p, routes={**p.routes, "auto": replace(route, shift=lo)}))
    b = evaluate(f, replace(p, routes={**p.routes, "auto": replace(route, shift=hi)}))
    if a.ok and b.ok:
        assert a.bars[task] <= b.bars[task]
        if not a.notes and not b.notes:  # both chose among qualifying models
            assert a.cost_micro <= b.cost_micro  # type: ignore[operator]


def test_a_policy_without_difficulty_ignores_the_estimate(cfg: Config,
                                                          cat: dict[str, PricedModel]) -> None:
    p = make(cfg=cfg, cat=cat)
    assert evaluate(facts(-5.0), p).bars == {"reasoning": 70}


@pytest.mark.parametrize(("extra", "message"), [
    ("difficulty: {weight: -1}\n", "p.yaml:12: difficulty.weight: Input should be greater than "
                                   "or equal to 0"),
    ("difficulty: {weight: 1, floor: {reasoning: 101}}\n",
     "p.yaml:12: difficulty.floor.reasoning: Input should be less than or equal to 100"),
    ("difficulty: {wieght: 1}\n", "p.yaml:12: difficulty.wieght: unknown key"),
    ("difficulty: {model: nowhere.json}\n", "p.yaml:12: difficulty.model: cannot read"),
])
def test_bad_difficulty_sections_name_file_line_and_key(extra: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        make(extra)
    assert any(p.startswith(message) for p in info.value.problems), info.value.problems


def test_a_model_file_that_is_not_one(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text(json.dumps({"object": "something else"}))
    with pytest.raises(PolicyError) as info:
        make("difficulty: {model: d.json}\n", path=str(tmp_path / "p.yaml"))
    assert "is not a difficulty model" in str(info.value)
