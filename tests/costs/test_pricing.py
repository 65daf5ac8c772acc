"""Price sources: config, litellm's bundled map, the article's formula; GPU catalogue; limits."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from router.config import Config, ConfigError, config_from_text, load_config
from router.costs import pricing
from router.costs.gpus import BUILTIN_GPUS, gpu_catalogue, lookup_gpu
from router.costs.pricing import ModelPrice, resolve_catalogue

REPO = Path(__file__).resolve().parents[2]

#: A small stand-in for litellm's map, in its units (dollars per token).
FAKE_MAP: dict[str, Any] = {
    "gpt-4o-mini": {
        "litellm_provider": "openai",
        "input_cost_per_token": 1.5e-07,
        "output_cost_per_token": 6e-07,
        "cache_read_input_token_cost": 7.5e-08,
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
    },
    "deepseek/deepseek-chat": {
        "litellm_provider": "deepseek",
        "input_cost_per_token": 2.8e-07,
        "output_cost_per_token": 4.2e-07,
        "cache_read_input_token_cost": 2.8e-08,
        "max_input_tokens": 131072,
        "max_output_tokens": 8192,
    },
    "claude-x": {
        "litellm_provider": "anthropic",
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "cache_read_input_token_cost": 3e-07,
        "cache_creation_input_token_cost": 3.75e-06,
        "max_tokens": 64000,
    },
    "together_ai/meta-llama/Llama-3-70b": {
        "litellm_provider": "together_ai",
        "input_cost_per_token": 9e-07,
        "output_cost_per_token": 9e-07,
    },
    "sample_spec": "not an entry",
}


def cfg_of(models_yaml: str, extra: str = "") -> Config:
    return config_from_text(
        extra + "models:\n" + textwrap.indent(textwrap.dedent(models_yaml), "  ")
    )


def test_every_builtin_gpu_is_there_with_dense_figures() -> None:
    assert set(BUILTIN_GPUS) == {"a100", "h100", "h200", "l40s", "l4", "a10", "rtx4090"}
    dense = {"a100": 312, "h100": 989, "h200": 989, "l40s": 362.05, "l4": 121, "a10": 125}
    for name, tflops in dense.items():
        assert BUILTIN_GPUS[name].tflops == tflops
    assert BUILTIN_GPUS["rtx4090"].tflops == 165.2
    for gpu in BUILTIN_GPUS.values():
        assert gpu.usd_per_hour > 0 and "$" in gpu.source  # every rent names where it came from


def test_gpu_lookup_aliases_and_unknown() -> None:
    assert lookup_gpu("RTX-4090").name == "rtx4090"
    assert lookup_gpu(" H100 ").name == "h100"
    with pytest.raises(ValueError, match=r"unknown GPU 'z80' \(known: a10, a100"):
        lookup_gpu("z80")


def test_config_gpus_override_and_add() -> None:
    cfg = config_from_text(
        "gpus:\n  H100: {usd_per_hour: 2.0}\n  mi300x: {tflops: 1307.4, usd_per_hour: 3.5}\n"
        "models: {}\n"
    )
    cat = gpu_catalogue(cfg)
    assert (cat["h100"].tflops, cat["h100"].usd_per_hour) == (989.0, 2.0)
    assert cat["mi300x"].tflops == 1307.4
    assert cat["a100"] == BUILTIN_GPUS["a100"]


def test_config_refuses_incomplete_new_gpu_and_unknown_gpu() -> None:
    with pytest.raises(ConfigError, match=r"gpus\.foo: usd_per_hour is required"):
        config_from_text("gpus:\n  foo: {tflops: 100}\nmodels: {}\n")
    with pytest.raises(ConfigError, match=r"models.m.gpu: unknown GPU 'z80' \(known: a10"):
        cfg_of("m: {provider: vllm, upstream_model: x, api_base: 'http://h', params: 8B, gpu: z80}")


def test_config_utilisation_number_or_split_with_one_clean_error() -> None:
    cfg = cfg_of(
        """\
        a: {provider: vllm, upstream_model: x, api_base: 'http://h', utilisation: 0.3}
        b: {provider: vllm, upstream_model: x, api_base: 'http://h',
            utilisation: {prefill: 0.5, decode: 0.1}}
        """
    )
    assert cfg.models["a"].utilisation == 0.3
    assert cfg.models["b"].utilisation.decode == 0.1  # type: ignore[union-attr]
    for bad in ("1.5", "0", "{prefill: 0.5}", "true", "{prefill: 0.5, decode: 2}"):
        with pytest.raises(ConfigError) as exc:
            cfg_of(
                f"a: {{provider: vllm, upstream_model: x, api_base: 'http://h', utilisation: {bad}}}"
            )
        assert len(exc.value.problems) == 1
        assert "utilisation must be a number in (0, 1]" in exc.value.problems[0]


def test_explicit_config_price_wins_over_litellm() -> None:
    cfg = cfg_of(
        "gpt-4o-mini: {provider: openai, upstream_model: gpt-4o-mini,"
        " price: {input_per_1m: 0.2, output_per_1m: 0.8}}"
    )
    pm = resolve_catalogue(cfg, FAKE_MAP)["gpt-4o-mini"]
    assert pm.price == ModelPrice(200_000, 800_000, None, "config", "price: in config")
    # limits still come from litellm when config has none
    assert (pm.limits.context_window, pm.limits.max_output_tokens) == (128000, 16384)
    assert pm.limits.source == "litellm"


def test_litellm_price_by_provider_key_then_plain_key() -> None:
    cfg = cfg_of(
        """\
        mini: {provider: openai, upstream_model: gpt-4o-mini}
        ds: {provider: deepseek, upstream_model: deepseek-chat}
        claude: {provider: anthropic, upstream_model: claude-x, context_window: 100000}
        llama: {provider: together, upstream_model: meta-llama/Llama-3-70b}
        """
    )
    cat = resolve_catalogue(cfg, FAKE_MAP)
    mini = cat["mini"].price
    assert (mini.input_per_1m_micro, mini.output_per_1m_micro) == (150_000, 600_000)
    assert mini.cached_input_per_1m_micro == 75_000
    assert mini.source == "litellm" and "'gpt-4o-mini'" in mini.detail
    assert "'deepseek/deepseek-chat'" in cat["ds"].price.detail
    assert cat["claude"].price.cache_write_per_1m_micro == 3_750_000
    assert cat["claude"].limits.context_window == 100000  # config wins
    assert cat["claude"].limits.max_output_tokens is None
    assert cat["llama"].price.input_per_1m_micro == 900_000  # together -> together_ai
    for pm in cat.values():
        assert all(
            isinstance(v, int) for v in (pm.price.input_per_1m_micro, pm.price.output_per_1m_micro)
        )


def test_plain_key_of_another_provider_is_not_borrowed() -> None:
    # A self-hosted model named like an OpenAI model must not take OpenAI's price.
    cfg = cfg_of(
        "mine: {provider: vllm, upstream_model: gpt-4o-mini, api_base: 'http://h',"
        " params: 8B, gpu: l4}"
    )
    price = resolve_catalogue(cfg, FAKE_MAP)["mine"].price
    assert price.source == "formula"


def test_formula_price_for_a_self_hosted_model() -> None:
    cfg = cfg_of(
        "llama: {provider: vllm, upstream_model: meta-llama/x, api_base: 'http://h',"
        " params: 8x222B, gpu: a100}"
    )
    pm = resolve_catalogue(cfg, {})["llama"]
    # The article's $0.0071656667 per 1K = $7.1656667 per 1M = 7,165,667 µ$ per 1M.
    assert pm.price.input_per_1m_micro == pm.price.output_per_1m_micro == 7_165_667
    assert pm.price.source == "formula"
    assert "8x222B params on a100" in pm.price.detail
    assert pm.limits == pricing.ModelLimits(None, None, "unknown")


def test_formula_uses_active_params_and_split_utilisation() -> None:
    cfg = cfg_of(
        "moe: {provider: vllm, upstream_model: m, api_base: 'http://h', params: 47B,"
        " active_params: 13B, gpu: h100, utilisation: {prefill: 0.5, decode: 0.05}}"
    )
    price = resolve_catalogue(cfg, {})["moe"].price
    expected_in = 1000 * 2 * 13e9 / (989e12 * 0.5) * 3.49 / 3600 * 1e9
    assert price.input_per_1m_micro == round(expected_in)
    assert price.output_per_1m_micro == pytest.approx(10 * price.input_per_1m_micro, abs=10)
    assert "active_params" in price.detail and "prefill 0.5/decode 0.05" in price.detail


def test_formula_follows_a_config_gpu_override() -> None:
    cfg = cfg_of(
        "m: {provider: vllm, upstream_model: m, api_base: 'http://h', params: 8x222B, gpu: a100}",
        extra="gpus:\n  a100: {usd_per_hour: 1.13295}\n",  # half the article's rent
    )
    assert resolve_catalogue(cfg, {})["m"].price.input_per_1m_micro == 3_582_833


def test_marginal_pricing_is_zero_and_says_so() -> None:
    cfg = cfg_of(
        "m: {provider: vllm, upstream_model: m, api_base: 'http://h', params: 8B, gpu: l4,"
        " pricing: marginal, price: {input_per_1m: 5, output_per_1m: 5}}"
    )
    price = resolve_catalogue(cfg, {})["m"].price
    assert (price.input_per_1m_micro, price.output_per_1m_micro) == (0, 0)
    assert price.is_free
    assert "marginal" in price.detail and "amortised it would be $0.02956" in price.detail


def test_no_price_from_any_source_is_a_startup_error_naming_the_model() -> None:
    cfg = cfg_of(
        """\
        mystery: {provider: vllm, upstream_model: my/model, api_base: 'http://h'}
        nogpu: {provider: vllm, upstream_model: my/model, api_base: 'http://h', params: 8B}
        fine: {provider: openai, upstream_model: gpt-4o-mini}
        """
    )
    with pytest.raises(ConfigError) as exc:
        resolve_catalogue(cfg, FAKE_MAP)
    problems = exc.value.problems
    assert len(problems) == 2
    assert "models.mystery: no price" in problems[0] and "add price:" in problems[0]
    assert "params: and gpu:" in problems[0]
    assert "models.nogpu" in problems[1] and "add gpu:" in problems[1]


def test_the_map_is_not_read_when_config_says_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> None:
        raise AssertionError("price map loaded")

    monkeypatch.setattr(pricing, "load_price_map", boom)
    cfg = cfg_of(
        """\
        a: {provider: vllm, upstream_model: m, api_base: 'http://h', pricing: marginal,
            context_window: 8192, max_output_tokens: 1024}
        b: {provider: vllm, upstream_model: m, api_base: 'http://h', price: {input_per_1m: 1},
            context_window: 8192, max_output_tokens: 1024}
        """
    )
    cat = resolve_catalogue(cfg)
    assert cat["a"].limits.source == cat["b"].limits.source == "config"
    # Without an explicit price the map is consulted first (litellm before the formula).
    with pytest.raises(AssertionError, match="price map loaded"):
        resolve_catalogue(
            cfg_of(
                "c: {provider: vllm, upstream_model: m, api_base: 'http://h',"
                " params: 8B, gpu: l4, context_window: 8, max_output_tokens: 1}"
            )
        )


def test_default_config_resolves_with_the_bundled_map() -> None:
    cfg = load_config(REPO / "config.yaml")
    cat = resolve_catalogue(cfg)
    assert set(cat) == set(cfg.models)
    assert cat["gpt-4o-mini"].price.input_per_1m_micro == 150_000
    assert cat["gpt-4o-mini"].price.source == "litellm"
    local = cat["llama-3.1-8b-local"]
    assert local.price.source == "formula" and local.price.input_per_1m_micro == 73_903
    for pm in cat.values():
        assert pm.limits.context_window, pm.name
        meta = pm.metadata()
        assert meta["pricing"]["source"] in ("config", "litellm", "formula")


def test_resolution_and_request_costs_never_import_litellm() -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from router.config import load_config
        from router.costs.pricing import resolve_catalogue
        from router.costs.estimate import actual_cost_micro, estimate_request_micro
        cat = resolve_catalogue(load_config({str(REPO / "config.yaml")!r}))
        p = cat["gpt-4o"].price
        estimate_request_micro(p, 1000, None, "reasoning")
        actual_cost_micro(p, {{"prompt_tokens": 10, "completion_tokens": 5}})
        assert "litellm" not in sys.modules, "litellm imported"
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
