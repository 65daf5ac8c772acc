"""The benchmark's pure parts: Redis commands per request from two INFO snapshots, and the README
made from results files with the runs side by side (bench/redisstats.py, bench/report.py)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import redisstats  # noqa: E402
import report  # noqa: E402


def test_round_trips_are_script_calls_and_direct_commands_not_the_scripts_own() -> None:
    inner = redisstats.script_commands()
    assert {"hincrby", "xadd", "hmget"} <= inner  # read from router/budgets/lua.py
    assert "evalsha" not in inner and "xreadgroup" not in inner
    before = redisstats.Snapshot(total=100, calls={"evalsha": 10, "hincrby": 200, "info": 3})
    after = redisstats.Snapshot(
        total=100 + 20 + 400 + 6 + 4 + 1,
        calls={"evalsha": 30, "hincrby": 600, "xreadgroup": 6, "hmget": 4, "info": 4})
    st = redisstats.per_request(before, after, requests=100, inner=inner)
    assert st["round_trips"] == 20 + 6  # EVALSHA and XREADGROUP; not HINCRBY, HMGET, INFO
    assert st["round_trips_per_request"] == 0.26
    assert st["all_commands"] == 20 + 400 + 6 + 4  # the snapshot's own INFO left out
    kinds = {r["command"]: r["kind"] for r in st["commands"]}  # type: ignore[attr-defined]
    assert kinds == {"EVALSHA": "script call", "HINCRBY": "inside scripts",
                     "XREADGROUP": "direct", "HMGET": "inside scripts and direct"}


def _results() -> dict[str, Any]:
    # a copy of bench/results/0.json (the baseline run), its Markdown trimmed
    return json.loads((Path(__file__).parent / "results_sample.json").read_text())


def test_readme_shows_each_runs_figures_and_verdict_side_by_side() -> None:
    a = _results()
    b = copy.deepcopy(a)
    a["label"], b["label"] = "A", "B"
    for c in b["cells"]:  # run B: the gateway at a third of the pass-through's CPU... and less
        if c["target"] == "gateway" and c["conns"] == 16:
            c["cpu_us"] = 2.0 * next(x["cpu_us"] for x in b["cells"]
                                     if x["target"] == "pass-through" and x["mode"] == c["mode"]
                                     and x["conns"] == 16)
    text = report.readme([b, a])
    assert text.index("## Run A") < text.index("## Run B")  # ordered by label
    table = text[text.index("| target (issue 18) |"):].split("\n\n")[0].splitlines()
    assert table[0].count("run A") == 1 and table[0].count("run B") == 1
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table[2:]}
    cpu = rows["CPU per request ≤ 2.5× the bare pass-through's, json, 16 connections"]
    cells = [c.strip() for c in cpu.strip("|").split("|")]
    assert cells[2] == "**does not**" and cells[4] == "holds", cells
    assert cells[3].startswith("2.00×"), cells
    assert len(rows) == len(report.targets(a)) == 13
    for line in table[2:]:
        assert line.count("|") == 6, line
