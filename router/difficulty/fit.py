"""Fitting the difficulty estimate on graded outcomes (the shipped one, or a team's own).

The model is a Rasch model (item response theory) with a linear item difficulty: the chance that
model ``m`` gets prompt ``x`` of dataset ``f`` wrong is ``sigmoid(c[f, m] + w . phi(x))``, with
one free ability ``c[f, m]`` per model and dataset and the prompt's features ``phi`` (named
signals, optionally hashed n-grams). It is one weighted logistic regression (the classifier's
numpy L-BFGS, :func:`router.classify.fit.fit`): each (prompt, model) pair is a row, a fractional
score ``s`` two rows (wrong with weight ``1 - s``, right with weight ``s``), and every dataset
weighs the same in total.

Each dataset's best model (highest mean score) is left out of the fit: routing hinges on whether
the *cheaper* models cope, and a strong model's rare failures are mostly noise in the grading
(on RouteLLM's GSM8K file gpt-4's and Mixtral's failures correlate at 0.12), which blurs what
makes a prompt hard for the models one would route to instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from router.classify.fit import Design, fit
from router.difficulty.features import NAMES, DifficultyFeaturizer, Extracted
from router.difficulty.model import DifficultyModel

#: L2 on the signals, the abilities and the hashed n-grams (the data weights sum to 1).
LAM_SIGNALS = 1e-5
LAM_HASHED = 1e-3


@dataclass(frozen=True)
class OrdinalSet:
    """Prompts graded by difficulty level rather than by model outcomes (MATH's levels 1-5,
    grade-school word problems below them): pairs of a harder and an easier prompt teach the
    estimate which of the two is harder, without pretending to know any model's score."""

    name: str
    texts: Sequence[str]
    levels: Sequence[int]
    #: Pairs drawn (each in both orders); deterministic.
    pairs: int = 4000
    seed: int = 0

    def draw(self) -> list[tuple[int, int]]:
        """(harder, easier) index pairs with different levels."""
        rng = np.random.RandomState(self.seed)
        levels = np.asarray(self.levels)
        out: list[tuple[int, int]] = []
        n = len(levels)
        while len(out) < self.pairs and n > 1:
            a, b = rng.randint(0, n, 2).tolist()
            if levels[a] > levels[b]:
                out.append((a, b))
            elif levels[b] > levels[a]:
                out.append((b, a))
        return out


@dataclass(frozen=True)
class TrainingSet:
    """One dataset: its prompts and each model's score on each."""

    name: str
    texts: Sequence[str]
    scores: Mapping[str, npt.NDArray[np.float64]]

    def fitted_models(self) -> list[str]:
        """Every model but the best (see the module docstring); all of them if only one."""
        if len(self.scores) < 2:
            return list(self.scores)
        best = max(self.scores, key=lambda m: (float(self.scores[m].mean()), m))
        return [m for m in self.scores if m != best]


