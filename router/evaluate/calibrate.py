"""``router eval calibrate``: capabilities per task class measured on graded outcomes.

A model's capability for a task class is its mean score, in percent, on the rows the classifier
sorts into that class: "gets 86% of our reasoning prompts right". That is the scale the policy's
bars read as "the chance of doing a typical prompt of the class well", so a policy can replace
leaderboard priors with figures from its own prompts. Each figure carries how many rows of which
dataset it rests on and a 95% interval (Wilson), so a figure from 30 rows is not mistaken for one
from 3,000.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from router.evaluate.outcomes import OutcomeRow
from router.evaluate.world import World
from router.policy.engine import evaluate
from router.policy.request import Classify, facts_for_body
from router.policy.schema import TASKS
from router.tokens import tokenizer_for

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Measured:
    """One model's capability for one task class."""

    capability: int
    mean: float
    n: int
    low: float
    high: float
    datasets: dict[str, int]
    #: With difficulty: the chance of success on a prompt of typical difficulty.
    typical: float | None = None


@dataclass(frozen=True)
class Calibration:
    files: tuple[str, ...]
    rows: int
    models: tuple[str, ...]
    #: model -> task -> measurement (absent: no row of that class).
    measured: dict[str, dict[str, Measured]]
    tasks: dict[str, int]
    #: Capabilities are at typical difficulty (the policy's difficulty rule's scale).
    difficulty: bool = False

    def json(self) -> dict[str, Any]:
        return {
            "object": "router.eval.calibrate", "files": list(self.files), "rows": self.rows,
            "tasks": self.tasks,
            "difficulty": self.difficulty,
            "models": {m: {t: {"capability": v.capability, "mean": round(v.mean, 6), "n": v.n,
                               "typical": None if v.typical is None else round(v.typical, 6),
                               "ci95": [round(v.low, 6), round(v.high, 6)],
                               "datasets": v.datasets}
                           for t, v in by_task.items()}
                       for m, by_task in self.measured.items()},
        }


def wilson(mean: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (scores in [0, 1] are treated as successes)."""
    if n == 0:
        return 0.0, 1.0
    d = 1 + z * z / n
    centre = (mean + z * z / (2 * n)) / d
    half = z * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def measure(scores: Sequence[float], datasets: Sequence[str]) -> Measured:
    n = len(scores)
    mean = sum(scores) / n
    low, high = wilson(mean, n)
    return Measured(round(100 * mean), mean, n, low, high, dict(Counter(datasets)))


def rasch_capability(scores: Sequence[float], z: Sequence[float]) -> float:
    """The chance of success on a prompt of typical difficulty (z = 0) that explains these
    scores on prompts of difficulty ``z``: solves ``mean(sigmoid(a - z_i)) = mean(score)`` for
    ``a`` (Newton's method) and returns ``sigmoid(a)``."""
    target = sum(scores) / len(scores)
    if target <= 0.0 or target >= 1.0:
        return target
    a = math.log(target / (1 - target))
    for _ in range(60):
        ps = [1 / (1 + math.exp(-(a - zi))) for zi in z]
        f = sum(ps) / len(ps) - target
        slope = sum(p * (1 - p) for p in ps) / len(ps)
        if abs(f) < 1e-12 or slope <= 0:
            break
        a -= f / slope
    return 1 / (1 + math.exp(-a))


def calibrate(world: World, rows: Sequence[OutcomeRow], route: str, classify: Classify | None,
              files: Sequence[str], estimator: Any = None) -> Calibration:
    """Sort every row into a task class as the gateway would, then measure each model.

    With a difficulty ``estimator`` (or the policy's), a capability is the chance of success on
    a prompt of *typical* difficulty (:func:`rasch_capability`), the scale the policy's
    difficulty rule reads bars and capabilities on; without one, the plain mean score."""
    policy = world.policy
    tokenizers = {m: tokenizer_for(world.config.models[m]) for m in world.catalogue}
    by_task: dict[str, list[OutcomeRow]] = defaultdict(list)
    for row in rows:
        body = {"model": route, "messages": [dict(m) for m in row.messages]}
        d = evaluate(facts_for_body(body, policy, classify=classify, tokenizers=tokenizers),
                     policy)
        by_task[d.task or "unknown"].append(row)
    rule = policy.difficulty
    if estimator is None and rule is not None and rule.on:
        estimator = rule.estimator()
    z = {id(r): estimator.logit(r.text) for r in rows} if estimator is not None else None
    measured: dict[str, dict[str, Measured]] = {}
    for m in world.catalogue:
        measured[m] = {}
        for task in TASKS:
            sub = by_task.get(task, [])
            if sub:
                scores = [r.scores[m] for r in sub]
                v = measure(scores, [r.dataset or "-" for r in sub])
                if z is not None:
                    at = rasch_capability(scores, [z[id(r)] for r in sub])
                    v = replace(v, capability=round(100 * at), typical=at)
                measured[m][task] = v
    return Calibration(tuple(files), len(rows), tuple(world.catalogue), measured,
                       {t: len(v) for t, v in by_task.items()}, z is not None)


def format_fragment(c: Calibration) -> str:
    """A policy ``models:`` fragment with a comment per figure."""
    lines = [
        f"# router eval calibrate: measured on {c.rows:,} rows of {', '.join(c.files)};",
        "# task classes as the gateway's classifier sorts them ("
        + ", ".join(f"{t} {n:,}" for t, n in sorted(c.tasks.items())) + ").",
        *(("# Capability = chance of success (%) on a prompt of typical difficulty for its",
           "# class (the scale of the policy's difficulty rule); the comment gives the plain",
           "# mean score. Paste under `models:` of your policy.") if c.difficulty else
          ("# Capability = mean score in % on that class; paste under `models:` of your policy.",
           )),
        "models:",
    ]
    for m in c.models:
        lines.append(f"  {m}:")
        for task in TASKS:
            v = c.measured[m].get(task)
            if v is None:
                lines.append(f"    # {task}: no {task} rows in these files: keep your prior")
                continue
            ds = ", ".join(f"{k} {n:,}" for k, n in sorted(v.datasets.items()))
            lines.append(f"    {task}: {v.capability:<3}  # {100 * v.mean:.1f}% of {v.n:,} "
                         f"{task} rows ({ds}); 95% CI {100 * v.low:.1f}-{100 * v.high:.1f}")
    return "\n".join(lines)


def write_map(c: Calibration, source: Path, out: Path) -> None:
    """``source`` (a model map) with every measured capability replaced by its measurement."""
    import yaml

    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    for name, entry in data.get("models", {}).items():
        measured = c.measured.get(name, {})
        cap = dict(entry.get("capability") or {})
        for task, v in measured.items():
            cap[task] = v.capability
        entry["capability"] = cap
    head = (f"# Written by router eval calibrate from {source.name}: capabilities measured on "
            f"{c.rows:,} rows of {', '.join(c.files)}"
            + (" (at typical difficulty)" if c.difficulty else "") + ".\n")
    out.write_text(head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                   encoding="utf-8")
