"""The report of a replay: the policy beside single models, a random mixture, the oracle, and
the curve of its quality/cost knob; as a table for people and JSON for programs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from router.costs.report import text_table
from router.evaluate import metrics as M
from router.evaluate.metrics import Point
from router.evaluate.replay import Prepared
from router.policy.explain import usd6


@dataclass(frozen=True)
class TargetRow:
    """The cheapest way to keep ``fraction`` of the reference model's quality."""

    fraction: float
    quality: float
    router: Point | None
    random_cost: float | None
    random_strong_share: float | None


@dataclass(frozen=True)
class Report:
    files: tuple[str, ...]
    rows: int
    route: str
    policy_version: str
    knob: float
    reference: str
    policy: Point
    singles: tuple[Point, ...]
    oracle: Point
    random_same_cost: float
    curve: tuple[Point, ...]
    targets: tuple[TargetRow, ...]
    apgr: float | None
    aiq: float | None
    random_aiq: float | None
    tasks: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: How the difficulty estimate was made for this replay (None: no difficulty).
    difficulty: str | None = None

    @property
    def two_models(self) -> bool:
        return len(self.singles) == 2

    @property
    def ref_point(self) -> Point:
        return next(p for p in self.singles if p.name == self.reference)

    @property
    def cheapest(self) -> Point:
        return min(self.singles, key=lambda p: (p.cost_micro, -p.quality))


def _reference(prep: Prepared) -> str:
    ref = prep.world.policy.reference_model
    if ref in prep.table.models:
        return ref
    caps = prep.world.policy.by_name
    return max(prep.table.models,
               key=lambda m: (sum(v or 0 for v in caps[m].caps.values()), m))


def build_report(prep: Prepared, files: Sequence[str],
                 curve: Sequence[tuple[float, npt.NDArray[np.int64]]],
                 policy_choices: npt.NDArray[np.int64], difficulty: str | None = None,
                 ) -> Report:
    table = prep.table
    ref = _reference(prep)
    singles = tuple(M.single(table, j) for j in range(len(table.models)))
    knob = prep.world.policy.routes[prep.route].shift
    pol = M.point(table, policy_choices, "policy", knob)
    points = tuple(M.point(table, ch, "router", s) for s, ch in curve)
    ref_point = next(p for p in singles if p.name == ref)
    cheapest = min(singles, key=lambda p: (p.cost_micro, -p.quality))
    two = len(singles) == 2
    targets = []
    for frac in M.TARGETS:
        q = frac * ref_point.quality
        rc = M.random_cost_for(singles, q)
        share = None
        if two and rc is not None:
            span = ref_point.cost_micro - cheapest.cost_micro
            share = (rc - cheapest.cost_micro) / span if span else 1.0
            share = min(max(share, 0.0), 1.0)
        targets.append(TargetRow(frac, q, M.cheapest_reaching(points, q), rc, share))
    lo = min((p.cost_micro for p in points), default=0)
    hi = max((p.cost_micro for p in points), default=0)
    tasks = Counter(d.task or "unknown" for d in prep.decisions)
    return Report(
        files=tuple(files), rows=table.n, route=prep.route,
        policy_version=prep.world.policy.version, knob=knob, reference=ref, policy=pol,
        singles=singles, oracle=M.oracle(table),
        random_same_cost=M.random_quality(singles, pol.cost_micro), curve=points,
        targets=tuple(targets),
        apgr=M.apgr(points, cheapest, ref_point, two), aiq=M.aiq(points),
        random_aiq=M.random_aiq(singles, lo, hi) if points else None,
        tasks=dict(tasks), notes=_notes(prep), difficulty=difficulty,
    )


def _notes(prep: Prepared) -> tuple[str, ...]:
    """What the replay changed in the policy, the policy's warnings about the replayed route,
    and why decisions went where they went."""
    other = [form for name in prep.world.policy.routes if name != prep.route
             for form in (f"route {name!r}", f"route {name}:")]
    out = [n for n in prep.world.notes if not any(o in n for o in other)]
    by_reason = Counter(d.reason for d in prep.decisions)
    for reason, n in by_reason.most_common(4):
        out.append(f"{n:,} rows: {reason}")
    return tuple(out)


# ------------------------------------------------------------------------------------ output


def _money(micro: float | int | None) -> dict[str, Any] | None:
    if micro is None:
        return None
    return {"micro_usd": round(micro), "usd": micro / 1e6}


