"""The model map of a replay: which catalogue entry each model of the outcome files is.

``router eval replay ... --models MAP`` reads a YAML file like::

    reference_model: gpt-4-1106-preview     # optional: "100%" in the report
    ignore: []                              # optional: models of the files to leave out
    models:
      gpt-4-1106-preview:
        catalogue:                          # a config.yaml model entry, parsed as config.yaml's
          provider: openai
          upstream_model: gpt-4-1106-preview
          price: {input_per_1m: 10, output_per_1m: 30}
          context_window: 128000
        capability: {reasoning: 43, expression: 38}   # a policy `models:` entry
      mistralai/Mixtral-8x7B-Instruct-v0.1:
        same_as: gpt-4o-mini                # or: the config's entry, and the policy's capability

From it the replay builds the catalogue and the policy's ``models:`` section, so that a row is
priced and decided by the same code as a request to the gateway. Parsing is strict; every error
names the file, the line and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from router.config import Config, ModelConfig
from router.evaluate.errors import EvalInputError
from router.evaluate.outcomes import OutcomeRow, models_in
from router.policy.schema import ModelSpec, Name
from router.yamlfile import Document, DocumentError, load_file, validate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MapEntry(_Strict):
    """One model of the outcome files: a catalogue entry of its own, or a config model's."""

    #: A model of ``--config``'s catalogue: its price and limits (and, unless ``capability`` is
    #: given, its capabilities in ``--policy``).
    same_as: Name | None = None
    #: A ``config.yaml`` model entry (provider, upstream_model, price, context_window, ...).
    catalogue: ModelConfig | None = None
    #: A policy ``models:`` entry (reasoning, expression, output_multiplier).
    capability: ModelSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MapEntry:
        if (self.same_as is None) == (self.catalogue is None):
            raise ValueError("give exactly one of same_as (a model of the config) or catalogue")
        if self.catalogue is not None and self.capability is None:
            raise ValueError("a catalogue entry needs its capability (reasoning, expression)")
        if self.catalogue is not None and self.catalogue.mode != "chat":
            raise ValueError("only chat models can be replayed")
        return self


class ModelMapFile(_Strict):
    reference_model: Name | None = None
    ignore: tuple[str, ...] = ()
    models: dict[Name, MapEntry]


@dataclass(frozen=True)
class ModelMap:
    """A checked model map, resolved against the config and policy it will replay with."""

    path: str
    #: Outcome-file model name -> its catalogue entry (named by the outcome-file name).
    catalogue: Mapping[str, ModelConfig]
    #: Outcome-file model name -> its policy capability entry (as YAML-ready data).
    capabilities: Mapping[str, dict[str, Any]]
    #: Config model name -> outcome-file model names mapped to it (``same_as``).
    aliases: Mapping[str, tuple[str, ...]]
    reference_model: str | None
    ignore: frozenset[str]

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.catalogue)


def _policy_caps(policy_models: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    entry = policy_models.get(name)
    return dict(entry) if isinstance(entry, dict) else None


def load_model_map(path: str | Path, config: Config, policy_doc: Document) -> ModelMap:
    """Read and check ``path`` against the config (``same_as``) and the policy document."""
    try:
        doc = load_file(path)
        spec = validate(doc, ModelMapFile)
    except DocumentError as exc:
        raise EvalInputError(exc.problems) from None
    problems: list[str] = []
    catalogue: dict[str, ModelConfig] = {}
    caps: dict[str, dict[str, Any]] = {}
    aliases: dict[str, list[str]] = {}
    policy_models = policy_doc.data.get("models", {}) if isinstance(policy_doc.data, dict) else {}
    for name, entry in spec.models.items():
        loc = ("models", name)
        if entry.same_as is not None:
            base = config.models.get(entry.same_as)
            if base is None or base.mode != "chat":
                known = ", ".join(config.chat_models())
                problems.append(doc.error((*loc, "same_as"), (
                    f"unknown model {entry.same_as!r}: not a chat model of {config.source} "
                    f"(known: {known})")))
                continue
            aliases.setdefault(entry.same_as, []).append(name)
            model = base
            cap = (entry.capability.model_dump(exclude_defaults=True) if entry.capability
                   else _policy_caps(policy_models, entry.same_as))
            if cap is None:
                problems.append(doc.error(loc, (
                    f"{entry.same_as!r} has no capabilities in {policy_doc.path}: "
                    "give capability here")))
                continue
        else:
            assert entry.catalogue is not None and entry.capability is not None
            model = entry.catalogue
            cap = entry.capability.model_dump(exclude_defaults=True)
        # A replay never calls a model: no keys, no fallbacks to names outside the map.
        catalogue[name] = model.model_copy(update={"fallbacks": (), "api_key_env": None})
        caps[name] = cap
    if spec.reference_model is not None and spec.reference_model not in spec.models:
        problems.append(doc.error(("reference_model",),
                                  f"{spec.reference_model!r} is not one of the map's models"))
    if problems:
        raise EvalInputError(problems)
    return ModelMap(str(path), catalogue, caps,
                    {k: tuple(v) for k, v in aliases.items()}, spec.reference_model,
                    frozenset(spec.ignore))


def check_rows(mm: ModelMap, rows: list[OutcomeRow]) -> list[OutcomeRow]:
    """Every model the files score is in the map (or ignored), and every row scores every
    model of the map. Returns the rows with ignored models' scores dropped."""
    seen = models_in(rows)
    problems = []
    for model, first in seen.items():
        if model not in mm.catalogue and model not in mm.ignore:
            problems.append(f"{first.where}: model {model!r} is not in {mm.path}: map it under "
                            "models: or list it under ignore:")
    for model in mm.catalogue:
        if model not in seen:
            problems.append(f"{mm.path}: models.{model}: no row of the outcome files scores it")
    if problems:
        raise EvalInputError(problems)
    out = []
    for r in rows:
        missing = [m for m in mm.catalogue if m not in r.scores]
        if missing:
            problems.append(f"{r.where}: no score for {', '.join(map(repr, missing))} "
                            f"(every row needs a score for every model of {mm.path})")
            if len(problems) >= 20:
                break
            continue
        if mm.ignore & r.scores.keys():
            r = _without(r, mm.ignore)
        out.append(r)
    if problems:
        raise EvalInputError(problems)
    return out


def _without(r: OutcomeRow, ignore: frozenset[str]) -> OutcomeRow:
    from dataclasses import replace

    return replace(r, scores={m: s for m, s in r.scores.items() if m not in ignore})
