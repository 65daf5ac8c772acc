"""Property tests: on random catalogues, policies and requests, the engine agrees with a
brute-force oracle written from the rule in docs/policy.md.

* the chosen model always qualifies (allowed, fits, under the cost limit, meets every bar);
* it is never more expensive than another qualifying candidate (ties: capability, then name);
* the fallbacks are the next qualifying ones in that order, all allowed;
* the engine never raises, and a refusal happens only when nothing can serve.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.auth import Caller
from router.config import Config
from router.costs.estimate import cost_micro, expected_completion_tokens
from router.costs.pricing import ModelLimits, ModelPrice, PricedModel
from router.policy import BudgetState, RouteFacts, evaluate, policy_from_text
from tests.policy.conftest import Guess

NAMES = ("tiny", "small", "mid", "think", "big", "huge-ctx")
CALLERS = (None, Caller("dev", "alice", "search", None),
           Caller("limited", "bob", "ads", frozenset({"small", "mid"})))

model_st = st.fixed_dictionaries({
    "in": st.integers(0, 5_000_000),
    "out": st.integers(0, 20_000_000),
    "window": st.none() | st.integers(500, 2_000_000),
    "max_out": st.none() | st.integers(50, 100_000),
    "reasoning": st.none() | st.integers(0, 100),
    "expression": st.none() | st.integers(0, 100),
    "mult": st.sampled_from([1.0, 1.0, 2.0, 3.0]),
})

scenario_st = st.fixed_dictionaries({
    "models": st.fixed_dictionaries({n: model_st for n in NAMES}),
    "bars": st.tuples(st.integers(0, 100), st.integers(0, 100)),
    "max_cost": st.none() | st.integers(1, 50_000),
    "none_qualify": st.sampled_from(["most_capable", "refuse"]),
    "treat_as": st.sampled_from(["all_tasks", "reasoning", "expression", "classified"]),
    "max_fallbacks": st.integers(0, 3),
    "model": st.sampled_from(["auto", "auto:reasoning", "auto:expression"]),
    "prompt": st.integers(0, 300_000),
    "max_tokens": st.none() | st.integers(1, 120_000),
    "n": st.integers(1, 4),
    "task": st.sampled_from(["reasoning", "expression"]),
    "confidence": st.floats(0.0, 1.0),
    "override": st.none() | st.sampled_from(["reasoning", "expression"]),
    "caller": st.sampled_from(range(len(CALLERS))),
})


def _catalogue(cfg: Config, models: dict[str, dict[str, Any]]) -> dict[str, PricedModel]:
    out = {}
    for name in NAMES:
        m = models[name]
        price = ModelPrice(m["in"], m["out"], None, "config", "test")
        limits = ModelLimits(m["window"], m["max_out"], "config")
        out[name] = PricedModel(name, cfg.models[name], price, limits)
    return out


def _policy_text(s: dict[str, Any]) -> str:
    models = {}
    for name, m in s["models"].items():
        caps = {t: m[t] for t in ("reasoning", "expression") if m[t] is not None}
        if name == "big":  # one model meets every bar, so the policy passes its own checks
            caps = {"reasoning": 100, "expression": 100}
        if not caps:
            continue
        models[name] = {**caps, "output_multiplier": m["mult"]}
    doc: dict[str, Any] = {
        "tasks": {"reasoning": {"min_capability": s["bars"][0]},
                  "expression": {"min_capability": s["bars"][1]}},
        "low_confidence": {"treat_as": s["treat_as"]},
        "when_none_qualify": s["none_qualify"],
        "models": models,
        "constraints": {"max_fallbacks": s["max_fallbacks"]},
    }
    if s["max_cost"] is not None:
        doc["constraints"]["max_cost_per_request_usd"] = s["max_cost"] / 1e6
    return json.dumps(doc)  # JSON is YAML


def _oracle(s: dict[str, Any], cat: dict[str, PricedModel], caps_of: dict[str, dict[str, Any]],
            task: str | None, checked: tuple[str, ...], bars: dict[str, int],
            caller: Caller | None) -> list[tuple[int, int, str]]:
    """Qualifying models as (cost, -capability, name), sorted: the rule, by brute force."""
    mt, n, prompt = s["max_tokens"], s["n"], s["prompt"]
    base = expected_completion_tokens(mt, task, prompt)
    out = []
    for name, pm in cat.items():
        caps = caps_of.get(name)
        if caps is None:
            continue
        one = mt if mt is not None else int(base * caps.get("output_multiplier", 1.0))
        max_out, window = pm.limits.max_output_tokens, pm.limits.context_window
        if max_out is not None:
            one = min(one, max_out)
        cost = cost_micro(pm.price, prompt, one * n)
        allowed = caller is None or caller.may_use(name)
        fits = not (mt is not None and max_out is not None and mt > max_out) and (
            window is None or prompt + one <= window)
        under = s["max_cost"] is None or cost <= s["max_cost"]
        meets = all(caps.get(t) is not None and caps[t] >= bars[t] for t in checked)
        if allowed and fits and under and meets:
            out.append((cost, -min(caps[t] for t in checked), name))
    return sorted(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=scenario_st)
def test_engine_agrees_with_brute_force(cfg: Config, s: dict[str, Any]) -> None:
    cat = _catalogue(cfg, s["models"])
    policy = policy_from_text(_policy_text(s), cfg, cat)
    caller = CALLERS[s["caller"]]
    facts = RouteFacts(s["model"], s["prompt"], s["max_tokens"], s["n"],
                       Guess(s["task"], s["confidence"]), s["override"], caller)
    d = evaluate(facts, policy)
    caps_of = {m: dict(c) for m, c in json.loads(_policy_text(s))["models"].items()}
    expected = _oracle(s, cat, caps_of, d.task, d.checked_tasks, dict(d.bars), caller)
    eligible = {c.model for c in d.candidates if c.eligible}
    assert eligible == {name for _, _, name in expected}
    assert {c.model for c in d.candidates} == set(NAMES)
    if expected:
        assert d.ok
        assert d.model == expected[0][2]
        assert d.cost_micro == expected[0][0]
        assert all(d.cost_micro <= c.cost_micro for c in d.candidates if c.eligible)
        assert d.chain == tuple(name for _, _, name in expected[: 1 + s["max_fallbacks"]])
    elif d.ok:  # served by relaxing the bar: still allowed, fitting and under the limit
        assert s["none_qualify"] == "most_capable"
        chosen = next(c for c in d.candidates if c.role == "chosen")
        assert not any(r.startswith(("key ", "team ", "not in route")) for r in chosen.reasons)
        assert all("capability" in r for r in chosen.reasons)
    else:
        assert d.model == "" and d.chain == () and d.error is not None
    for name in d.chain:
        assert caller is None or caller.may_use(name)


@settings(max_examples=100, deadline=None)
@given(s=scenario_st, used=st.floats(0, 1.5))
def test_near_budget_never_picks_a_costlier_model(cfg: Config, s: dict[str, Any],
                                                  used: float) -> None:
    """Lowering the bar can only widen the qualifying set, so the choice never costs more."""
    cat = _catalogue(cfg, s["models"])
    doc = json.loads(_policy_text(s))
    doc["near_budget"] = [{"at": 0.8, "lower_bar_by": 20}]
    policy = policy_from_text(json.dumps(doc), cfg, cat)
    facts = RouteFacts(s["model"], s["prompt"], s["max_tokens"], s["n"],
                       Guess(s["task"], s["confidence"]), s["override"], CALLERS[s["caller"]])
    plain = evaluate(facts, policy)
    near = evaluate(facts, policy, budget=BudgetState({"team": used}))
    if plain.ok and not plain.notes:  # a model qualified without relaxing the bar
        assert near.ok and near.cost_micro is not None and plain.cost_micro is not None
        assert near.cost_micro <= plain.cost_micro
