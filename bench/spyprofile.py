"""Where the gateway's CPU goes, per request step, from a py-spy raw (folded) profile.

py-spy samples the gateway's Python stacks (idle threads excluded); each sample is charged to the
*innermost* frame that belongs to a known step (RULES below), so time in a library called by a
step (tiktoken under token counting, redis-py under the budget store, prometheus-client under
metrics) counts for that step, and time in generic code (asyncio, typing, re) counts for the
caller. Samples with no such frame at all are the event loop itself (uvloop's C loop, socket
calls, httptools' parser: py-spy shows them as ``Runner.run``). A frame whose source line calls
``orjson.`` counts as JSON parse/serialise wherever it is.
The shares are turned into microseconds of CPU per request with the CPU the process used
(utime + stime from /proc) over the same window divided by the requests wrk completed in it.

    python bench/spyprofile.py PROFILE.raw --cpu-us-per-request 512
"""

from __future__ import annotations

import argparse
import linecache
import re
from collections import Counter
from pathlib import Path

#: (step, file, function regex or None). ``file`` is a path prefix as py-spy prints it (site
#: packages relative to site-packages, the repo relative to its root: ``redis/asyncio/client.py``,
#: ``router/tokens.py``), matched at the start of the path or after a "/". Each frame is checked,
#: innermost first, against every rule; the first frame that matches decides the step. The
#: generic event loop is a second tier: it counts only when no frame matches any rule here.
RULES: list[tuple[str, str, str | None]] = [
    ("JSON parse/serialise (orjson)", "router/validate.py", r"parse_json_object"),
    ("token counting", "router/tokens.py", None),
    ("token counting", "tiktoken/", None),
    ("classification", "router/classify/", None),
    ("classification", "router/policy/request.py", r"classif"),
    ("policy decision + pricing", "router/policy/", None),
    ("policy decision + pricing", "router/decide.py", None),
    ("policy decision + pricing", "router/costs/", None),
    ("budget reserve/settle (store + redis-py)", "router/budgets/", None),
    ("budget reserve/settle (store + redis-py)", "router/accounting.py", None),
    ("budget reserve/settle (store + redis-py)", "redis/", None),
    ("metrics (prometheus-client)", "router/metrics.py", None),
    ("metrics (prometheus-client)", "router/observe.py", None),
    ("metrics (prometheus-client)", "prometheus_client/", None),
    ("SSE relay", "router/sse.py", None),
    ("upstream client (aiohttp + dispatch)", "router/upstream/", None),
    ("upstream client (aiohttp + dispatch)", "aiohttp/", None),
    ("upstream client (aiohttp + dispatch)", "yarl/", None),
    ("upstream client (aiohttp + dispatch)", "multidict/", None),
    ("upstream client (aiohttp + dispatch)", "aiohappyeyeballs/", None),
    ("logging", "logging/", None),
    ("pipeline + app glue (auth, headers, outcome)", "router/pipeline.py", None),
    ("pipeline + app glue (auth, headers, outcome)", "router/app.py", None),
    ("pipeline + app glue (auth, headers, outcome)", "router/auth.py", None),
    ("pipeline + app glue (auth, headers, outcome)", "router/validate.py", None),
    ("pipeline + app glue (auth, headers, outcome)", "router/errors.py", None),
    ("pipeline + app glue (auth, headers, outcome)", "uuid.py", None),
    ("pass-through app (bench/passthrough.py)", "passthrough.py", None),
    ("starlette (request/response objects)", "starlette/", None),
    ("starlette (request/response objects)", "fastapi/", None),
    ("starlette (request/response objects)", "anyio/", None),
    # not uvicorn/main.py and uvicorn/server.py: they are the outermost frames of every sample
    ("uvicorn + httptools (HTTP server)", "uvicorn/protocols/", None),
    ("uvicorn + httptools (HTTP server)", "uvicorn/middleware/", None),
    ("uvicorn + httptools (HTTP server)", "httptools/", None),
]
LOOP = "event loop, sockets, C code (asyncio/uvloop)"
LOOP_RULES = ("asyncio/", "uvloop/", "threading.py", "selectors.py")
ORDER = [*dict.fromkeys(step for step, _, _ in RULES), LOOP, "other"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


#: Where relative paths in a profile are looked up (the repository root).
ROOT = Path(__file__).resolve().parent.parent


def _uses_orjson(path: str, line: str | None) -> bool:
    if line is None:
        return False
    full = path if path.startswith("/") else str(ROOT / path)
    return "orjson." in linecache.getline(full, int(line))


def _at(path: str, prefix: str) -> bool:
    return path.startswith(prefix) or ("/" + prefix) in path


def step_of(frames: list[str]) -> str:
    return where_of(frames)[0]


def where_of(frames: list[str]) -> tuple[str, str]:
    """The step of a sample and the frame that decided it."""
    loop = False
    for frame in reversed(frames):  # innermost first
        m = _FRAME.match(frame.strip())
        if m is None:
            continue
        path, func = m["file"], m["func"]
        if _at(path, "router/") and _uses_orjson(path, m["line"]):
            return "JSON parse/serialise (orjson)", frame.strip()
        for step, where, fn in RULES:
            if _at(path, where) and (fn is None or re.search(fn, func)):
                return step, frame.strip()
        loop = loop or any(_at(path, w) for w in LOOP_RULES)
    return (LOOP if loop else "other"), (frames[-1].strip() if frames else "")


def parse(raw: Path) -> Counter[str]:
    """Samples per step from a py-spy ``-f raw`` file (``frame;frame;... count`` lines)."""
    steps: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        steps[step_of(stack.split(";"))] += int(count)
    return steps


def breakdown(raw: Path, cpu_us_per_request: float) -> list[tuple[str, int, float, float]]:
    """(step, samples, share, µs per request), in ORDER; empty steps left out."""
    steps = parse(raw)
    total = sum(steps.values())
    if total == 0:
        return []
    rows = []
    for step in ORDER:
        n = steps.get(step, 0)
        if n:
            share = n / total
            rows.append((step, n, share, share * cpu_us_per_request))
    return rows


def table(rows: list[tuple[str, int, float, float]]) -> str:
    out = ["| step | samples | share | µs CPU / request |", "| --- | ---: | ---: | ---: |"]
    for step, n, share, us in rows:
        out.append(f"| {step} | {n} | {share:.1%} | {us:.0f} |")
    total = sum(r[1] for r in rows)
    us = sum(r[3] for r in rows)
    out.append(f"| **total** | {total} | 100% | {us:.0f} |")
    return "\n".join(out)


def top_frames(raw: Path, limit: int = 25) -> list[tuple[str, int]]:
    """The innermost frames with the most samples (self time), for a closer look."""
    counts: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stack.split(";")[-1].strip()] += int(count)
    return counts.most_common(limit)


def details(raw: Path, per_step: int = 8) -> dict[str, list[tuple[str, int]]]:
    """Per step, the frames that decided it with the most samples (where inside the step)."""
    found: dict[str, Counter[str]] = {}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            step, frame = where_of(stack.split(";"))
            found.setdefault(step, Counter())[frame] += int(count)
    return {s: found[s].most_common(per_step) for s in ORDER if s in found}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("raw", type=Path)
    ap.add_argument("--cpu-us-per-request", type=float, required=True)
    ap.add_argument("--top", type=int, default=0, help="also list the N hottest frames")
    ap.add_argument("--detail", type=int, default=0,
                    help="also list, per step, the N frames that decided it most often")
    args = ap.parse_args()
    print(table(breakdown(args.raw, args.cpu_us_per_request)))
    if args.detail:
        for step, frames in details(args.raw, args.detail).items():
            print(f"\n{step}:")
            for frame, n in frames:
                print(f"{n:7d}  {frame}")
    if args.top:
        for frame, n in top_frames(args.raw, args.top):
            print(f"{n:7d}  {frame}")


if __name__ == "__main__":
    main()
