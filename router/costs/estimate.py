"""Request cost in integer micro-dollars: before the call (estimate, worst case) and after (actual).

These run on every request, so they are plain integer arithmetic on a resolved
:class:`~router.costs.pricing.ModelPrice` (no look-ups in litellm's map, no floats, no
allocation beyond the result): about a microsecond each.

Units: a price is µ$ per 1M tokens, i.e. pico-dollars per token, so ``tokens × price`` is
pico-dollars and one division by 10^6 gives micro-dollars. A request's cost is rounded *up* to
the next whole µ$, once, after summing its parts: the ledger never under-counts, and never by
more than 1 µ$ per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router.config import CostsConfig
    from router.costs.pricing import ModelLimits, ModelPrice

PICO_PER_MICRO = 1_000_000

#: Per task class: (floor, numerator, denominator); expected = max(floor, prompt × num // den).
#:
#: * ``expression`` (writing, chat, summaries, translation): replies to short chat prompts run at a
#:   couple of hundred tokens whatever the prompt (LMSYS-Chat-1M, Zheng et al. 2023, Table 1:
#:   ~70 tokens per prompt, ~215 per response), hence a floor of 256. For long inputs the answer is
#:   a fraction of the input; the seed article's own example summarises 10,000 tokens into 1,000,
#:   hence 1/10 of the prompt.
#: * ``reasoning`` (maths, code, multi-step analysis): worked solutions carry their steps, and
#:   reasoning models add hidden reasoning tokens that are billed as output (a few hundred to
#:   several thousand per answer), hence a floor of 1,024 and half the prompt for long inputs
#:   (code review, long proofs).
#: * unknown task: between the two.
#:
#: These are priors for ranking models and showing an estimate. Budgets reserve the worst case
#: and fall back to this expected output only near a budget's end
#: (:func:`router.budgets.amount.reservation_amount`, called by :mod:`router.accounting`), then
#: settle to the actual usage. Override per deployment with ``costs.expected_output_tokens`` in
#: config.yaml (a fixed count per task, or ``default``).
TYPICAL_COMPLETION: Mapping[str, tuple[int, int, int]] = {
    "expression": (256, 1, 10),
    "reasoning": (1024, 1, 2),
}
DEFAULT_COMPLETION: tuple[int, int, int] = (512, 1, 4)
#: Completion tokens reserved when neither the request nor the catalogue bounds the output.
FALLBACK_MAX_OUTPUT_TOKENS = 16_384


def cost_micro(
    price: ModelPrice, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> int:
    """Cost of a call in µ$, rounded up once.

    ``cached_tokens`` are part of ``prompt_tokens`` (as OpenAI reports them) and are billed at the
    cached-input rate when the price has one, else at the input rate.
    """
    prompt = prompt_tokens if prompt_tokens > 0 else 0
    cached = cached_tokens if cached_tokens > 0 else 0
    if cached > prompt:
        cached = prompt
    completion = completion_tokens if completion_tokens > 0 else 0
    cached_rate = price.cached_input_per_1m_micro
    if cached_rate is None:
        cached_rate = price.input_per_1m_micro
    pico = (
        (prompt - cached) * price.input_per_1m_micro
        + cached * cached_rate
        + completion * price.output_per_1m_micro
    )
    return -(-pico // PICO_PER_MICRO)


def expected_completion_tokens(
    max_tokens: int | None,
    task: str | None,
    prompt_tokens: int,
    costs_cfg: CostsConfig | None = None,
) -> int:
    """Completion tokens to expect before the call.

    ``max_tokens`` when the request gives one (the caller's own bound, so the estimate never
    understates what the caller allowed). Otherwise the configured count for ``task`` (or for
    ``default``), else the typical ratio of :data:`TYPICAL_COMPLETION` (see its comment for where
    the figures come from).
    """
    if max_tokens is not None and max_tokens > 0:
        return max_tokens
    if costs_cfg is not None:
        configured = costs_cfg.expected_output_tokens
        if configured:
            if task is not None and task in configured:
                return configured[task]
            if (task is None or task not in TYPICAL_COMPLETION) and "default" in configured:
                return configured["default"]
    floor, num, den = (
        TYPICAL_COMPLETION.get(task, DEFAULT_COMPLETION) if task else DEFAULT_COMPLETION
    )
    proportional = prompt_tokens * num // den if prompt_tokens > 0 else 0
    return proportional if proportional > floor else floor


def estimate_request_micro(
    price: ModelPrice,
    prompt_tokens: int,
    max_tokens: int | None = None,
    task: str | None = None,
    costs_cfg: CostsConfig | None = None,
    cached_tokens: int = 0,
    max_output_tokens: int | None = None,
) -> int:
    """Expected cost before the call: prompt × input price + expected completion × output price.

    ``max_output_tokens`` (the model's limit, from :class:`ModelLimits`) caps the expectation.
    """
    completion = expected_completion_tokens(max_tokens, task, prompt_tokens, costs_cfg)
    if max_output_tokens is not None and completion > max_output_tokens:
        completion = max_output_tokens
    return cost_micro(price, prompt_tokens, completion, cached_tokens)


def worst_case_completion_tokens(
    max_tokens: int | None, prompt_tokens: int, limits: ModelLimits | None = None
) -> int:
    """The most completion tokens the call can bill: what a budget must reserve.

    ``max_tokens`` capped by the model's output limit; without ``max_tokens``, the output limit,
    else what is left of the context window, else :data:`FALLBACK_MAX_OUTPUT_TOKENS`.
    """
    cap = limits.max_output_tokens if limits is not None else None
    if cap is None and limits is not None and limits.context_window is not None:
        room = limits.context_window - prompt_tokens
        cap = room if room > 0 else 0
    if max_tokens is not None and max_tokens > 0:
        return max_tokens if cap is None or max_tokens < cap else cap
    return cap if cap is not None else FALLBACK_MAX_OUTPUT_TOKENS


def worst_case_micro(
    price: ModelPrice, prompt_tokens: int, max_tokens: int | None, limits: ModelLimits | None = None
) -> int:
    """Prompt at the full input rate (no cache discount) + the worst-case completion."""
    return cost_micro(
        price, prompt_tokens, worst_case_completion_tokens(max_tokens, prompt_tokens, limits)
    )


@dataclass(frozen=True, slots=True)
class UsageCounts:
    """Token counts read from an upstream's usage object (all subsets of prompt/completion)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


def _count(value: Any) -> int:
    if value.__class__ is int and value > 0:  # not bool, not None, not float
        return int(value)
    return 0


def _read_usage(usage: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
    get = usage.get
    prompt = _count(get("prompt_tokens"))
    completion = _count(get("completion_tokens"))
    cached = cache_write = reasoning = 0
    details = get("prompt_tokens_details")
    if isinstance(details, dict):
        cached = _count(details.get("cached_tokens"))
        cache_write = _count(details.get("cache_creation_tokens"))
    if not cached:
        cached = _count(get("prompt_cache_hit_tokens"))
    if not cache_write:
        cache_write = _count(get("cache_creation_input_tokens"))
    if cached > prompt:
        cached = prompt
    if cache_write > prompt - cached:
        cache_write = prompt - cached
    out_details = get("completion_tokens_details")
    if isinstance(out_details, dict):
        reasoning = _count(out_details.get("reasoning_tokens"))
        if reasoning > completion:
            reasoning = completion
    return prompt, completion, cached, cache_write, reasoning


def usage_counts(usage: Mapping[str, Any]) -> UsageCounts:
    """Read an OpenAI-shaped ``usage`` object (what the fast path and litellm both return).

    * ``prompt_tokens`` includes every input token, cached or not (OpenAI, DeepSeek, and litellm's
      translation of Anthropic, which adds cache reads and writes into it).
    * cache hits: ``prompt_tokens_details.cached_tokens``; DeepSeek's ``prompt_cache_hit_tokens``
      when that is absent.
    * cache writes: ``cache_creation_input_tokens`` (litellm, Anthropic) or
      ``prompt_tokens_details.cache_creation_tokens``.
    * ``completion_tokens`` already includes ``completion_tokens_details.reasoning_tokens`` (OpenAI
      o-series, DeepSeek reasoner, and litellm's Gemini/Anthropic translations): reasoning tokens
      are output tokens and are not added again.

    Missing, null, negative or non-integer fields count as 0; the parts are clamped so that they
    never exceed their totals.
    """
    return UsageCounts(*_read_usage(usage))


def _usage_cost(
    price: ModelPrice, prompt: int, completion: int, cached: int, write: int, reasoning: int
) -> int:
    cached_rate = price.cached_input_per_1m_micro
    if cached_rate is None:
        cached_rate = price.input_per_1m_micro
    write_rate = price.cache_write_per_1m_micro
    if write_rate is None:
        write_rate = price.input_per_1m_micro
    reasoning_rate = price.reasoning_per_1m_micro
    if reasoning_rate is None:
        reasoning_rate = price.output_per_1m_micro
    pico = (
        (prompt - cached - write) * price.input_per_1m_micro
        + cached * cached_rate
        + write * write_rate
        + (completion - reasoning) * price.output_per_1m_micro
        + reasoning * reasoning_rate
    )
    return -(-pico // PICO_PER_MICRO)


def actual_cost_micro(price: ModelPrice, usage: Mapping[str, Any]) -> int:
    """Cost after the call from the upstream's ``usage`` (see :func:`usage_counts`)."""
    return _usage_cost(price, *_read_usage(usage))
