"""The decision rule on a small synthetic catalogue, where every figure can be checked by hand.

Prices (µ$ per 1M tokens, in/out): tiny 50k/100k, small 100k/400k, mid and think 300k/500k,
huge-ctx 1M/4M, big 3M/15M. Expected completion without max_tokens: 256 (expression),
1024 (reasoning), 512 (unknown task); think's output_multiplier is 3.
"""

from __future__ import annotations

import pytest

from router.auth import Caller
from router.errors import (
    ContextTooLong,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from router.policy import (
    BudgetState,
    RouteFacts,
    decide,
    decision_headers,
    evaluate,
    explain_json,
    reference_cost_micro,
)
from router.policy.compile import Policy
from tests.policy.conftest import DEV, LIMITED, Guess, make

EXPR = Guess("expression", 0.95)
REAS = Guess("reasoning", 0.95)


def facts(model: str = "auto", prompt: int = 100, **kw: object) -> RouteFacts:
    return RouteFacts(model=model, prompt_tokens=prompt, **kw)  # type: ignore[arg-type]


def by_model(d: object) -> dict[str, object]:
    return {c.model: c for c in d.candidates}  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------- the basic rule


def test_expression_goes_to_the_cheapest_model_that_meets_the_bar(policy: Policy) -> None:
    d = evaluate(facts(classification=EXPR), policy)
    assert d.ok and d.model == "small"
    assert d.chain == ("small", "mid", "think")  # next cheapest qualifying, max_fallbacks 2
    assert d.cost_micro == 113  # ceil((100 x 100k + 256 x 400k) / 1e6)
    assert d.task == "expression" and d.task_source == "classifier" and d.bars == {"expression": 50}
    c = by_model(d)
    assert c["tiny"].role == "ineligible"
    assert c["tiny"].reasons == ("expression capability 40 < bar 50",)
    assert c["huge-ctx"].role == "eligible" and "beyond max_fallbacks (2)" in c["huge-ctx"].reasons[0]
    assert [x.model for x in d.candidates][:3] == ["small", "mid", "think"]


def test_routes_pass_over_models_the_gateway_cannot_call(policy: Policy) -> None:
    """A model whose key is unset (``AppState.unavailable``) is skipped by routes, with the
    reason in the table; a request naming it still goes to it."""
    down = {"small": "OPENAI_API_KEY is not set in the gateway's environment"}
    d = evaluate(facts(classification=EXPR), policy, unavailable=down)
    assert d.ok and d.model == "mid" and "small" not in d.chain
    assert by_model(d)["small"].role == "ineligible"
    assert by_model(d)["small"].reasons == (down["small"],)
    assert decide(facts("small", classification=EXPR), policy, unavailable=down).model == "small"


def test_a_route_with_no_model_it_can_call_is_503_naming_why(policy: Policy) -> None:
    down = {r.name: f"KEY_{r.name.upper()} is not set" for r in policy.rows}
    d = evaluate(facts(classification=EXPR), policy, unavailable=down)
    assert d.error is not None and d.error.kind == "unavailable"
    assert "small: KEY_SMALL is not set" in d.error.message
    with pytest.raises(ServiceUnavailable):
        decide(facts(classification=EXPR), policy, unavailable=down)


def test_reasoning_goes_to_mid_and_savings_are_against_the_strongest(policy: Policy) -> None:
    d = evaluate(facts(classification=REAS), policy)
    assert d.model == "mid" and d.chain == ("mid", "think", "huge-ctx")
    assert d.cost_micro == 542
    assert by_model(d)["think"].completion_tokens == 3072  # output_multiplier 3
    assert d.reference_model == "big" and d.reference_cost_micro == 15660
    assert d.savings_micro == 15660 - 542
    assert by_model(d)["small"].reasons == ("reasoning capability 50 < bar 70",)


def test_tie_on_cost_goes_to_higher_capability_then_name() -> None:
    # max_tokens given: the multiplier does not apply, mid and think cost the same (80 µ$).
    d = evaluate(facts(classification=REAS, max_tokens=100), make())
    assert by_model(d)["mid"].cost_micro == by_model(d)["think"].cost_micro == 80
    assert d.model == "think"  # 85 > 72
    assert "same cost as think, lower capability" in by_model(d)["mid"].reasons[0]
    same = make(base=make_base(think_reasoning=72))
    d = evaluate(facts(classification=REAS, max_tokens=100), same)
    assert d.model == "mid"  # same cost, same capability: by name
    assert "comes first by name" in by_model(d)["think"].reasons[0]


def make_base(think_reasoning: int) -> str:
    from tests.policy.conftest import POLICY

    return POLICY.replace("think: {reasoning: 85", f"think: {{reasoning: {think_reasoning}")


def test_n_multiplies_the_completion(policy: Policy) -> None:
    one = evaluate(facts(classification=EXPR), policy)
    three = evaluate(facts(classification=EXPR, n=3), policy)
    assert by_model(three)["small"].completion_tokens == 3 * by_model(one)["small"].completion_tokens
    assert three.cost_micro == 318  # ceil((100 x 100k + 768 x 400k) / 1e6)


# ------------------------------------------------------------------------------- constraints


def test_context_window_and_output_limit(policy: Policy) -> None:
    cheap = make("""
        routes:
          auto-cheap: {min_capability: {reasoning: 0, expression: 0}}
        """)
    assert evaluate(facts("auto-cheap", 7000, classification=EXPR), cheap).model == "tiny"
    d = evaluate(facts("auto-cheap", 7900, classification=EXPR), cheap)
    assert d.model == "small"
    assert "exceed its context window 8000" in by_model(d)["tiny"].reasons[0]
    d = evaluate(facts(classification=REAS, max_tokens=10_000), policy)
    assert d.model == "think"
    assert by_model(d)["mid"].reasons[0] == "max_tokens 10000 exceeds its output limit 8000"


def test_cost_limit_per_request() -> None:
    p = make("""
        constraints: {max_cost_per_request_usd: 0.0005}
        """)
    d = evaluate(facts(classification=REAS), p)  # mid 542 µ$ > 500
    assert d.model == "small"  # none qualifies under 500 -> most capable within the limit
    assert any("when_none_qualify" in n for n in d.notes)
    assert "exceeds the limit 500" in by_model(d)["mid"].reasons[0]
    strict = make("""
        constraints: {max_cost_per_request_usd: 0.00001}
        """)
    d = evaluate(facts(classification=EXPR), strict)
    assert not d.ok and d.error is not None and d.error.kind == "cost" and d.model == ""
    with pytest.raises(InvalidRequest) as exc:
        decide(facts(classification=EXPR), strict)
    assert exc.value.code == "cost_limit_exceeded"
    with pytest.raises(InvalidRequest):  # a named model over the limit is refused too
        decide(facts("big"), strict)


def test_config_key_models_limit_the_candidates_and_the_chain(policy: Policy) -> None:
    d = evaluate(facts(classification=REAS, caller=LIMITED), policy)
    assert d.model == "mid" and d.chain == ("mid",)
    assert "key 'limited' may not use it" in by_model(d)["think"].reasons[0]
    d = evaluate(facts(classification=EXPR, caller=LIMITED), policy)
    assert d.chain == ("small", "mid")


def test_access_rules_teams_users_keys_and_providers() -> None:
    p = make("""
        access:
          teams: {search: {allow: [small, tiny, big]}}
          users: {alice: {deny: [big]}}
        """)
    d = evaluate(facts(classification=REAS, caller=DEV), p)
    # Nothing the team may use meets 70: the most capable allowed one serves, with a note.
    assert d.model == "small" and "when_none_qualify" in d.notes[0]
    assert by_model(d)["big"].reasons == ("user 'alice' may not use it (access.users.alice)",)
    assert "team 'search'" in by_model(d)["mid"].reasons[0]
    p = make("""
        when_none_qualify: refuse
        access:
          keys: {dev: {allow: [small, tiny]}}
        """)
    d = evaluate(facts(classification=REAS, caller=DEV), p)
    assert d.error is not None and d.error.kind == "no_model"
    with pytest.raises(InvalidRequest) as exc:
        decide(facts(classification=REAS, caller=DEV), p)
    assert exc.value.code == "no_eligible_model"
    p = make("""
        constraints: {avoid_providers: [deepseek], deny_models: [big]}
        """)
    d = evaluate(facts(classification=REAS), p)
    assert d.model == "huge-ctx" and d.chain == ("huge-ctx",)
    assert "provider 'deepseek' is avoided" in by_model(d)["mid"].reasons[0]


def test_no_permitted_model_is_403_and_nothing_fits_is_400(policy: Policy) -> None:
    nobody = Caller("x", "u", "t", frozenset({"embed"}))
    with pytest.raises(PermissionDenied):
        decide(facts(classification=EXPR, caller=nobody), policy)
    with pytest.raises(ContextTooLong):
        decide(facts(prompt=2_000_000, classification=EXPR), policy)


# ------------------------------------------------------------------------------- task and routes


def test_low_confidence_rules() -> None:
    unsure = Guess("expression", 0.5)
    d = evaluate(facts(classification=unsure), make())  # default: all_tasks
    assert d.task_source == "low_confidence" and d.checked_tasks == ("reasoning", "expression")
    assert d.model == "mid" and d.bars == {"reasoning": 70, "expression": 50}
    assert by_model(d)["small"].reasons == ("reasoning capability 50 < bar 70",)
    d = evaluate(facts(classification=None), make())
    assert d.task is None and d.model == "mid"
    d = evaluate(facts(classification=unsure), make("low_confidence: {treat_as: classified}\n"))
    assert d.model == "small" and d.checked_tasks == ("expression",)
    d = evaluate(facts(classification=unsure), make("low_confidence: {treat_as: reasoning}\n"))
    assert d.task == "reasoning" and d.model == "mid"
    d = evaluate(facts(classification=Guess("expression", 0.3)),
                 make("low_confidence: {below: 0.2}\n"))
    assert d.task_source == "classifier" and d.model == "small"


def test_override_and_fixed_task_routes(policy: Policy) -> None:
    d = evaluate(facts(classification=EXPR, task_override="reasoning"), policy)
    assert d.task == "reasoning" and d.task_source == "override" and d.model == "mid"
    d = evaluate(facts("auto:expression", classification=REAS, task_override="reasoning"), policy)
    assert d.task == "expression" and d.task_source == "route" and d.model == "small"
    assert evaluate(facts("auto:reasoning", classification=EXPR), policy).model == "mid"


def test_user_routes() -> None:
    p = make("""
        routes:
          auto-best: {objective: most_capable}
          auto-deep: {models: [think, big], task: reasoning, max_fallbacks: 0}
          auto-strict: {min_capability: {expression: 90}}
        """)
    d = evaluate(facts("auto-best", classification=REAS), p)
    assert d.model == "big" and d.chain == ("big", "think", "huge-ctx")
    assert "less capable than big" in by_model(d)["think"].reasons[0]
    d = evaluate(facts("auto-deep", classification=EXPR), p)
    assert d.model == "think" and d.chain == ("think",) and d.route == "auto-deep"
    assert by_model(d)["mid"].reasons[0] == "not in route 'auto-deep'"
    assert evaluate(facts("auto-strict", classification=EXPR), p).model == "big"


def test_near_budget_lowers_the_bar_then_switches_route() -> None:
    p = make("""
        near_budget:
          - {at: 0.5, lower_bar_by: 25}
          - {at: 0.9, route: auto-cheap}
        routes:
          auto-cheap: {min_capability: {reasoning: 0, expression: 0}}
        """)
    f = facts(classification=REAS)
    assert evaluate(f, p, budget=BudgetState({"team:search/monthly": 0.4})).model == "mid"
    d = evaluate(f, p, budget=BudgetState({"team:search/monthly": 0.6, "key:dev/daily": 0.1}))
    assert d.model == "small" and d.bars == {"reasoning": 45}
    assert d.budget_scope == "team:search/monthly" and d.budget_step is not None
    assert "bars lowered by 25" in d.notes[0]
    d = evaluate(f, p, budget=BudgetState({"global/total": 0.95}))
    assert d.model == "tiny" and d.route == "auto-cheap"
    assert "route auto -> auto-cheap" in d.notes[0]
    # A request naming a model is not switched.
    assert evaluate(facts("big"), p, budget=BudgetState({"g": 0.99})).model == "big"
    assert BudgetState().worst() is None


# ------------------------------------------------------------------------------- named models


def test_a_named_model_is_served_with_its_permitted_fallbacks(policy: Policy) -> None:
    d = evaluate(facts("big", classification=REAS), policy)
    assert d.model == "big" and d.chain == ("big", "mid", "small") and d.route is None
    assert d.reason == "requested" and d.task == "reasoning"
    assert by_model(d)["tiny"].reasons == ("not requested (the request names a model)",)
    assert d.savings_micro == 0
    with pytest.raises(PermissionDenied):
        decide(facts("big", caller=LIMITED), policy)
    assert decide(facts("mid", caller=LIMITED), policy).chain == ("mid", "small")
    with pytest.raises(ContextTooLong):
        decide(facts("tiny", 7000, max_tokens=2000), policy)
    for missing in ("nope", "embed"):
        with pytest.raises(ModelNotFound):
            decide(facts(missing), policy)


def test_rewrites() -> None:
    p = make("""
        rewrites:
          gpt-4: big
          legacy: auto:reasoning
          auto: auto-cheap
        routes:
          auto-cheap: {min_capability: {reasoning: 0, expression: 0}}
        """)
    d = decide(facts("gpt-4"), p)
    assert d.model == "big" and d.target == "big" and d.requested == "gpt-4"
    assert d.notes == ("rewritten: gpt-4 -> big (rewrites)",)
    assert decide(facts("legacy", classification=EXPR), p).model == "mid"
    assert decide(facts("auto", classification=REAS), p).model == "tiny"


# ------------------------------------------------------------------------------- explain


def test_explain_json_and_headers(policy: Policy) -> None:
    d = evaluate(facts(classification=REAS), policy)
    j = explain_json(d, policy, signals=("code block",))
    assert j["model"] == "mid" and j["fallbacks"] == ["think", "huge-ctx"]
    assert j["estimated_cost"] == {"micro_usd": 542, "usd": 0.000542}
    assert j["reference"]["model"] == "big"
    assert j["savings"]["micro_usd"] == 15118
    assert j["savings"]["fraction"] == pytest.approx(15118 / 15660)
    assert j["task"] == {"name": "reasoning", "confidence": 0.95, "source": "classifier",
                         "checked": ["reasoning"], "bars": {"reasoning": 70},
                         "signals": ["code block"]}
    assert len(j["candidates"]) == 6 and j["error"] is None
    first = j["candidates"][0]
    assert first["role"] == "chosen" and first["capabilities"] == {"reasoning": 72, "expression": 70}
    h = decision_headers(d)
    assert h["x-router-route"] == "auto" and h["x-router-cost-estimate-usd"] == "0.000542"
    assert h["x-router-reference-model"] == "big"
    assert h["x-router-reference-cost-estimate-usd"] == "0.015660"
    bad = explain_json(evaluate(facts("nope"), policy))
    assert bad["model"] is None and bad["error"]["code"] == "model_not_found"


def test_reference_cost_for_actual_usage(policy: Policy) -> None:
    assert reference_cost_micro(policy, 100, 200) == 3300  # 100 x 3M + 200 x 15M pico-$


def test_decision_is_usable_where_the_core_decision_is(policy: Policy) -> None:
    d = decide(facts(classification=REAS), policy)
    for attr in ("model", "chain", "reason", "task", "confidence", "notes"):
        assert hasattr(d, attr)
    assert d.candidates is d.candidates  # built once, on demand


def test_a_decision_takes_microseconds(policy: Policy) -> None:
    """Generous bound (measured ~40 µs on a slow 2-core VM): catches an accidental O(n²) or a
    parse per request, not machine noise."""
    import time

    f = facts(classification=EXPR)
    for _ in range(200):
        evaluate(f, policy)
    best = min(_timed(lambda: evaluate(f, policy), time.perf_counter) for _ in range(5))
    assert best < 500e-6


def _timed(fn: object, clock: object, n: int = 500) -> float:
    t0 = clock()  # type: ignore[operator]
    for _ in range(n):
        fn()  # type: ignore[operator]
    return (clock() - t0) / n  # type: ignore[operator]


def test_a_key_listing_routes(policy: Policy) -> None:
    """``models: [auto]``: auto over every model, no model by name, no other route."""
    only_auto = Caller("svc", "u", "t", frozenset({"auto"}))
    assert decide(facts(classification=REAS, caller=only_auto), policy).model == "mid"
    with pytest.raises(PermissionDenied):
        decide(facts("mid", caller=only_auto), policy)
    with pytest.raises(PermissionDenied):
        decide(facts("auto:reasoning", caller=only_auto), policy)
    both = Caller("svc", "u", "t", frozenset({"auto", "small"}))
    d = decide(facts(classification=REAS, caller=both), policy)
    assert d.model == "small" and d.chain == ("small",)  # relaxed: small is all it may use
