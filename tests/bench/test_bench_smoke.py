"""The benchmark (bench/run.py) runs end to end and prints a results table with numbers.

Not a performance test: nothing here is timed. ``--quick`` runs every phase for about a second
(1 s wrk cells, a few streaming requests, a short memory phase, the two-worker phase and the
fleet check, the per-step measurement on 64 bodies) so that a change which breaks the benchmark
is caught by the suite. It needs wrk, nginx and redis-server (Debian packages ``wrk nginx
redis-server``) and skips, saying which, without them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("wrk", "nginx", "redis-server", "redis-cli")

pytestmark = pytest.mark.slow


def test_quick_run_prints_a_table_with_numbers(tmp_path: Path) -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"bench needs {', '.join(missing)} (apt-get install wrk nginx redis-server)")
    readme = tmp_path / "README.md"
    res = tmp_path / "A.json"
    r = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--readme", str(readme),
         "--results", str(res)],
        capture_output=True, text=True, timeout=600, cwd=str(REPO),
    )
    if r.returncode == 3:
        pytest.skip(r.stdout.strip())
    assert r.returncode == 0, f"bench/run.py --quick failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    out = r.stdout
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 12 and cells[1] in ("json", "stream") and cells[2] in ("1", "16"):
            rows[(cells[0], cells[1], cells[2])] = cells
    for target in ("mock", "pass-through", "gateway"):
        for mode in ("json", "stream"):
            for conns in ("1", "16"):
                cells = rows.get((target, mode, conns))
                assert cells is not None, f"no row for {target} {mode} c={conns}:\n{out}"
                rps = float(cells[4].replace(",", ""))
                assert rps > 0, cells
                assert re.match(r"^[\d,]+", cells[9]), cells  # CPU µs per request
                assert float(cells[10]) > 0, cells  # RSS MB
                assert cells[11] == "0", f"requests failed: {cells}"
    assert "streaming TTFB overhead" in out
    text = readme.read_text()
    assert "## Results" in text and "### Where the CPU goes: per step" in text, text[-3000:]
    assert "bench/steps.py failed" not in text, text
    # issue 18's targets: every row has a figure; the exactness checks hold
    targets = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[2] in ("holds", "**does not**", "n/a"):
            targets[cells[0]] = cells
    assert len(targets) >= 13, out[-3000:]
    exact = [k for k in targets if k.startswith(("budgets exact", "a fleet of 8"))]
    assert len(exact) == 2, targets
    for k in exact:
        assert targets[k][2] == "holds", targets[k]
    redis_rows = [v for k, v in targets.items() if k.startswith("Redis commands per request")]
    assert len(redis_rows) == 2 and all(re.match(r"^\d+\.\d{3} round trips", v[1])
                                        for v in redis_rows), redis_rows
    assert "### Redis commands per request" in text and "`EVALSHA`" in text, text[-3000:]
    results = json.loads(res.read_text())
    assert results["label"] == "A" and results["workers"]["check"]["ok"], results["workers"]
