"""``router cost ...`` and ``router models``: the article's table through the CLI, and bad input."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from router.cli import main

REPO = Path(__file__).resolve().parents[2]
ARTICLE_CONFIG = Path(__file__).with_name("article_config.yaml")
DEFAULT_CONFIG = REPO / "config.yaml"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_inference_8x222b_on_a100(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "inference", "--params", "8x222B", "--gpu", "a100"]) == 0
    out = capsys.readouterr().out
    assert "$0.00716567 per 1K tokens" in out
    data = run_json(capsys, "cost", "inference", "--params", "8x222B", "--gpu", "a100")
    assert data["usd_per_1k_tokens"] == pytest.approx(0.00716566667, rel=1e-9)
    assert data["gpu"]["tflops"] == 312 and data["gpu"]["usd_per_hour"] == 2.2659


def test_inference_moe_split_utilisation_and_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(
        capsys,
        "cost",
        "inference",
        "--params",
        "47B",
        "--active-params",
        "13B",
        "--gpu",
        "H100",
        "--prefill-utilisation",
        "0.5",
        "--decode-utilisation",
        "0.05",
    )
    assert data["priced_params"] == 13e9
    assert data["output_usd_per_1k_tokens"] == pytest.approx(10 * data["input_usd_per_1k_tokens"])
    data = run_json(
        capsys,
        "cost",
        "inference",
        "--params",
        "8x222B",
        "--tflops",
        "624",
        "--usd-per-hour",
        "2.2659",
    )
    assert data["usd_per_1k_tokens"] == pytest.approx(0.00716566667 / 2, rel=1e-9)


def test_pretrain_gpt3_and_gpt4(capsys: pytest.CaptureFixture[str]) -> None:
    gpt3 = run_json(
        capsys,
        "cost",
        "pretrain",
        "--params",
        "175B",
        "--tokens",
        "500B",
        "--gpu",
        "a100",
        "--discount",
        "0.5",
    )
    assert gpt3["usd_before_discount"] == pytest.approx(1_059_114.58, abs=0.01)
    assert gpt3["usd"] == pytest.approx(529_557.29, abs=0.01)
    gpt4 = run_json(
        capsys, "cost", "pretrain", "--params", "1.8T", "--tokens", "13T", "--discount", "0.5"
    )
    assert gpt4["usd"] == pytest.approx(141_618_750)
    assert main(["cost", "pretrain", "--params", "175B", "--tokens", "500B"]) == 0
    assert "$1,059,115 ($1.059M)" in capsys.readouterr().out


def test_breakeven_tokens_and_subscribers(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["cost", "breakeven", "--inference-per-1k", "0.007", "--price-per-1k", "0.02"]
    exact = run_json(capsys, *base, "--pretrain-usd", "145e6", "--refresh-months", "6")
    assert exact["fixed_monthly_usd"] == pytest.approx(145e6 / 6)
    assert exact["breakeven_tokens_per_month"] == pytest.approx(1.859e12, rel=1e-3)
    rounded = run_json(
        capsys,
        *base,
        "--fixed-monthly-usd",
        "24e6",
        "--users",
        "1e7",
        "--subscription",
        "20",
        "--tokens-per-user-month",
        "1.8e6",
    )
    assert round(rounded["breakeven_tokens_per_month"] / 1e12, 2) == 1.85
    assert round(rounded["breakeven_tokens_per_user_day"]) == 6154
    assert round(rounded["breakeven_subscribers"] / 1e4) == 324
    light = run_json(
        capsys,
        "cost",
        "breakeven",
        "--fixed-monthly-usd",
        "24e6",
        "--inference-per-1k",
        "0.007",
        "--subscription",
        "20",
        "--tokens-per-user-day",
        "6700",
    )
    assert round(light["breakeven_subscribers"] / 1e4) == 129
    assert "breakeven_tokens_per_month" not in light


def test_request_opening_example_on_article_config(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(
        capsys,
        "cost",
        "request",
        "--config",
        str(ARTICLE_CONFIG),
        "--model",
        "gpt-4-turbo",
        "--prompt-tokens",
        "10000",
        "--output-tokens",
        "1000",
    )
    rows = {r["model"]: r for r in data["rows"]}
    assert rows["gpt-4-turbo"]["cost_micro"] == 130_000  # $0.13
    assert rows["gpt-4-turbo"]["requested"] is True
    # at cost (the article's formula) it is 11,000 tokens x $7.1657/1M
    assert rows["gpt-4-turbo-at-cost"]["cost_micro"] == 78_823
    assert [r["model"] for r in data["rows"]] == ["gpt-4-turbo-at-cost", "gpt-4-turbo"]


def test_request_counts_tokens_per_model_cheapest_first(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = tmp_path / "article.txt"
    text.write_text("人工智能应用的降本之道。" * 400, encoding="utf-8")
    data = run_json(
        capsys,
        "cost",
        "request",
        "--config",
        str(DEFAULT_CONFIG),
        "--model",
        "gpt-4o",
        "--text-file",
        str(text),
        "--task",
        "expression",
    )
    rows = data["rows"]
    costs = [r["cost_micro"] for r in rows]
    assert costs == sorted(costs)
    assert {r["model"] for r in rows} == {
        "gpt-4o",
        "gpt-4.1",
        "gpt-4o-mini",
        "gpt-4.1-nano",
        "o4-mini",
        "deepseek-chat",
        "deepseek-reasoner",
        "claude-haiku-4-5",
        "claude-sonnet-4-5",
        "gemini-2.5-flash",
        "llama-3.1-8b-local",
    }  # chat models only: the embedding model is not a candidate
    by = {r["model"]: r for r in rows}
    assert by["gpt-4o"]["prompt_tokens"] == by["gpt-4o-mini"]["prompt_tokens"]  # both o200k
    assert by["gpt-4o"]["prompt_tokens"] != by["deepseek-chat"]["prompt_tokens"]
    assert by["gpt-4o"]["vs_requested"] == 1
    assert (
        main(
            [
                "cost",
                "request",
                "--config",
                str(DEFAULT_CONFIG),
                "--model",
                "gpt-4o",
                "--text-file",
                str(text),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "* gpt-4o " in out and "vs gpt-4o" in out


def test_request_messages_file_uses_its_max_tokens(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 77}))
    data = run_json(
        capsys,
        "cost",
        "request",
        "--config",
        str(ARTICLE_CONFIG),
        "--model",
        "gpt-4-turbo",
        "--messages-file",
        str(body),
    )
    assert {r["output_tokens"] for r in data["rows"]} == {77}
    assert {r["prompt_tokens"] for r in data["rows"]} == {8}  # 3 + 1 + 1 ("user", "hi") + 3
    bare = tmp_path / "messages.json"
    bare.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    data = run_json(
        capsys,
        "cost",
        "request",
        "--config",
        str(ARTICLE_CONFIG),
        "--model",
        "gpt-4-turbo",
        "--messages-file",
        str(bare),
        "--output-tokens",
        "5",
    )
    assert {r["output_tokens"] for r in data["rows"]} == {5}


def test_models_lists_prices_sources_and_limits(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "models", "--config", str(DEFAULT_CONFIG))
    rows = {r["id"]: r for r in data["data"]}
    assert rows["gpt-4o-mini"]["pricing"]["input_per_1m_usd"] == 0.15
    assert rows["gpt-4o-mini"]["pricing"]["source"] == "litellm"
    assert rows["llama-3.1-8b-local"]["pricing"]["source"] == "formula"
    assert rows["text-embedding-3-small"]["context_window"] == 8191
    assert main(["models", "--config", str(ARTICLE_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "gpt-4-turbo-at-cost" in out and "formula: 2 x 8x222B params on a100" in out


def test_models_reads_router_config_env(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTER_CONFIG", str(ARTICLE_CONFIG))
    data = run_json(capsys, "models")
    assert [r["id"] for r in data["data"]] == ["gpt-4-turbo", "gpt-4-turbo-at-cost"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cost", "inference", "--params=-5B"], "argument --params"),
        (["cost", "inference", "--params", "0"], "must be a positive number"),
        (["cost", "inference", "--params", "lots"], "cannot parse 'lots'"),
        (["cost", "inference", "--params", "8B", "--gpu", "z80"], "unknown GPU 'z80'"),
        (["cost", "inference", "--params", "8B", "--utilisation", "1.5"], "must be in (0, 1]"),
        (["cost", "inference", "--params", "8B", "--active-params", "9B"], "cannot exceed"),
        (["cost", "pretrain", "--params", "175B", "--tokens", "0"], "argument --tokens"),
        (
            ["cost", "pretrain", "--params", "175B", "--tokens", "1T", "--discount", "nan"],
            "argument --discount",
        ),
        (
            [
                "cost",
                "breakeven",
                "--pretrain-usd",
                "145e6",
                "--inference-per-1k",
                "0.03",
                "--price-per-1k",
                "0.02",
            ],
            "never breaks even",
        ),
        (
            ["cost", "breakeven", "--pretrain-usd", "145e6", "--inference-per-1k", "0.007"],
            "give --price-per-1k",
        ),
        (
            [
                "cost",
                "breakeven",
                "--pretrain-usd",
                "145e6",
                "--inference-per-1k",
                "0.007",
                "--subscription",
                "20",
            ],
            "needs --tokens-per-user-month",
        ),
        (
            [
                "cost",
                "request",
                "--config",
                str(ARTICLE_CONFIG),
                "--model",
                "nope",
                "--prompt-tokens",
                "5",
            ],
            "unknown model 'nope'",
        ),
        (
            [
                "cost",
                "request",
                "--config",
                "/nonexistent.yaml",
                "--model",
                "x",
                "--prompt-tokens",
                "5",
            ],
            "cannot read",
        ),
        (
            [
                "cost",
                "request",
                "--config",
                str(ARTICLE_CONFIG),
                "--model",
                "gpt-4-turbo",
                "--text-file",
                "/nonexistent.txt",
            ],
            "cannot read /nonexistent.txt",
        ),
        (
            [
                "cost",
                "request",
                "--config",
                str(ARTICLE_CONFIG),
                "--model",
                "gpt-4-turbo",
                "--prompt-tokens",
                "1.5",
            ],
            "whole number",
        ),
        (["cost"], "say what to price"),
        (["models", "--config", "/nonexistent.yaml"], "cannot read"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert message in err
    assert err.startswith(f"router {argv[0]}: error: ")


def test_bad_json_messages_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    for content, message in (
        ("{nope", "invalid JSON"),
        ('{"messages": []}', "expected a messages"),
    ):
        bad.write_text(content)
        argv = [
            "cost",
            "request",
            "--config",
            str(ARTICLE_CONFIG),
            "--model",
            "gpt-4-turbo",
            "--messages-file",
            str(bad),
        ]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_config_without_a_price_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  m: {provider: vllm, upstream_model: my/m, api_base: 'http://h'}\n")
    assert main(["models", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "models.m: no price" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["cost", "inference"],  # missing --params
        ["cost", "inference", "--params", "-5B"],  # argparse reads -5B as an option
        ["cost", "inference", "--params", "8B", "--bogus"],
        [
            "cost",
            "breakeven",
            "--pretrain-usd",
            "1e6",
            "--fixed-monthly-usd",
            "1e5",
            "--inference-per-1k",
            "0.007",
        ],
    ],
)
def test_argparse_errors_are_one_line_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("router cost "), err


#: What the ``router`` console script runs (router.cli:main), without needing it on PATH.
ROUTER = [sys.executable, "-c", "import sys; from router.cli import main; sys.exit(main())"]


def test_subprocess_cli() -> None:
    ok = subprocess.run(
        [*ROUTER, "cost", "inference", "--params", "8x222B", "--gpu", "a100", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["usd_per_1k_tokens"] == pytest.approx(0.0071657, rel=1e-4)
    bad = subprocess.run(
        [*ROUTER, "cost", "pretrain", "--params", "175B", "--tokens", "-1"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1
    assert bad.stdout == ""


def article_table_rows() -> list[tuple[str, list[str]]]:
    """(command, expected result fragments) from the Cost model table in README.md."""
    rows = []
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[2].startswith("`router "):
            parts = [p.strip() for p in cells[3].replace("→", ";").split(";")]
            rows.append((cells[2].strip("`"), parts))
    return rows


def test_docs_table_has_the_articles_figures() -> None:
    assert len(article_table_rows()) == 8


@pytest.mark.parametrize(("command", "expected"), article_table_rows())
def test_docs_table_is_what_the_cli_prints(
    command: str,
    expected: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    assert main(shlex.split(command)[1:]) == 0
    out = capsys.readouterr().out
    for fragment in expected:
        assert fragment in out, (fragment, out)
