"""The gateway's load benchmark (issue 8): one command, same-run baselines, a results table.

    python bench/run.py                 # full run (~5-8 minutes), rewrites bench/README.md
    python bench/run.py --peer litellm  # also LiteLLM's proxy against the same mock
    python bench/run.py --quick         # smoke run (~30 s), prints the table, README untouched
    python bench/run.py --profile 10    # also py-spy gateway and pass-through, 10 s per mode

Starts, on free loopback ports: nginx as the mock upstream (bench/mock_upstream.py),
redis-server for the budgets, the gateway with everything on (bench/setup_gateway.py), the bare
pass-through of DESIGN decision 1 (bench/passthrough.py) and, with ``--peer litellm``, LiteLLM's
proxy (bench/peer_litellm.py). wrk drives each with a few hundred distinct chat bodies
(bench/post.lua) at 1 and 16 connections, non-streaming and streaming, the targets interleaved
so that they see the same machine load; a raw-socket client measures streaming time to first
byte against a paced stream (bench/ttfb.py, bench/paced_upstream.py); a long run checks the
gateway's memory for growth; bench/steps.py times each step of the request path in-process.
CPU per request comes from /proc (utime + stime of each server's process tree over the
measurement), resident memory from VmRSS. Exit status: 0 done, 3 a required tool is missing
(the smoke test skips on it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import peer_litellm  # noqa: E402
import setup_gateway  # noqa: E402
import spyprofile  # noqa: E402
import ttfb  # noqa: E402
from harness import Proc, cpu_seconds, free_port, loadavg, rss_mb, spawn  # noqa: E402
from mock_upstream import start_mock  # noqa: E402

from router.config import StoreConfig  # noqa: E402

REPO = HERE.parent
LUA = HERE / "post.lua"
MODES = ("json", "stream")
TARGETS_ISSUE = {
    "rps_16": 4000, "share_of_bare": 0.45, "added_p50_ms": 0.3, "added_p99_ms": 2.0,
    "ttfb_ms": 1.0, "rss_mb": 150, "litellm_ratio": 20,
}


@dataclass
class Target:
    name: str
    proc: Proc
    paths: dict[str, str]  # mode -> request path
    auth: str | None = None
    #: Where its streaming TTFB is measured, if not at ``proc`` (the mock: the paced upstream).
    ttfb_proc: Proc | None = None


@dataclass
class Cell:
    target: str
    mode: str
    conns: int
    load: str
    requests: int
    seconds: float
    p50_us: float
    p99_us: float
    errors: int
    cpu_s: float
    rss_mb: float
    redis_cpu_s: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else float("nan")

    @property
    def redis_us(self) -> float:
        return self.redis_cpu_s / self.requests * 1e6 if self.requests else float("nan")


@dataclass
class Run:
    args: argparse.Namespace
    tmp: Path
    targets: list[Target] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    bodies: dict[str, Path] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    ttfb: dict[str, list[float]] = field(default_factory=dict)
    ttfb_load: dict[str, str] = field(default_factory=dict)
    memory: dict[str, object] = field(default_factory=dict)
    profiles: dict[str, tuple[list[tuple[str, int, float, float]], float, str, Path]] = field(
        default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    redis: Proc | None = None
    steps: tuple[str, str] | None = None
    peer_error: str | None = None
    started: float = field(default_factory=time.time)


# --- wrk -------------------------------------------------------------------------------------

_RESULT = re.compile(r"BENCH_RESULT (.*)")


def wrk(run: Run, t: Target, mode: str, conns: int, seconds: int) -> dict[str, float]:
    env = {**os.environ, "BENCH_BODIES": str(run.bodies[mode]), "BENCH_PATH": t.paths[mode],
           "BENCH_AUTH": t.auth or ""}
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA),
           t.proc.url + t.paths[mode]]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60)
    m = _RESULT.search(r.stdout)
    if r.returncode != 0 or m is None:
        raise RuntimeError(f"wrk against {t.name} failed ({r.returncode}):\n{r.stdout}\n"
                           f"{r.stderr}")
    out = {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    run.served[t.name] = run.served.get(t.name, 0) + int(out["requests"])
    return out


def measure(run: Run, t: Target, mode: str, conns: int, seconds: int) -> Cell:
    load = loadavg()
    pid = t.proc.pid
    c0 = cpu_seconds(pid)
    r0 = cpu_seconds(run.redis.pid) if run.redis is not None else 0.0
    res = wrk(run, t, mode, conns, seconds)
    c1 = cpu_seconds(pid)
    r1 = cpu_seconds(run.redis.pid) if run.redis is not None else 0.0
    errors = int(res["connect"] + res["read"] + res["write"] + res["status"] + res["timeout"])
    cell = Cell(t.name, mode, conns, load, int(res["requests"]), res["duration_us"] / 1e6,
                res["p50_us"], res["p99_us"], errors, c1 - c0, rss_mb(pid),
                redis_cpu_s=(r1 - r0) if t.name == "gateway" else 0.0)
    flag = f"  ERRORS {errors}" if errors else ""
    print(f"  {t.name:12s} {mode:6s} c={conns:<3d} {cell.rps:9.0f} req/s  p50 "
          f"{cell.p50_us / 1000:7.2f} ms  p99 {cell.p99_us / 1000:7.2f} ms  "
          f"cpu {cell.cpu_us:7.0f} µs/req  rss {cell.rss_mb:6.1f} MB  load {load}{flag}",
          flush=True)
    if errors and not t.proc.alive():
        raise RuntimeError(f"{t.name} died:\n{t.proc.log_tail()}")
    return cell


# --- starting things ---------------------------------------------------------------------------

def start_redis(run: Run) -> Proc:
    return harness.start_redis(run.tmp)


def start_gateway(run: Run, mock: Proc, redis: Proc, paced: Proc) -> Proc:
    cfg = setup_gateway.write_gateway_files(run.tmp, mock.url, f"redis://127.0.0.1:{redis.port}/0",
                                            run.args.lease_fraction, paced.url)
    port = free_port()
    p = spawn("gateway", [sys.executable, "-m", "router", "serve", "--config", str(cfg), "--port",
                          str(port)], port, run.tmp / "gateway.log",
              env={setup_gateway.UPSTREAM_KEY_ENV: "sk-bench-upstream"}, cwd=str(REPO))
    harness.wait_http(p, "/readyz", timeout=120)
    if "classifier unavailable" in p.log_tail(200):
        why = next(ln for ln in p.log_tail(200).splitlines() if "classifier unavailable" in ln)
        msg = ("WARNING: the gateway runs without its classifier, so this run does not measure "
               "classification: " + why.split("WARNING router ", 1)[-1])
        print(msg, flush=True)
        run.notes.append(msg)
    return p


def start_paced(run: Run) -> Proc:
    port = free_port()
    p = spawn("paced upstream", [sys.executable, str(HERE / "paced_upstream.py"), "--port",
                                 str(port), "--delay-ms", str(run.args.ttfb_delay_ms)], port,
              run.tmp / "paced.log")
    harness.wait_port(p)
    return p


def start_passthrough(run: Run, mock: Proc, paced: Proc) -> Proc:
    port = free_port()
    p = spawn("pass-through", [sys.executable, str(HERE / "passthrough.py"), "--port", str(port),
                               "--upstream", mock.url, "--paced", paced.url], port,
              run.tmp / "passthrough.log")
    harness.wait_http(p, "/", timeout=60)
    return p


def check_once(t: Target, run: Run) -> None:
    """One request per mode before measuring: a 200, and for the gateway, a settled cost."""
    for mode in MODES:
        body = run.bodies[mode].read_bytes().splitlines()[0]
        headers = {"Content-Type": "application/json"}
        if t.auth:
            headers["Authorization"] = t.auth
        req = urllib.request.Request(t.proc.url + t.paths[mode], data=body, headers=headers,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                data = resp.read()
                hdrs = resp.headers
        except Exception as exc:
            detail = exc.read()[:500] if hasattr(exc, "read") else b""
            raise RuntimeError(f"{t.name} {mode} check failed: {exc} {detail!r}\n"
                               f"{t.proc.log_tail()}") from None
        if mode == "stream" and b"[DONE]" not in data:
            raise RuntimeError(f"{t.name}: stream without [DONE]: {data[:300]!r}")
        if t.name == "gateway" and mode == "json":
            if not hdrs.get("x-router-cost-usd") or not hdrs.get("x-router-policy"):
                raise RuntimeError(f"gateway answered without cost/task headers: {dict(hdrs)}")
            run.notes.append(f"Gateway check (first body): model {hdrs.get('x-router-model')}, "
                             f"task {hdrs.get('x-router-task')} "
                             f"({hdrs.get('x-router-task-source')}),"
                             f" {hdrs.get('x-router-prompt-tokens')} prompt tokens, estimate "
                             f"${hdrs.get('x-router-cost-estimate-usd')}, settled "
                             f"${hdrs.get('x-router-cost-usd')}.")


def redis_budget_keys(run: Run) -> int:
    """Keys in the bench Redis (non-zero once reservations and settles have run)."""
    assert run.redis is not None
    r = subprocess.run(["redis-cli", "-p", str(run.redis.port), "dbsize"], capture_output=True,
                       text=True, timeout=10)
    return int(r.stdout.strip() or 0) if r.returncode == 0 else -1


# --- phases ---------------------------------------------------------------------------------------

def grid(run: Run) -> None:
    a = run.args
    for mode in MODES:
        for conns in (1, 16):
            print(f"{mode}, {conns} connection(s):", flush=True)
            for _ in range(a.repeat):
                for t in run.targets:
                    run.cells.append(measure(run, t, mode, conns, a.duration))


def measure_ttfb(run: Run) -> None:
    n = run.args.ttfb_requests
    print(f"streaming time to first byte, {n} sequential requests per target:", flush=True)
    bodies = run.bodies["ttfb"].read_bytes().splitlines()
    for t in run.targets:
        k = min(n, 300) if t.name == "litellm" else n  # ~70 ms a request: keep the run short
        run.ttfb_load[t.name] = loadavg()
        port = (t.ttfb_proc or t.proc).port
        run.ttfb[t.name] = ttfb.run("127.0.0.1", port, t.paths["ttfb"], bodies, k, t.auth,
                                    warmup=min(50, k))
        run.served[t.name] = run.served.get(t.name, 0) + k + min(50, k)
        xs = sorted(run.ttfb[t.name])
        print(f"  {t.name:12s} p50 {pct(xs, 50) * 1000:7.2f} ms  p99 {pct(xs, 99) * 1000:7.2f} ms",
              flush=True)


def memory_check(run: Run) -> None:
    """RSS of the gateway after N and 2N more requests (alternating JSON and stream chunks)."""
    gw = next(t for t in run.targets if t.name == "gateway")
    n = run.args.mem_requests
    print(f"memory: gateway RSS over 2 x {n} requests at 16 connections:", flush=True)
    before = rss_mb(gw.proc.pid)
    served0 = run.served.get("gateway", 0)
    points = [(served0, before, loadavg())]
    done, rate, k = 0, 2000.0, 0
    for goal in (n, 2 * n):
        for _ in range(1000):
            if done >= goal:
                break
            mode = MODES[k % 2]
            k += 1
            secs = int(max(1, min(10, (goal - done) / max(rate, 1.0) + 0.5)))
            res = wrk(run, gw, mode, 16, secs)
            done += int(res["requests"])
            rate = res["requests"] / (res["duration_us"] / 1e6)
        points.append((run.served["gateway"], rss_mb(gw.proc.pid), loadavg()))
        print(f"  after {done} requests in this phase ({run.served['gateway']} served in all): "
              f"RSS {points[-1][1]:.1f} MB (load {points[-1][2]})", flush=True)
    run.memory = {"n": n, "points": points}


def run_steps(run: Run) -> None:
    """bench/steps.py against this run's config, Redis and mock (in its own process)."""
    print("per-step CPU, in-process (bench/steps.py) ...", flush=True)
    bodies = run.bodies["json"]
    if run.args.quick:
        bodies = run.tmp / "bodies-steps.jsonl"
        bodies.write_bytes(b"\n".join(run.bodies["json"].read_bytes().splitlines()[:64]) + b"\n")
    load = loadavg()
    r = subprocess.run([sys.executable, str(HERE / "steps.py"), "--config",
                        str(run.tmp / "config.yaml"), "--bodies", str(bodies), "--rounds",
                        "1" if run.args.quick else "3"],
                       capture_output=True, text=True, timeout=900,
                       env={**os.environ, setup_gateway.UPSTREAM_KEY_ENV: "sk-bench-upstream"})
    m = re.search(r"STEPS_TABLE_BEGIN\n(.*)\nSTEPS_TABLE_END", r.stdout, re.S)
    if r.returncode != 0 or m is None:
        run.notes.append(f"bench/steps.py failed ({r.returncode}): {r.stderr.strip()[-500:]}")
        print(r.stdout + r.stderr, flush=True)
        return
    print(r.stdout.split("STEPS_TABLE_BEGIN")[0], end="", flush=True)
    run.steps = (m.group(1), load)


