"""After a load run: are the budgets exact? The ledger against what the client got, and against
the budget store's counters.

Checked, on the gateway's own Redis, after its processes have stopped (so leases are given
back and nothing is in flight):

* the ledger's rows with status ``ok`` are exactly the requests the load generator got a 200
  for (counted by the client: ``bench/post.lua``'s counting mode, or ``bench/fleet.py``'s
  driver), and it has no row of another status unless the client saw another status;
* ``router spend --check``: every budget counter of the current windows equals the sum of the
  ledger rows of its window and scope;
* no money is still reserved (``r`` of every counter is 0: leases returned, no request left);
* with a limit: the budget's spend never passed it.

The ledger is read with ``router spend`` (the project's own report), and its rows are also
counted with ``XLEN`` on the stream (``{router}:ledger``), so the check does not rest on the
report alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LEDGER_KEY = "{router}:ledger"


def _router(cfg: Path, *args: str) -> tuple[int, Any]:
    r = subprocess.run([sys.executable, "-m", "router", "spend", "--config", str(cfg), "--json",
                        *args], capture_output=True, text=True, timeout=120, cwd=str(REPO),
                       env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError:
        raise RuntimeError(f"router spend {' '.join(args)} failed ({r.returncode}): "
                           f"{r.stdout[-500:]} {r.stderr[-1500:]}") from None


def xlen(redis_port: int) -> int:
    r = subprocess.run(["redis-cli", "-p", str(redis_port), "XLEN", LEDGER_KEY],
                       capture_output=True, text=True, timeout=10)
    return int(r.stdout.strip() or -1) if r.returncode == 0 else -1


def check(cfg: Path, redis_port: int, client_ok: int, client_other: int = 0,
          limit: tuple[str, str, int] | None = None) -> dict[str, Any]:
    """The checks above. ``limit``: (scope, scope id, limit µ$) of a budget that must hold,
    e.g. ``("team", "bench-team", 100_000)``. Returns the figures and ``ok`` with ``problems``."""
    _, report = _router(cfg, "--period", "total", "--group-by", "status")
    by_status = {str(row["group"].get("status")): row for row in report["data"]}
    ok_rows = int(by_status.get("ok", {}).get("requests", 0))
    rows = sum(int(r["requests"]) for r in by_status.values())
    ledger_micro = int(report["total"]["actual_micro"])
    code, spend_check = _router(cfg, "--check")
    counters = spend_check["data"]
    reserved = sum(int(c["reserved_micro"]) for c in counters)
    stream_rows = xlen(redis_port)
    problems = []
    if ok_rows != client_ok:
        problems.append(f"ledger has {ok_rows:,} ok rows, the client got {client_ok:,} 200s")
    if rows - ok_rows > client_other:
        problems.append(f"ledger has {rows - ok_rows:,} rows of other statuses, the client saw "
                        f"{client_other:,} non-200 answers")
    if stream_rows != rows:
        problems.append(f"the ledger stream holds {stream_rows:,} entries, the report {rows:,}")
    if code != 0 or not spend_check["ok"]:
        bad = [c for c in counters if not c["ok"]][:3]
        problems.append(f"router spend --check: {spend_check['mismatches']} counters differ from "
                        f"the ledger: {bad}")
    if reserved:
        problems.append(f"{reserved:,} µ$ still reserved after the gateways stopped")
    glob = [c for c in counters if c["scope"] == "global" and c["period"] == "monthly"]
    if glob and int(glob[0]["counter_micro"]) != ledger_micro:
        problems.append(f"global monthly counter {glob[0]['counter_micro']:,} µ$ != ledger sum "
                        f"{ledger_micro:,} µ$")
    out: dict[str, Any] = {
        "client_ok": client_ok, "client_other": client_other, "ledger_rows": rows,
        "ledger_ok_rows": ok_rows, "stream_entries": stream_rows, "ledger_micro": ledger_micro,
        "counters": len(counters), "counters_equal_ledger": bool(spend_check["ok"]),
        "reserved_micro": reserved,
    }
    if limit is not None:
        scope, scope_id, limit_micro = limit
        spent = max((int(c["counter_micro"]) for c in counters
                     if c["scope"] == scope and c["scope_id"] == scope_id), default=0)
        out.update(limit_micro=limit_micro, spent_micro=spent, over_limit_micro=spent - limit_micro)
        if spent > limit_micro:
            problems.append(f"{scope} {scope_id} spent {spent:,} µ$, over its limit "
                            f"{limit_micro:,} µ$ by {spent - limit_micro:,}")
    out["ok"] = not problems
    out["problems"] = problems
    return out


def summary(c: dict[str, Any]) -> str:
    """One line: the figures, and what failed if anything."""
    s = (f"{c['client_ok']:,} 200s seen by the client; ledger: {c['ledger_ok_rows']:,} ok rows "
         f"of {c['ledger_rows']:,} ({c['stream_entries']:,} stream entries), "
         f"{c['ledger_micro']:,} µ$; {c['counters']} counters "
         f"{'equal' if c['counters_equal_ledger'] else 'DIFFER from'} the ledger; "
         f"{c['reserved_micro']:,} µ$ reserved after stop")
    if "limit_micro" in c:
        s += (f"; spent {c['spent_micro']:,} of a {c['limit_micro']:,} µ$ limit "
              f"({c['limit_micro'] - c['spent_micro']:,} µ$ left unspent)")
    if c["problems"]:
        s += " — PROBLEMS: " + "; ".join(c["problems"])
    return s
