"""``router classify``, the eval script and the benchmark's prompt builder."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from router.cli import main
from router.commands.classify import run_jsonl


def test_classify_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "Prove that the square root of 2 is irrational."]) == 0
    out = capsys.readouterr().out
    assert "task:       reasoning" in out and "confidence:" in out and "signals:" in out


def test_classify_json_and_system(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "--json", "--system", "You are a poet.", "写一首关于月亮的诗"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["task"] == "expression" and 0.5 <= obj["confidence"] <= 1


def test_classify_stdin_dash(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Translate 'thank you' into German."))
    assert main(["classify", "-"]) == 0
    assert "expression" in capsys.readouterr().out


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify"]) == 2
    assert main(["classify", "--jsonl", "text"]) == 2
    err = capsys.readouterr().err
    assert err.count("router classify: error:") == 2


def test_jsonl_good_and_bad_lines() -> None:
    lines = [
        json.dumps({"id": 1, "prompt": "Calculate 15% of 80."}),
        "not json at all",
        json.dumps({"messages": [{"role": "user", "content": "写一封感谢信"}]}),
        json.dumps({"prompt": 5}),
        json.dumps([1, 2]),
        "",
        json.dumps({"messages": "nope"}),
        json.dumps({"id": "x", "messages": [{"role": "user", "content": None}]}),
    ]
    out = io.StringIO()
    assert run_jsonl(io.StringIO("\n".join(lines) + "\n"), out) == 0
    res = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(res) == 7  # the blank line is skipped
    assert res[0]["id"] == 1 and res[0]["task"] == "reasoning"
    assert res[1]["line"] == 2 and "error" in res[1]
    assert res[2]["task"] == "expression"
    assert "error" in res[3] and "error" in res[4] and "error" in res[5]
    assert res[6] == {"id": "x", "task": "expression", "confidence": 0.5}


def test_jsonl_signals_flag() -> None:
    out = io.StringIO()
    run_jsonl(io.StringIO(json.dumps({"prompt": "Write a sonnet"}) + "\n"), out, signals=True)
    assert isinstance(json.loads(out.getvalue())["signals"], list)


def test_eval_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from router.classify.eval import main as eval_main

    f = tmp_path / "x.jsonl"
    rows = [{"prompt": "Solve 3x = 12.", "label": "reasoning"},
            {"prompt": "Write a poem about rain.", "label": "expression"},
            {"messages": [{"role": "user", "content": "计算 7 乘以 8"}], "label": "reasoning",
             "lang": "zh"},
            {"prompt": "把这句话翻译成英文：你好", "label": "expression"}]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    assert eval_main(["--data", str(f)]) == 0
    out = capsys.readouterr().out
    for part in ("balanced accuracy", "en:", "zh:", "confusion", "reliability", "p99"):
        assert part in out
    assert eval_main(["--data", str(f), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["balanced_accuracy"] == 1.0 and res["n"] == 4
    assert eval_main([]) == 0
    assert "held-out" in capsys.readouterr().out


def test_eval_rejects_bad_labels(tmp_path: Path) -> None:
    from router.classify.eval import main as eval_main

    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"prompt": "x", "label": "maths"}) + "\n")
    assert eval_main(["--data", str(f)]) == 2


def test_bench_prompt_builder() -> None:
    from router.classify.bench import build_prompt

    text, n = build_prompt("zh", 500, None)
    assert n >= 500 and len(text) > 400
