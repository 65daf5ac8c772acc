"""``router demo`` end to end (issue 17, point 2): no keys, the default catalogue on the simulated
upstream, the printed table and totals checked against the demo's own ledger (read by
``router spend``), and the gateway it leaves running tried with the openai SDK, then Ctrl-C."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from router.demo.prompts import PROMPTS
from tests.support import REPO, free_port, wait_until

PROVIDER_KEYS = ("OPENAI_API_KEY", "DEEPSEEK_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")
ROW = re.compile(r"^\s*(\d+)  (.+?)  (reasoning|expression|\S+)\s+(easy|medium|hard|-)\s+(\S+)\s+"
                 r"(\d+)/(\d+)\s+\d+\.\ds\s+\$(\d+\.\d{6})\s+\$(\d+\.\d{6})( \(stream\))?$")
TOTAL = re.compile(r"spent \$(\d+\.\d{6}); the same requests on (\S+) \(the reference model\): "
                   r"\$(\d+\.\d{6}); saved \$(\d+\.\d{6})")
BUDGET = re.compile(r"Budget of key 'demo': \$(\d+\.\d{6}) in total, \$(\d+\.\d{6}) left\.")


def _env() -> dict[str, str]:
    """No provider key, no config path, nothing of the router's own settings."""
    return {k: v for k, v in os.environ.items()
            if k not in PROVIDER_KEYS and not k.startswith("ROUTER_")}


def _micro(text: str) -> int:
    whole, frac = text.split(".")
    return int(whole) * 1_000_000 + int(frac)


@pytest.fixture(scope="module")
def once(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    tmp = tmp_path_factory.mktemp("demo")
    run = subprocess.run(
        [sys.executable, "-m", "router", "demo", "--once", "--port", "0", "--speed", "20",
         "--dir", str(tmp)],
        cwd=str(REPO), env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run, tmp


def test_the_demo_prints_one_row_per_prompt_with_the_gateways_decisions(
        once: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    run, _ = once
    rows = [m for line in run.stdout.splitlines() if (m := ROW.match(line))]
    assert len(rows) == len(PROMPTS), run.stdout
    tasks = {m.group(3) for m in rows}
    bands = {m.group(4) for m in rows}
    models = {m.group(5) for m in rows}
    assert tasks == {"reasoning", "expression"}
    assert {"easy", "hard"} <= bands
    assert len(models) >= 2  # routing chose between models, not one for all
    assert sum(1 for m in rows if m.group(10)) == sum(p.stream for p in PROMPTS)
    assert any(re.search(r"[\u4e00-\u9fff]", m.group(2)) for m in rows)  # Chinese prompts
    for m in rows:
        assert int(m.group(6)) > 0 and int(m.group(7)) > 0  # usage reached the ledger
        assert _micro(m.group(8)) < _micro(m.group(9))  # cheaper than the reference model


def test_the_printed_totals_are_the_ledgers(
        once: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    run, tmp = once
    rows = [m for line in run.stdout.splitlines() if (m := ROW.match(line))]
    total = TOTAL.search(run.stdout)
    budget = BUDGET.search(run.stdout)
    assert total and budget, run.stdout
    spent, reference, saved = (_micro(total.group(i)) for i in (1, 3, 4))
    limit, left = _micro(budget.group(1)), _micro(budget.group(2))
    assert spent == sum(_micro(m.group(8)) for m in rows)
    assert reference == sum(_micro(m.group(9)) for m in rows)
    assert saved == reference - spent > 0
    # the demo's own ledger, read by `router spend` from the config the demo wrote
    report = subprocess.run(
        [sys.executable, "-m", "router", "spend", "--config", str(tmp / "config.yaml"),
         "--period", "total", "--json"],
        cwd=str(REPO), env=_env(), capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    ledger = json.loads(report.stdout)["total"]
    assert ledger["requests"] == len(PROMPTS)
    assert ledger["actual_micro"] == spent
    assert ledger["reference_micro"] == reference
    assert ledger["savings_micro"] == saved
    assert ledger["prompt_tokens"] == sum(int(m.group(6)) for m in rows)
    assert ledger["completion_tokens"] == sum(int(m.group(7)) for m in rows)
    assert limit == 1_000_000 and left == limit - spent
    check = subprocess.run(
        [sys.executable, "-m", "router", "spend", "--config", str(tmp / "config.yaml"),
         "--period", "total", "--check"],
        cwd=str(REPO), env=_env(), capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr  # the budget counter agrees
    assert (tmp / "router.db").exists()


def test_the_demo_keeps_the_gateway_running_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "router", "demo", "--port", str(port), "--speed", "20",
         "--dir", str(tmp_path)],
        cwd=str(REPO), env={**_env(), "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        lines.extend(proc.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("export OPENAI_BASE_URL=" in line for line in lines)
                   or proc.poll() is not None, 300)
        out = "".join(lines)
        base = f"http://127.0.0.1:{port}"
        assert f"export OPENAI_BASE_URL={base}/v1 OPENAI_API_KEY=sk-router-demo" in out, out
        assert f"{base}/metrics" in out
        sdk = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-router-demo", max_retries=0,
                            timeout=60)
        raw = sdk.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "Hello"}])
        answer = raw.parse()
        assert raw.headers["x-router-simulated"] == "true"
        assert (answer.choices[0].message.content or "").startswith("[simulated]")
        assert answer.system_fingerprint == "simulated"
        assert answer.usage is not None and answer.usage.completion_tokens > 0
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        assert re.search(r'^router_requests_total\{.*\} (\d+)', metrics, re.M)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        assert time.monotonic() - started < 60
        reader.join(10)
        assert "Traceback" not in "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_only_router_demo_imports_the_simulator() -> None:
    """The simulated upstream is never used unless `router demo` runs: no other module of the
    package imports router.demo."""
    importers = []
    for path in (REPO / "router").rglob("*.py"):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("router/demo/") or rel == "router/commands/demo.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n == "router.demo" or n.startswith("router.demo.") for n in names):
                importers.append(rel)
    assert importers == []
