"""Redis commands per request: ``INFO stats commandstats`` of the bench's redis-server, before
and after a phase, divided by the requests the phase served.

Redis counts a command run inside a Lua script (``redis.call``) in ``commandstats`` and in
``total_commands_processed`` as well as the ``EVALSHA`` that ran it, so two totals are reported:

* **round trips**: what clients sent: ``EVALSHA``/``EVAL`` and every command no script of the
  gateway runs. Commands run both inside scripts and on their own (``GET``, ``SET``,
  ``EXISTS``, ``HMGET``, ``XINFO``) are counted as inside scripts: on their own they are the
  periodic background calls (the key store's poll, the ledger exporter's lock and reads), a few
  per second whatever the load; :func:`idle_rate` measures that background directly;
* **all commands**: everything Redis executed, inside scripts included
  (``total_commands_processed``).

The snapshot's own ``INFO`` is left out of both. The names of the commands the scripts run are
read from the gateway's Lua sources (``redis.call('NAME'``), so the split follows the code.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT_CALLS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")
_CALL = re.compile(r"redis\.p?call\(\s*'([A-Za-z]+)'")
_STAT = re.compile(r"^cmdstat_([^:]+):calls=(\d+),usec=(\d+)")


def script_commands() -> frozenset[str]:
    """Lower-case names of the commands the gateway's Lua scripts run."""
    names: set[str] = set()
    for path in (REPO / "router").rglob("*.py"):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        if "redis.call(" in text or "redis.pcall(" in text:
            names.update(m.group(1).lower() for m in _CALL.finditer(text))
    return frozenset(names)


@dataclass
class Snapshot:
    total: int  # total_commands_processed
    calls: dict[str, int] = field(default_factory=dict)  # command -> calls
    usec: dict[str, int] = field(default_factory=dict)  # command -> µs spent in Redis


def snapshot(port: int) -> Snapshot:
    r = subprocess.run(["redis-cli", "-p", str(port), "INFO", "stats", "commandstats"],
                       capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise RuntimeError(f"redis-cli INFO failed: {r.stderr.strip()}")
    snap = Snapshot(total=0)
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("total_commands_processed:"):
            snap.total = int(line.split(":", 1)[1])
            continue
        m = _STAT.match(line)
        if m:
            snap.calls[m.group(1)] = int(m.group(2))
            snap.usec[m.group(1)] = int(m.group(3))
    return snap


def per_request(before: Snapshot, after: Snapshot, requests: int,
                inner: frozenset[str] | None = None) -> dict[str, object]:
    """Commands per request between two snapshots: per command, round trips, all commands."""
    inner = script_commands() if inner is None else inner
    n = max(requests, 1)
    rows = []
    round_trips = 0
    for cmd in sorted(set(after.calls) | set(before.calls)):
        if cmd == "info":
            continue
        calls = after.calls.get(cmd, 0) - before.calls.get(cmd, 0)
        if calls <= 0:
            continue
        base = cmd.split("|", 1)[0]
        if base in SCRIPT_CALLS:
            kind = "script call"
        elif base in inner:
            kind = "inside scripts" if base not in _ALSO_DIRECT else "inside scripts and direct"
        else:
            kind = "direct"
        if kind in ("script call", "direct"):
            round_trips += calls
        usec = after.usec.get(cmd, 0) - before.usec.get(cmd, 0)
        rows.append({"command": cmd.upper(), "calls": calls, "per_request": calls / n,
                     "usec_per_request": usec / n, "kind": kind})
    info_calls = after.calls.get("info", 0) - before.calls.get("info", 0)
    total = after.total - before.total - info_calls
    rows.sort(key=lambda r: -int(r["calls"]))  # type: ignore[call-overload]
    return {"requests": requests, "round_trips": round_trips, "round_trips_per_request":
            round_trips / n, "all_commands": total, "all_per_request": total / n,
            "commands": rows}


#: Commands the gateway also sends outside scripts (redis-py calls in router/budgets), so a
#: call of one of them may be a round trip of its own.
_ALSO_DIRECT = frozenset({"get", "set", "exists", "hmget", "xinfo", "xack", "xrange", "xlen",
                          "xreadgroup", "ping"})


def idle_rate(port: int, seconds: float = 3.0) -> dict[str, float]:
    """Commands per second Redis runs for an idle gateway (nothing served): the background."""
    import time

    s0 = snapshot(port)
    time.sleep(seconds)
    s1 = snapshot(port)
    st = per_request(s0, s1, 1)
    return {"round_trips_per_s": float(st["round_trips"]) / seconds,  # type: ignore[arg-type]
            "all_per_s": float(st["all_commands"]) / seconds}  # type: ignore[arg-type]


def table(stats: dict[str, object], limit: int = 12) -> str:
    rows = ["| command | calls | per request | Redis µs / request | counted as |",
            "| --- | ---: | ---: | ---: | --- |"]
    cmds = stats["commands"]
    assert isinstance(cmds, list)
    for r in cmds[:limit]:
        rows.append(f"| `{r['command']}` | {r['calls']:,} | {r['per_request']:.3f} | "
                    f"{r['usec_per_request']:.1f} | {r['kind']} |")
    if len(cmds) > limit:
        rest = cmds[limit:]
        rows.append(f"| ({len(rest)} more) | {sum(int(r['calls']) for r in rest):,} | "
                    f"{sum(float(r['per_request']) for r in rest):.3f} | | |")
    return "\n".join(rows)
