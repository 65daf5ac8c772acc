"""One line per replay (router eval replay --json output): the figures docs/evaluation.md quotes.

    python eval/summary.py eval/out/*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def line(path: Path) -> str:
    r = json.loads(path.read_text())
    ref = r["reference_model"]
    two = len(r["single_models"]) == 2
    parts = [f"{path.stem}: {r['rows']:,} rows, route {r['route']}"]
    for t in r["targets"]:
        hit = t["router"]
        frac = f"{100 * t['fraction_of_reference']:.0f}%"
        if two:
            parts.append(f"{frac}: strong {pct(t['router_strong_share'])} "
                         f"(random {pct(t['random_strong_share'])})")
        else:
            cost = None if hit is None else hit["cost_vs_reference"]
            rnd = None if t["random_cost"] is None else (
                t["random_cost"]["micro_usd"] / next(
                    p for p in r["single_models"] if p["name"] == ref)["cost"]["micro_usd"])
            parts.append(f"{frac}: cost {pct(cost)} (random {pct(rnd)})")
    pol = r["policy"]
    parts.append(f"policy: quality {pol['quality']:.3f} ({pct(pol['quality_vs_reference'])}), "
                 f"cost {pct(pol['cost_vs_reference'])}")
    best = max(r["single_models"], key=lambda p: p["quality"])
    reach = [p for p in r["curve"] if p["quality"] >= best["quality"] - 1e-9]
    if not two:
        cheapest = min(reach, key=lambda p: p["cost"]["micro_usd"]) if reach else None
        parts.append(f"best single {best['name']} {best['quality']:.3f}: reached at "
                     + ("never" if cheapest is None else pct(cheapest["cost_vs_reference"])
                        + " of its cost"))
    parts.append(f"APGR {r['apgr']:.3f}, AIQ {r['aiq']:.4f} (random {r['random_aiq']:.4f})")
    return " | ".join(parts)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(line(Path(arg)))
