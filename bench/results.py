"""One run's figures: the raw results (``bench/results/<label>.json``) and its Markdown tables.

bench/run.py measures; this turns its :class:`run.Run` into the results file that
bench/report.py makes bench/README.md from (every raw figure, plus the run's own tables as
Markdown, so the README is regenerated from the files alone).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import redisstats
import spyprofile

REPO = Path(__file__).resolve().parent.parent
MODES = ("json", "stream")


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))
    return xs[k]


def med(cells: list[Any], attr: str) -> float:
    return statistics.median(getattr(c, attr) for c in cells) if cells else float("nan")


def pick(run: Any, target: str, mode: str, conns: int) -> list[Any]:
    return [c for c in run.cells if c.target == target and c.mode == mode and c.conns == conns]


def fmt(x: float, digits: int = 2) -> str:
    if x != x:  # NaN
        return "–"
    return f"{x:,.{digits}f}"


def results_table(run: Any) -> str:
    rows = ["| target | mode | conns | load avg (1m/5m) | req/s | p50 ms | p99 ms | added p50 ms "
            "| added p99 ms | CPU µs/req | RSS MB | errors |",
            "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for mode in MODES:
        for conns in (1, 16):
            mock = pick(run, "mock", mode, conns)
            for t in run.targets:
                cells = pick(run, t.name, mode, conns)
                if not cells:
                    continue
                p50, p99 = med(cells, "p50_us") / 1000, med(cells, "p99_us") / 1000
                if t.name == "mock":
                    add50 = add99 = "–"
                else:
                    add50 = fmt(p50 - med(mock, "p50_us") / 1000)
                    add99 = fmt(p99 - med(mock, "p99_us") / 1000)
                cpu = fmt(med(cells, "cpu_us"), 0)
                if t.name == "gateway" and run.redis is not None:
                    cpu += f" (+{fmt(med(cells, 'redis_us'), 0)} redis)"
                rows.append(
                    f"| {t.name} | {mode} | {conns} | {', '.join(c.load for c in cells)} | "
                    f"{fmt(med(cells, 'rps'), 0)} | {fmt(p50)} | {fmt(p99)} | {add50} | {add99} | "
                    f"{cpu} | {fmt(max(c.rss_mb for c in cells), 1)} | "
                    f"{sum(c.errors for c in cells)} |")
    return "\n".join(rows)


def ttfb_table(run: Any) -> str:
    rows = ["| target | requests | load avg | TTFB p50 ms | TTFB p99 ms | overhead p50 ms "
            "| overhead p99 ms |", "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    mock = sorted(run.ttfb.get("mock", []))
    for t in run.targets:
        xs = sorted(run.ttfb.get(t.name, []))
        if not xs:
            continue
        o50 = "–" if t.name == "mock" else fmt((pct(xs, 50) - pct(mock, 50)) * 1000)
        o99 = "–" if t.name == "mock" else fmt((pct(xs, 99) - pct(mock, 99)) * 1000)
        rows.append(f"| {t.name} | {len(xs)} | {run.ttfb_load[t.name]} | "
                    f"{fmt(pct(xs, 50) * 1000)} | "
                    f"{fmt(pct(xs, 99) * 1000)} | {o50} | {o99} |")
    return "\n".join(rows)


def memory_table(run: Any) -> str:
    if not run.memory:
        return "(not run)"
    rows = ["| point | gateway requests served so far | RSS MB | load avg |",
            "| --- | ---: | ---: | --- |"]
    names = ["start of the memory phase", f"after N = {run.memory['n']:,} more",
             f"after 2N = {2 * int(run.memory['n']):,} more"]
    for name, (served, rss, load) in zip(names, run.memory["points"], strict=False):
        rows.append(f"| {name} | {served:,} | {rss:.1f} | {load} |")
    return "\n".join(rows)


def versions(run: Any, litellm_version: str | None) -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        return ((r.stdout or r.stderr).strip().splitlines() or ["?"])[0]

    v = {"python": platform.python_version()}
    for pkg in ("uvicorn", "uvloop", "httptools", "aiohttp", "starlette", "orjson", "tiktoken",
                "redis", "prometheus_client", "litellm"):
        try:
            name = pkg if pkg != "litellm" else "litellm (gateway env)"
            v[name] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            v[pkg] = "not installed"
    if litellm_version:
        v["litellm[proxy] (peer venv)"] = litellm_version
    v["nginx"] = first_line(["nginx", "-v"]).replace("nginx version: ", "")
    v["wrk"] = first_line(["wrk", "-v"]).split(" [")[0]
    v["redis-server"] = first_line(["redis-server", "--version"]).split(" sha=")[0]
    with contextlib.suppress(OSError):
        v["git commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                         capture_output=True, text=True, timeout=10).stdout.strip()
    return v


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    return (f"`nproc` {os.cpu_count()}, {cpu}, {mem} RAM, {platform.system()} "
            f"{platform.release()}")


def sections(run: Any, command: str, vs: dict[str, str]) -> str:
    """The run's own tables, as Markdown under a "## Run <label>" heading of the README."""
    a = run.args
    lines = [
        "### Machine and versions",
        "",
        f"* Machine: {machine()}",
        f"* Run: {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(run.started))},"
        f" {time.time() - run.started:.0f} s, load average at start {run.versions.get('load0')}",
        "* Versions: " + ", ".join(f"{k} {v}" for k, v in vs.items()),
        "",
        "Command:",
        "",
        "```",
        command,
        "```",
        "",
        f"### Results ({a.duration} s per cell, median of {a.repeat} interleaved"
        f" repetition{'s' if a.repeat > 1 else ''})",
        "",
        results_table(run),
        "",
        "### Redis commands per request (gateway cells)",
        "",
        redis_section(run),
        "",
        "### Two workers",
        "",
        workers_section(run),
        "",
        "### Fleet",
        "",
        fleet_section(run),
        "",
        "### Streaming time to first byte",
        "",
        f"{a.ttfb_requests} sequential streaming requests per target (LiteLLM: at most 300) on"
        " one connection, to the"
        " paced upstream (`bench/paced_upstream.py`: its first three events at once, the rest"
        f" {a.ttfb_delay_ms:g} ms later, as a model streams tokens): the time until the first"
        " body byte reaches the client. The mock's row is that upstream called directly.",
        "",
        ttfb_table(run),
        "",
        "### Memory",
        "",
        f"Gateway RSS while serving 2 × N more requests (N = `--mem-requests` {a.mem_requests:,}),"
        " alternating JSON and streaming wrk runs at 16 connections.",
        "",
        memory_table(run),
        "",
    ]
    if run.steps:
        lines += ["### Where the CPU goes: per step, in-process", "",
                  "`bench/steps.py`: each step of the request path timed with"
                  " `time.process_time` (CPU) over the 512 bench bodies, one request at a time,"
                  " best of 3 passes; steps 1-4 line by line inside one pass, as"
                  " `pipeline._decide` runs them (timed apart, token counting and classification"
                  " each look cheaper: their caches stay warm). Load average"
                  f" {run.steps[1]} when it started. I/O steps (Redis, upstream) include their"
                  " socket calls; under concurrent load the event loop batches some of that"
                  " work, so they cost less per request there. The gateway's CPU per request"
                  " under load (table above) minus these is the HTTP server, the framework"
                  " objects and the event loop.", "",
                  run.steps[0], ""]
    if run.profiles:
        lines += ["### Profile (py-spy)", "",
                  "Shares of py-spy samples (200 Hz, idle excluded) turned into µs with the CPU"
                  " per request over the same window. On a machine this loaded a sample also"
                  " lands on a thread that is runnable but waiting for a core, typically right"
                  " after a socket write has woken its reader, so socket-heavy steps (Redis,"
                  " aiohttp, uvicorn's writes) read high here; the in-process table is the"
                  " better measure of each step's own CPU.", ""]
        for what, (rows, per_req, load, _) in run.profiles.items():
            lines += [f"{what}, 16 connections, {a.profile} s at 200 Hz, load {load}; "
                      f"{per_req:.0f} µs CPU per request over the window; each sample charged to "
                      "the innermost frame of a known step (`bench/spyprofile.py`).", "",
                      spyprofile.table(rows), ""]
    if run.notes:
        lines += ["### Notes", ""] + [f"* {n}" for n in run.notes] + [""]
    return "\n".join(lines)




