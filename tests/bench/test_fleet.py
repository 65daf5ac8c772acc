"""Eight gateway replicas on one Redis share a team budget until it runs out, and the budget is
exact afterwards (bench/fleet.py, about 20-30 s on two cores).

Real processes throughout: ``router serve`` x 8 (one worker each, leases on as shipped), one
redis-server, nginx as the upstream; an aiohttp client sends JSON and streaming requests to the
replicas in turn. Checked (bench/ledgercheck.py): the ledger's ok rows are exactly the 200s the
client got, every counter equals the ledger, nothing is reserved once the replicas have stopped,
and the team never spent past its limit. Nothing here is timed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_eight_replicas_on_one_redis_keep_a_shared_budget_exact() -> None:
    missing = [t for t in ("nginx", "redis-server", "redis-cli") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install nginx redis-server)")
    r = subprocess.run([sys.executable, str(REPO / "bench" / "fleet.py"), "--replicas", "8",
                        "--limit-usd", "0.1", "--json"],
                       capture_output=True, text=True, timeout=600, cwd=str(REPO))
    assert r.returncode in (0, 1), f"bench/fleet.py failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    res = json.loads(r.stdout)
    c = res["check"]
    assert c["problems"] == [], c
    assert r.returncode == 0
    # the limit was reached, and each replica served part of it
    assert res["statuses"].get("429", 0) > 0, res["statuses"]
    assert all(n > 0 for n in res["ok_per_replica"]), res["ok_per_replica"]
    assert c["ledger_ok_rows"] == res["statuses"]["200"] == c["client_ok"]
    assert c["stream_entries"] == c["ledger_rows"]
    assert c["counters_equal_ledger"] and c["reserved_micro"] == 0
    assert 0 < c["spent_micro"] <= c["limit_micro"] == 100_000
