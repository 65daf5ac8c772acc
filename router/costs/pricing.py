"""Where each model's price comes from, resolved once at start-up.

Order, per model (the first that applies wins):

1. ``pricing: marginal`` -> zero. A self-hosted model on GPUs that are paid for anyway costs
   nothing more per token while they would otherwise sit idle; the detail still shows what the
   formula would have charged.
2. An explicit ``price:`` in config.
3. litellm's bundled price and context map, looked up by ``provider/upstream_model`` and then by
   plain ``upstream_model`` (the plain key only when that entry's provider is this model's, so a
   self-hosted ``meta-llama/...`` never picks up a hosting company's price).
4. The article's formula from ``params`` (``active_params`` for a mixture of experts: what a token
   actually multiplies through) on ``gpu`` at ``utilisation``.

No source at all is a start-up error naming the model and what to add. Context window and max
output tokens come from config, else from the same litellm entry.

Prices are integer micro-dollars per 1M tokens (= pico-dollars per token): $0.15/1M is 150_000.
That keeps sub-cent prices exact as integers and makes a request's cost one integer sum.

litellm's map is the ``model_prices_and_context_window_backup.json`` file inside the installed
litellm package, which is exactly what ``litellm.model_cost`` holds when
``LITELLM_LOCAL_MODEL_COST_MAP=True``. It is read directly (0.03 s) rather than by importing
litellm (several seconds); only if the file is missing is litellm imported, offline. Nothing in
the request path touches the map: :func:`resolve_catalogue` copies what it needs into
:class:`PricedModel` objects.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from router.config import Config, ConfigError, ModelConfig, UtilisationConfig, parse_count
from router.costs import formulas
from router.costs.gpus import Gpu, gpu_catalogue, lookup_gpu

PriceSource = Literal["config", "litellm", "formula"]
LimitsSource = Literal["config", "litellm", "config+litellm", "unknown"]
PriceMap = Mapping[str, Mapping[str, Any]]

#: Config provider names whose litellm spelling differs.
_LITELLM_PROVIDER = {
    "together": "together_ai",
    "fireworks": "fireworks_ai",
    "zhipu": "zai",
    "vertex": "vertex_ai",
}


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Integer micro-dollars per 1M tokens, and where the figures came from."""

    input_per_1m_micro: int
    output_per_1m_micro: int
    cached_input_per_1m_micro: int | None
    source: PriceSource
    detail: str
    #: Cache writes (Anthropic); None: billed at the input rate.
    cache_write_per_1m_micro: int | None = None
    #: Reasoning tokens when the provider bills them apart from other output; None: output rate.
    reasoning_per_1m_micro: int | None = None

    @property
    def is_free(self) -> bool:
        return self.input_per_1m_micro == 0 and self.output_per_1m_micro == 0

    def as_dict(self) -> dict[str, Any]:
        """Dollars per 1M tokens for display and ``/v1/models`` metadata."""

        def usd(v: int | None) -> float | None:
            return None if v is None else v / 1e6

        return {
            "input_per_1m_usd": usd(self.input_per_1m_micro),
            "output_per_1m_usd": usd(self.output_per_1m_micro),
            "cached_input_per_1m_usd": usd(self.cached_input_per_1m_micro),
            "cache_write_per_1m_usd": usd(self.cache_write_per_1m_micro),
            "reasoning_per_1m_usd": usd(self.reasoning_per_1m_micro),
            "source": self.source,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ModelLimits:
    context_window: int | None
    max_output_tokens: int | None
    source: LimitsSource


@dataclass(frozen=True, slots=True)
class PricedModel:
    """A catalogue entry with its resolved price and limits (what the request path reads)."""

    name: str
    config: ModelConfig
    price: ModelPrice
    limits: ModelLimits

    def metadata(self) -> dict[str, Any]:
        """For ``/v1/models`` and ``router models``."""
        return {
            "id": self.name,
            "provider": self.config.provider,
            "upstream_model": self.config.upstream_model,
            "mode": self.config.mode,
            "pricing": self.price.as_dict(),
            "context_window": self.limits.context_window,
            "max_output_tokens": self.limits.max_output_tokens,
            "limits_source": self.limits.source,
        }


# ---------------------------------------------------------------------------------- litellm map


def _bundled_map_path() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model_prices_and_context_window_backup.json"
    return path if path.is_file() else None


@lru_cache(maxsize=1)
def load_price_map() -> tuple[PriceMap, str]:
    """litellm's bundled price map and a label naming it (``litellm 1.x bundled map``).

    Never touches the network. Cached: the file is read once per process.
    """
    try:
        version = metadata.version("litellm")
    except metadata.PackageNotFoundError:
        return {}, "litellm not installed"
    label = f"bundled map of litellm {version}"
    path = _bundled_map_path()
    if path is not None:
        with path.open("rb") as fh:
            data = json.load(fh)
        if isinstance(data, dict):
            return data, label
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm  # slow, and only when the file is not where litellm keeps it

    return dict(litellm.model_cost), label


def _provider_matches(entry: Mapping[str, Any], provider: str) -> bool:
    theirs = str(entry.get("litellm_provider", ""))
    ours = _LITELLM_PROVIDER.get(provider, provider)
    if theirs in (provider, ours) or theirs.startswith(f"{ours}-") or theirs.startswith(f"{ours}_"):
        return True
    return provider in ("openai", "azure") and theirs == f"text-completion-{provider}"


def litellm_entry(model: ModelConfig, price_map: PriceMap) -> tuple[str, Mapping[str, Any]] | None:
    """The map entry for a catalogue model, and its key; None when there is none."""
    provider, upstream = model.provider, model.upstream_model
    keys = [f"{provider}/{upstream}"]
    alias = _LITELLM_PROVIDER.get(provider)
    if alias:
        keys.append(f"{alias}/{upstream}")
    for key in keys:
        entry = price_map.get(key)
        if isinstance(entry, Mapping):
            return key, entry
    entry = price_map.get(upstream)
    if isinstance(entry, Mapping) and _provider_matches(entry, provider):
        return upstream, entry
    return None


def _rate(entry: Mapping[str, Any], key: str) -> int | None:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return formulas.usd_per_token_to_micro_per_1m(float(value))


def price_from_litellm(key: str, entry: Mapping[str, Any], label: str) -> ModelPrice | None:
    input_rate = _rate(entry, "input_cost_per_token")
    if input_rate is None:
        return None
    return ModelPrice(
        input_per_1m_micro=input_rate,
        output_per_1m_micro=_rate(entry, "output_cost_per_token") or 0,
        cached_input_per_1m_micro=_rate(entry, "cache_read_input_token_cost"),
        source="litellm",
        detail=f"{label}, key {key!r}",
        cache_write_per_1m_micro=_rate(entry, "cache_creation_input_token_cost"),
        reasoning_per_1m_micro=_rate(entry, "output_cost_per_reasoning_token"),
    )


# ------------------------------------------------------------------------------------ sources


def price_from_config(model: ModelConfig) -> ModelPrice | None:
    p = model.price
    if p is None:
        return None

    def micro(v: float | None) -> int | None:
        return None if v is None else formulas.usd_per_1m_to_micro_per_1m(v)

    return ModelPrice(
        input_per_1m_micro=formulas.usd_per_1m_to_micro_per_1m(p.input_per_1m),
        output_per_1m_micro=formulas.usd_per_1m_to_micro_per_1m(p.output_per_1m),
        cached_input_per_1m_micro=micro(p.cached_input_per_1m),
        source="config",
        detail="price: in config",
        cache_write_per_1m_micro=micro(p.cache_write_per_1m),
    )


def formula_params(model: ModelConfig) -> float | None:
    """Parameters a token goes through: ``active_params`` if given, else ``params``."""
    raw = model.active_params or model.params
    return parse_count(raw) if raw is not None else None


def price_from_formula(model: ModelConfig, gpus: Mapping[str, Gpu]) -> ModelPrice | None:
    """The article's inference formula on the model's GPU; None without params or GPU."""
    params = formula_params(model)
    if params is None or model.gpu is None:
        return None
    gpu = lookup_gpu(model.gpu, gpus)
    u = model.utilisation
    prefill, decode = (u.prefill, u.decode) if isinstance(u, UtilisationConfig) else (u, u)
    in_1k, out_1k = formulas.inference_rates_usd_per_1k_tokens(
        params, gpu.flops_per_s, gpu.usd_per_hour, 1.0, 1.0, prefill, decode
    )
    which = "active_params" if model.active_params else "params"
    util = (
        f"utilisation {prefill:g}"
        if prefill == decode
        else f"prefill {prefill:g}/decode {decode:g}"
    )
    detail = (
        f"2 x {getattr(model, which)} {which} on {gpu.name} "
        f"({gpu.tflops:g} TFLOP/s, ${gpu.usd_per_hour:g}/h), {util}"
    )
    return ModelPrice(
        input_per_1m_micro=formulas.usd_per_1k_to_micro_per_1m(in_1k),
        output_per_1m_micro=formulas.usd_per_1k_to_micro_per_1m(out_1k),
        cached_input_per_1m_micro=None,
        source="formula",
        detail=detail,
    )


def _marginal(model: ModelConfig, gpus: Mapping[str, Gpu]) -> ModelPrice:
    amortised = price_from_formula(model, gpus)
    extra = ""
    if amortised is not None:
        extra = (
            f"; amortised it would be ${amortised.input_per_1m_micro / 1e6:.4g} in / "
            f"${amortised.output_per_1m_micro / 1e6:.4g} out per 1M"
        )
    return ModelPrice(
        0, 0, 0, "config", f"pricing: marginal (reserved GPUs, zero per token){extra}"
    )


def _limits(model: ModelConfig, entry: Mapping[str, Any] | None) -> ModelLimits:
    def count(key: str) -> int | None:
        v = entry.get(key) if entry is not None else None
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) and v > 0 else None

    ctx, ctx_src = model.context_window, "config"
    if ctx is None:
        ctx, ctx_src = count("max_input_tokens") or count("max_tokens"), "litellm"
    out, out_src = model.max_output_tokens, "config"
    if out is None:
        out, out_src = count("max_output_tokens"), "litellm"
    used = {s for v, s in ((ctx, ctx_src), (out, out_src)) if v is not None}
    source: LimitsSource = "unknown"
    if len(used) == 2:
        source = "config+litellm"
    elif used:
        source = "config" if "config" in used else "litellm"
    return ModelLimits(ctx, out, source)


