"""The catalogue and policy a replay decides with: the gateway's own, over the map's models.

The config (``--config``) gives everything but the models: costs settings, GPUs. The catalogue is
the model map's entries, priced by :func:`router.costs.pricing.resolve_catalogue` as the gateway
prices its own. The policy (``--policy``, default the config's) keeps its rules (bars, low
confidence, routes, difficulty...) with its ``models:`` section replaced by the map's
capabilities; what names the gateway's own models and means nothing in a replay (access rules,
rewrites, budgets, denied models and providers, difficulty floors) is left out, and route model
lists are mapped through ``same_as``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.config import Config, ConfigError, default_config_path, load_config
from router.costs.pricing import PricedModel, resolve_catalogue
from router.evaluate.errors import EvalInputError
from router.evaluate.modelmap import ModelMap
from router.policy.compile import Policy, build_policy, default_policy_path
from router.policy.errors import PolicyError
from router.policy.sources import parse_sources, read_sources
from router.yamlfile import Document, DocumentError

#: Policy sections that name the gateway's own models, keys or budgets: not replayed.
DROPPED = ("access", "rewrites", "budgets", "rate_limits")


@dataclass(frozen=True)
class World:
    config: Config
    catalogue: Mapping[str, PricedModel]
    policy: Policy
    #: What was changed or left out of the policy to replay it, for the report.
    notes: tuple[str, ...]


def load_base(config_path: Path | None, policy_path: Path | None) -> tuple[Config, Document]:
    """The user's config and the policy document (not yet checked against any catalogue)."""
    try:
        config = load_config(config_path if config_path is not None else default_config_path())
    except ConfigError as exc:
        raise EvalInputError(exc.problems) from None
    path = policy_path if policy_path is not None else default_policy_path(config)
    try:
        doc = parse_sources(read_sources(path))
    except (PolicyError, DocumentError) as exc:
        raise EvalInputError(exc.problems) from None
    return config, doc


def _policy_data(doc: Document, mm: ModelMap, notes: list[str]) -> dict[str, Any]:
    data = copy.deepcopy(doc.data) if isinstance(doc.data, dict) else {}
    data["models"] = {name: dict(cap) for name, cap in mm.capabilities.items()}
    for key in DROPPED:
        if data.pop(key, None):
            notes.append(f"policy {key}: not replayed")
    if mm.reference_model is not None:
        data["reference_model"] = mm.reference_model
    else:
        data.pop("reference_model", None)
    constraints = data.get("constraints")
    if isinstance(constraints, dict):
        for key in ("deny_models", "avoid_providers"):
            if constraints.pop(key, None):
                notes.append(f"policy constraints.{key}: not replayed")
    difficulty = data.get("difficulty")
    if isinstance(difficulty, dict) and difficulty.pop("floor", None):
        # floors are capabilities of the gateway's own catalogue ("never below gpt-4o-mini")
        notes.append("policy difficulty.floor: not replayed (it names the gateway's models' "
                     "capabilities)")
    routes = data.get("routes")
    gone: set[str] = set()
    if isinstance(routes, dict):
        for name, route in list(routes.items()):
            if not isinstance(route, dict) or route.get("models") is None:
                continue
            mapped = [m for c in route["models"] for m in mm.aliases.get(str(c), ())]
            if mapped:
                route["models"] = mapped
            else:
                del routes[name]
                gone.add(name)
                notes.append(f"route {name}: none of its models is in the map, left out")
    steps = data.get("near_budget")
    if isinstance(steps, list):
        data["near_budget"] = [s for s in steps
                               if not (isinstance(s, dict) and s.get("route") in gone)]
    return data


def build_world(config: Config, doc: Document, mm: ModelMap) -> World:
    """The replay's config, priced catalogue and checked policy."""
    notes: list[str] = []
    cfg = config.model_copy(update={"models": dict(mm.catalogue), "policy": None,
                                    "routing": config.routing.model_copy(
                                        update={"default_model": None,
                                                "default_embedding_model": None})})
    try:
        catalogue = resolve_catalogue(cfg)
    except ConfigError as exc:
        raise EvalInputError([f"{mm.path}: {p}" for p in exc.problems]) from None
    replay_doc = copy.copy(doc)
    replay_doc.data = _policy_data(doc, mm, notes)
    try:
        policy = build_policy(replay_doc, cfg, catalogue, unmet_bars="warn")
    except PolicyError as exc:
        raise EvalInputError(exc.problems) from None
    notes.extend(policy.warnings)
    return World(cfg, catalogue, policy, tuple(notes))


def with_difficulty_rule(world: World, weight: float | None, model: Path | None) -> World:
    """The world with the policy's difficulty weight and/or estimate replaced (``router eval
    replay --difficulty-weight/--difficulty-model``)."""
    from dataclasses import replace

    from router.policy.difficulty import DifficultyRule, check_model_file

    if weight is not None and not 0 <= weight <= 4:
        raise EvalInputError([f"--difficulty-weight must be between 0 and 4, got {weight:g}"])
    if model is not None:
        why = check_model_file(model)
        if why is not None:
            raise EvalInputError([f"--difficulty-model: {why}"])
    rule = world.policy.difficulty or DifficultyRule(1.0, {})
    rule = DifficultyRule(rule.weight if weight is None else weight, rule.floor,
                          model if model is not None else rule.model_path)
    note = (f"difficulty: weight {rule.weight:g}, estimate {rule.source} (from the command line)")
    return replace(world, policy=replace(world.policy, difficulty=rule),
                   notes=(*world.notes, note))
