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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Calibration:
    files: tuple[str, ...]
    rows: int
    models: tuple[str, ...]
    #: model -> task -> measurement (absent: no row of that class).
    measured: dict[str, dict[str, Measured]]
    tasks: dict[str, int]

    def json(self) -> dict[str, Any]:
        return {
            "object": "router.eval.calibrate", "files": list(self.files), "rows": self.rows,
            "tasks": self.tasks,
            "models": {m: {t: {"capability": v.capability, "mean": round(v.mean, 6), "n": v.n,
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


def calibrate(world: World, rows: Sequence[OutcomeRow], route: str, classify: Classify | None,
              files: Sequence[str]) -> Calibration:
    """Sort every row into a task class as the gateway would, then measure each model."""
    policy = world.policy
    tokenizers = {m: tokenizer_for(world.config.models[m]) for m in world.catalogue}
    by_task: dict[str, list[OutcomeRow]] = defaultdict(list)
    for row in rows:
        body = {"model": route, "messages": [dict(m) for m in row.messages]}
        d = evaluate(facts_for_body(body, policy, classify=classify, tokenizers=tokenizers),
                     policy)
        by_task[d.task or "unknown"].append(row)
    measured: dict[str, dict[str, Measured]] = {}
    for m in world.catalogue:
        measured[m] = {}
        for task in TASKS:
            sub = by_task.get(task, [])
            if sub:
                measured[m][task] = measure([r.scores[m] for r in sub],
                                            [r.dataset or "-" for r in sub])
    return Calibration(tuple(files), len(rows), tuple(world.catalogue), measured,
                       {t: len(v) for t, v in by_task.items()})


def format_fragment(c: Calibration) -> str:
    """A policy ``models:`` fragment with a comment per figure."""
    lines = [
        f"# router eval calibrate: measured on {c.rows:,} rows of {', '.join(c.files)};",
        "# task classes as the gateway's classifier sorts them ("
        + ", ".join(f"{t} {n:,}" for t, n in sorted(c.tasks.items())) + ").",
        "# Capability = mean score in % on that class; paste under `models:` of your policy.",
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