def _needs_map(model: ModelConfig) -> bool:
    return (model.pricing != "marginal" and model.price is None) or (
        model.context_window is None or model.max_output_tokens is None
    )


def resolve_catalogue(cfg: Config, price_map: PriceMap | None = None) -> dict[str, PricedModel]:
    """Price every model in ``cfg`` (see the module docstring for the order).

    ``price_map`` defaults to litellm's bundled map, read only if some model needs it. Raises
    :class:`ConfigError` listing every model that has no price from any source.
    """
    gpus = gpu_catalogue(cfg)
    label = "price map"
    if price_map is None and any(_needs_map(m) for m in cfg.models.values()):
        price_map, label = load_price_map()
    pmap: PriceMap = price_map or {}
    out: dict[str, PricedModel] = {}
    problems: list[str] = []
    for name, model in cfg.models.items():
        found = litellm_entry(model, pmap) if pmap else None
        entry = found[1] if found else None
        price: ModelPrice | None
        if model.pricing == "marginal":
            price = _marginal(model, gpus)
        else:
            price = price_from_config(model)
            if price is None and found is not None:
                price = price_from_litellm(found[0], found[1], label)
            if price is None:
                price = price_from_formula(model, gpus)
        if price is None:
            problems.append(_no_price(cfg, name, model))
            continue
        out[name] = PricedModel(name, model, price, _limits(model, entry))
    if problems:
        raise ConfigError(problems)
    return out


def _no_price(cfg: Config, name: str, model: ModelConfig) -> str:
    where = f"{cfg.source}: models.{name}"
    looked = f"{model.provider}/{model.upstream_model}"
    if model.params is not None and model.gpu is None:
        return f"{where}: no price: params is set but gpu is not; add gpu: (e.g. h100) or price:"
    return (
        f"{where}: no price: {looked!r} is not in litellm's price map; add "
        "price: {input_per_1m: ..., output_per_1m: ...} (USD per 1M tokens), "
        "or params: and gpu: to price it by the article's formula"
    )
