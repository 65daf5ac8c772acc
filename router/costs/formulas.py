"""The seed article's cost formulas, as pure functions with their units in their names.

The article (section 3) prices compute from first principles::

    pre-training cost        = 6 × params / (GPU FLOP/s) × rent per second × training tokens
    inference cost per 1K    = 1000 × 2 × params / (GPU FLOP/s) × rent per second

i.e. a forward pass costs ~2 FLOPs per parameter per token and training (forward + backward)
~6. Two factors the article leaves at 1 are explicit here, both defaulting to 1.0 so that its
figures come out unchanged:

* ``utilisation`` (MFU): the fraction of the GPU's peak FLOP/s actually achieved. Real training
  runs reach ~0.3-0.5; batched prefill ~0.5; decode is memory-bound and far lower. Prefill
  (input) and decode (output) can be given separate utilisations, which is how an input token
  comes out cheaper than an output token, as on every provider's price list.
* ``discount``: a multiplier on the rent (0.5 = the article's "五折" for OpenAI's bulk price).

Section 7 (can OpenAI recover its compute?) adds the monthly cost and two break-even points:

    monthly cost          = pre-training cost / refresh months + monthly tokens / 1000 × cost per 1K
    break-even tokens     = monthly fixed cost / ((price per 1K - cost per 1K) / 1000)
    break-even subscribers = monthly fixed cost / (fee - tokens per subscriber / 1000 × cost per 1K)

Everything here is float dollars: these are planning figures, not ledger entries. The gateway's
ledger uses integer micro-dollars (see :mod:`router.costs.estimate`); conversion happens once, in
:func:`usd_per_1k_to_micro_per_1m`.
"""

from __future__ import annotations

import math

SECONDS_PER_HOUR = 3600.0
#: FLOPs per parameter per token: forward pass (inference) and forward + backward (training).
INFERENCE_FLOPS_PER_PARAM_TOKEN = 2.0
TRAINING_FLOPS_PER_PARAM_TOKEN = 6.0


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return v


def _fraction(name: str, value: float) -> float:
    v = _positive(name, value)
    if v > 1:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return v


def usd_per_gpu_second(usd_per_gpu_hour: float, discount: float = 1.0) -> float:
    """Rent per second: the hourly price / 3600, times the discount multiplier."""
    return (
        _positive("usd_per_gpu_hour", usd_per_gpu_hour)
        / SECONDS_PER_HOUR
        * _positive("discount", discount)
    )


def gpu_seconds(flops: float, gpu_flops_per_s: float, utilisation: float = 1.0) -> float:
    """GPU-seconds needed for ``flops`` at ``utilisation`` of the peak ``gpu_flops_per_s``."""
    return _positive("flops", flops) / (
        _positive("gpu_flops_per_s", gpu_flops_per_s) * _fraction("utilisation", utilisation)
    )


def training_flops(params: float, training_tokens: float) -> float:
    """6 × parameters × tokens."""
    return (
        TRAINING_FLOPS_PER_PARAM_TOKEN
        * _positive("params", params)
        * _positive("training_tokens", training_tokens)
    )


def inference_flops_per_1k_tokens(params: float) -> float:
    """1000 × 2 × parameters."""
    return 1000.0 * INFERENCE_FLOPS_PER_PARAM_TOKEN * _positive("params", params)


def pretrain_cost_usd(
    params: float,
    training_tokens: float,
    gpu_flops_per_s: float,
    usd_per_gpu_hour: float,
    utilisation: float = 1.0,
    discount: float = 1.0,
) -> float:
    """Pre-training cost in dollars: 6 × params / (FLOP/s × MFU) × rent/s × tokens."""
    seconds = gpu_seconds(training_flops(params, training_tokens), gpu_flops_per_s, utilisation)
    return seconds * usd_per_gpu_second(usd_per_gpu_hour, discount)


def inference_cost_usd_per_1k_tokens(
    params: float,
    gpu_flops_per_s: float,
    usd_per_gpu_hour: float,
    utilisation: float = 1.0,
    discount: float = 1.0,
) -> float:
    """Inference cost per 1,000 tokens: 1000 × 2 × params / (FLOP/s × MFU) × rent/s.

    ``params`` is what each token actually multiplies through. For a mixture-of-experts model
    that is its *active* parameters; the article prices GPT-4 Turbo (8×222B) on its total, which
    is the upper bound (every expert touched).
    """
    seconds = gpu_seconds(inference_flops_per_1k_tokens(params), gpu_flops_per_s, utilisation)
    return seconds * usd_per_gpu_second(usd_per_gpu_hour, discount)


def inference_rates_usd_per_1k_tokens(
    params: float,
    gpu_flops_per_s: float,
    usd_per_gpu_hour: float,
    utilisation: float = 1.0,
    discount: float = 1.0,
    prefill_utilisation: float | None = None,
    decode_utilisation: float | None = None,
) -> tuple[float, float]:
    """(input, output) cost per 1K tokens: prefill and decode each at their own utilisation.

    A rate not given falls back to ``utilisation``, so with neither given both rates are the
    article's single figure.
    """
    prefill = utilisation if prefill_utilisation is None else prefill_utilisation
    decode = utilisation if decode_utilisation is None else decode_utilisation
    return (
        inference_cost_usd_per_1k_tokens(
            params, gpu_flops_per_s, usd_per_gpu_hour, prefill, discount
        ),
        inference_cost_usd_per_1k_tokens(
            params, gpu_flops_per_s, usd_per_gpu_hour, decode, discount
        ),
    )


