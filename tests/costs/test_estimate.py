"""Request costs in integer micro-dollars: rounding, estimates, worst case, actual usage."""

from __future__ import annotations

import time

import pytest

from router.config import CostsConfig
from router.costs.estimate import (
    DEFAULT_COMPLETION,
    FALLBACK_MAX_OUTPUT_TOKENS,
    actual_cost_micro,
    cost_micro,
    estimate_request_micro,
    expected_completion_tokens,
    usage_counts,
    worst_case_completion_tokens,
    worst_case_micro,
)
from router.costs.pricing import ModelLimits, ModelPrice

MINI = ModelPrice(150_000, 600_000, 75_000, "litellm", "gpt-4o-mini")  # $0.15 / $0.60 per 1M
TURBO = ModelPrice(10_000_000, 30_000_000, None, "litellm", "gpt-4-turbo")  # $0.01 / $0.03 per 1K
CLAUDE = ModelPrice(3_000_000, 15_000_000, 300_000, "litellm", "claude", 3_750_000)
QWEN = ModelPrice(1_200_000, 1_200_000, None, "litellm", "qwen", None, 4_000_000)


def test_opening_example_on_gpt4_turbo_is_130_000_micro_dollars() -> None:
    # 5,000 汉字 -> 10,000 tokens in, 500 汉字 -> 1,000 tokens out (the article's 2 tokens/字).
    assert cost_micro(TURBO, 10_000, 1_000) == 130_000  # $0.13


def test_rounds_up_once_to_whole_micro_dollars() -> None:
    assert cost_micro(MINI, 0, 0) == 0
    assert cost_micro(MINI, 1, 0) == 1  # 0.15 µ$ -> 1 µ$
    assert cost_micro(MINI, 6, 0) == 1  # 0.9 µ$
    assert cost_micro(MINI, 7, 0) == 2  # 1.05 µ$
    assert cost_micro(MINI, 1_000_000, 0) == 150_000  # exact, no rounding
    assert cost_micro(MINI, 1_000_000, 1_000_000) == 750_000
    # one ceiling over the sum, not one per part: 0.15 + 0.6 = 0.75 -> 1
    assert cost_micro(MINI, 1, 1) == 1
    assert isinstance(cost_micro(MINI, 123, 456), int)


def test_cached_tokens_are_billed_at_the_cached_rate_when_known() -> None:
    assert cost_micro(MINI, 1_000_000, 0, cached_tokens=1_000_000) == 75_000
    assert cost_micro(MINI, 1_000_000, 0, cached_tokens=400_000) == 90_000 + 30_000
    assert cost_micro(TURBO, 1_000, 0, cached_tokens=1_000) == cost_micro(TURBO, 1_000, 0)
    assert cost_micro(MINI, 10, 0, cached_tokens=50) == cost_micro(MINI, 10, 0, cached_tokens=10)
    assert cost_micro(MINI, -5, -5) == 0


def test_expected_completion_from_max_tokens_task_config_and_ratio() -> None:
    assert expected_completion_tokens(300, "reasoning", 50_000) == 300
    # expression: the article's own example, 10,000 tokens summarised into 1,000
    assert expected_completion_tokens(None, "expression", 10_000) == 1_000
    assert expected_completion_tokens(None, "expression", 70) == 256
    assert expected_completion_tokens(None, "reasoning", 100) == 1024
    assert expected_completion_tokens(None, "reasoning", 10_000) == 5_000
    assert expected_completion_tokens(None, None, 100) == DEFAULT_COMPLETION[0]
    assert expected_completion_tokens(None, "translation", 100) == DEFAULT_COMPLETION[0]
    cfg = CostsConfig(expected_output_tokens={"reasoning": 2000, "default": 700})
    assert expected_completion_tokens(None, "reasoning", 10_000, cfg) == 2000
    assert expected_completion_tokens(None, "expression", 10_000, cfg) == 1_000  # built-in kept
    assert expected_completion_tokens(None, "translation", 10, cfg) == 700
    assert expected_completion_tokens(None, None, 10, cfg) == 700
    assert expected_completion_tokens(0, None, 10, cfg) == 700  # max_tokens 0 is no bound


def test_estimate_request() -> None:
    assert estimate_request_micro(TURBO, 10_000, None, "expression") == 130_000
    assert estimate_request_micro(TURBO, 10_000, 2_000) == 100_000 + 60_000
    # the model's output limit caps the expectation
    assert estimate_request_micro(TURBO, 10_000, 8_000, max_output_tokens=4_096) == (
        cost_micro(TURBO, 10_000, 4_096)
    )


