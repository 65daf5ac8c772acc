"""Rebuild the shipped classifier: ``python -m router.classify.train``.

1. Read the labelled prompts (``--data``, default ``$ROUTER_CLASSIFIER_DATA`` or
   ``../shared/data/train`` beside the repository) and the project's own
   ``router/classify/data/project.jsonl``.
2. Leave-one-source-out: for every public source, fit on all other sources (and the project's
   prompts) and score the held-out one. These out-of-source scores give the reported figures and
   the data for calibration (Platt scaling). Project prompts are never on the test side.
3. Fit on everything, attach the calibration and the figures, write ``weights.bin`` and
   ``model.json``. Same data in, same bytes out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from router.classify.data import (
    NEITHER,
    PROJECT,
    PROJECT_DATA,
    Row,
    class_balanced_weights,
    default_data_dir,
    describe,
    load_training,
    row_weights,
)
from router.classify.features import Featurizer
from router.classify.fit import Design, Fit, design, fit, margins, platt
from router.classify.metrics import format_summary, summary
from router.classify.model import MODEL_DIR, LinearModel

BITS = 18
LAM = 1e-4  # L2 on hashed weights (the data weights sum to 1)
LAM_EXPLICIT = 1e-6  # lighter L2 on the explicit signals: they are few and meant to carry weight


@dataclass
class Problem:
    rows: list[Row]
    d: Design
    y: npt.NDArray[np.int8]
    lam: float
    lam_explicit: float


_PROBLEM: Problem | None = None  # shared with forked fold workers


def _labels(rows: Sequence[Row]) -> npt.NDArray[np.int8]:
    """+1 reasoning, -1 expression, 0 neither."""
    code = {"reasoning": 1, "expression": -1, NEITHER: 0}
    return np.array([code[r.label] for r in rows], dtype=np.int8)


def fit_rows(p: Problem, mask: npt.NDArray[np.bool_]) -> Fit:
    sub = [r for r, m in zip(p.rows, mask, strict=True) if m]
    w = np.asarray(row_weights(sub), dtype=np.float64)
    return fit(p.d.take(mask), p.y[mask], w, p.lam, p.lam_explicit)


def _fold(args: tuple[str, bool]) -> tuple[str, npt.NDArray[np.float64]]:
    group, with_project = args
    p = _PROBLEM
    assert p is not None
    groups = np.array([r.group for r in p.rows])
    test = groups == group
    train = ~test if with_project else ~test & (groups != PROJECT)
    f = fit_rows(p, train)
    return group, margins(p.d.take(test), f)


def held_out(p: Problem, with_project: bool = True, workers: int = 2
             ) -> npt.NDArray[np.float64]:
    """Margins of every public row from a model that never saw its source (NaN for project)."""
    global _PROBLEM
    _PROBLEM = p
    groups = np.array([r.group for r in p.rows])
    names = sorted(set(groups.tolist()) - {PROJECT})
    out = np.full(len(p.rows), np.nan)
    jobs = [(g, with_project) for g in names]
    if workers > 1:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            results = list(pool.map(_fold, jobs))
    else:
        results = [_fold(j) for j in jobs]
    for g, z in results:
        out[groups == g] = z
    return out


def sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-z))


def fingerprint(rows: Sequence[Row]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.group}\t{r.label}\t{r.lang}\t{r.prompt}\n".encode())
    return h.hexdigest()


def per_source(rows: Sequence[Row], y: npt.NDArray[np.int8], p: npt.NDArray[np.float64]
               ) -> dict[str, dict[str, Any]]:
    """Per source, language and label: accuracy and how many errors were confident (>= 0.9);
    for "neither" rows, the mean confidence and the share of them under 0.7."""
    out: dict[str, dict[str, Any]] = {}
    conf = np.maximum(p, 1 - p)
    for g in sorted({r.group for r in rows}):
        for lang in ("en", "zh"):
            for label in (1, -1, 0):
                m = np.array([r.group == g and r.lang == lang for r in rows]) & (y == label)
                if not m.any():
                    continue
                name = {1: "reasoning", -1: "expression", 0: NEITHER}[label]
                cell: dict[str, Any] = {"n": int(m.sum())}
                if label:
                    wrong = (p[m] >= 0.5) != (label > 0)
                    cell["accuracy"] = round(float(1 - np.mean(wrong)), 4)
                    cell["confident_errors"] = int(np.sum(wrong & (conf[m] >= 0.9)))
                else:
                    cell["mean_confidence"] = round(float(np.mean(conf[m])), 3)
                    cell["under_0.7"] = round(float(np.mean(conf[m] < 0.7)), 3)
                out.setdefault(g, {})[f"{lang}/{name}"] = cell
    return out


def neither_summary(rows: Sequence[Row], y: npt.NDArray[np.int8], public: npt.NDArray[np.bool_],
                    p: npt.NDArray[np.float64]) -> dict[str, Any]:
    """How held-out "neither" questions ("explain X") land: they should sit near 0.5."""
    out: dict[str, Any] = {}
    conf = np.maximum(p, 1 - p)
    for lang in ("en", "zh"):
        m = public & (y == 0) & np.array([r.lang == lang for r in rows])
        if m.any():
            out[lang] = {"n": int(m.sum()), "mean_confidence": round(float(conf[m].mean()), 3),
                         "under_0.7": round(float(np.mean(conf[m] < 0.7)), 3),
                         "over_0.9": round(float(np.mean(conf[m] >= 0.9)), 3),
                         "leaning_reasoning": round(float(np.mean(p[m] >= 0.5)), 3)}
    return out


def train(data_dir: Path, project: Path | None, out_dir: Path | None, bits: int = BITS,
          lam: float = LAM, lam_explicit: float = LAM_EXPLICIT, folds: bool = True,
          compare_public_only: bool = False, workers: int = 2, log: bool = True,
          oof_path: Path | None = None) -> tuple[LinearModel, dict[str, Any]]:
    """Fit, evaluate on held-out sources, calibrate; write the model if ``out_dir`` is given."""
    t0 = time.perf_counter()
    rows = load_training(data_dir, project)
    feat = Featurizer(bits)
    d = design(feat, [r.prompt for r in rows])
    y = _labels(rows)
    prob = Problem(rows, d, y, lam, lam_explicit)
    meta: dict[str, Any] = {
        "trained_on": describe(rows), "data_sha256": fingerprint(rows),
        "hyperparameters": {"bits": bits, "lam": lam, "lam_explicit": lam_explicit},
    }
    public = np.array([r.group != PROJECT for r in rows])
    scored = public & (y != 0)  # public rows with a task: the accuracy figures
    pub_rows = [r for r in rows if r.group != PROJECT]
    calib = (1.0, 0.0)
    if folds:
        z_all = held_out(prob, True, workers)
        z = z_all[scored]
        if oof_path is not None:  # held-out margins, for analysis (not committed)
            with oof_path.open("w", encoding="utf-8") as fh:
                for r, m in zip(pub_rows, z_all[public], strict=True):
                    fh.write(json.dumps({"group": r.group, "lang": r.lang, "label": r.label,
                                         "margin": round(float(m), 4), "prompt": r.prompt[:300]},
                                        ensure_ascii=False) + "\n")
        w = np.asarray(class_balanced_weights([r for r, m in zip(rows, scored, strict=True)
                                               if m]))
        calib = platt(z, y[scored], w)
        p_cal = sigmoid(calib[0] * z + calib[1])
        langs = [r.lang for r, m in zip(rows, scored, strict=True) if m]
        held = summary(y[scored], p_cal, langs)
        held["per_source"] = per_source(pub_rows, y[public],
                                        sigmoid(calib[0] * z_all[public] + calib[1]))
        held["neither"] = neither_summary(rows, y, public, sigmoid(calib[0] * z_all + calib[1]))
        meta["held_out"] = held
        if log:
            print(format_summary(held, "held-out sources (leave one source out; "
                                 "project prompts in training only), calibrated"))
        if compare_public_only:
            z2 = held_out(prob, False, workers)[scored]
            held2 = summary(y[scored], sigmoid(calib[0] * z2 + calib[1]), langs)
            meta["held_out_public_only"] = held2
            if log:
                print(format_summary(held2, "held-out sources, trained WITHOUT project prompts"))
    f = fit_rows(prob, np.ones(len(rows), dtype=bool))
    meta["final_fit"] = {"iterations": f.iterations, "loss": round(f.loss, 6)}
    model = LinearModel(f.weights(), f.bias, calib, feat)
    if out_dir is not None:
        model.save(meta, out_dir)
    if log:
        print(f"trained on {len(rows)} rows in {time.perf_counter() - t0:.1f}s"
              + (f"; wrote {out_dir}" if out_dir else ""), file=sys.stderr)
    model.meta = meta
    return model, meta


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m router.classify.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None,
                    help="directory of labelled *.jsonl (default: $ROUTER_CLASSIFIER_DATA or "
                         f"{default_data_dir()})")
    ap.add_argument("--project", type=Path, default=PROJECT_DATA,
                    help="the project's own labelled prompts (default: %(default)s)")
    ap.add_argument("--no-project", action="store_true", help="train without project prompts")
    ap.add_argument("--out", type=Path, default=MODEL_DIR,
                    help="where to write weights.bin and model.json (default: the package)")
    ap.add_argument("--dry-run", action="store_true", help="evaluate only, write nothing")
    ap.add_argument("--no-folds", action="store_true",
                    help="skip the held-out evaluation (and calibration: identity)")
    ap.add_argument("--compare", action="store_true",
                    help="also report held-out figures when trained without project prompts")
    ap.add_argument("--bits", type=int, default=BITS)
    ap.add_argument("--lam", type=float, default=LAM)
    ap.add_argument("--lam-explicit", type=float, default=LAM_EXPLICIT)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--oof", type=Path, default=None,
                    help="write each public row's held-out margin to this JSONL file")
    args = ap.parse_args(argv)
    data_dir = args.data or default_data_dir()
    if not data_dir.is_dir():
        print(f"error: no training data at {data_dir} (use --data or ${'ROUTER_CLASSIFIER_DATA'})",
              file=sys.stderr)
        return 2
    train(data_dir, None if args.no_project else args.project,
          None if args.dry_run else args.out, bits=args.bits, lam=args.lam,
          lam_explicit=args.lam_explicit, folds=not args.no_folds,
          compare_public_only=args.compare, workers=args.workers, oof_path=args.oof)
    return 0


if __name__ == "__main__":
    sys.exit(main())