def fixed_monthly_cost_usd(pretrain_usd: float, refresh_months: float) -> float:
    """Pre-training amortised over the months until the next training run."""
    return _positive("pretrain_usd", pretrain_usd) / _positive("refresh_months", refresh_months)


def monthly_compute_cost_usd(
    pretrain_usd: float,
    refresh_months: float,
    monthly_tokens: float,
    inference_usd_per_1k: float,
) -> float:
    """Section 7.1: pre-training / refresh months + monthly tokens (in thousands) × cost per 1K."""
    if monthly_tokens < 0:
        raise ValueError(f"monthly_tokens must be >= 0, got {monthly_tokens!r}")
    return fixed_monthly_cost_usd(pretrain_usd, refresh_months) + monthly_tokens / 1000.0 * (
        _positive("inference_usd_per_1k", inference_usd_per_1k)
    )


def breakeven_monthly_tokens(
    fixed_monthly_usd: float, inference_usd_per_1k: float, price_usd_per_1k: float
) -> float:
    """Section 7.2: tokens a month at which revenue covers fixed + per-token cost.

    revenue = tokens/1000 × price; cost = fixed + tokens/1000 × inference, so
    tokens = 1000 × fixed / (price - inference). ValueError when the price does not exceed the
    inference cost (no volume ever breaks even).
    """
    fixed = _positive("fixed_monthly_usd", fixed_monthly_usd)
    cost = _positive("inference_usd_per_1k", inference_usd_per_1k)
    price = _positive("price_usd_per_1k", price_usd_per_1k)
    if price <= cost:
        raise ValueError(
            f"never breaks even: price per 1K (${price:g}) must exceed "
            f"the inference cost per 1K (${cost:g})"
        )
    return 1000.0 * fixed / (price - cost)


def subscriber_monthly_cost_usd(
    tokens_per_subscriber_month: float, inference_usd_per_1k: float
) -> float:
    """Inference cost of one subscriber's monthly tokens."""
    return (
        _positive("tokens_per_subscriber_month", tokens_per_subscriber_month)
        / 1000.0
        * (_positive("inference_usd_per_1k", inference_usd_per_1k))
    )


def breakeven_subscribers(
    fixed_monthly_usd: float,
    subscription_usd_per_month: float,
    tokens_per_subscriber_month: float,
    inference_usd_per_1k: float,
) -> float:
    """Section 7.3: subscribers at which fees cover fixed + their inference cost.

    subscribers = fixed / (fee - tokens per subscriber / 1000 × cost per 1K). ValueError when
    one subscriber's inference already costs the fee or more.
    """
    fixed = _positive("fixed_monthly_usd", fixed_monthly_usd)
    fee = _positive("subscription_usd_per_month", subscription_usd_per_month)
    per_sub = subscriber_monthly_cost_usd(tokens_per_subscriber_month, inference_usd_per_1k)
    if fee <= per_sub:
        raise ValueError(
            f"never breaks even: a subscriber's inference costs ${per_sub:.4g} a month, "
            f"not less than the ${fee:g} fee"
        )
    return fixed / (fee - per_sub)


def tokens_per_user_per_day(
    monthly_tokens: float, users: float, days_per_month: float = 30.0
) -> float:
    """Spread a monthly token volume over ``users`` and days (the article uses 30-day months)."""
    if monthly_tokens < 0:
        raise ValueError(f"monthly_tokens must be >= 0, got {monthly_tokens!r}")
    return monthly_tokens / _positive("users", users) / _positive("days_per_month", days_per_month)


def usd_per_1k_to_micro_per_1m(usd_per_1k: float) -> int:
    """Dollars per 1K tokens -> integer micro-dollars per 1M tokens (x 1000 x 10^6, rounded)."""
    if not math.isfinite(usd_per_1k) or usd_per_1k < 0:
        raise ValueError(f"price must be a non-negative number, got {usd_per_1k!r}")
    return round(usd_per_1k * 1e9)


def usd_per_1m_to_micro_per_1m(usd_per_1m: float) -> int:
    """Dollars per 1M tokens (config's unit) -> integer micro-dollars per 1M tokens."""
    if not math.isfinite(usd_per_1m) or usd_per_1m < 0:
        raise ValueError(f"price must be a non-negative number, got {usd_per_1m!r}")
    return round(usd_per_1m * 1e6)


def usd_per_token_to_micro_per_1m(usd_per_token: float) -> int:
    """Dollars per token (litellm's unit) -> integer micro-dollars per 1M tokens (x 10^12)."""
    if not math.isfinite(usd_per_token) or usd_per_token < 0:
        raise ValueError(f"price must be a non-negative number, got {usd_per_token!r}")
    return round(usd_per_token * 1e12)
