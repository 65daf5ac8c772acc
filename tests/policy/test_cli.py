"""The ``router policy`` and ``router route`` commands, through ``router.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.cli import main
from tests.policy.conftest import REPO

CONFIG = str(REPO / "config.yaml")
DEFAULT = str(REPO / "policies" / "default.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_policy_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    examples = sorted(str(p) for p in (REPO / "policies" / "examples").glob("*.yaml"))
    code, out, err = run(capsys, "policy", "check", DEFAULT, *examples, "--config", CONFIG)
    assert code == 0, err
    assert f"{DEFAULT}: ok (version " in out and "reference: claude-sonnet-4-5" in out
    # No file: the config's policy (policies/default.yaml next to config.yaml).
    code, out, _ = run(capsys, "policy", "check", "--config", CONFIG)
    assert code == 0 and "default.yaml: ok" in out


def test_policy_check_reports_file_line_key(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = Path(DEFAULT).read_text().replace("min_capability: 78", "min_capability: 101")
    bad.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "min_capability: 101" in s)
    code, out, err = run(capsys, "policy", "check", DEFAULT, str(bad), "--config", CONFIG)
    assert code == 1
    assert f"{bad}:{line}: tasks.reasoning.min_capability: Input should be less than or equal " \
           "to 100 (got 101)" in err
    assert "1 of 2 policy file(s) invalid" in err
    assert "default.yaml: ok" in out


def test_policy_check_with_a_bad_config(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("models: {}\nbogus: 1\n")
    code, _, err = run(capsys, "policy", "check", DEFAULT, "--config", str(cfg))
    assert code == 2 and f"{cfg}:2: bogus: unknown key" in err


def test_policy_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "schema")
    schema = json.loads(out)
    assert code == 0 and schema["title"] == "federated-router policy"
    assert {"tasks", "models", "routes", "near_budget", "rewrites"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_route_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "route", "Prove that there are infinitely many primes.",
                         "--task", "reasoning", "--no-classify", "--config", CONFIG, "--json",
                         "--all-keys")
    assert code == 0, err
    j = json.loads(out)
    # a short classic proof: the difficulty moves the reasoning bar from 78 below
    # deepseek-chat's 75
    assert j["object"] == "router.route" and j["model"] == "deepseek-chat"
    assert j["difficulty"]["bars_before"] == {"reasoning": 78}
    assert j["task"]["bars"]["reasoning"] <= 75
    assert j["task"]["source"] == "override" and j["prompt_tokens"] > 5
    assert j["reference"]["model"] == "claude-sonnet-4-5" and j["savings"]["micro_usd"] > 0
    assert len(j["candidates"]) == 11


def test_route_table_messages_file_budget_and_key(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    messages = tmp_path / "chat.json"
    messages.write_text(json.dumps([{"role": "user", "content": "写一首关于秋天的短诗"}]))
    code, out, _ = run(capsys, "route", "--messages-file", str(messages), "--task", "expression",
                       "--no-classify", "--config", CONFIG, "--all-keys")
    assert code == 0
    assert "choice deepseek-chat" in out and "saves $" in out and "ineligible" in out
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"model": "auto:reasoning", "max_tokens": 300,
                                "messages": [{"role": "user", "content": "2+2?"}]}))
    code, out, _ = run(capsys, "route", "--messages-file", str(body), "--no-classify",
                       "--budget", "team:default=0.96", "--key", "local-dev", "--json",
                       "--config", CONFIG, "--all-keys")
    j = json.loads(out)
    assert code == 0 and j["route"] == "auto-cheap" and j["model"] == "gpt-4.1-nano"
    assert j["max_tokens"] == 300 and j["budget"]["scope"] == "team:default"


def test_route_refusal_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "route", "hi", "--model", "gpt-9", "--no-classify",
                       "--config", CONFIG)
    assert code == 1 and "REFUSED (404 model_not_found)" in out
    code, _, err = run(capsys, "route", "hi", "--budget", "nonsense", "--config", CONFIG)
    assert code == 2 and "SCOPE=FRACTION" in err
    code, _, err = run(capsys, "route", "hi", "--key", "nobody", "--config", CONFIG)
    assert code == 2 and "no key 'nobody'" in err
    code, _, err = run(capsys, "route", "--config", CONFIG)
    assert code == 2 and "give the prompt text" in err
