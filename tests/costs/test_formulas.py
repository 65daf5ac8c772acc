"""The seed article's worked figures, recomputed from its formulas and constants.

Where the article's printed figure differs from the formula, the test pins the formula and
states the article's rounding (see the Cost model section of README.md for the same table).
"""

from __future__ import annotations

import math

import pytest

from router.costs import formulas as f
from router.costs.gpus import BUILTIN_GPUS

A100 = BUILTIN_GPUS["a100"]
A100_FLOPS = 312e12
A100_RENT = 2.2659  # $/hour, Azure 3-year term, as the article


def test_article_constants_are_the_a100_entry() -> None:
    assert A100.tflops == 312.0
    assert A100.usd_per_hour == 2.2659
    assert A100.flops_per_s == A100_FLOPS


def test_inference_8x222b_on_a100_is_0_0071656_per_1k() -> None:
    # 1000 x 2 x 1776e9 / 312e12 = 11.3846 s of A100 per 1K tokens, x $2.2659/3600.
    cost = f.inference_cost_usd_per_1k_tokens(8 * 222e9, A100_FLOPS, A100_RENT)
    assert cost == pytest.approx(0.00716566667, rel=1e-9)
    # Section 3.2 prints it truncated ("$0.0071656"), section 7.2 rounded ("0.00716567").
    assert math.floor(cost * 1e7) / 1e7 == pytest.approx(0.0071656)
    assert round(cost, 8) == pytest.approx(0.00716567)


def test_gpt3_pretraining_is_1_059m_before_the_discount() -> None:
    full = f.pretrain_cost_usd(175e9, 500e9, A100_FLOPS, A100_RENT)
    assert full == pytest.approx(1_059_114.58, abs=0.01)
    half = f.pretrain_cost_usd(175e9, 500e9, A100_FLOPS, A100_RENT, discount=0.5)
    assert half == pytest.approx(529_557.29, abs=0.01)
    # The article writes "约 105 万美元 * 5 折, 约 372.75 万元": it truncates to 105万 dollars,
    # halves, and converts at 7.1 yuan per dollar: 105e4 x 0.5 x 7.1 = 3,727,500.
    assert math.floor(full / 1e4) == 105
    assert pytest.approx(3_727_500) == 105e4 * 0.5 * 7.1


def test_gpt4_pretraining_from_the_formula_and_the_articles_rounding() -> None:
    full = f.pretrain_cost_usd(1.8e12, 13e12, A100_FLOPS, A100_RENT)
    half = f.pretrain_cost_usd(1.8e12, 13e12, A100_FLOPS, A100_RENT, discount=0.5)
    assert full == pytest.approx(283_237_500, rel=1e-9)
    assert half == pytest.approx(141_618_750, rel=1e-9)
    # The article says "GPT3 的 280 倍, 约 1.45 亿美元": the exact ratio is
    # (1800/175) x (13000/500) = 267.4, and 1.45亿 is 2.4% above the formula's $141.6M.
    gpt3 = f.pretrain_cost_usd(175e9, 500e9, A100_FLOPS, A100_RENT)
    assert full / gpt3 == pytest.approx(267.43, abs=0.01)
    assert (145e6 - half) / half == pytest.approx(0.024, abs=0.001)
    # GPT-4 Turbo (8x222B, 13T tokens): "费用与 GPT4 差不多", within 2%.
    turbo = f.pretrain_cost_usd(8 * 222e9, 13e12, A100_FLOPS, A100_RENT, discount=0.5)
    assert turbo == pytest.approx(139_730_500, rel=1e-9)
    assert abs(turbo - half) / half < 0.02


def test_monthly_cost_section_7_1() -> None:
    # 1.45亿/6 + monthly tokens (K) x 0.007: at 1 trillion tokens, 24.17M + 7M.
    cost = f.monthly_compute_cost_usd(145e6, 6, 1e12, 0.007)
    assert cost == pytest.approx(145e6 / 6 + 7e6)


def test_breakeven_tokens_is_1_85_trillion_with_the_articles_rounded_inputs() -> None:
    # The article rounds 1.45亿/6 = 24.17M down to "2.4 千万" before solving 2.4 + 0.7x = 2x:
    rounded = f.breakeven_monthly_tokens(24e6, 0.007, 0.02)
    assert rounded == pytest.approx(1.846e12, rel=1e-3)
    assert round(rounded / 1e12, 2) == 1.85
    # Unrounded, the same inputs give 1.86 trillion.
    exact = f.breakeven_monthly_tokens(145e6 / 6, 0.007, 0.02)
    assert exact == pytest.approx(1.859e12, rel=1e-3)
    # "假设有一千万个用户, 每个用户每天要消耗 6154 个 Token ... 6154/1.3 = 4733 个单词"
    per_day = f.tokens_per_user_per_day(rounded, 1e7)
    assert round(per_day) == 6154
    assert math.floor(6154 / 1.3) == 4733


