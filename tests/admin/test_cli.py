"""``router spend``: reads the configured store directly (never writes), prints the admin API's
numbers as a table or JSON, and ``--check`` exits 1 when a counter differs from the ledger."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from router.admin.spend import resolve_range, spend_report
from router.budgets import BudgetSpec, LedgerRow, Period, Scope, open_store
from router.cli import main
from tests.admin.test_http import spend_some
from tests.budgets.conftest import StoreFactory


def write_config(tmp_path: Path, url: str, tz: str = "Europe/Paris") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"""
store:
  url: {url}
  timezone: {tz}
policy: null
models:
  gpt-4o-mini: {{provider: openai, upstream_model: gpt-4o-mini}}
""")
    return path


def spend_sync(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["spend", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


async def spend(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The CLI runs its own event loop (asyncio.run): in a thread, as from a shell."""
    return await asyncio.to_thread(spend_sync, capsys, *argv)


async def test_report_table_json_and_check(make_store: StoreFactory, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(timezone="Europe/Paris")
    now = time.time()
    await spend_some(store, now)
    cfg = write_config(tmp_path, make_store.url)
    extra = [] if make_store.kind == "sqlite" else ["--prefix", make_store.options["prefix"]]
    base = ["--config", str(cfg), *extra]

    code, out, _ = await spend(capsys, *base, "--period", "day", "--group-by", "team")
    assert code == 0
    lines = out.splitlines()
    assert "(Europe/Paris)" in lines[0]
    assert lines[2].split()[:2] == ["team", "requests"]
    assert lines[2].split()[2] == "failed"
    body = lines[4:lines.index("", 4)]
    table = {ln.split()[0]: ln.split() for ln in body}
    # search: 3 requests, one of them failed (an error, charged nothing); ads: none failed
    assert table["search"][1:3] == ["3", "1"] and table["search"][5] == "0.003500"
    assert table["ads"][1:3] == ["1", "0"] and table["ads"][5] == "0.000400"
    assert table["TOTAL"][1:3] == ["4", "1"] and table["TOTAL"][5] == "0.003900"
    assert out.rstrip().endswith("failed: of the requests, those answered with an error "
                                 "(502, 503, ...): charged nothing")

    code, out, _ = await spend(capsys, *base, "--period", "total", "--group-by", "key,model",
                         "--team", "search", "--json")
    assert code == 0
    got = json.loads(out)
    rng = resolve_range(period="total", since=None, until=None, now=now, tz=store.calendar.tz)
    want = await spend_report(store, rng, ["key", "model"], {"team": "search"})
    assert got == json.loads(json.dumps(want))  # the admin API's JSON, exactly
    assert got["total"]["actual_micro"] == 3500

    code, out, _ = await spend(capsys, *base)  # default: this month, one total line
    assert code == 0 and out.splitlines()[-3].split()[0] == "TOTAL"

    code, out, _ = await spend(capsys, *base, "--check")
    assert code == 0, out
    assert "ledger equals the budget counters" in out and "MISMATCH" not in out
    r5 = await store.reserve("r5", [], 0, now)  # team search, not reserved on its budget
    await store.settle(r5, 700, LedgerRow("r5", "gpt-4o", team="search"))
    code, out, _ = await spend(capsys, *base, "--check")
    assert code == 1 and "MISMATCH" in out and "2 budget(s) differ" in out
    code, out, _ = await spend(capsys, *base, "--check", "--json")
    assert code == 1 and json.loads(out)["mismatches"] == 2


async def test_the_store_is_only_read(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "data" / "router.db"
    url = f"sqlite:///{db}"
    cfg = write_config(tmp_path, url)
    code, _, err = await spend(capsys, "--config", str(cfg))
    assert code == 2 and "no budget store" in err
    assert not db.exists() and not db.parent.exists()

    store = open_store(url, timezone="Europe/Paris")
    b = [BudgetSpec(Scope.TEAM, "t", Period.DAILY, 10**6)]
    r = await store.reserve("r1", b, 10)
    await store.settle(r, 10, LedgerRow("r1", "m", team="t"))
    await store.close()
    code, out, _ = await spend(capsys, "--config", str(cfg), "--check")
    assert code == 0 and "1 budget(s)" in out
    tables = {n for (n,) in sqlite3.connect(db).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "gateway_keys" not in tables  # the check read the counters without creating tables


@pytest.mark.parametrize(("argv", "message"), [
    (["--period", "fortnight"], "'period'"),
    (["--group-by", "password"], "Cannot group by"),
    (["--since", "soon"], "'since'"),
])
def test_bad_arguments_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        argv: list[str], message: str) -> None:
    db = tmp_path / "r.db"
    sqlite3.connect(db).close()
    code, _, err = spend_sync(capsys, "--store-url", f"sqlite:///{db}", "--timezone", "UTC", *argv)
    assert code == 2 and message in err and err.startswith("router spend: error:")


def test_a_bad_config_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("store: {url: sqlite:///x.db, colour: blue}\nmodels: {}\n")
    code, _, err = spend_sync(capsys, "--config", str(bad))
    assert code == 2 and "colour" in err
