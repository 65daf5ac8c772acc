"""The gateway's load benchmark (issues 8 and 18): one command, same-run baselines, the targets.

    python bench/run.py --peer litellm --label A   # full run (~10 minutes): bench/results/A.json,
                                                   # then bench/README.md from bench/results/*.json
    python bench/run.py --quick         # smoke run (~1 min), prints the tables, README untouched
    python bench/run.py --profile 10    # also py-spy gateway and pass-through, 10 s per mode
    python bench/report.py              # bench/README.md again from the results files

Starts, on free loopback ports: nginx as the mock upstream (bench/mock_upstream.py),
redis-server for the budgets, the gateway with everything on (bench/setup_gateway.py), the bare
pass-through of DESIGN decision 1 (bench/passthrough.py) and, with ``--peer litellm``, LiteLLM's
proxy (bench/peer_litellm.py). wrk drives each with a few hundred distinct chat bodies
(bench/post.lua) at 1 and 16 connections, non-streaming and streaming, the targets interleaved
so that they see the same machine load; a raw-socket client measures streaming time to first
byte against a paced stream (bench/ttfb.py, bench/paced_upstream.py); a long run checks the
gateway's memory for growth; bench/steps.py times each step of the request path in-process.
Redis commands per request come from ``INFO commandstats`` around each gateway cell
(bench/redisstats.py); a gateway with ``server.workers: 2`` is measured against one worker and its
budgets checked afterwards (bench/workers.py); a fleet of 8 replicas on one Redis spends a shared
budget and is checked for exactness (bench/fleet.py). Each run's figures go to
``bench/results/<label>.json`` (bench/results.py) and bench/report.py makes the README from all
of them, issue 18's targets side by side.
CPU per request comes from /proc (utime + stime of each server's process tree over the
measurement), resident memory from VmRSS. Exit status: 0 done, 3 a required tool is missing
(the smoke test skips on it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fleet  # noqa: E402
import harness  # noqa: E402
import peer_litellm  # noqa: E402
import redisstats  # noqa: E402
import report  # noqa: E402
import results  # noqa: E402
import setup_gateway  # noqa: E402
import spyprofile  # noqa: E402
import ttfb  # noqa: E402
import workers  # noqa: E402
from harness import Proc, cpu_seconds, free_port, loadavg, rss_mb, spawn  # noqa: E402
from mock_upstream import start_mock  # noqa: E402
from results import memory_table, pct, results_table, ttfb_table  # noqa: E402

from router.config import StoreConfig  # noqa: E402

REPO = HERE.parent
LUA = HERE / "post.lua"
MODES = ("json", "stream")


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
    #: Redis commands per request over the cell (bench/redisstats.py), gateway cells only.
    redis_cmds: dict[str, object] | None = None

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
    workers: dict[str, object] | None = None
    fleet: dict[str, object] | None = None
    redis_idle: dict[str, float] | None = None
    started: float = field(default_factory=time.time)


# --- wrk -------------------------------------------------------------------------------------

_RESULT = re.compile(r"BENCH_RESULT (.*)")


def wrk(run: Run, t: Target, mode: str, conns: int, seconds: int, count: bool = False
        ) -> dict[str, float]:
    """One wrk run. ``count``: bench/post.lua's counting mode (every body sent is answered
    before wrk stops; the result has sent, answered, ok, other and counted_s)."""
    env = {**os.environ, "BENCH_BODIES": str(run.bodies[mode]), "BENCH_PATH": t.paths[mode],
           "BENCH_AUTH": t.auth or ""}
    if count:
        env["BENCH_SECONDS"] = str(seconds)
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds + 2 if count else seconds}s", "--timeout",
           "10s", "-s", str(LUA), t.proc.url + t.paths[mode]]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60)
    m = _RESULT.search(r.stdout)
    if r.returncode != 0 or m is None:
        raise RuntimeError(f"wrk against {t.name} failed ({r.returncode}):\n{r.stdout}\n"
                           f"{r.stderr}")
    out = {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    served = out["answered"] if count else out["requests"]
    run.served[t.name] = run.served.get(t.name, 0) + int(served)
    return out


def measure(run: Run, t: Target, mode: str, conns: int, seconds: int) -> Cell:
    load = loadavg()
    pid = t.proc.pid
    gateway = t.name == "gateway" and run.redis is not None
    s0 = redisstats.snapshot(run.redis.port) if gateway and run.redis else None
    c0 = cpu_seconds(pid)
    r0 = cpu_seconds(run.redis.pid) if run.redis is not None else 0.0
    res = wrk(run, t, mode, conns, seconds)
    c1 = cpu_seconds(pid)
    r1 = cpu_seconds(run.redis.pid) if run.redis is not None else 0.0
    s1 = redisstats.snapshot(run.redis.port) if gateway and run.redis else None
    errors = int(res["connect"] + res["read"] + res["write"] + res["status"] + res["timeout"])
    cell = Cell(t.name, mode, conns, load, int(res["requests"]), res["duration_us"] / 1e6,
                res["p50_us"], res["p99_us"], errors, c1 - c0, rss_mb(pid),
                redis_cpu_s=(r1 - r0) if t.name == "gateway" else 0.0)
    if s0 is not None and s1 is not None:
        cell.redis_cmds = redisstats.per_request(s0, s1, cell.requests)
    flag = f"  ERRORS {errors}" if errors else ""
    if cell.redis_cmds:
        flag += f"  redis {cell.redis_cmds['round_trips_per_request']:.3f} cmd/req"
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


def check_everything_on(t: Target, run: Run) -> None:
    """The gateway under test has every feature on: difficulty moved the bar, Prometheus
    metrics are served and count the request, budgets reserved from leases in Redis."""
    body = run.bodies["json"].read_bytes().splitlines()[1]
    req = urllib.request.Request(t.proc.url + t.paths["json"], data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": t.auth or ""})
    with urllib.request.urlopen(req, timeout=30) as resp:
        hdrs = resp.headers
    problems = []
    if not hdrs.get("x-router-difficulty"):
        problems.append("no x-router-difficulty header: the policy's difficulty is off")
    with urllib.request.urlopen(t.proc.url + "/metrics", timeout=30) as resp:
        metrics = resp.read().decode()
    if not re.search(r'^router_classifications_total\{[^}]*difficulty="(easy|medium|hard)"',
                     metrics, re.M):
        problems.append("/metrics has no router_classifications_total with a difficulty band")
    assert run.redis is not None
    r = subprocess.run(["redis-cli", "-p", str(run.redis.port), "--scan", "--pattern",
                        "{router}:r:L.*"], capture_output=True, text=True, timeout=10)
    leases = len(r.stdout.split())
    if run.args.lease_fraction > 0 and leases == 0:
        problems.append("no lease in Redis ({router}:r:L.*): budgets are not leased")
    if problems:
        raise RuntimeError("the gateway does not have everything on: " + "; ".join(problems))
    run.notes.append(f"Everything on (checked before measuring): difficulty "
                     f"{hdrs.get('x-router-difficulty')} ({hdrs.get('x-router-difficulty-band')}),"
                     f" bars {hdrs.get('x-router-bars')}; /metrics counts classifications by "
                     f"difficulty band; {leases} budget lease(s) held in Redis "
                     f"(`store.lease_fraction: {run.args.lease_fraction}`).")


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


def gateway_target(run: Run) -> Target:
    return next(t for t in run.targets if t.name == "gateway")


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
    ap.add_argument("--label", default="A",
                    help="name of this run: its figures go to bench/results/LABEL.json and the "
                         "README shows every results file's figures side by side (default A)")
    ap.add_argument("--note", default="",
                    help="a few words on the run, shown beside its label in the README")
    ap.add_argument("--results", type=Path, default=None,
                    help="where to write this run's results file (default "
                         "bench/results/LABEL.json; with --quick: nowhere unless given)")
    ap.add_argument("--no-workers", dest="workers", action="store_false",
                    help="skip the server.workers: 2 phase")
    ap.add_argument("--fleet", type=int, default=8, metavar="N",
                    help="replicas of the fleet check (default 8; 0 skips it)")
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
    else:
        if a.readme is None:
            a.readme = HERE / "README.md"
        if a.results is None:
            a.results = report.RESULTS / f"{a.label}.json"
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
        check_everything_on(gateway_target(run), run)
        run.redis_idle = redisstats.idle_rate(run.redis.port)
        print(f"warm-up ({a.warmup} s per target and mode) ...", flush=True)
        for t in run.targets:
            for mode in MODES:
                wrk(run, t, mode, 16, a.warmup)
        grid(run)
        if a.ttfb_requests:
            measure_ttfb(run)
        if a.workers:
            try:
                run.workers = workers.workers_phase(run, mock, paced)
            except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
                print(f"workers phase failed: {exc}", flush=True)
                run.notes.append(f"The two-worker phase failed: {str(exc)[:500]}")
        if a.mem_requests:
            memory_check(run)
        if a.steps:
            run_steps(run)
        if a.profile:
            profile(run)
        if a.fleet:
            try:
                run.fleet = fleet.run_fleet(run.tmp / "fleet", replicas=a.fleet,
                                            mock_url=mock.url, limit_usd=0.1 if a.quick else 0.2,
                                            log=lambda m: print(m, flush=True))
                print("  " + fleet.describe(run.fleet), flush=True)
            except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
                print(f"fleet check failed: {exc}", flush=True)
                run.notes.append(f"The fleet check failed: {str(exc)[:500]}")
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
    res = results.collect(run, command, litellm_version, a.label)
    print()
    print(results_table(run))
    print()
    print(ttfb_table(run))
    print()
    print(memory_table(run))
    print()
    print(report.targets_table([res]))
    paths = None
    if a.results is not None:
        a.results.parent.mkdir(parents=True, exist_ok=True)
        a.results.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
        print(f"\nwrote {a.results}")
        if a.results.parent != report.RESULTS:
            paths = [a.results]
    if a.readme is not None:
        if paths is None and a.results is None:  # --quick --readme: this run alone
            a.readme.write_text(report.readme([res]))
        else:
            report.write(a.readme, paths)
        print(f"wrote {a.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
