"""The decision engine: a pure function of (request facts, policy and its catalogue, budget state).

The rule, for a request that names a route (``auto``, ``auto:reasoning``, ``auto-cheap``, ...):

1. **Task.** The route's fixed task, else the ``x-router-task`` override, else the classifier's
   answer. A confidence below ``low_confidence.below`` (or no classification at all) applies
   ``low_confidence.treat_as`` (by default: the model must meet the bar of *every* task).
2. **Budget.** The highest ``near_budget`` step reached by the most-used budget that applies
   lowers every bar and/or switches the request to an economy route.
3. **Candidates.** Every chat model of the catalogue is priced for this request (integer µ$:
   prompt tokens × input price + expected completion × output price, see :func:`estimate_row`)
   and checked, in this order: permissions (policy and key), the route's model list, context
   window and output limit, the per-request cost limit, the capability bar. A candidate that
   fails keeps every reason it failed.
4. **Choice.** Among qualifying candidates the route's objective ranks them: ``cheapest``
   sorts by (estimated cost, higher capability, name); ``most_capable`` by (higher capability,
   cost, name). The first is chosen; the next ``max_fallbacks`` are the fallback chain, so the
   chain only ever holds models the caller may use and that qualify.
5. **Nobody qualifies.** ``when_none_qualify: most_capable`` serves the most capable candidate
   that passes every hard constraint (permissions, context, cost) with a note; ``refuse`` (or no
   such candidate) returns an error: permission (403), context (400), cost or no model (400).

A request that names a catalogue model gets that model (after ``rewrites``) with its configured
fallbacks, subject to permissions, its context window and the cost limit; the candidates are
still priced so that explain output and savings are complete.

Prompt tokens are counted once, by the caller of the engine, with one tokenizer; per-candidate
tokenizer differences are approximated by that single count (the pipeline recounts exactly for
the model that answers). Everything here is arithmetic on precomputed tables: no I/O, no locks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple

from router.costs.estimate import PICO_PER_MICRO, cost_micro, expected_completion_tokens
from router.policy.compile import Policy, PricedRow, Route
from router.policy.decision import BudgetState, Candidate, RouteDecision, RouteFacts, TaskGuess
from router.policy.errors import RouteError, RouteErrorKind
from router.policy.schema import TASKS, NearBudgetStep

__all__ = [
    "OBJECTIVES",
    "BudgetState",
    "Candidate",
    "RouteDecision",
    "RouteFacts",
    "TaskGuess",
    "decide",
    "estimate_row",
    "evaluate",
    "reference_cost_micro",
]

def _task(facts: RouteFacts, route: Route | None, policy: Policy
          ) -> tuple[str | None, float | None, str, tuple[str, ...]]:
    """(task, confidence, source, tasks to check)."""
    cls = facts.classification
    conf = cls.confidence if cls is not None else None
    if route is not None and route.task is not None:
        return route.task, conf, "route", (route.task,)
    if facts.task_override in TASKS:
        task = facts.task_override
        return task, conf, "override", (task,)
    low = policy.spec.low_confidence
    if cls is not None and cls.task in TASKS and cls.confidence >= low.below:
        return cls.task, conf, "classifier", (cls.task,)
    guess = cls.task if cls is not None and cls.task in TASKS else None
    if low.treat_as == "classified" and guess is not None:
        return guess, conf, "classifier", (guess,)
    if low.treat_as in ("reasoning", "expression"):
        return low.treat_as, conf, "low_confidence", (low.treat_as,)
    return guess, conf, "low_confidence", TASKS


def _budget_step(policy: Policy, budget: BudgetState | None
                 ) -> tuple[NearBudgetStep | None, str | None, float | None]:
    worst = budget.worst() if budget is not None else None
    if worst is None:
        return None, None, None
    step = None
    for s in policy.near_budget:
        if worst[1] >= s.at:
            step = s
    return step, worst[0], worst[1]


_NONE: Mapping[str, str] = MappingProxyType({})


def evaluate(
    facts: RouteFacts,
    policy: Policy,
    *,
    budget: BudgetState | None = None,
    unavailable: Mapping[str, str] = _NONE,
) -> RouteDecision:
    """Decide without raising: a request that cannot be served has ``error`` set and
    ``model == ""`` (what ``POST /v1/route`` shows). Prices are the policy's catalogue's, joined
    to the rows at load time. ``unavailable``: models this gateway cannot call (model -> why,
    e.g. its key variable is unset), which routes pass over; a request naming one still goes to
    it (and gets the upstream's error)."""
    target = policy.rewrites.get(facts.model, facts.model)
    notes: list[str] = []
    if target != facts.model:
        notes.append(f"rewritten: {facts.model} -> {target} (rewrites)")
    step, scope, used = _budget_step(policy, budget)
    route = policy.routes.get(target)
    if route is None:
        return _concrete(facts, policy, target, notes, step, scope, used)
    caller = facts.caller
    if caller is not None and caller.models is not None and caller.models & policy.routes.keys() \
            and not caller.may_use(facts.model) and not caller.may_use(target):
        message = f"Key '{caller.alias}' may not use '{facts.model}'."
        c = _Ctx(facts, policy, target, notes, step, scope, used, _task(facts, route, policy))
        return _result(c, model="", chain=(), reason=message, route=target, bars={},
                       table=tuple, cost=None, ref_cost=None,
                       error=RouteError("permission", message))
    return _routed(facts, policy, route, target, notes, step, scope, used, unavailable)


def decide(
    facts: RouteFacts,
    policy: Policy,
    *,
    budget: BudgetState | None = None,
    unavailable: Mapping[str, str] = _NONE,
) -> RouteDecision:
    """:func:`evaluate`, raising the request's :class:`~router.errors.GatewayError` if it cannot
    be served (404 unknown model, 403 not allowed, 400 context or cost)."""
    d = evaluate(facts, policy, budget=budget, unavailable=unavailable)
    if d.error is not None:
        raise d.error.to_gateway_error()
    return d


# ---------------------------------------------------------------------------------- internals
#
# The loops below are the hot path (one pass over ~12 models per request): prices and limits
# come precomputed (:class:`PricedRow`), costs are inlined integer arithmetic in
# :func:`estimate_row` (the same rounding as :func:`router.costs.estimate.cost_micro`), and the
# explain table (reason strings, Candidate tuples) is only built if someone reads it.


class _Entry(NamedTuple):
    cost: int
    cap: int | None
    name: str
    provider: str
    comp: int
    caps: Mapping[str, int | None]
    #: Failed hard constraints (permissions, route, context, cost): usually empty.
    hard: tuple[str, ...]
    meets_bar: bool


def _clamp_bar(bar: float) -> float:
    return 0 if bar < 0 else (100 if bar > 100 else bar)


def _whole_bar(bar: float) -> int:
    """A bar with a fraction (``bar_shift``) as the whole capability it asks for."""
    return math.ceil(_clamp_bar(bar) - 1e-9)


def _cap_key(cap: int | None) -> int:
    return cap if cap is not None else -1


#: Ranking keys by route objective: a registry, so a new objective is one entry.
OBJECTIVES: dict[str, Callable[[_Entry], tuple[int, int, str]]] = {
    "cheapest": lambda e: (e.cost, -_cap_key(e.cap), e.name),
    "most_capable": lambda e: (-_cap_key(e.cap), e.cost, e.name),
}


def _by_cost(e: _Entry) -> tuple[int, str]:
    return (e.cost, e.name)


def _lowest(caps: Mapping[str, int | None], tasks: tuple[str, ...]) -> int | None:
    """The lowest capability over ``tasks`` (None if any is missing)."""
    low = 101
    for t in tasks:
        v = caps[t]
        if v is None:
            return None
        if v < low:
            low = v
    return low


def estimate_row(r: PricedRow, base: int, max_tokens: int | None, n: int, prompt: int
                 ) -> tuple[int, int, int]:
    """(completion tokens of one choice, of all ``n`` choices, estimated µ$) on ``r``.

    One choice: ``max_tokens`` when given (the caller's own bound), else the task's expected
    output × the model's ``output_multiplier``; capped by the model's output limit. The cost is
    inlined :func:`~router.costs.estimate.cost_micro`: pico-dollars, rounded up once to µ$."""
    if max_tokens is not None:
        one = max_tokens
    elif r.output_multiplier != 1.0:
        one = int(base * r.output_multiplier)
    else:
        one = base
    mo = r.max_output_tokens
    if mo is not None and one > mo:
        one = mo
    comp = one * n
    return one, comp, -(-(prompt * r.input_per_1m_micro + comp * r.output_per_1m_micro)
                        // PICO_PER_MICRO)


def _misfit(r: PricedRow, prompt: int, one: int, max_tokens: int | None) -> str | None:
    mo = r.max_output_tokens
    if max_tokens is not None and mo is not None and max_tokens > mo:
        return f"max_tokens {max_tokens} exceeds its output limit {mo}"
    window = r.context_window
    if window is not None and prompt + one > window:
        return f"{prompt} prompt + {one} completion tokens exceed its context window {window}"
    return None


def _bar_reasons(e: _Entry, bars: Mapping[str, int]) -> tuple[str, ...]:
    out = []
    for t, bar in bars.items():
        ct = e.caps[t]
        if ct is None:
            out.append(f"no {t} capability in the policy")
        elif ct < bar:
            out.append(f"{t} capability {ct} < bar {bar}")
    return tuple(out)


def _lost(x: _Entry, top: _Entry, objective: str) -> str:
    if objective == "most_capable" and x.cap != top.cap:
        return f"less capable than {top.name} ({x.cap} vs {top.cap})"
    if x.cost != top.cost:
        return f"costs more than {top.name} ({x.cost} vs {top.cost} µ$)"
    if x.cap != top.cap:
        return f"same cost as {top.name}, lower capability ({x.cap} vs {top.cap})"
    return f"tie with {top.name}, which comes first by name"


def _table(ordered: list[_Entry], rest: list[_Entry], k: int, objective: str,
           bars: Mapping[str, int], outside: Callable[[], list[_Entry]] = list,
           ) -> Callable[[], tuple[Candidate, ...]]:
    """The explain table, built on demand: ``ordered`` (chosen first) then ``rest`` and the
    rows ``outside`` the route by cost."""

    def build() -> tuple[Candidate, ...]:
        out = []
        top = ordered[0] if ordered else None
        for i, e in enumerate(ordered):
            why = (*e.hard, *_bar_reasons(e, bars))
            assert top is not None
            if i == 0:
                role = "chosen"
            else:
                lost = _lost(e, top, objective)
                role = "fallback" if i <= k else "eligible"
                if role == "eligible":
                    lost += f"; beyond max_fallbacks ({k})"
                why = (lost, *why)
            out.append(Candidate(e.name, e.provider, e.cap, e.comp, e.cost,
                                 e.meets_bar and not e.hard, role, why))
        for e in sorted([*rest, *outside()], key=_by_cost):
            why = (*e.hard, *_bar_reasons(e, bars))
            out.append(Candidate(e.name, e.provider, e.cap, e.comp, e.cost, False, "ineligible",
                                 why))
        return tuple(out)

    return build


_TaskInfo = tuple["str | None", "float | None", str, "tuple[str, ...]"]


class _Ctx(NamedTuple):
    facts: RouteFacts
    policy: Policy
    target: str
    notes: list[str]
    step: NearBudgetStep | None
    scope: str | None
    used: float | None
    task: _TaskInfo


def _result(c: _Ctx, *, model: str, chain: tuple[str, ...], reason: str, route: str | None,
            bars: Mapping[str, int], table: Callable[[], tuple[Candidate, ...]],
            cost: int | None, ref_cost: int | None, error: RouteError | None = None,
            base_bars: Mapping[str, int] | None = None) -> RouteDecision:
    f, task = c.facts, c.task
    return RouteDecision(
        model=model, chain=chain, reason=reason, task=task[0], confidence=task[1],
        notes=tuple(c.notes), requested=f.model, target=c.target, route=route,
        task_source=task[2], checked_tasks=task[3], bars=bars,
        prompt_tokens=f.prompt_tokens, max_tokens=f.max_tokens, n=f.n, stream=f.stream,
        cost_micro=cost, reference_model=c.policy.reference_model, reference_cost_micro=ref_cost,
        budget_scope=c.scope, budget_used=c.used, budget_step=c.step,
        policy_version=c.policy.version, error=error, _table=table,
        difficulty=f.difficulty, base_bars=bars if base_bars is None else base_bars,
    )


def _routed(facts: RouteFacts, policy: Policy, asked: Route, target: str,
            notes: list[str], step: NearBudgetStep | None, scope: str | None,
            used: float | None, unavailable: Mapping[str, str]) -> RouteDecision:
    route, lower = asked, 0
    if step is not None:
        lower = step.lower_bar_by
        what = []
        if step.route is not None and step.route != asked.name and step.route in policy.routes:
            route = policy.routes[step.route]
            what.append(f"route {asked.name} -> {route.name}")
        if lower:
            what.append(f"bars lowered by {lower}")
        notes.append(f"near budget: {scope} at {used:.0%} >= {step.at:.0%}: {', '.join(what)}")
    task = _task(facts, asked, policy)
    c = _Ctx(facts, policy, target, notes, step, scope, used, task)
    checked = task[3]
    move = route.shift - lower
    rule, dz = policy.difficulty, facts.difficulty
    base_bars = {t: _whole_bar(route.bars[t] + move) for t in checked}
    if rule is not None and dz is not None and rule.on:
        z = dz.logit
        bars = {t: rule.bar(t, _clamp_bar(route.bars[t] + move), z) for t in checked}
    else:
        bars = base_bars
    single = checked[0] if len(checked) == 1 else None
    bar = bars[checked[0]]
    blocked = policy.blocked_for(facts.caller)
    prompt, mt = facts.prompt_tokens, facts.max_tokens
    n = facts.n if facts.n > 1 else 1
    base = expected_completion_tokens(mt, task[0], prompt, policy.costs)
    limit, ref = route.max_cost_micro, policy.reference_model
    pool: list[_Entry] = []  # qualify
    below: list[_Entry] = []  # pass every hard constraint, fail only the bar
    rest: list[_Entry] = []  # fail a hard constraint
    permitted = fits = 0
    unreachable: list[str] = []  # permitted route models this gateway cannot call
    ref_cost = None

    def entry(r: PricedRow, in_route: bool) -> tuple[_Entry, bool, bool]:
        """The row's entry, whether the caller may use it here, and whether it also fits."""
        one, comp, cost = estimate_row(r, base, mt, n, prompt)
        caps = r.caps
        if single is not None:
            cap = caps[single]
            meets = cap is not None and cap >= bar
        else:
            cap, meets = 100, True
            for t in checked:
                ct = caps[t]
                if ct is None:
                    cap, meets = None, False
                    break
                if ct < cap:
                    cap = ct
                if ct < bars[t]:
                    meets = False
        hard: tuple[str, ...] = ()
        why = blocked.get(r.name)
        allowed = fit = False
        if why is not None:
            hard = (why,)
        elif not in_route:
            hard = (f"not in route {route.name!r}",)
        else:
            allowed = True
            down = unavailable.get(r.name)
            if down is not None:
                hard = (down,)
                unreachable.append(f"{r.name}: {down}")
        misfit = _misfit(r, prompt, one, mt)
        if misfit is not None:
            hard = (*hard, misfit)
        elif not hard:
            fit = True
        if limit is not None and cost > limit:
            hard = (*hard, f"estimated {cost} µ$ exceeds the limit {limit} µ$ per request")
        return _Entry(cost, cap, r.name, r.provider, comp, caps, hard, meets), allowed, fit

    # Only the route's rows can be chosen: the others are priced for the explanation table
    # (built on demand) and the reference model's cost only.
    for r in policy.route_rows[route.name]:
        e, allowed, fit = entry(r, True)
        permitted += allowed
        fits += fit
        if e.name == ref:
            ref_cost = e.cost
        if e.hard:
            rest.append(e)
        elif e.meets_bar:
            pool.append(e)
        else:
            below.append(e)
    outside: Callable[[], list[_Entry]] = list
    others = policy.route_others[route.name]
    if others:
        if ref_cost is None and ref is not None:
            ref_row = policy.priced_by_name.get(ref)
            if ref_row is not None:
                ref_cost = entry(ref_row, False)[0].cost

        def outside() -> list[_Entry]:
            return [entry(r, False)[0] for r in others]
    bar_text = ", ".join(f"{t} >= {bars[t]}" for t in checked)
    if pool:
        objective = route.objective
        pool.sort(key=OBJECTIVES[objective])
        reason = f"{route.name}: {objective} model with {bar_text}"
        ordered = pool
        rest.extend(below)
    elif below and policy.spec.when_none_qualify == "most_capable":
        objective = "most_capable"
        below.sort(key=OBJECTIVES[objective])
        notes.append(f"no model meets {bar_text}: serving the most capable allowed one "
                     "(when_none_qualify: most_capable)")
        reason = f"{route.name}: most capable allowed model (none meets {bar_text})"
        ordered = below
    else:
        err = _no_route(facts, route, permitted, unreachable, fits, limit, bool(below), bar_text)
        return _result(c, model="", chain=(), reason=err.message, route=route.name, bars=bars,
                       table=_table([], [*below, *rest], 0, route.objective, bars, outside),
                       cost=None, ref_cost=ref_cost, error=err, base_bars=base_bars)
    k = route.max_fallbacks
    top = ordered[0]
    chain = tuple(e.name for e in ordered[: 1 + k])
    return _result(c, model=top.name, chain=chain, reason=reason, route=route.name, bars=bars,
                   table=_table(ordered, rest, k, objective, bars, outside),
                   cost=top.cost, ref_cost=ref_cost, base_bars=base_bars)


def _no_route(facts: RouteFacts, route: Route, permitted: int, unreachable: list[str], fits: int,
              limit: int | None, bar_only: bool, bar_text: str) -> RouteError:
    who = f"key '{facts.caller.alias}'" if facts.caller is not None else "this caller"
    if permitted == 0:
        return RouteError("permission", f"No model that {who} may use can serve '{route.name}'.")
    if len(unreachable) == permitted:
        return RouteError("unavailable", (
            f"No model that {who} may use for '{route.name}' can be called from this gateway: "
            + "; ".join(unreachable) + "."),
            tuple(u.partition(": ")[0] for u in unreachable))
    if fits == 0:
        return RouteError("context", (
            f"The request ({facts.prompt_tokens} prompt tokens, max_tokens "
            f"{facts.max_tokens}) fits no model that {who} may use for '{route.name}'."))
    if bar_only:
        return RouteError("no_model", (
            f"No model that {who} may use meets {bar_text} for '{route.name}' "
            "(when_none_qualify: refuse)."))
    return RouteError("cost", (
        f"Every model that {who} may use for '{route.name}' is estimated above the limit of "
        f"${(limit or 0) / 1e6:.6g} per request; lower max_tokens or shorten the prompt."))


_NOT_REQUESTED = ("not requested (the request names a model)",)


def _concrete(facts: RouteFacts, policy: Policy, target: str, notes: list[str],
              step: NearBudgetStep | None, scope: str | None, used: float | None
              ) -> RouteDecision:
    """A request naming a model: only that model, the reference and the fallbacks are priced
    on the request path; the rest of the table is priced when someone reads it."""
    task = _task(facts, None, policy)
    c = _Ctx(facts, policy, target, notes, step, scope, used, task)
    prompt, mt = facts.prompt_tokens, facts.max_tokens
    n = facts.n if facts.n > 1 else 1
    base = expected_completion_tokens(mt, task[0], prompt, policy.costs)
    checked = task[3]
    rows = policy.priced_by_name

    def entry(r: PricedRow) -> _Entry:
        _, comp, cost = estimate_row(r, base, mt, n, prompt)
        return _Entry(cost, _lowest(r.caps, checked), r.name, r.provider, comp, r.caps,
                      _NOT_REQUESTED, True)

    ref_row = rows.get(policy.reference_model) if policy.reference_model else None
    ref_cost = entry(ref_row).cost if ref_row is not None else None

    def everyone(exclude: tuple[str, ...] = ()) -> list[_Entry]:
        return sorted((entry(r) for r in rows.values() if r.name not in exclude), key=_by_cost)

    def fail(kind: RouteErrorKind, message: str) -> RouteDecision:
        return _result(c, model="", chain=(), reason=message, route=None, bars={},
                       table=_table([], everyone(), 0, "cheapest", {}),
                       cost=None, ref_cost=ref_cost, error=RouteError(kind, message))

    row = rows.get(target)
    if row is None:
        return fail("model_not_found",
                    f"The model '{facts.model}' does not exist or you do not have access to it.")
    mine = entry(row)
    blocked = policy.blocked_for(facts.caller)
    why = blocked.get(target)
    caller = facts.caller
    if why is None and caller is not None and not caller.may_use(target):
        why = f"key {caller.alias!r} may not use it (auth.keys[].models in config)"
    if why is not None:
        return fail("permission", f"'{target}' is not allowed here: {why}.")
    window = row.context_window
    need = prompt + (mt or 0)
    if window is not None and need > window:
        return fail("context", (
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{need} tokens ({prompt} in the messages, {mt or 0} in the completion)."))
    limit = policy.max_cost_micro
    if limit is not None and mine.cost > limit:
        return fail("cost", (
            f"The estimated cost on '{target}' ({mine.cost} µ$) exceeds the policy's limit "
            f"of {limit} µ$ per request; lower max_tokens or shorten the prompt."))
    chain = [target]
    for fb in row.fallbacks:
        fr = rows.get(fb)
        fits = fr is not None and (fr.context_window is None or need <= fr.context_window)
        allowed = fb not in blocked and (caller is None or caller.may_use(fb))
        if fits and allowed and fb not in chain:
            chain.append(fb)

    def table() -> tuple[Candidate, ...]:
        out = [Candidate(mine.name, mine.provider, mine.cap, mine.comp, mine.cost, True,
                         "chosen", ())]
        for i, fb in enumerate(chain[1:], 1):
            e = entry(rows[fb])
            out.append(Candidate(e.name, e.provider, e.cap, e.comp, e.cost, True, "fallback",
                                 (f"fallback #{i} of {target} (config.yaml)",)))
        out.extend(Candidate(e.name, e.provider, e.cap, e.comp, e.cost, False, "ineligible",
                             e.hard) for e in everyone(tuple(chain)))
        return tuple(out)

    reason = "requested" if target == facts.model else f"rewritten from {facts.model}"
    return _result(c, model=target, chain=tuple(chain), reason=reason, route=None, bars={},
                   table=table, cost=mine.cost, ref_cost=ref_cost)


def reference_cost_micro(policy: Policy, prompt_tokens: int, completion_tokens: int,
                         ) -> int | None:
    """What the same tokens would have cost on the reference model (for the spend ledger's
    ``reference cost`` next to the actual cost, after the call)."""
    ref = policy.reference_model
    pm = policy.catalogue.get(ref) if ref is not None else None
    if pm is None:
        return None
    return cost_micro(pm.price, prompt_tokens, completion_tokens)
