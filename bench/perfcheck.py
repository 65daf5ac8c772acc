"""A focused before/after check of the gateway's own cost (issue 18), in a few minutes.

Starts what ``bench/run.py`` starts (nginx mock, paced stream, redis-server, the gateway with
everything on, the bare pass-through) and measures, interleaved so that both see the same load:

* CPU µs per request of the gateway and of the bare pass-through, JSON and streaming, at 16
  connections, and their ratio (the issue's "<= 2.5x the pass-through in the same run");
* Redis calls per request: the client commands the gateway sent (``INFO stats``
  ``total_commands_processed`` minus the commands scripts ran inside, from ``INFO
  commandstats``), per request served;
* added p50 latency at one connection (JSON), and the streaming TTFB overhead (p50);
* optionally (``--spy SECONDS``) a py-spy profile of the gateway under 16 connections per mode,
  broken down by step (``bench/spyprofile.py``) with its hottest frames.

It does not write bench/README.md (``bench/run.py`` does).

    python bench/perfcheck.py                    # ~2 minutes
    python bench/perfcheck.py --rounds 3 --duration 8 --spy 8
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import setup_gateway  # noqa: E402
import spyprofile  # noqa: E402
import ttfb  # noqa: E402
from harness import Proc, cpu_seconds, free_port, loadavg, rss_mb, spawn  # noqa: E402
from mock_upstream import start_mock  # noqa: E402

REPO = HERE.parent
LUA = HERE / "post.lua"
CHAT = "/v1/chat/completions"


#: Commands the budget scripts run inside Redis (router/budgets/lua.py, export/): INFO
#: commandstats counts those too, so they are left out of the client's calls.
IN_SCRIPTS = {"del", "exists", "expireat", "get", "hexists", "hget", "hincrby", "hmget", "hset",
              "hsetnx", "pexpire", "set", "xadd", "xgroup", "xinfo", "xpending", "xrevrange",
              "xtrim", "zadd", "zrangebyscore", "zrem"}
SCRIPTS = {"evalsha", "eval", "fcall", "evalsha_ro", "eval_ro"}


def redis_info(port: int) -> dict[str, int]:
    """Calls per command so far (INFO commandstats)."""
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "commandstats"],
                         capture_output=True, text=True, timeout=10).stdout
    calls = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line[len("cmdstat_"):].partition(":")
            calls[name] = int(dict(kv.split("=") for kv in rest.split(","))["calls"])
    return calls


def client_calls(before: dict[str, int], after: dict[str, int]) -> tuple[int, int, str]:
    """(client calls but INFO, script calls, the non-script client commands) between two."""
    diff = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    scripts = sum(v for k, v in diff.items() if k in SCRIPTS)
    direct = {k: v for k, v in diff.items() if k not in IN_SCRIPTS and k not in SCRIPTS
              and k != "info"}
    return scripts + sum(direct.values()), scripts, " ".join(f"{k}={v}" for k, v in direct.items())


def wrk(url: str, path: str, bodies: Path, auth: str | None, conns: int, secs: int
        ) -> dict[str, float]:
    env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_PATH": path,
           "BENCH_AUTH": auth or ""}
    r = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--timeout", "10s", "-s",
                        str(LUA), url + path], capture_output=True, text=True, env=env,
                       timeout=secs + 60)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if r.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {r.stdout}\n{r.stderr}")
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}


def cell(p: Proc, path: str, bodies: Path, auth: str | None, conns: int, secs: int,
         redis: Proc | None = None) -> dict[str, float]:
    c0 = cpu_seconds(p.pid)
    r0 = redis_info(redis.port) if redis else {}
    res = wrk(p.url, path, bodies, auth, conns, secs)
    c1 = cpu_seconds(p.pid)
    r1 = redis_info(redis.port) if redis else {}
    n = res["requests"]
    errors = sum(res[k] for k in ("connect", "read", "write", "status", "timeout"))
    out = {"rps": n / (res["duration_us"] / 1e6), "cpu_us": (c1 - c0) / n * 1e6,
           "p50_ms": res["p50_us"] / 1000, "errors": errors, "n": n}
    if redis:
        calls, scripts, direct = client_calls(r0, r1)
        out["redis_calls"] = calls / n
        out["redis_scripts"] = scripts / n
        print(f"    redis: {scripts} script calls, direct: {direct or '-'}", flush=True)
    return out


def spy(p: Proc, path: str, bodies: Path, auth: str | None, secs: int, tmp: Path,
        name: str) -> None:
    if shutil.which("py-spy") is None:
        print("  (py-spy not installed)")
        return
    raw = tmp / f"spy-{name}.raw"
    env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_PATH": path, "BENCH_AUTH": auth or ""}
    load = subprocess.Popen(["wrk", "-t1", "-c16", f"-d{secs + 3}s", "--timeout", "10s", "-s",
                             str(LUA), p.url + path], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)
        c0, w0 = cpu_seconds(p.pid), time.monotonic()
        subprocess.run(["py-spy", "record", "-p", str(p.pid), "-f", "raw", "-o", str(raw),
                        "-d", str(secs), "-r", "250", "--nonblocking", "--gil"],
                       capture_output=True,
                       timeout=secs + 60)
        c1, w1 = cpu_seconds(p.pid), time.monotonic()
    finally:
        stdout, _ = load.communicate(timeout=secs + 60)
    line = next(ln for ln in stdout.splitlines() if ln.startswith("BENCH_RESULT "))
    res = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    rate = res["requests"] / (res["duration_us"] / 1e6)
    per_req = (c1 - c0) / (rate * (w1 - w0)) * 1e6
    kept = Path(tempfile.gettempdir()) / f"perfcheck-{name}.raw"
    shutil.copy(raw, kept)
    print(f"\npy-spy {name}: {per_req:.0f} µs CPU/request over the window (raw: {kept})")
    print(spyprofile.table(spyprofile.breakdown(raw, per_req)))
    for step, frames in spyprofile.details(raw, 6).items():
        print(f"  {step}:")
        for frame, n in frames:
            print(f"    {n:6d}  {frame}")
    print("  hottest frames (self):")
    for frame, n in spyprofile.top_frames(raw, 30):
        print(f"    {n:6d}  {frame}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=int, default=6, help="seconds per wrk cell")
    ap.add_argument("--ttfb", type=int, default=400, help="sequential TTFB requests (0: skip)")
    ap.add_argument("--spy", type=int, default=0, metavar="SECONDS")
    ap.add_argument("--lease-fraction", type=float, default=0.05)
    ap.add_argument("--modes", default="json,stream")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="router-perf-"))
    procs: list[Proc] = []
    try:
        mock = start_mock(tmp, free_port())
        procs.append(mock)
        paced = spawn("paced", [sys.executable, str(HERE / "paced_upstream.py"), "--port",
                                str(port := free_port()), "--delay-ms", "20"], port,
                      tmp / "paced.log")
        procs.append(paced)
        harness.wait_port(paced)
        rport = free_port()
        redis = spawn("redis", ["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", str(tmp)], rport,
                      tmp / "redis.log")
        procs.append(redis)
        harness.wait_port(redis)
        cfg = setup_gateway.write_gateway_files(tmp, mock.url, f"redis://127.0.0.1:{rport}/0",
                                                a.lease_fraction, paced.url)
        gport = free_port()
        gw = spawn("gateway", [sys.executable, "-m", "router", "serve", "--config", str(cfg),
                               "--port", str(gport)], gport, tmp / "gateway.log",
                   env={setup_gateway.UPSTREAM_KEY_ENV: "sk-bench-upstream"}, cwd=str(REPO))
        procs.append(gw)
        harness.wait_http(gw, "/readyz", timeout=120)
        bport = free_port()
        bare = spawn("pass-through", [sys.executable, str(HERE / "passthrough.py"), "--port",
                                      str(bport), "--upstream", mock.url, "--paced", paced.url],
                     bport, tmp / "passthrough.log")
        procs.append(bare)
        harness.wait_http(bare, "/", timeout=60)
        auth = f"Bearer {setup_gateway.GATEWAY_KEY}"
        bodies = {}
        for mode, model in (("json", "auto"), ("stream", "auto-stream"), ("ttfb", "auto-ttfb")):
            path = tmp / f"bodies-{mode}.jsonl"
            path.write_bytes(b"\n".join(setup_gateway.bodies(512, model=model,
                                                              stream=mode != "json")) + b"\n")
            bodies[mode] = path
        modes = a.modes.split(",")
        print(f"warm-up, load {loadavg()}", flush=True)
        for mode in modes:
            wrk(gw.url, CHAT, bodies[mode], auth, 16, 3)
            wrk(bare.url, CHAT, bodies[mode], None, 16, 2)
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for r in range(a.rounds):
            for mode in modes:
                for name, p, au, rd in (("bare", bare, None, None), ("gateway", gw, auth, redis)):
                    c = cell(p, CHAT, bodies[mode], au, 16, a.duration, rd)
                    results.setdefault((name, mode), []).append(c)
                    extra = (f"  redis calls/req {c['redis_calls']:.3f} (scripts "
                             f"{c['redis_scripts']:.3f})" if rd else "")
                    print(f"  round {r} {name:8s} {mode:6s} {c['rps']:7.0f} req/s  cpu "
                          f"{c['cpu_us']:6.0f} µs/req  errors {c['errors']:.0f}{extra}  "
                          f"load {loadavg()}", flush=True)
        print("\nsummary (median over rounds), 16 connections:")
        for mode in modes:
            g = results[("gateway", mode)]
            b = results[("bare", mode)]
            gc = statistics.median(x["cpu_us"] for x in g)
            bc = statistics.median(x["cpu_us"] for x in b)
            grps = statistics.median(x["rps"] for x in g)
            brps = statistics.median(x["rps"] for x in b)
            print(f"  {mode:6s} gateway {gc:6.0f} µs/req ({grps:6.0f} req/s)  bare {bc:5.0f} "
                  f"µs/req ({brps:6.0f} req/s)  ratio {gc / bc:.2f}x  redis calls/req "
                  f"{statistics.median(x['redis_calls'] for x in g):.3f}", flush=True)
        if "json" in modes:
            print("\nJSON at 1 connection (added p50 over the mock):")
            lat: dict[str, list[float]] = {}
            for _ in range(a.rounds):
                for name, p, au in (("mock", mock, None), ("bare", bare, None),
                                    ("gateway", gw, auth)):
                    c = cell(p, CHAT, bodies["json"], au, 1, max(3, a.duration // 2))
                    lat.setdefault(name, []).append(c["p50_ms"])
            m = statistics.median(lat["mock"])
            for name in ("bare", "gateway"):
                print(f"  {name:8s} p50 {statistics.median(lat[name]):.3f} ms, added "
                      f"{statistics.median(lat[name]) - m:.3f} ms")
        if a.ttfb:
            print(f"\nstreaming TTFB, {a.ttfb} sequential requests (paced upstream):")
            tb = bodies["ttfb"].read_bytes().splitlines()
            got = {}
            for name, port, au in (("mock", paced.port, None), ("bare", bare.port, None),
                                   ("gateway", gw.port, auth)):
                xs = sorted(ttfb.run("127.0.0.1", port, CHAT, tb, a.ttfb, au, warmup=30))
                got[name] = xs[len(xs) // 2] * 1000
            for name in ("bare", "gateway"):
                print(f"  {name:8s} TTFB p50 {got[name]:.3f} ms, overhead "
                      f"{got[name] - got['mock']:.3f} ms")
        print(f"\ngateway RSS {rss_mb(gw.pid):.1f} MB")
        if a.spy:
            for mode in modes:
                spy(gw, CHAT, bodies[mode], auth, a.spy, tmp, f"gateway-{mode}")
        if not gw.alive():
            print(gw.log_tail())
            return 1
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
