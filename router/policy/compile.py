"""Phase two of loading: cross-check a parsed policy against the config, and precompute tables.

:func:`load_policy` reads a policy (a file or a directory), validates it against
:class:`~router.policy.schema.PolicyFile` (phase one: unknown keys, bad values) and then checks
it against the model catalogue of ``config.yaml`` (phase two): every model it names exists and is
a chat model, every route it references exists, and every task of every route has at least one
model that can meet its bar. Each problem is one ``file:line: key.path: message`` line; all of
them are reported at once.

The result is a :class:`Policy`: immutable, with the per-model rows, resolved routes and
permission sets the engine needs precomputed, so that a decision does no parsing, no look-ups
by string beyond a dict get, and no allocation beyond its result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from router.policy.budgets import BudgetRules, compile_rules, usd_micro
from router.policy.difficulty import DifficultyRule, check_model_file, file_digest
from router.policy.errors import PolicyError
from router.policy.schema import (
    BUILTIN_ROUTES,
    TASKS,
    AccessRule,
    NearBudgetStep,
    PolicyFile,
    RouteSpec,
    Task,
)
from router.policy.sources import MergedDocument, Sources, parse_sources, read_sources
from router.yamlfile import Document, DocumentError, Loc, parse_text, validate

if TYPE_CHECKING:
    from router.auth import Caller
    from router.config import Config, CostsConfig
    from router.costs.pricing import PricedModel

Catalogue = Mapping[str, "PricedModel"]


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One chat model of the catalogue as the engine sees it."""

    name: str
    provider: str
    #: Capability per task (None: the policy gives none, so routes never choose it for that task).
    caps: Mapping[str, int | None]
    output_multiplier: float
    #: Configured fallbacks (config.yaml), used for requests that name this model.
    fallbacks: tuple[str, ...]
    #: Why nobody may use it (deny_models, avoid_providers), or None.
    blocked: str | None


class PricedRow(NamedTuple):
    """A :class:`ModelRow` joined with its price and limits: what one decision loop reads."""

    name: str
    provider: str
    caps: Mapping[str, int | None]
    output_multiplier: float
    input_per_1m_micro: int
    output_per_1m_micro: int
    max_output_tokens: int | None
    context_window: int | None
    fallbacks: tuple[str, ...]


def price_rows(rows: Iterable[ModelRow], catalogue: Catalogue) -> tuple[PricedRow, ...]:
    out = []
    for row in rows:
        pm = catalogue.get(row.name)
        if pm is None:
            continue
        out.append(PricedRow(
            row.name, row.provider, row.caps, row.output_multiplier,
            pm.price.input_per_1m_micro, pm.price.output_per_1m_micro,
            pm.limits.max_output_tokens, pm.limits.context_window, row.fallbacks,
        ))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Route:
    """A route with every default filled in."""

    name: str
    task: Task | None
    #: The bars of ``tasks`` (or the route's ``min_capability``), before ``shift``.
    bars: Mapping[str, int]
    #: ``bar_shift``: added to every bar (the quality/cost knob; fractions of a point move the
    #: bar of a prompt whose difficulty moves it).
    shift: float
    models: frozenset[str] | None
    objective: str
    max_cost_micro: int | None
    max_fallbacks: int
    description: str | None

    def bar(self, task: str) -> int:
        """The bar of ``task`` with ``shift`` applied (0-100), before difficulty moves it."""
        b = math.ceil(self.bars[task] + self.shift)
        return 0 if b < 0 else (100 if b > 100 else b)