def test_worst_case_reservation() -> None:
    limits = ModelLimits(128_000, 16_384, "litellm")
    assert worst_case_completion_tokens(100, 1_000, limits) == 100
    assert worst_case_completion_tokens(100_000, 1_000, limits) == 16_384
    assert worst_case_completion_tokens(None, 1_000, limits) == 16_384
    ctx_only = ModelLimits(8_192, None, "config")
    assert worst_case_completion_tokens(None, 8_000, ctx_only) == 192
    assert worst_case_completion_tokens(None, 9_000, ctx_only) == 0
    assert worst_case_completion_tokens(None, 10, None) == FALLBACK_MAX_OUTPUT_TOKENS
    assert worst_case_micro(MINI, 1_000, None, limits) == cost_micro(MINI, 1_000, 16_384)


def test_actual_cost_from_openai_usage_with_cache_and_reasoning() -> None:
    usage = {
        "prompt_tokens": 2_000,
        "completion_tokens": 1_000,
        "total_tokens": 3_000,
        "prompt_tokens_details": {"cached_tokens": 1_024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 600, "audio_tokens": 0},
    }
    # reasoning tokens are already inside completion_tokens: not billed twice
    expected = (976 * 150_000 + 1_024 * 75_000 + 1_000 * 600_000 + 999_999) // 1_000_000
    assert actual_cost_micro(MINI, usage) == expected
    counts = usage_counts(usage)
    assert (counts.cached_tokens, counts.reasoning_tokens) == (1_024, 600)


def test_actual_cost_deepseek_and_anthropic_through_litellm() -> None:
    deepseek = {
        "prompt_tokens": 1_000,
        "completion_tokens": 10,
        "prompt_cache_hit_tokens": 800,
        "prompt_cache_miss_tokens": 200,
    }
    assert usage_counts(deepseek).cached_tokens == 800
    # litellm's Anthropic usage: prompt_tokens includes cache reads and cache writes
    anthropic = {
        "prompt_tokens": 10_000,
        "completion_tokens": 100,
        "prompt_tokens_details": {"cached_tokens": 6_000},
        "cache_creation_input_tokens": 3_000,
        "cache_read_input_tokens": 6_000,
    }
    pico = 1_000 * 3_000_000 + 6_000 * 300_000 + 3_000 * 3_750_000 + 100 * 15_000_000
    assert actual_cost_micro(CLAUDE, anthropic) == -(-pico // 1_000_000)


def test_reasoning_rate_applies_only_when_the_price_has_one() -> None:
    usage = {
        "prompt_tokens": 0,
        "completion_tokens": 1_000_000,
        "completion_tokens_details": {"reasoning_tokens": 250_000},
    }
    assert actual_cost_micro(QWEN, usage) == 750_000 * 1_200_000 // 10**6 + 250_000 * 4
    assert actual_cost_micro(MINI, usage) == 600_000


@pytest.mark.parametrize(
    "usage",
    [
        {},
        {"prompt_tokens": None, "completion_tokens": None},
        {"prompt_tokens": -3, "completion_tokens": "7"},
        {"prompt_tokens": True, "completion_tokens": 1.5},
        {"prompt_tokens_details": None, "completion_tokens_details": "x"},
    ],
)
def test_malformed_usage_counts_as_zero(usage: dict[str, object]) -> None:
    assert actual_cost_micro(MINI, usage) == 0


def test_cached_parts_are_clamped_to_their_totals() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 50},
        "completion_tokens_details": {"reasoning_tokens": 50},
    }
    counts = usage_counts(usage)
    assert (counts.cached_tokens, counts.reasoning_tokens) == (10, 5)


def test_hot_path_is_a_few_microseconds() -> None:
    usage = {
        "prompt_tokens": 1_234,
        "completion_tokens": 567,
        "prompt_tokens_details": {"cached_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    cfg = CostsConfig()
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        estimate_request_micro(MINI, 1_234, None, "reasoning", cfg, 0, 16_384)
        actual_cost_micro(MINI, usage)
    per_pair_us = (time.perf_counter() - start) / n * 1e6
    assert per_pair_us < 25  # ~4 µs here; generous for a loaded CI machine
