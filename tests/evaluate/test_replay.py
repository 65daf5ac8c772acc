"""``router eval replay`` and ``calibrate`` on fixture files whose figures are worked out by hand.

The fixture (tests/evaluate/data): four rows, two models; prompts are free, output costs 1 µ$
a token on ``small`` and 10 µ$ on ``big``, and every answer is 10 tokens: a row costs 10 µ$ on
small and 100 µ$ on big. Scores: small 1, 0, 1, 0; big 1, 1, 1, 0. Requests ask for
``auto:reasoning`` (a fixed task, so the classifier plays no part): the bar is 60, small has 40
and big 80.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from router.cli import main

DATA = Path(__file__).parent / "data"
ARGS = ["--models", str(DATA / "map.yaml"), "--config", str(DATA / "config.yaml"),
        "--route", "auto:reasoning"]


def replay(capsys: pytest.CaptureFixture[str], *extra: str, files: tuple[str, ...] = (
        "four.jsonl",)) -> dict:
    code = main(["eval", "replay", *(str(DATA / f) for f in files), *ARGS, "--json", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_replay_figures(capsys: pytest.CaptureFixture[str]) -> None:
    r = replay(capsys)
    assert r["rows"] == 4 and r["reference_model"] == "big"
    pol = r["policy"]  # bar 60: only big qualifies
    assert pol["quality"] == 0.75 and pol["cost"]["micro_usd"] == 400
    assert pol["shares"] == {"small": 0.0, "big": 1.0}
    assert pol["quality_vs_reference"] == 1.0 and pol["cost_vs_reference"] == 1.0
    singles = {p["name"]: p for p in r["single_models"]}
    assert singles["small"]["quality"] == 0.5 and singles["small"]["cost"]["micro_usd"] == 40
    assert singles["small"]["quality_vs_reference"] == pytest.approx(2 / 3)
    assert singles["small"]["cost_vs_reference"] == 0.1
    oracle = r["oracle"]  # rows 0, 2, 3 to small, row 1 to big
    assert oracle["quality"] == 0.75 and oracle["cost"]["micro_usd"] == 130
    assert r["random_same_cost"]["quality"] == 0.75


def test_replay_curve_targets_cpt_apgr_aiq(capsys: pytest.CaptureFixture[str]) -> None:
    r = replay(capsys)
    # bar_shift -100..-20: the bar is <= 40, small qualifies and is cheaper: every row to small;
    # from -18 on only big qualifies (bar > 40), and above +20 nobody does: the most capable, big.
    by_knob = {p["knob"]: p for p in r["curve"]}
    assert by_knob[-20]["shares"]["small"] == 1.0 and by_knob[-18]["shares"]["big"] == 1.0
    assert by_knob[100]["shares"]["big"] == 1.0
    targets = {t["fraction_of_reference"]: t for t in r["targets"]}
    t90 = targets[0.9]  # .675: only all-big reaches it
    assert t90["quality"] == pytest.approx(0.675)
    assert t90["router"]["cost"]["micro_usd"] == 400 and t90["router_strong_share"] == 1.0
    # a random mix reaches .675 at 40 + .7 * 360 = 292 µ$ with 70% of calls on big
    assert t90["random_cost"]["micro_usd"] == 292
    assert t90["random_strong_share"] == pytest.approx(0.7)
    # the curve is the straight line from all-small to all-big: APGR .5, AIQ its mean .625
    assert r["apgr"] == pytest.approx(0.5)
    assert r["aiq"] == pytest.approx(0.625) and r["random_aiq"] == pytest.approx(0.625)


def test_replay_table_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    code = main(["eval", "replay", str(DATA / "four.jsonl"), *ARGS, "--plot", str(png)])
    out = capsys.readouterr().out
    assert code == 0
    assert "policy (bar_shift 0)" in out and "oracle" in out and "APGR 0.500" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_same_as_takes_the_config_entry(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    mm = tmp_path / "map.yaml"
    mm.write_text((DATA / "map.yaml").read_text().replace(
        """  small:
    catalogue:
      provider: openai
      upstream_model: small
      price: {input_per_1m: 0, output_per_1m: 1}
      context_window: 100000
    capability: {reasoning: 40, expression: 40}""", "  small: {same_as: base-small}"))
    code = main(["eval", "replay", str(DATA / "four.jsonl"), "--models", str(mm),
                 "--config", str(DATA / "config.yaml"), "--route", "auto:reasoning", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 0
    # base-small has the same price (1 µ$ a token) and capability (40): the same figures
    assert {p["name"]: p["cost"]["micro_usd"] for p in r["single_models"]} == {
        "small": 40, "big": 400}


def test_calibrate_prints_a_policy_fragment(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "calibrate", str(DATA / "four.jsonl"), *ARGS])
    out = capsys.readouterr().out
    assert code == 0
    assert "  small:\n    reasoning: 50" in out and "50.0% of 4 reasoning rows (toy 4)" in out
    assert "  big:\n    reasoning: 75" in out
    assert "# expression: no expression rows in these files: keep your prior" in out


# ----------------------------------------------------------------------------- bad input


def bad(tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str | None = None,
        map_text: str | None = None) -> str:
    f = tmp_path / "rows.jsonl"
    f.write_text(rows if rows is not None else (DATA / "four.jsonl").read_text())
    mm = tmp_path / "map.yaml"
    mm.write_text(map_text if map_text is not None else (DATA / "map.yaml").read_text())
    code = main(["eval", "replay", str(f), "--models", str(mm),
                 "--config", str(DATA / "config.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("router eval: error: "), err
    return err


def test_non_json_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = (DATA / "four.jsonl").read_text() + "{not json\n"
    assert "rows.jsonl:5: not JSON" in bad(tmp_path, capsys, rows=rows)


def test_row_without_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = bad(tmp_path, capsys, rows='{"prompt": "hi"}\n')
    assert "rows.jsonl:1: no scores" in err


def test_row_missing_a_model_of_the_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    rows = (DATA / "four.jsonl").read_text() + '{"prompt": "hi", "scores": {"big": 1}}\n'
    assert "rows.jsonl:5: no score for 'small'" in bad(tmp_path, capsys, rows=rows)


def test_model_not_in_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = '{"prompt": "hi", "scores": {"small": 1, "big": 1, "other": 0}}\n'
    err = bad(tmp_path, capsys, rows=rows)
    assert "rows.jsonl:1: model 'other' is not in" in err and "ignore:" in err


def test_unknown_model_in_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (DATA / "map.yaml").read_text() + "  ghost: {same_as: nowhere}\n"
    err = bad(tmp_path, capsys, map_text=text)
    assert "map.yaml:18: models.ghost.same_as: unknown model 'nowhere'" in err


def test_map_key_typo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (DATA / "map.yaml").read_text().replace("capability: {reasoning: 80",
                                                   "capabilty: {reasoning: 80")
    err = bad(tmp_path, capsys, map_text=text)
    assert "map.yaml:17: models.big.capabilty: unknown key" in err


def test_score_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = bad(tmp_path, capsys, rows='{"prompt": "hi", "scores": {"small": 2, "big": 1}}\n')
    assert "scores['small'] must be a number in [0, 1]" in err


def test_bad_input_end_to_end_has_no_traceback(tmp_path: Path) -> None:
    f = tmp_path / "rows.jsonl"
    f.write_text("[1, 2]\n")
    proc = subprocess.run([sys.executable, "-m", "router", "eval", "replay", str(f),
                           "--models", str(DATA / "map.yaml"), "--config",
                           str(DATA / "config.yaml")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"router eval: error: {f}:1: not a JSON object\n"
    assert "Traceback" not in proc.stderr and proc.stdout == ""
