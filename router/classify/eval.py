"""Evaluate the shipped classifier: ``python -m router.classify.eval [--data FILE.jsonl ...]``.

With ``--data``: classify every row of the labelled JSONL files (``prompt`` or ``messages``,
``label``, optional ``lang``) with the shipped model and print balanced accuracy, per-language
figures, the confusion matrix, reliability by confidence band and latency percentiles.

Without it: print the held-out figures stored in ``model.json`` by the training script (leave
one source out: each public source scored by a model that never saw it). Rows from sources the
model was trained on score higher than that: use files it has not seen.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router.classify.data import guess_lang
from router.classify.metrics import format_summary, summary
from router.classify.model import DEFAULT, MODEL_JSON
from router.classify.overrides import TASKS


def load_labelled(paths: Sequence[Path]) -> list[tuple[Any, str, str]]:
    """(messages, label, lang) per row; rows without a usable label are an error."""
    rows = []
    for path in paths:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                obj = json.loads(line)
                label = obj.get("label")
                if label not in TASKS:
                    raise ValueError(f"{path}:{lineno}: label must be one of {TASKS}")
                if "messages" in obj:
                    messages = obj["messages"]
                    text = " ".join(str(m.get("content", "")) for m in messages
                                    if isinstance(m, dict))
                else:
                    text = str(obj.get("prompt", ""))
                    messages = [{"role": "user", "content": text}]
                rows.append((messages, label, obj.get("lang") or guess_lang(text)))
    return rows


def evaluate(rows: Sequence[tuple[Any, str, str]]) -> dict[str, Any]:
    DEFAULT.load()
    probs, times = [], []
    for messages, _label, _lang in rows:
        t0 = time.perf_counter_ns()
        c = DEFAULT.classify(messages, explain=False)
        times.append(time.perf_counter_ns() - t0)
        probs.append(c.confidence if c.task == "reasoning" else 1.0 - c.confidence)
    y = np.array([1 if r[1] == "reasoning" else -1 for r in rows], dtype=np.int8)
    out = summary(y, np.array(probs), [r[2] for r in rows])
    us = np.array(times) / 1000.0
    out["latency_us"] = {f"p{q}": round(float(np.percentile(us, q)), 1) for q in (50, 90, 99)}
    return out


def markdown(held: dict[str, Any]) -> str:
    """The held-out figures of ``model.json`` as the Markdown tables of docs/classifier.md."""
    lines = ["| | rows | balanced accuracy | recall reasoning | recall expression "
             "| wrong at confidence >= 0.9 |", "|---|---|---|---|---|---|"]
    for code, v in held["per_language"].items():
        lines.append(f"| {code} | {v['n']:,} | **{100 * v['balanced_accuracy']:.1f}%** | "
                     f"{100 * v['recall_reasoning']:.1f}% | {100 * v['recall_expression']:.1f}% "
                     f"| {100 * v.get('confident_error_rate', 0):.1f}% |")
    lines += ["", "| confidence | rows | mean confidence | accuracy |", "|---|---|---|---|"]
    for b in held["reliability"]:
        if b["n"]:
            lines.append(f"| {b['band'].replace('-', '–')} | {b['n']:,} | "
                         f"{b['mean_confidence']:.3f} | {b['accuracy']:.3f} |")
    lines += ["", "| source (held out) | rows | accuracy per language/label | errors at >= 0.9 |",
              "|---|---|---|---|"]
    for group, cells in held.get("per_source", {}).items():
        parts, n, bad = [], 0, 0
        for key, v in cells.items():
            if "accuracy" in v:
                parts.append(f"{key} {100 * v['accuracy']:.1f}% of {v['n']:,}")
                n += v["n"]
                bad += v.get("confident_errors", 0)
            else:
                parts.append(f"{key}: mean confidence {v['mean_confidence']:.2f} "
                             f"({v['n']} rows)")
        lines.append(f"| {group} | {n:,} | {'; '.join(parts)} | {bad} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m router.classify.eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, nargs="+", default=None, metavar="FILE.jsonl",
                    help="labelled JSONL files to evaluate on")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--markdown", action="store_true",
                    help="print the stored held-out figures as Markdown tables")
    args = ap.parse_args(argv)
    if args.data is None:
        meta = json.loads(MODEL_JSON.read_text(encoding="utf-8"))
        held = meta.get("held_out")
        if held is None:
            print("model.json has no held-out figures (trained with --no-folds)", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(held, indent=2, ensure_ascii=False))
            return 0
        if args.markdown:
            print(markdown(held))
            return 0
        print(format_summary(held, "held-out sources, from training (leave one source out)"))
        print("  per source (accuracy when that source was held out):")
        for group, cells in held.get("per_source", {}).items():
            parts = [f"{key} {100 * v['accuracy']:.1f}% of {v['n']}" if "accuracy" in v else
                     f"{key} mean confidence {v['mean_confidence']:.2f} of {v['n']}"
                     for key, v in cells.items()]
            print(f"    {group:<26} " + "; ".join(parts))
        if "held_out_public_only" in meta:
            print(format_summary(meta["held_out_public_only"],
                                 "held-out sources, model trained without project prompts"))
        return 0
    try:
        rows = load_labelled(args.data)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print("error: no rows", file=sys.stderr)
        return 2
    res = evaluate(rows)
    if args.json:
        print(json.dumps(res, indent=2, ensure_ascii=False))
        return 0
    print(format_summary(res, f"{', '.join(map(str, args.data))}: shipped model"))
    lat = res["latency_us"]
    print(f"  latency per request (wall clock, this machine): p50 {lat['p50']} us, "
          f"p90 {lat['p90']} us, p99 {lat['p99']} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