@dataclass(frozen=True)
class Policy:
    """A loaded, checked policy. Immutable: reload builds a new one and swaps the reference."""

    spec: PolicyFile
    source: str
    digest: str
    loaded_at: float
    rows: tuple[ModelRow, ...]
    by_name: Mapping[str, ModelRow]
    routes: Mapping[str, Route]
    rewrites: Mapping[str, str]
    reference_model: str | None
    near_budget: tuple[NearBudgetStep, ...]
    catalogue: Catalogue
    costs: CostsConfig | None
    warnings: tuple[str, ...] = ()
    #: ``budgets:`` and ``rate_limits:`` indexed by scope.
    budget_rules: BudgetRules = field(default_factory=BudgetRules)
    #: ``rows`` joined with ``catalogue`` once, at load time (and by name).
    priced: tuple[PricedRow, ...] = ()
    priced_by_name: Mapping[str, PricedRow] = field(default_factory=dict)
    #: Per route name: the priced rows its ``models`` list admits (all of them without a list)
    #: and the rest, both in ``priced`` order.
    route_rows: Mapping[str, tuple[PricedRow, ...]] = field(default_factory=dict)
    route_others: Mapping[str, tuple[PricedRow, ...]] = field(default_factory=dict)
    #: ``difficulty:`` (None: bars depend on the task class only).
    difficulty: DifficultyRule | None = None
    _caller_cache: dict[tuple[object, ...], Mapping[str, str]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def max_cost_micro(self) -> int | None:
        """``constraints.max_cost_per_request_usd`` in µ$ (applies to named models too)."""
        return usd_to_micro(self.spec.constraints.max_cost_per_request_usd)

    def referenced_digest(self) -> str:
        """A digest of the files the policy refers to (a difficulty model): the reloader
        reloads when one of them changes, as when the policy's own files do."""
        rule = self.difficulty
        return file_digest(rule.model_path) if rule is not None else ""

    @property
    def version(self) -> str:
        """Short content hash: which policy decided (explain output, headers, logs)."""
        return self.digest[:12]

    def blocked_for(self, caller: Caller | None) -> Mapping[str, str]:
        """Model name -> why ``caller`` may not use it (absent: allowed). Cached per caller."""
        if caller is None:
            key: tuple[object, ...] = ()
        else:
            key = (caller.alias, caller.user, caller.team, caller.models)
        found = self._caller_cache.get(key)
        if found is None:
            found = _blocked(self, caller)
            if len(self._caller_cache) > 4096:
                self._caller_cache.clear()
            self._caller_cache[key] = found
        return found


def _rule_blocks(rule: AccessRule | None, model: str) -> bool:
    if rule is None:
        return False
    return (rule.allow is not None and model not in rule.allow) or model in rule.deny


def key_models(policy: Policy, caller: Caller | None) -> frozenset[str] | None:
    """The catalogue models a key's ``models`` list (config.yaml) limits routes to, or None.

    A list naming only routes (``[auto]``) lets the key use those routes over every model but
    name no model directly; a list naming models limits both."""
    if caller is None or caller.models is None:
        return None
    concrete = caller.models & policy.by_name.keys()
    return frozenset(concrete) if concrete or not (caller.models & policy.routes.keys()) else None


def _blocked(policy: Policy, caller: Caller | None) -> dict[str, str]:
    access = policy.spec.access
    out: dict[str, str] = {}
    team = access.teams.get(caller.team) if caller else None
    user = access.users.get(caller.user) if caller else None
    key = access.keys.get(caller.alias) if caller else None
    limited = key_models(policy, caller)
    for row in policy.rows:
        name = row.name
        if row.blocked is not None:
            out[name] = row.blocked
        elif caller is not None and limited is not None and name not in limited:
            out[name] = f"key {caller.alias!r} may not use it (auth.keys[].models in config)"
        elif caller is not None and _rule_blocks(team, name):
            out[name] = f"team {caller.team!r} may not use it (access.teams.{caller.team})"
        elif caller is not None and _rule_blocks(user, name):
            out[name] = f"user {caller.user!r} may not use it (access.users.{caller.user})"
        elif caller is not None and _rule_blocks(key, name):
            out[name] = f"key {caller.alias!r} may not use it (access.keys.{caller.alias})"
    return out


# ------------------------------------------------------------------------------------ building


def usd_to_micro(usd: float | None) -> int | None:
    return None if usd is None else usd_micro(usd)


def _chat_names(catalogue: Catalogue) -> list[str]:
    return [n for n, m in catalogue.items() if m.config.mode == "chat"]


def _resolve_routes(spec: PolicyFile) -> dict[str, Route]:
    declared = dict(spec.routes)
    names = list(BUILTIN_ROUTES) + [n for n in declared if n not in BUILTIN_ROUTES]
    base_cost = usd_to_micro(spec.constraints.max_cost_per_request_usd)
    out: dict[str, Route] = {}
    for name in names:
        r = declared.get(name, RouteSpec())
        task = r.task if r.task is not None else BUILTIN_ROUTES.get(name)
        bars: dict[str, int] = {t: r.min_capability.get(t, spec.tasks.bar(t)) for t in TASKS}
        route_cost = usd_to_micro(r.max_cost_per_request_usd)
        out[name] = Route(
            name=name,
            task=task,
            bars=bars,
            shift=r.bar_shift,
            models=frozenset(r.models) if r.models is not None else None,
            objective=r.objective,
            max_cost_micro=route_cost if route_cost is not None else base_cost,
            max_fallbacks=(
                r.max_fallbacks if r.max_fallbacks is not None else spec.constraints.max_fallbacks
            ),
            description=r.description,
        )
    return out


def _rows(spec: PolicyFile, catalogue: Catalogue) -> tuple[ModelRow, ...]:
    deny = set(spec.constraints.deny_models)
    avoid = set(spec.constraints.avoid_providers)
    rows = []
    for name in _chat_names(catalogue):
        priced = catalogue[name]
        ms = spec.models.get(name)
        blocked = None
        if name in deny:
            blocked = "denied by the policy (constraints.deny_models)"
        elif priced.config.provider in avoid:
            blocked = (f"provider {priced.config.provider!r} is avoided "
                       "(constraints.avoid_providers)")
        caps: dict[str, int | None] = {t: (ms.capability(t) if ms else None) for t in TASKS}
        rows.append(
            ModelRow(
                name=name,
                provider=priced.config.provider,
                caps=caps,
                output_multiplier=ms.output_multiplier if ms else 1.0,
                fallbacks=tuple(priced.config.fallbacks),
                blocked=blocked,
            )
        )
    return tuple(rows)


def _strongest(spec: PolicyFile, catalogue: Catalogue) -> str | None:
    def key(name: str) -> tuple[int, int, str]:
        ms = spec.models[name]
        total = sum(ms.capability(t) or 0 for t in TASKS)
        return (-total, -catalogue[name].price.input_per_1m_micro, name)

    names = [n for n in spec.models if n in catalogue]
    return min(names, key=key) if names else None


class _Checker:
    """Phase two: every cross-reference, collected as ``file:line: key: message`` problems."""

    def __init__(self, doc: Document, spec: PolicyFile, config: Config, catalogue: Catalogue,
                 unmet_bars: str = "error"):
        self.doc, self.spec, self.config, self.catalogue = doc, spec, config, catalogue
        #: "error" (the gateway), or "warn": a bar no model meets is only a warning (a replay
        #: of a catalogue of small models, where ``when_none_qualify`` serves every request).
        self.unmet_bars = unmet_bars
        self.chat = set(_chat_names(catalogue))
        self.problems: dict[Loc, str] = {}
        self.warnings: list[str] = []
        self.doc_keys = set(doc.data) if isinstance(doc.data, dict) else set()

    def error(self, loc: Loc, message: str) -> None:
        self.problems.setdefault(loc, self.doc.error(loc, message))

    def unmet(self, loc: Loc, message: str) -> None:
        if self.unmet_bars == "warn":
            self.warnings.append(self.doc.error(loc, message))
        else:
            self.error(loc, message)

    def model_ref(self, loc: Loc, name: str) -> bool:
        if name in self.chat:
            return True
        if name in self.catalogue:
            self.error(loc, f"{name!r} is an embedding model, not a chat model")
        else:
            known = ", ".join(sorted(self.chat))
            self.error(loc, f"unknown model {name!r}: not in {self.config.source} (known: {known})")
        return False

    def models_refs(self, loc: Loc, names: Iterable[str]) -> None:
        for i, name in enumerate(names):
            self.model_ref((*loc, i), name)

    def run(self, routes: Mapping[str, Route], rows: tuple[ModelRow, ...]) -> None:
        spec = self.spec
        for name in spec.models:
            self.model_ref(("models", name), name)
        self.models_refs(("constraints", "deny_models"), spec.constraints.deny_models)
        providers = {m.config.provider for m in self.catalogue.values()}
        for i, p in enumerate(spec.constraints.avoid_providers):
            if p not in providers:
                self.warnings.append(
                    self.doc.error(("constraints", "avoid_providers", i), f"no model uses {p!r}")
                )
        for kind in ("teams", "users", "keys"):
            rules: Mapping[str, AccessRule] = getattr(spec.access, kind)
            for who, rule in rules.items():
                self.models_refs(("access", kind, who, "allow"), rule.allow or ())
                self.models_refs(("access", kind, who, "deny"), rule.deny)
        aliases = {k.alias for k in self.config.auth.keys}
        for alias in spec.access.keys:
            if alias not in aliases:
                self.warnings.append(self.doc.error(
                    ("access", "keys", alias),
                    f"no key {alias!r} in {self.config.source} (fine if created by the admin API)",
                ))
        if spec.reference_model is not None:
            self.model_ref(("reference_model",), spec.reference_model)
        self._routes(routes)
        self._bars(routes, rows)
        self._near_budget(routes)
        self._rewrites(routes)
        for name in sorted(self.chat - set(spec.models)):
            self.warnings.append(self.doc.error(
                ("models",),
                f"{name!r} has no capabilities here: routes never choose it (ask for it by name)",
            ))

    def _routes(self, routes: Mapping[str, Route]) -> None:
        for name, r in self.spec.routes.items():
            loc: Loc = ("routes", name)
            if name in self.catalogue:
                self.error(loc, f"{name!r} is a model in {self.config.source}: pick another name")
            builtin = BUILTIN_ROUTES.get(name)
            if builtin is not None and r.task is not None and r.task != builtin:
                self.error((*loc, "task"), f"{name!r} always serves {builtin!r}")
            self.models_refs((*loc, "models"), r.models or ())

    def _bars(self, routes: Mapping[str, Route], rows: tuple[ModelRow, ...]) -> None:
        spec = self.spec
        for route in routes.values():
            declared = spec.routes.get(route.name)
            pool = [
                row for row in rows
                if row.blocked is None and (route.models is None or row.name in route.models)
            ]
            for task in (route.task,) if route.task else TASKS:
                bar = route.bar(task)
                if any(_meets(row.caps[task], bar) for row in pool):
                    continue
                if declared is not None and declared.bar_shift > 0:
                    loc: Loc = ("routes", route.name, "bar_shift")
                elif declared is not None and task in declared.min_capability:
                    loc = ("routes", route.name, "min_capability", task)
                elif declared is not None and declared.models is not None:
                    loc = ("routes", route.name, "models")
                else:
                    loc = ("tasks", task, "min_capability")
                self.unmet(loc, f"no model qualifies for {task} on route {route.name!r}: "
                           f"needs capability >= {bar}; {_best(pool, task)}")
            unsure = spec.low_confidence.treat_as in ("all_tasks", "classified")
            if route.task is None and unsure and not any(
                all(_meets(row.caps[t], route.bar(t)) for t in TASKS) for row in pool
            ):
                bars = ", ".join(f"{t} >= {route.bar(t)}" for t in TASKS)
                declared_rule = "low_confidence" in self.doc_keys
                self.unmet(("low_confidence", "treat_as") if declared_rule else ("tasks",),
                           f"no model meets every task's bar ({bars}) on route "
                           f"{route.name!r}, so unsure requests could never qualify")

    def _near_budget(self, routes: Mapping[str, Route]) -> None:
        last = 0.0
        for i, step in enumerate(self.spec.near_budget):
            if step.at <= last:
                self.error(("near_budget", i, "at"), "steps must be in increasing order of 'at'")
            last = step.at
            if step.route is not None and step.route not in routes:
                self.error(("near_budget", i, "route"), f"unknown route {step.route!r}")

    def _rewrites(self, routes: Mapping[str, Route]) -> None:
        rewrites = self.spec.rewrites
        for source, target in rewrites.items():
            loc: Loc = ("rewrites", source)
            if source == target:
                self.error(loc, "a name cannot be rewritten to itself")
            elif target in rewrites:
                self.error(loc, f"{target!r} is itself rewritten: rewrites do not chain")
            elif target not in routes and target not in self.chat:
                self.error(loc, f"unknown model or route {target!r}")


def _meets(cap: int | None, bar: int) -> bool:
    return cap is not None and cap >= bar


def _best(pool: list[ModelRow], task: str) -> str:
    scored = [row for row in pool if row.caps[task] is not None]
    if not scored:
        return "no allowed model has a capability for it"
    top = max(scored, key=lambda r: (r.caps[task] or 0, r.name))
    return f"the most capable allowed is {top.name!r} with {top.caps[task]}"


def _file_of(doc: Document, loc: Loc) -> str:
    if isinstance(doc, MergedDocument) and loc:
        return doc.origins.get(str(loc[0]), doc.path)
    return doc.path


def build_policy(
    doc: Document,
    config: Config,
    catalogue: Catalogue | None = None,
    *,
    digest: str = "",
    unmet_bars: str = "error",
) -> Policy:
    """Phases one and two on a parsed document; raises :class:`PolicyError`.

    ``unmet_bars="warn"`` reports a bar that no model meets as a warning instead of an error
    (``router eval`` replays catalogues of small models)."""
    try:
        spec = validate(doc, PolicyFile)
    except DocumentError as exc:
        raise PolicyError(exc.problems) from None
    if catalogue is None:
        from router.costs.pricing import resolve_catalogue

        catalogue = resolve_catalogue(config)
    routes = _resolve_routes(spec)
    rows = _rows(spec, catalogue)
    checker = _Checker(doc, spec, config, catalogue, unmet_bars)
    checker.run(routes, rows)
    difficulty = _difficulty(doc, spec, checker)
    if checker.problems:
        order = sorted(checker.problems,
                       key=lambda loc: (_file_of(doc, loc), doc.line_of(loc) or 0))
        raise PolicyError([checker.problems[loc] for loc in order])
    priced = price_rows(rows, catalogue)
    if not digest:
        import hashlib

        digest = hashlib.sha256(repr(doc.data).encode()).hexdigest()
    return Policy(
        spec=spec,
        source=doc.path,
        digest=digest,
        loaded_at=time.time(),
        rows=rows,
        by_name={row.name: row for row in rows},
        routes=routes,
        rewrites=dict(spec.rewrites),
        reference_model=spec.reference_model or _strongest(spec, catalogue),
        near_budget=spec.near_budget,
        catalogue=catalogue,
        costs=config.costs,
        warnings=tuple(checker.warnings),
        budget_rules=compile_rules(spec.budgets, spec.rate_limits),
        priced=priced,
        priced_by_name={r.name: r for r in priced},
        route_rows={name: _admitted(priced, route.models, True) for name, route in routes.items()},
        route_others={name: _admitted(priced, route.models, False)
                      for name, route in routes.items()},
        difficulty=difficulty,
    )


def _difficulty(doc: Document, spec: PolicyFile, checker: _Checker) -> DifficultyRule | None:
    d = spec.difficulty
    if d is None:
        return None
    path = None
    if d.model is not None:
        path = Path(d.model)
        if not path.is_absolute():
            path = Path(_file_of(doc, ("difficulty",))).resolve().parent / path
        why = check_model_file(path)
        if why is not None:
            checker.error(("difficulty", "model"), why)
    return DifficultyRule(d.weight, {str(t): b for t, b in d.floor.items()}, path)


def _admitted(priced: tuple[PricedRow, ...], models: frozenset[str] | None, inside: bool,
              ) -> tuple[PricedRow, ...]:
    """The rows a route's ``models`` list admits (``inside``) or leaves out, in order."""
    if models is None:
        return priced if inside else ()
    return tuple(r for r in priced if (r.name in models) is inside)


def policy_from_sources(
    src: Sources,
    config: Config,
    catalogue: Catalogue | None = None,
    env: Mapping[str, str] | None = None,
) -> Policy:
    return build_policy(parse_sources(src, env), config, catalogue, digest=src.digest)


def load_policy(
    path: str | Path,
    config: Config,
    catalogue: Catalogue | None = None,
    env: Mapping[str, str] | None = None,
) -> Policy:
    """Load and check the policy at ``path`` (a file, or a directory of ``*.yaml``).

    ``catalogue`` defaults to :func:`router.costs.pricing.resolve_catalogue` of ``config``; pass
    the one the gateway already resolved. Raises :class:`PolicyError` naming file, line and key.
    """
    return policy_from_sources(read_sources(path), config, catalogue, env)


def policy_from_text(
    text: str,
    config: Config,
    catalogue: Catalogue | None = None,
    path: str = "<policy>",
    env: Mapping[str, str] | None = None,
) -> Policy:
    """Like :func:`load_policy` for text in memory (tests, ``POST``-ed policies)."""
    try:
        doc = parse_text(text, path, env)
    except DocumentError as exc:
        raise PolicyError(exc.problems) from None
    import hashlib

    return build_policy(doc, config, catalogue, digest=hashlib.sha256(text.encode()).hexdigest())


def default_policy_path(config: Config) -> Path:
    """``policy:`` of config.yaml if it has one, else ``policies/default.yaml``.

    A relative path is taken relative to the config file's directory.
    """
    configured = getattr(config, "policy", None)
    path = Path(str(configured)) if configured else Path("policies/default.yaml")
    if not path.is_absolute() and config.source and not config.source.startswith("<"):
        path = Path(config.source).resolve().parent / path
    return path
