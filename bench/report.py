"""bench/README.md from the runs' results files, with issue 18's targets side by side.

    python bench/report.py                       # bench/results/*.json -> bench/README.md
    python bench/report.py --results A.json B.json --readme /tmp/README.md

``bench/run.py --label A`` writes ``bench/results/A.json`` (every figure of the run, raw, plus
its tables as Markdown) and then regenerates the README from every results file there, so two
runs (``--label A``, ``--label B``) show their figures side by side: the machine's spread
between runs is part of the result. The verdicts are computed here, from the raw figures, so a
changed target needs only this file changed and the README regenerated.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: Issue 18's targets (same-run ratios where the issue says so).
T = {
    "cpu_ratio": 2.5,  # gateway CPU per request <= 2.5 x the bare pass-through's, 16 conns
    "litellm_ratio": 25,  # >= 25 x LiteLLM proxy's throughput, 16 conns
    "added_p50_ms": 0.35,  # added latency p50 at 1 connection
    "ttfb_ms": 0.8,  # streaming TTFB overhead p50
    "workers_ratio": 1.7,  # server.workers: 2 serves >= 1.7 x one worker
    "redis_per_req": 0.3,  # Redis commands per request with leases on
    "fleet": 8,  # replicas on one Redis, budgets exact
    "rss_mb": 150,  # RSS, flat over 100k requests
}
MODES = ("json", "stream")

SETUP = """\
* **Mock upstream**: nginx (one worker, no access log) answering `POST /v1/chat/completions` with
  a fixed chat completion with usage, and `POST /stream/v1/chat/completions` with a fixed SSE
  stream (role, 14 content and finish chunks, a usage chunk, `[DONE]`) sent at once —
  `bench/mock_upstream.py`.
* **Gateway**: `router serve` (uvicorn + uvloop + httptools, one worker unless said) with
  `bench/setup_gateway.py`'s config, everything on (checked before measuring, see each run's
  notes): token counting (tiktoken o200k), the classifier and the **difficulty** estimate (the
  policy's `difficulty: {weight: 1.0}`), the policy choosing among three models (`auto` /
  `auto-stream`), **budgets on Redis with leases** (global, team, user and key budgets: every
  request reserves from a lease and settles; `store.lease_fraction` as shipped, 0.05), the
  ledger's exporter writing day files, **Prometheus metrics**, access log off and log level `info`
  as shipped.
* **Bare pass-through**: `bench/passthrough.py`, uvicorn + uvloop + httptools and one pooled
  aiohttp session: parse the body, rewrite `model`, forward, return (DESIGN decision 1).
* **LiteLLM proxy** (`--peer litellm`): `litellm --config ... --num_workers 1`, default settings,
  in its own virtualenv (`bench/peer_litellm.py`), the same mock.
* **Load**: wrk, one thread, `bench/post.lua` cycling through 512 distinct chat bodies (the
  project's labelled prompts, English and Chinese, some with a previous turn; system prompts,
  `max_tokens` and `temperature` varied); targets interleaved per cell. *Added latency* = target
  percentile − the mock's same percentile in the same cell. *CPU µs/req* = utime+stime of the
  server's process tree over the cell ÷ requests (for the gateway, Redis's own CPU per request in
  brackets). RSS = VmRSS of the tree after the cell.
* **Redis commands per request**: `INFO stats commandstats` of the gateway's redis-server before
  and after each gateway cell, divided by the requests wrk counted (`bench/redisstats.py`). *Round
  trips* are the commands clients sent (`EVALSHA` and commands no script runs); *all* includes the
  commands Redis ran inside the scripts. Background work (lease renewals, the ledger's exporter,
  gauges, the key store's poll) is in the figure, spread over the cell's requests.
* **Two workers**: a second gateway with `server.workers: 2` on a Redis of its own, driven in turn
  with the one-worker gateway at 16 connections in wrk's *counting mode* (`bench/post.lua`,
  `BENCH_SECONDS`: every request sent is answered before wrk stops, the client counts its 200s);
  then stopped (its workers give their leases back) and its budgets checked
  (`bench/ledgercheck.py`): ledger ok rows = the client's 200s, every counter = its ledger sum
  (`router spend --check`), nothing left reserved.
* **Fleet**: `bench/fleet.py`: 8 replicas (`router serve`, one worker each) on one redis-server
  share a team budget with a limit the run reaches; an aiohttp client sends JSON and streaming
  requests to them in turn until every replica refuses; then the same checks, and the team's spend
  ≤ its limit (the bodies are chosen so that no settle can exceed its reservation: the documented
  bound is then the limit itself). A correctness check, not a throughput figure.
