"""Latency and memory benchmark: ``python -m router.classify.bench``.

Classifies a ~500-token English prompt and a ~500-token Chinese prompt (built from the project's
own prompts in ``data/project.jsonl``, measured with tiktoken's cl100k_base when its file is
available offline, else estimated) many times on one CPU core with the model loaded, and prints
p50/p90/p99 per call, as thread CPU time (what the classifier costs) and wall-clock time (what
it adds to a request on this machine, including any time the core spent on other processes).
Also prints the memory the model takes (resident set growth on loading, and the weights' size).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from router.classify.data import PROJECT_DATA, read_jsonl
from router.classify.material import split


def _token_counter() -> Callable[[str], int] | None:
    """cl100k_base as :mod:`router.tokens` loads it (offline, litellm's BPE files), or None."""
    from router.tokens import text_counter

    try:
        return text_counter("cl100k_base")
    except Exception:  # no tiktoken, or no cached file and no network: estimate instead
        return None


def build_prompt(lang: str, tokens: int, count: Callable[[str], int] | None,
                 material: bool = False) -> tuple[str, int]:
    """Join project prompts of one language until the text is ``tokens`` long: prompts without
    pasted or quoted material, or (``material``) only prompts with some (fenced code, quotes),
    which the classifier featurises in two parts."""
    parts = [r.prompt for r in read_jsonl(PROJECT_DATA)
             if r.lang == lang and bool(split(r.prompt).material) == material]
    text = ""
    i = 0
    per_token = 4.0 if lang == "en" else 1.1  # chars per token, when no tokenizer is available
    while (count(text) if count else len(text) / per_token) < tokens:
        text += parts[i % len(parts)] + "\n\n"
        i += 1
    while count and count(text) > tokens:  # trim to the shortest text of at least ``tokens``
        shorter = text[:-max(1, (count(text) - tokens) // 2)]
        if count(shorter) < tokens:
            break
        text = shorter
    n = count(text) if count else int(len(text) / per_token)
    return text, n


def _rss_kib() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:  # pragma: no cover
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    s = sorted(values)

    def pick(q: int) -> float:
        return s[min(len(s) - 1, int(q / 100 * len(s)))]

    return {"p50": round(pick(50), 1), "p90": round(pick(90), 1), "p99": round(pick(99), 1),
            "max": round(s[-1], 1)}


def hiccups(seconds: float = 1.0, threshold_us: float = 5.0) -> dict[str, float]:
    """How often this core stops running us, and for how long: a tight loop that reads the
    clock and records every gap over ``threshold_us``. On a virtual machine these stalls
    (hypervisor exits, the host's other tenants) set a floor under any p99: a call of ``d``
    microseconds meets one with probability about ``rate * (d + duration)``."""
    clock = time.perf_counter_ns
    limit = threshold_us * 1000
    gaps: list[float] = []
    start = last = clock()
    end = start + int(seconds * 1e9)
    while last < end:
        now = clock()
        if now - last > limit:
            gaps.append((now - last) / 1000)
        last = now
    if not gaps:
        return {"per_second": 0.0, "p50_us": 0.0, "p90_us": 0.0, "share_of_time": 0.0}
    p = percentiles(gaps)
    return {"per_second": round(len(gaps) / seconds, 1), "p50_us": p["p50"], "p90_us": p["p90"],
            "share_of_time": round(sum(gaps) / (seconds * 1e6), 4)}


def bench(cases: dict[str, tuple[Any, bool]], n: int, rounds: int
          ) -> dict[str, dict[str, Any]]:
    """Time every case ``n`` times, in ``rounds`` interleaved rounds (case A, case B, ...,
    then again), so a slow spell of the machine spreads over all cases instead of sinking one.

    Per case: percentiles over all calls, and the median over rounds of each round's
    percentiles (the robust figure: one round caught in a slow spell does not move it).
    """
    from router.classify import default_classifier

    classify = default_classifier().classify  # as the gateway calls it (state.classify_fast)
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    wall: dict[str, list[float]] = {k: [] for k in cases}
    per_round: dict[str, list[dict[str, float]]] = {k: [] for k in cases}
    clock, thread = time.perf_counter_ns, time.thread_time_ns
    for messages, explain in cases.values():
        for _ in range(200):
            classify(messages, explain=explain)
    size = max(1, n // rounds)
    for _ in range(rounds):
        for key, (messages, explain) in cases.items():
            c_round = []
            for _ in range(size):
                c0, w0 = thread(), clock()
                classify(messages, explain=explain)
                w1, c1 = clock(), thread()
                c_round.append((c1 - c0) / 1000)
                wall[key].append((w1 - w0) / 1000)
            cpu[key] += c_round
            per_round[key].append(percentiles(c_round))
    out: dict[str, dict[str, Any]] = {}
    for key in cases:
        rounds_cpu = {q: round(statistics.median(r[q] for r in per_round[key]), 1)
                      for q in ("p50", "p90", "p99")}
        out[key] = {"cpu_us": percentiles(cpu[key]), "wall_us": percentiles(wall[key]),
                    "cpu_us_median_of_rounds": rounds_cpu,
                    "cpu_us_p99_per_round": [r["p99"] for r in per_round[key]]}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m router.classify.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20000, help="calls per case (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="interleaved rounds the calls are split into (default %(default)s)")
    ap.add_argument("--tokens", type=int, default=500)
    ap.add_argument("--cpu", type=int, default=0, help="core to pin to (default %(default)s)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    rss0 = _rss_kib()
    import numpy  # noqa: F401 - counted separately from the model

    rss1 = _rss_kib()
    from router.classify import default_classifier

    model = default_classifier().load()
    rss2 = _rss_kib()
    count = _token_counter()
    report: dict[str, Any] = {
        "memory_mib": {"numpy_import": round((rss1 - rss0) / 1024, 1),
                       "model_load": round((rss2 - rss1) / 1024, 1),
                       "weights_file": round(model.hashed.nbytes / 2**20, 2)},
        "tokenizer": "tiktoken cl100k_base" if count else "estimate (no tokenizer file)",
        "cases": {},
    }
    cases: dict[str, tuple[Any, bool]] = {}
    for explain in (False, True):
        for lang in ("en", "zh"):
            text, ntok = build_prompt(lang, args.tokens, count)
            key = f"{lang} {ntok} tokens, {len(text)} chars, explain={explain}"
            cases[key] = ([{"role": "user", "content": text}], explain)
    text, ntok = build_prompt("en", args.tokens, count, material=True)
    cases[f"en {ntok} tokens with pasted code and quotes, {len(text)} chars, explain=False"] = (
        [{"role": "user", "content": text}], False)
    report["cases"] = bench(cases, args.n, args.rounds)
    report["memory_mib"]["after_bench_rss"] = round(_rss_kib() / 1024, 1)
    report["machine_stalls"] = hiccups()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    mem = report["memory_mib"]
    print(f"memory: model load +{mem['model_load']} MiB resident (numpy import "
          f"+{mem['numpy_import']} MiB), weights {mem['weights_file']} MiB, "
          f"process {mem['after_bench_rss']} MiB after the run")
    print(f"tokens counted with {report['tokenizer']}; {args.n} calls per case in {args.rounds} "
          "interleaved rounds, one core; times in microseconds")
    st = report["machine_stalls"]
    print(f"this core stalls {st['per_second']} times a second (p50 {st['p50_us']} us, p90 "
          f"{st['p90_us']} us, {100 * st['share_of_time']:.1f}% of the time): stalls, not the "
          "classifier, make most of the gap between p50 and p99")
    for key, r in report["cases"].items():
        c, w, m = r["cpu_us"], r["wall_us"], r["cpu_us_median_of_rounds"]
        print(f"  {key}:\n"
              f"    cpu, all calls         p50 {c['p50']}  p90 {c['p90']}  p99 {c['p99']}\n"
              f"    cpu, median of rounds  p50 {m['p50']}  p90 {m['p90']}  p99 {m['p99']}"
              f"  (p99 per round: {', '.join(str(x) for x in r['cpu_us_p99_per_round'])})\n"
              f"    wall, all calls        p50 {w['p50']}  p90 {w['p90']}  p99 {w['p99']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