def _design(sets: Sequence[TrainingSet], feats: Sequence[Sequence[Extracted]], n_hashed: int,
            hashed: bool, ordinal: Sequence[tuple[OrdinalSet, Sequence[Extracted]]] = (),
            ) -> tuple[Design, npt.NDArray[np.int8], npt.NDArray[np.float64],
                       list[tuple[str, str]]]:
    abilities = [(s.name, m) for s in sets for m in s.fitted_models()]
    # ordinal pairs get an offset column of their own: with both orders of every pair it
    # settles at minus the shared bias, so a pair row's margin is w . (phi(a) - phi(b))
    abilities += [(o.name, "(pairs)") for o, _ in ordinal]
    a_index = {a: i for i, a in enumerate(abilities)}
    k = len(NAMES)
    rows_r: list[npt.NDArray[np.intp]] = []
    rows_c: list[npt.NDArray[np.intp]] = []
    rows_v: list[npt.NDArray[np.float64]] = []
    dense: list[npt.NDArray[np.float64]] = []
    ys: list[int] = []
    ws: list[float] = []
    n = 0
    for s, ex in zip(sets, feats, strict=True):
        models = s.fitted_models()
        per_pair = 1.0 / (len(s.texts) * len(models))
        signals = np.array([e.signals for e in ex], dtype=np.float64)
        for m in models:
            col = k + a_index[(s.name, m)]
            for i, score in enumerate(s.scores[m].tolist()):
                for label, weight in ((1, 1.0 - score), (-1, score)):
                    if weight <= 0:
                        continue
                    row = np.zeros(k + len(abilities))
                    row[:k] = signals[i]
                    row[col] = 1.0
                    dense.append(row)
                    if hashed:
                        b = ex[i].buckets
                        rows_r.append(np.full(len(b), n, dtype=np.intp))
                        rows_c.append(b)
                        rows_v.append(np.full(len(b), 1.0 / np.sqrt(max(len(b), 1))))
                    ys.append(label)
                    ws.append(weight * per_pair)
                    n += 1
    for o, ex in ordinal:
        col = k + a_index[(o.name, "(pairs)")]
        pairs = o.draw()
        weight = 1.0 / (2 * len(pairs)) if pairs else 0.0  # a dataset weighs 1 in all
        for hard, easy in pairs:
            diff = np.asarray(ex[hard].signals) - np.asarray(ex[easy].signals)
            for sign in (1, -1):
                row = np.zeros(k + len(abilities))
                row[:k] = sign * diff
                row[col] = 1.0
                dense.append(row)
                ys.append(sign)
                ws.append(weight)
                n += 1
    empty_i = np.zeros(0, dtype=np.intp)
    d = Design(np.concatenate(rows_r) if rows_r else empty_i,
               np.concatenate(rows_c) if rows_c else empty_i,
               np.concatenate(rows_v) if rows_v else np.zeros(0),
               np.array(dense), n_hashed)
    return d, np.array(ys, dtype=np.int8), np.array(ws), abilities


def fit_difficulty(sets: Sequence[TrainingSet], featurizer: DifficultyFeaturizer, *,
                   hashed: bool = False, ordinal: Sequence[OrdinalSet] = (),
                   lam_signals: float = LAM_SIGNALS, lam_hashed: float = LAM_HASHED,
                   meta: Mapping[str, Any] | None = None) -> DifficultyModel:
    """Fit the estimate on ``sets``; the model's ``meta`` records what it was fitted on and
    every model's ability (``sigmoid(ability + z)`` is its chance of getting a prompt wrong)."""
    feats = [[featurizer.extract(t) for t in s.texts] for s in sets]
    ordinal_feats = [(o, [featurizer.extract(t) for t in o.texts]) for o in ordinal]
    d, y, w, abilities = _design(sets, feats, featurizer.n_hashed, hashed, ordinal_feats)
    f = fit(d, y, w, lam_hashed if hashed else 1.0, lam_signals)
    k = len(NAMES)
    weights = f.explicit[:k]
    hashed_w = f.hashed.astype(np.float32) if hashed else None
    # centre: the mean difficulty over the training prompts, every dataset weighing the same;
    # and each signal's mean, which explanations are relative to
    means, signal_means = [], []
    for ex in feats:
        sig = np.array([e.signals for e in ex])
        z = sig @ weights
        if hashed_w is not None:
            z += np.array([float(hashed_w[e.buckets].sum()) / np.sqrt(max(len(e.buckets), 1))
                           for e in ex])
        means.append(float(z.mean()))
        signal_means.append(sig.mean(axis=0))
    centre = float(np.mean(means))
    mu = [float(x) for x in np.mean(signal_means, axis=0)]
    info = dict(meta or {})
    info.update({
        "fitted_on": {s.name: {"prompts": len(s.texts), "models": s.fitted_models(),
                               "left_out": [m for m in s.scores if m not in s.fitted_models()]}
                      for s in sets},
        "abilities": {f"{ds}/{m}": round(float(f.bias + f.explicit[k + i] + centre), 4)
                      for i, (ds, m) in enumerate(abilities) if m != "(pairs)"},
        "ordinal": {o.name: {"prompts": len(o.texts), "pairs": o.pairs} for o in ordinal},
        "hashed": hashed, "iterations": f.iterations, "loss": round(f.loss, 6),
    })
    return DifficultyModel(featurizer, [float(x) for x in weights], centre, hashed_w, info, mu)