def profile(run: Run) -> None:
    """py-spy the gateway and the pass-through under 16 connections, per mode."""
    secs = run.args.profile
    if shutil.which("py-spy") is None:
        run.notes.append("py-spy is not installed: no profile in this run.")
        return
    for t in run.targets:
        if t.name not in ("gateway", "pass-through"):
            continue
        for mode in MODES:
            print(f"profiling {t.name} ({mode}, 16 connections, {secs} s) ...", flush=True)
            got = profile_one(run, t, mode, secs)
            if got is not None:
                run.profiles[f"{t.name}, {mode}"] = got
                print(spyprofile.table(got[0]), flush=True)


def profile_one(run: Run, t: Target, mode: str, secs: int
                ) -> tuple[list[tuple[str, int, float, float]], float, str, Path] | None:
    out = run.tmp / f"profile-{t.name}-{mode}.raw"
    env = {**os.environ, "BENCH_BODIES": str(run.bodies[mode]), "BENCH_PATH": t.paths[mode],
           "BENCH_AUTH": t.auth or ""}
    load = subprocess.Popen(["wrk", "-t1", "-c16", f"-d{secs + 4}s", "--timeout", "10s", "-s",
                             str(LUA), t.proc.url + t.paths[mode]], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.5)
        c0, w0, la = cpu_seconds(t.proc.pid), time.monotonic(), loadavg()
        spy = subprocess.run(["py-spy", "record", "-p", str(t.proc.pid), "-f", "raw", "-o",
                              str(out), "-d", str(secs), "-r", "200", "--nonblocking"],
                             capture_output=True, text=True, timeout=secs + 60)
        c1, w1 = cpu_seconds(t.proc.pid), time.monotonic()
    finally:
        stdout, _ = load.communicate(timeout=secs + 60)
    m = _RESULT.search(stdout or "")
    if m is None:
        run.notes.append(f"profile of {t.name} ({mode}): wrk failed: {stdout[-300:]}")
        return None
    res = {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    run.served[t.name] = run.served.get(t.name, 0) + int(res["requests"])
    if spy.returncode != 0 or not out.exists():
        run.notes.append(f"py-spy failed on {t.name} ({spy.returncode}): "
                         f"{spy.stderr.strip()[-300:]}")
        return None
    # requests in the py-spy window: wrk's rate over its whole run times the window
    rate = res["requests"] / (res["duration_us"] / 1e6)
    per_req = (c1 - c0) / (rate * (w1 - w0)) * 1e6 if rate else float("nan")
    return spyprofile.breakdown(out, per_req), per_req, la, out


# --- report --------------------------------------------------------------------------------

def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))
    return xs[k]


