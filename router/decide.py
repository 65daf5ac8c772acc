"""Choosing a model: a pure function of the request's facts and the catalogue.

This is the gateway core's chooser: a concrete model is served as asked (with its configured
fallbacks); the virtual models ``auto``, ``auto:reasoning`` and ``auto:expression`` resolve to
``routing.default_model``. The policy engine (policies/*.yaml) replaces it with cost-aware
choices through the same :class:`Decision` type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from router.auth import Caller
from router.config import Config
from router.errors import ModelNotFound, PermissionDenied

VIRTUAL_MODELS = ("auto", "auto:reasoning", "auto:expression")


@dataclass(frozen=True, slots=True)
class Decision:
    model: str
    chain: tuple[str, ...]
    reason: str
    task: str | None = None
    confidence: float | None = None
    notes: tuple[str, ...] = field(default=())


def _denied(caller: Caller, model: str) -> PermissionDenied:
    return PermissionDenied(f"Key '{caller.alias}' may not use '{model}'.", param="model")


def is_virtual(name: str) -> bool:
    return name == "auto" or name.startswith("auto:")


def decide_static(config: Config, requested: str, caller: Caller, mode: str = "chat") -> Decision:
    if is_virtual(requested):
        if requested not in VIRTUAL_MODELS or mode != "chat":
            raise ModelNotFound(f"The model '{requested}' does not exist.", param="model")
        default = config.routing.default_model
        if default is None:
            raise ModelNotFound(
                f"'{requested}' needs routing.default_model in {config.source}.", param="model"
            )
        if not caller.may_use(requested) and not caller.may_use(default):
            raise _denied(caller, requested)
        model, reason = default, f"{requested} -> routing.default_model"
    else:
        cfg = config.models.get(requested)
        if cfg is None or cfg.mode != mode:
            raise ModelNotFound(
                f"The model '{requested}' does not exist or you do not have access to it.",
                param="model",
            )
        if not caller.may_use(requested):
            raise _denied(caller, requested)
        model, reason = requested, "requested"
    chain = (model, *(f for f in config.models[model].fallbacks if caller.may_use(f)))
    return Decision(model=model, chain=chain, reason=reason)