def redis_section(run: Any) -> str:
    """Commands per request per gateway cell, and the 16-connection JSON cell per command."""
    rows = ["| mode | conns | requests | round trips / req | all commands / req | EVALSHA / req |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    detail = None
    for mode in MODES:
        for conns in (1, 16):
            for c in pick(run, "gateway", mode, conns):
                st = c.redis_cmds
                if not st:
                    continue
                ev = sum(float(r["per_request"]) for r in st["commands"]
                         if r["command"] == "EVALSHA")
                rows.append(f"| {mode} | {conns} | {c.requests:,} | "
                            f"{st['round_trips_per_request']:.3f} | {st['all_per_request']:.2f} | "
                            f"{ev:.3f} |")
                if mode == "json" and conns == 16 and detail is None:
                    detail = st
    if len(rows) == 2:
        return "(not measured)"
    out = "\n".join(rows)
    if detail:
        out += ("\n\nPer command, JSON at 16 connections (*inside scripts*: run by a script, not "
                "a round trip; *inside scripts and direct*: run by scripts, and a few times a "
                "second on its own in the background; not counted as round trips):\n\n"
                + redisstats.table(detail))
    idle = getattr(run, "redis_idle", None)
    if idle:
        out += (f"\n\nBackground, the gateway idle for 3 s before the cells: "
                f"{idle['round_trips_per_s']:.1f} round trips/s ({idle['all_per_s']:.1f} "
                "commands/s with the scripts' own), whatever the load.")
    return out


def workers_section(run: Any) -> str:
    w = run.workers
    if not w:
        return "(not run: `--no-workers`)"
    rows = ["| target | mode | load avg | req/s | CPU µs/req (process tree) | RSS MB | 200s | "
            "other | Redis round trips / req |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in w["cells"]:
        rt = c["redis"]["round_trips_per_request"] if c.get("redis") else float("nan")
        rows.append(f"| {c['target']} | {c['mode']} | {c['load']} | {fmt(c['rps'], 0)} | "
                    f"{fmt(c['cpu_us'], 0)} | {fmt(c['rss_mb'], 1)} | {c['ok']:,} | "
                    f"{c['other']:,} | {fmt(rt, 3)} |")
    ratios = "; ".join(f"{m}: {w[m]['ratio']:.2f}× one worker" for m in MODES if m in w)
    import ledgercheck

    return ("16 connections, wrk in counting mode, one worker and two in turn"
            f" ({run.args.duration} s cells). Two workers serve {ratios}.\n\n" + "\n".join(rows)
            + "\n\nBudgets after the run (two-worker gateway stopped, its own Redis): "
            + ledgercheck.summary(w["check"]) + ".")


def fleet_section(run: Any) -> str:
    f = run.fleet
    if not f:
        return "(not run: `--fleet 0`)"
    import fleet

    return (f"`bench/fleet.py` (load {f['load']} when it started; replicas up in "
            f"{f['start_s']:.1f} s): " + fleet.describe(f) + ".")


def collect(run: Any, command: str, litellm_version: str | None, label: str) -> dict[str, Any]:
    """Everything bench/report.py needs: the raw figures and this run's Markdown."""
    vs = versions(run, litellm_version)
    ttfb = {}
    for name, xs in run.ttfb.items():
        s = sorted(xs)
        ttfb[name] = {"n": len(s), "p50_s": pct(s, 50), "p99_s": pct(s, 99),
                      "load": run.ttfb_load.get(name)}
    cells = [{"target": c.target, "mode": c.mode, "conns": c.conns, "load": c.load,
              "requests": c.requests, "seconds": c.seconds, "rps": c.rps, "p50_us": c.p50_us,
              "p99_us": c.p99_us, "errors": c.errors, "cpu_us": c.cpu_us,
              "redis_us": c.redis_us if c.target == "gateway" else float("nan"),
              "rss_mb": c.rss_mb, "redis_cmds": c.redis_cmds} for c in run.cells]
    return {
        "label": label,
        "meta": {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(run.started)),
                 "seconds": round(time.time() - run.started), "load0": run.versions.get("load0"),
                 "commit": vs.get("git commit"), "command": command, "versions": vs,
                 "duration": run.args.duration, "repeat": run.args.repeat,
                 "lease_fraction": run.args.lease_fraction,
                 "note": getattr(run.args, "note", "")},
        "cells": cells, "ttfb": ttfb, "memory": run.memory, "workers": run.workers,
        "fleet": run.fleet, "redis_idle": run.redis_idle, "notes": run.notes,
        "sections": sections(run, command, vs),
    }