def med(cells: list[Cell], attr: str) -> float:
    return statistics.median(getattr(c, attr) for c in cells) if cells else float("nan")


def pick(run: Run, target: str, mode: str, conns: int) -> list[Cell]:
    return [c for c in run.cells if c.target == target and c.mode == mode and c.conns == conns]


def fmt(x: float, digits: int = 2) -> str:
    if x != x:  # NaN
        return "–"
    return f"{x:,.{digits}f}"


def results_table(run: Run) -> str:
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


def ttfb_table(run: Run) -> str:
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


def verdicts(run: Run) -> list[tuple[str, str, bool | None]]:
    """(target, measured, holds) for each of issue 8's targets."""
    T = TARGETS_ISSUE
    out: list[tuple[str, str, bool | None]] = []
    gw16 = med(pick(run, "gateway", "json", 16), "rps")
    bare16 = med(pick(run, "pass-through", "json", 16), "rps")
    out.append((f">= {T['rps_16']:,} req/s at 16 connections", f"{fmt(gw16, 0)} req/s",
                gw16 >= T["rps_16"]))
    share = gw16 / bare16 if bare16 else float("nan")
    out.append((f">= {T['share_of_bare']:.0%} of the bare pass-through (same run)",
                f"{share:.1%} of {fmt(bare16, 0)} req/s", share >= T["share_of_bare"]))
    g1, m1 = pick(run, "gateway", "json", 1), pick(run, "mock", "json", 1)
    add50 = (med(g1, "p50_us") - med(m1, "p50_us")) / 1000
    add99 = (med(g1, "p99_us") - med(m1, "p99_us")) / 1000
    out.append((f"added latency p50 <= {T['added_p50_ms']} ms at 1 connection",
                f"{fmt(add50)} ms", add50 <= T["added_p50_ms"]))
    out.append((f"added latency p99 <= {T['added_p99_ms']} ms at 1 connection",
                f"{fmt(add99)} ms", add99 <= T["added_p99_ms"]))
    if run.ttfb.get("gateway") and run.ttfb.get("mock"):
        o = (pct(sorted(run.ttfb["gateway"]), 50) - pct(sorted(run.ttfb["mock"]), 50)) * 1000
        out.append((f"streaming TTFB overhead <= {T['ttfb_ms']} ms (p50)", f"{fmt(o)} ms",
                    o <= T["ttfb_ms"]))
    if run.memory:
        pts = run.memory["points"]
        assert isinstance(pts, list)
        (_, r_n, _), (served, r_2n, _) = pts[-2], pts[-1]
        growth = r_2n - r_n
        out.append((f"RSS <= {T['rss_mb']} MB after 100k requests, no growth",
                    f"{r_2n:.1f} MB after {served:,} served; {growth:+.1f} MB over the last "
                    f"{run.memory['n']:,}",
                    (r_2n <= T["rss_mb"] and growth <= 0.02 * r_n + 2) if served >= 100_000
                    else None))
    peer16 = med(pick(run, "litellm", "json", 16), "rps")
    if peer16 == peer16:
        ratio = gw16 / peer16
        out.append((f">= {T['litellm_ratio']}x LiteLLM proxy's throughput (16 connections)",
                    f"{ratio:.1f}x ({fmt(peer16, 0)} req/s)", ratio >= T["litellm_ratio"]))
    elif run.args.peer == "litellm":
        out.append((f">= {T['litellm_ratio']}x LiteLLM proxy's throughput",
                    f"not measured: {run.peer_error}", None))
    return out