* **Streaming TTFB**: `bench/ttfb.py`, a raw-socket client, N sequential requests on one
  keep-alive connection, time from sending the request to the first body byte, against a paced
  stream (`bench/paced_upstream.py`: the first three events at once, the rest later; nginx cannot
  pace a body this small).

The machine is shared (2 cores, other sessions run test suites on it), so absolute figures are
noisy, 20–40 % between runs: the load average is printed next to every measurement, and the
targets are same-run ratios where the issue allows."""


def _med(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def cells(res: dict[str, Any], target: str, mode: str, conns: int) -> list[dict[str, Any]]:
    return [c for c in res["cells"]
            if c["target"] == target and c["mode"] == mode and c["conns"] == conns]


def med(res: dict[str, Any], target: str, mode: str, conns: int, key: str) -> float:
    return _med([float(c[key]) for c in cells(res, target, mode, conns)])


def fmt(x: float, digits: int = 2) -> str:
    return "–" if x != x else f"{x:,.{digits}f}"


Verdict = tuple[str, str, bool | None]


def targets(res: dict[str, Any]) -> list[Verdict]:
    """(target, measured, holds) for each of issue 18's targets; holds None: not measured."""
    out: list[Verdict] = []
    for mode in MODES:
        gw = med(res, "gateway", mode, 16, "cpu_us")
        bare = med(res, "pass-through", mode, 16, "cpu_us")
        redis = med(res, "gateway", mode, 16, "redis_us")
        r = gw / bare if bare == bare and bare else float("nan")
        out.append((f"CPU per request ≤ {T['cpu_ratio']}× the bare pass-through's, {mode}, "
                    "16 connections",
                    f"{r:.2f}× ({fmt(gw, 0)} vs {fmt(bare, 0)} µs; Redis +{fmt(redis, 0)} µs)",
                    r <= T["cpu_ratio"] if r == r else None))
    for mode in MODES:
        gw = med(res, "gateway", mode, 16, "rps")
        peer = med(res, "litellm", mode, 16, "rps")
        if peer == peer and peer:
            out.append((f"≥ {T['litellm_ratio']}× LiteLLM proxy's throughput, {mode}, 16 "
                        "connections", f"{gw / peer:.1f}× ({fmt(gw, 0)} vs {fmt(peer, 0)} req/s)",
                        gw / peer >= T["litellm_ratio"]))
        else:
            out.append((f"≥ {T['litellm_ratio']}× LiteLLM proxy's throughput, {mode}, 16 "
                        "connections", "not measured (run with `--peer litellm`)", None))
    add = {m: med(res, "gateway", m, 1, "p50_us") - med(res, "mock", m, 1, "p50_us")
           for m in MODES}
    out.append((f"added latency p50 ≤ {T['added_p50_ms']} ms at 1 connection (JSON)",
                f"{fmt(add['json'] / 1000)} ms (streaming, whole stream: "
                f"{fmt(add['stream'] / 1000)} ms)",
                add["json"] / 1000 <= T["added_p50_ms"] if add["json"] == add["json"] else None))
    tt = res.get("ttfb", {})
    if "gateway" in tt and "mock" in tt:
        o = (tt["gateway"]["p50_s"] - tt["mock"]["p50_s"]) * 1000
        out.append((f"streaming TTFB overhead p50 ≤ {T['ttfb_ms']} ms", f"{fmt(o)} ms",
                    o <= T["ttfb_ms"]))
    else:
        out.append((f"streaming TTFB overhead p50 ≤ {T['ttfb_ms']} ms", "not measured", None))
    w = res.get("workers")
    for mode in MODES:
        what = f"`server.workers: 2` ≥ {T['workers_ratio']}× one worker, {mode}, 16 connections"
        if w and mode in w:
            x = w[mode]
            out.append((what, f"{x['ratio']:.2f}× ({fmt(x['two_rps'], 0)} vs "
                              f"{fmt(x['one_rps'], 0)} req/s)", x["ratio"] >= T["workers_ratio"]))
        else:
            out.append((what, "not measured", None))
    if w:
        c = w["check"]
        out.append(("budgets exact across the 2 workers (ledger = 200s, counters = ledger)",
                    f"{c['ledger_ok_rows']:,} ok rows = {c['client_ok']:,} 200s; "
                    f"{c['counters']} counters = ledger; {c['reserved_micro']:,} µ$ left "
                    "reserved" if c["ok"] else "; ".join(c["problems"]), bool(c["ok"])))
    else:
        out.append(("budgets exact across the 2 workers", "not measured", None))
    for mode in MODES:
        rt = _med([float(c["redis_cmds"]["round_trips_per_request"])
                   for c in cells(res, "gateway", mode, 16) if c.get("redis_cmds")])
        al = _med([float(c["redis_cmds"]["all_per_request"])
                   for c in cells(res, "gateway", mode, 16) if c.get("redis_cmds")])
        out.append((f"Redis commands per request ≤ {T['redis_per_req']} (leases on), {mode}, "
                    "16 connections",
                    f"{fmt(rt, 3)} round trips ({fmt(al, 2)} with the scripts' own)",
                    rt <= T["redis_per_req"] if rt == rt else None))
    f = res.get("fleet")
    if f:
        c = f["check"]
        out.append((f"a fleet of {T['fleet']} replicas on one Redis keeps budgets exact",
                    f"{f['replicas']} replicas, {c['ledger_ok_rows']:,} ok rows = 200s; spent "
                    f"{c['spent_micro']:,} of {c['limit_micro']:,} µ$; counters = ledger"
                    if c["ok"] else "; ".join(c["problems"]),
                    bool(c["ok"]) and f["replicas"] >= T["fleet"]))
    else:
        out.append((f"a fleet of {T['fleet']} replicas on one Redis keeps budgets exact",
                    "not measured", None))
    m = res.get("memory")
    if m and len(m["points"]) >= 3:
        (_, r_n, _), (served, r_2n, _) = m["points"][-2], m["points"][-1]
        growth = r_2n - r_n
        out.append((f"RSS ≤ {T['rss_mb']} MB, flat over 100k requests",
                    f"{r_2n:.1f} MB after {served:,} served; {growth:+.1f} MB over the last "
                    f"{m['n']:,}",
                    (r_2n <= T["rss_mb"] and growth <= 0.02 * r_n + 2) if served >= 100_000
                    else None))
    else:
        out.append((f"RSS ≤ {T['rss_mb']} MB, flat over 100k requests", "not measured", None))
    return out