def _point_json(p: Point, ref: Point) -> dict[str, Any]:
    return {
        "name": p.name, "knob": p.knob, "quality": round(p.quality, 6),
        "quality_vs_reference": round(p.quality / ref.quality, 6) if ref.quality else None,
        "cost": _money(p.cost_micro),
        "cost_vs_reference": round(p.cost_micro / ref.cost_micro, 6) if ref.cost_micro else None,
        "shares": {m: round(v, 6) for m, v in p.shares.items()}, "refused": p.refused,
    }


def report_json(r: Report) -> dict[str, Any]:
    ref = r.ref_point
    return {
        "object": "router.eval.replay",
        "files": list(r.files), "rows": r.rows, "route": r.route,
        "policy_version": r.policy_version, "knob": {"name": "bar_shift", "value": r.knob},
        "difficulty": r.difficulty,
        "reference_model": r.reference,
        "policy": _point_json(r.policy, ref),
        "random_same_cost": {"quality": round(r.random_same_cost, 6),
                             "quality_vs_reference": round(r.random_same_cost / ref.quality, 6)
                             if ref.quality else None},
        "oracle": _point_json(r.oracle, ref),
        "single_models": [_point_json(p, ref) for p in r.singles],
        "targets": [{
            "fraction_of_reference": t.fraction,
            "quality": round(t.quality, 6),
            "router": _point_json(t.router, ref) if t.router is not None else None,
            "router_strong_share": (t.router.shares.get(r.reference)
                                    if t.router is not None and r.two_models else None),
            "random_cost": _money(t.random_cost),
            "random_strong_share": t.random_strong_share,
        } for t in r.targets],
        "apgr": r.apgr, "aiq": r.aiq, "random_aiq": r.random_aiq,
        "tasks": r.tasks,
        "curve": [_point_json(p, ref) for p in r.curve],
        "notes": list(r.notes),
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _shares(p: Point) -> str:
    parts = [f"{m} {v:.0%}" for m, v in sorted(p.shares.items(), key=lambda kv: -kv[1]) if v]
    if p.refused:
        parts.append(f"refused {p.refused}")
    return ", ".join(parts[:4]) + (" ..." if len(parts) > 4 else "")


def format_report(r: Report) -> str:
    ref = r.ref_point
    names = ", ".join(r.files)
    lines = [f"{r.rows:,} rows of {names} · route {r.route} · policy {r.policy_version}"
             f" · reference {r.reference}"]
    if r.difficulty:
        lines.append(f"difficulty: {r.difficulty}")
    lines.append("tasks as classified: " + ", ".join(f"{t} {n:,}" for t, n in
                                                     sorted(r.tasks.items())))
    rows = []

    def add(label: str, p: Point | None, quality: float | None = None) -> None:
        q = p.quality if p is not None else quality
        assert q is not None
        rows.append([
            label, f"{q:.3f}", _pct(q / ref.quality if ref.quality else None),
            "" if p is None else usd6(p.cost_micro),
            "" if p is None else _pct(p.cost_micro / ref.cost_micro if ref.cost_micro else None),
            "" if p is None else _shares(p),
        ])

    add(f"policy (bar_shift {r.knob:g})", r.policy)
    add("random mix, same cost", None, r.random_same_cost)
    add("oracle", r.oracle)
    for p in sorted(r.singles, key=lambda p: p.cost_micro):
        add(p.name + (" (reference)" if p.name == r.reference else ""), p)
    lines += ["", text_table(["", "quality", "of ref", "cost $", "of ref cost", "requests"],
                             rows, {1, 2, 3, 4})]
    span = f"{r.curve[0].knob:g}..{r.curve[-1].knob:g}" if r.curve else "-"
    lines += ["", f"the knob swept: bar_shift {span}, {len(r.curve)} settings"]
    trows = []

    def money(micro: float | None) -> str:
        if micro is None:
            return "not reached"
        return f"{usd6(round(micro))} ({_pct(micro / ref.cost_micro if ref.cost_micro else None)})"

    for t in r.targets:
        hit = t.router
        strong = "" if not r.two_models else (
            "-" if hit is None else _pct(hit.shares.get(r.reference)))
        trows.append([
            f"{t.fraction:.0%} of ref", f"{t.quality:.3f}",
            money(None if hit is None else hit.cost_micro), strong, money(t.random_cost),
            "" if not r.two_models else _pct(t.random_strong_share),
            "-" if hit is None else f"{hit.knob:g}",
        ])
    head = ["target", "quality", "router cost $", "strong calls" if r.two_models else "",
            "random cost $", "strong calls" if r.two_models else "", "bar_shift"]
    lines.append(text_table(head, trows, {1, 2, 3, 4, 5, 6}))
    lines.append("")
    lines.append(f"APGR {_num(r.apgr)} · AIQ {_num(r.aiq)} (random mixture over the same "
                 f"cost range: {_num(r.random_aiq)})")
    for note in r.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