def verdict_table(run: Run) -> str:
    rows = ["| target (issue 8) | measured | holds |", "| --- | --- | --- |"]
    for what, got, ok in verdicts(run):
        rows.append(f"| {what} | {got} | {'yes' if ok else 'n/a' if ok is None else '**no**'} |")
    return "\n".join(rows)


def memory_table(run: Run) -> str:
    if not run.memory:
        return "(not run)"
    rows = ["| point | gateway requests served so far | RSS MB | load avg |",
            "| --- | ---: | ---: | --- |"]
    names = ["start of the memory phase", f"after N = {run.memory['n']:,} more",
             f"after 2N = {2 * int(run.memory['n']):,} more"]  # type: ignore[call-overload]
    for name, (served, rss, load) in zip(names, run.memory["points"], strict=False):  # type: ignore[arg-type]
        rows.append(f"| {name} | {served:,} | {rss:.1f} | {load} |")
    return "\n".join(rows)


def versions(run: Run, litellm_version: str | None) -> dict[str, str]:
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


def report(run: Run, command: str, litellm_version: str | None) -> str:
    a = run.args
    vs = versions(run, litellm_version)
    lines = [
        "# Gateway benchmark (issue 8)",
        "",
        "Generated by `python bench/run.py` — do not edit by hand; rerun it. Analysis, profile",
        "reading and recommendations: [ANALYSIS.md](ANALYSIS.md).",
        "",
        "## Setup",
        "",
        "* **Mock upstream**: nginx (one worker, no access log) answering"
        " `POST /v1/chat/completions` with a fixed chat completion with usage, and"
        " `POST /stream/v1/chat/completions` with a fixed SSE stream (role, 14 content and"
        " finish chunks, a usage chunk, `[DONE]`) sent at once — `bench/mock_upstream.py`.",
        "* **Gateway**: `router serve` (uvicorn + uvloop + httptools, one worker) with"
        " `bench/setup_gateway.py`'s config: token counting (tiktoken o200k), the classifier, the"
        " policy choosing among three models (`auto` / `auto-stream`), budgets on Redis (global,"
        " team, user and key budgets: every request reserves and settles;"
        f" `store.lease_fraction: {a.lease_fraction}`"
        + (" as shipped" if a.lease_fraction == StoreConfig().lease_fraction else
           " — not the shipped default") + "),"
        " Prometheus metrics on, **access log off** (as shipped: `server.access_log: false`),"
        " log level `info` (nothing logged per successful request).",
        "* **Bare pass-through**: `bench/passthrough.py`, uvicorn + uvloop + httptools and one"
        " pooled aiohttp session: parse the body, rewrite `model`, forward, return"
        " (DESIGN decision 1).",
        "* **LiteLLM proxy** (`--peer litellm`): `litellm --config ... --num_workers 1`, default"
        " settings, in its own virtualenv (`bench/peer_litellm.py`), the same mock.",
        "* **Load**: wrk, one thread, `bench/post.lua` cycling through 512 distinct chat bodies"
        " (the project's 245 labelled prompts, English and Chinese, some with a previous turn;"
        " system prompts, `max_tokens` and `temperature` varied); targets interleaved per cell."
        " *Added latency* = target percentile − the mock's same percentile in the same cell."
        " *CPU µs/req* = utime+stime of the server's process tree over the cell ÷ requests"
        " (for the gateway, Redis's own CPU per request in brackets). RSS = VmRSS after the cell.",
        "* **Streaming TTFB**: `bench/ttfb.py`, a raw-socket client, N sequential requests on one"
        " keep-alive connection, time from sending the request to the first body byte, against"
        " a paced stream (`bench/paced_upstream.py`: the first three events at once, the rest"
        " later; nginx cannot pace a body this small).",
        "",
        "The machine is shared: other sessions run test suites on it, so absolute figures are"
        " noisy. The load average is printed next to every measurement; CPU µs per request and"
        " same-run ratios are the figures to compare between runs.",
        "",
        "## Machine and versions",
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
        f"## Results ({a.duration} s per cell, median of {a.repeat} interleaved"
        f" repetition{'s' if a.repeat > 1 else ''})",
        "",
        results_table(run),
        "",
        "### Against issue 8's targets",
        "",
        verdict_table(run),
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


# --- main ----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Load benchmark of the gateway (issue 8).")
    ap.add_argument("--peer", choices=["litellm"], help="also run LiteLLM's proxy")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 s cells, few requests; README untouched unless --readme")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk cell (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per target and mode")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved repetitions per cell")
    ap.add_argument("--ttfb-requests", type=int, default=1000)
    ap.add_argument("--ttfb-delay-ms", type=float, default=20.0,
                    help="the paced upstream sends the rest of its stream this long after the "
                         "first three events")
    ap.add_argument("--mem-requests", type=int, default=50_000,
                    help="N of the memory check (RSS after N and 2N requests); 0 skips it")
    ap.add_argument("--profile", type=int, default=0, metavar="SECONDS",
                    help="py-spy the gateway for this long per mode (0: no profile)")
    ap.add_argument("--no-steps", dest="steps", action="store_false",
                    help="skip the in-process per-step CPU measurement (bench/steps.py)")
    ap.add_argument("--lease-fraction", type=float, default=StoreConfig().lease_fraction,
                    help="store.lease_fraction of the gateway's Redis store (default: as shipped, "
                         "%(default)s; 0: off)")
    ap.add_argument("--readme", type=Path, default=None,
                    help="where to write the results (default bench/README.md; with --quick: "
                         "nowhere unless given)")
    ap.add_argument("--no-install", action="store_true",
                    help="do not pip-install litellm[proxy] into its venv if it is missing")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args(argv)
    if a.quick:
        a.duration, a.warmup, a.repeat = 1, 1, 1
        a.ttfb_requests = min(a.ttfb_requests, 30)
        a.mem_requests = min(a.mem_requests, 300)
        a.profile = min(a.profile, 2)
    elif a.readme is None:
        a.readme = HERE / "README.md"
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    missing = harness.missing_tools("wrk", "nginx", "redis-server", "redis-cli")
    if missing:
        debs = sorted({"redis-cli": "redis-tools"}.get(m, m) for m in missing)
        print(f"SKIP: missing {', '.join(missing)} (Debian packages: apt-get install -y "
              f"{' '.join(debs)})")
        return 3
    command = "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    run = Run(a, Path(tempfile.mkdtemp(prefix="router-bench-")))
    run.versions["load0"] = loadavg()
    print(f"bench: tmp {run.tmp}, load average {run.versions['load0']}", flush=True)
    litellm_version = None
    try:
        mock = start_mock(run.tmp, free_port())
        run.procs.append(mock)
        paced = start_paced(run)
        run.procs.append(paced)
        run.redis = start_redis(run)
        run.procs.append(run.redis)
        gateway = start_gateway(run, mock, run.redis, paced)
        run.procs.append(gateway)
        bare = start_passthrough(run, mock, paced)
        run.procs.append(bare)
        auth = f"Bearer {setup_gateway.GATEWAY_KEY}"
        chat = "/v1/chat/completions"
        run.targets = [
            Target("mock", mock, {"json": chat, "stream": "/stream" + chat, "ttfb": chat},
                   ttfb_proc=paced),
            Target("pass-through", bare, {"json": chat, "stream": chat, "ttfb": chat}),
            Target("gateway", gateway, {"json": chat, "stream": chat, "ttfb": chat}, auth),
        ]
        if a.peer == "litellm":
            try:
                litellm_version = peer_litellm.ensure(install=not a.no_install,
                                                      log=run.tmp / "litellm-install.log")
                peer, peer_auth = peer_litellm.start(run.tmp, free_port(), mock.url, paced.url)
                run.procs.append(peer)
                run.targets.append(Target("litellm", peer,
                                          {"json": chat, "stream": chat, "ttfb": chat},
                                          peer_auth))
            except peer_litellm.PeerUnavailable as exc:
                run.peer_error = str(exc)
                print(f"LiteLLM proxy not measured: {exc}", flush=True)
                run.notes.append(f"LiteLLM proxy not measured: {exc}")
        for mode, model in (("json", "auto"), ("stream", "auto-stream"), ("ttfb", "auto-ttfb")):
            path = run.tmp / f"bodies-{mode}.jsonl"
            path.write_bytes(b"\n".join(setup_gateway.bodies(512, model=model,
                                                              stream=mode != "json")) + b"\n")
            run.bodies[mode] = path
        for t in run.targets:
            check_once(t, run)
        print(f"warm-up ({a.warmup} s per target and mode) ...", flush=True)
        for t in run.targets:
            for mode in MODES:
                wrk(run, t, mode, 16, a.warmup)
        grid(run)
        if a.ttfb_requests:
            measure_ttfb(run)
        if a.mem_requests:
            memory_check(run)
        if a.steps:
            run_steps(run)
        if a.profile:
            profile(run)
        keys = redis_budget_keys(run)
        run.notes.append(f"Redis held {keys} keys after the run (budget counters, reservations, "
                         "ledger stream): the gateway reserved and settled on it.")
        for t in run.targets:
            if not t.proc.alive():
                raise RuntimeError(f"{t.name} died during the run:\n{t.proc.log_tail()}")
    finally:
        for p in reversed(run.procs):
            p.stop()
        if not a.keep:
            shutil.rmtree(run.tmp, ignore_errors=True)
    text = report(run, command, litellm_version)
    print()
    print(results_table(run))
    print()
    print(verdict_table(run))
    print()
    print(ttfb_table(run))
    print()
    print(memory_table(run))
    if a.readme is not None:
        a.readme.write_text(text)
        print(f"\nwrote {a.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