def _holds(ok: bool | None) -> str:
    return "n/a" if ok is None else "holds" if ok else "**does not**"


def targets_table(runs: list[dict[str, Any]]) -> str:
    runs = sorted(runs, key=lambda r: str(r["label"]))
    head = "| target (issue 18) |" + "".join(f" run {r['label']} | |" for r in runs)
    rows = [head, "| --- |" + " --- | --- |" * len(runs)]
    per_run = [targets(r) for r in runs]
    for i, (what, _, _) in enumerate(per_run[0]):
        line = f"| {what} |"
        for v in per_run:
            _, got, ok = v[i] if i < len(v) else ("", "–", None)
            line += f" {got} | {_holds(ok)} |"
        rows.append(line)
    return "\n".join(rows)


def load(paths: list[Path]) -> list[dict[str, Any]]:
    runs = [json.loads(p.read_text()) for p in paths]
    return sorted(runs, key=lambda r: str(r["label"]))


def readme(runs: list[dict[str, Any]]) -> str:
    runs = sorted(runs, key=lambda r: str(r["label"]))
    when = "; ".join(f"{r['label']}: {r['meta']['started']} (load {r['meta']['load0']}, commit "
                     f"{r['meta'].get('commit', '?')})"
                     + (f", {r['meta']['note']}" if r["meta"].get("note") else "") for r in runs)
    lines = [
        "# Gateway benchmark (issue 18: performance, round two)",
        "",
        "Generated by `python bench/run.py --label A` / `--label B` (each writes"
        " `bench/results/<label>.json`) and `python bench/report.py` (this file from those) —"
        " do not edit by hand. Analysis, what each change bought and the profile reading:"
        " [ANALYSIS.md](ANALYSIS.md).",
        "",
        "## Setup",
        "",
        SETUP,
        "",
        "## Against issue 18's targets",
        "",
        f"Run{'s' if len(runs) > 1 else ''} {when}. Same-run ratios; each run's own figures are"
        " below.",
        "",
        targets_table(runs),
        "",
    ]
    for r in runs:
        lines += [f"## Run {r['label']}", "", r["sections"].strip(), ""]
    return "\n".join(lines)


def write(readme_path: Path, paths: list[Path] | None = None) -> Path:
    if paths is None:
        paths = sorted(RESULTS.glob("*.json"))
    if not paths:
        raise SystemExit("no results files (bench/results/*.json): run bench/run.py --label A")
    readme_path.write_text(readme(load(paths)))
    return readme_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, nargs="+",
                    help="results files (default: bench/results/*.json)")
    ap.add_argument("--readme", type=Path, default=HERE / "README.md")
    a = ap.parse_args(argv)
    print(f"wrote {write(a.readme, a.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