def test_breakeven_subscribers_3_24m_at_full_use_and_1_29m_at_6700_a_day() -> None:
    fixed = 24e6  # "0.24 亿美元", the article's rounded monthly fixed cost
    full_use = 30 * 120 * 500  # 30 days x 120 questions x 500 tokens = 1.8M tokens a month
    assert full_use == 1_800_000
    at_full = f.breakeven_subscribers(fixed, 20, full_use, 0.007)
    assert at_full == pytest.approx(3_243_243, abs=1)  # "用户数量超 324 万"
    at_6700 = f.breakeven_subscribers(fixed, 20, 6700 * 30, 0.007)
    assert at_6700 == pytest.approx(1_290_808, abs=1)  # "用户数只要超过 129 万"
    assert f.subscriber_monthly_cost_usd(full_use, 0.007) == pytest.approx(12.6)


def test_opening_example_costs_0_13_dollars() -> None:
    # 5,000 汉字 in, 500 out, "1 汉字 ≈ 2 token", GPT-4 Turbo at $0.01 / $0.03 per 1K.
    usd = 5000 * 2 / 1000 * 0.01 + 500 * 2 / 1000 * 0.03
    assert usd == pytest.approx(0.13)
    # "也就是 9 毛钱 ... 每年要 0.9 x 10 x 365 = 3285 元" (0.13 x 7.1 = 0.92 yuan, rounded to 0.9).
    assert round(usd * 7.1, 1) == pytest.approx(0.9)
    assert pytest.approx(3285) == 0.9 * 10 * 365


def test_utilisation_and_discount_scale_the_cost() -> None:
    base = f.inference_cost_usd_per_1k_tokens(70e9, 989e12, 3.49)
    assert f.inference_cost_usd_per_1k_tokens(70e9, 989e12, 3.49, utilisation=0.5) == (
        pytest.approx(2 * base)
    )
    assert f.inference_cost_usd_per_1k_tokens(70e9, 989e12, 3.49, discount=0.5) == (
        pytest.approx(base / 2)
    )


def test_prefill_and_decode_rates() -> None:
    both = f.inference_rates_usd_per_1k_tokens(8e9, 121e12, 0.8048, utilisation=0.4)
    assert both[0] == both[1]
    inp, out = f.inference_rates_usd_per_1k_tokens(
        8e9, 121e12, 0.8048, prefill_utilisation=0.5, decode_utilisation=0.05
    )
    assert out == pytest.approx(10 * inp)
    only_decode = f.inference_rates_usd_per_1k_tokens(8e9, 121e12, 0.8048, 0.5, 1.0, None, 0.1)
    assert only_decode[1] == pytest.approx(5 * only_decode[0])


@pytest.mark.parametrize(
    "call",
    [
        lambda: f.inference_cost_usd_per_1k_tokens(0, A100_FLOPS, A100_RENT),
        lambda: f.inference_cost_usd_per_1k_tokens(-1e9, A100_FLOPS, A100_RENT),
        lambda: f.inference_cost_usd_per_1k_tokens(float("nan"), A100_FLOPS, A100_RENT),
        lambda: f.inference_cost_usd_per_1k_tokens(1e9, A100_FLOPS, A100_RENT, utilisation=1.5),
        lambda: f.inference_cost_usd_per_1k_tokens(1e9, A100_FLOPS, A100_RENT, utilisation=0),
        lambda: f.pretrain_cost_usd(1e9, 0, A100_FLOPS, A100_RENT),
        lambda: f.pretrain_cost_usd(1e9, 1e9, A100_FLOPS, A100_RENT, discount=-1),
        lambda: f.pretrain_cost_usd(1e9, 1e9, float("inf"), A100_RENT),
        lambda: f.breakeven_monthly_tokens(24e6, 0.02, 0.02),
        lambda: f.breakeven_monthly_tokens(24e6, 0.03, 0.02),
        lambda: f.breakeven_subscribers(24e6, 20, 3e6, 0.007),
        lambda: f.monthly_compute_cost_usd(1e6, 0, 1e9, 0.007),
        lambda: f.tokens_per_user_per_day(1e12, 0),
    ],
)
def test_bad_inputs_raise_value_error(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_never_breaks_even_message() -> None:
    with pytest.raises(ValueError, match="never breaks even"):
        f.breakeven_monthly_tokens(24e6, 0.03, 0.02)


def test_unit_conversions_to_integer_micro_dollars() -> None:
    assert f.usd_per_1m_to_micro_per_1m(0.15) == 150_000
    assert f.usd_per_token_to_micro_per_1m(1.5e-07) == 150_000
    assert f.usd_per_token_to_micro_per_1m(2.5e-06) == 2_500_000
    assert f.usd_per_1k_to_micro_per_1m(0.01) == 10_000_000
    assert f.usd_per_1k_to_micro_per_1m(0.0071656667) == 7_165_667
    for conv in (f.usd_per_1m_to_micro_per_1m, f.usd_per_token_to_micro_per_1m):
        assert isinstance(conv(0.1), int)
        with pytest.raises(ValueError):
            conv(-0.1)
