"""Figures shared by the training and evaluation scripts: balanced accuracy, reliability."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

BANDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0001)


def balanced_accuracy(y: npt.NDArray[np.int8], pred: npt.NDArray[np.int8]) -> float | None:
    """Mean of per-class recall over the classes present (None when there are no rows)."""
    recalls = [float(np.mean(pred[y == c] == c)) for c in (1, -1) if np.any(y == c)]
    return float(np.mean(recalls)) if recalls else None


def confusion(y: npt.NDArray[np.int8], pred: npt.NDArray[np.int8]) -> dict[str, dict[str, int]]:
    names = {1: "reasoning", -1: "expression"}
    return {names[t]: {names[p]: int(np.sum((y == t) & (pred == p))) for p in (1, -1)}
            for t in (1, -1)}


def reliability(p_reasoning: npt.NDArray[np.float64], y: npt.NDArray[np.int8]
                ) -> list[dict[str, Any]]:
    """Accuracy of the predicted task in each band of confidence (= max(p, 1 - p))."""
    conf = np.maximum(p_reasoning, 1 - p_reasoning)
    correct = (p_reasoning >= 0.5) == (y > 0)
    out = []
    for lo, hi in itertools.pairwise(BANDS):
        m = (conf >= lo) & (conf < hi)
        n = int(m.sum())
        out.append({"band": f"{lo:.2f}-{min(hi, 1.0):.2f}", "n": n,
                    "mean_confidence": round(float(conf[m].mean()), 3) if n else None,
                    "accuracy": round(float(correct[m].mean()), 3) if n else None})
    return out


def summary(y: npt.NDArray[np.int8], p_reasoning: npt.NDArray[np.float64],
            langs: Sequence[str]) -> dict[str, Any]:
    """Balanced accuracy overall and per language, confusion matrix, reliability bands."""
    pred = np.where(p_reasoning >= 0.5, 1, -1).astype(np.int8)
    lang = np.asarray(langs)
    conf = np.maximum(p_reasoning, 1 - p_reasoning)
    confident_wrong = (pred != y) & (conf >= 0.9)
    out: dict[str, Any] = {"n": len(y), "balanced_accuracy": _r(balanced_accuracy(y, pred)),
                           "accuracy": round(float(np.mean(pred == y)), 4) if len(y) else None,
                           "confident_error_rate": (round(float(np.mean(confident_wrong)), 4)
                                                    if len(y) else None)}
    per_lang = {}
    for code in sorted(set(langs)):
        m = lang == code
        per_lang[code] = {"n": int(m.sum()),
                          "balanced_accuracy": _r(balanced_accuracy(y[m], pred[m])),
                          "accuracy": round(float(np.mean(pred[m] == y[m])), 4),
                          "recall_reasoning": _r(_recall(y[m], pred[m], 1)),
                          "recall_expression": _r(_recall(y[m], pred[m], -1)),
                          "confident_error_rate": round(float(np.mean(confident_wrong[m])), 4)}
    out["per_language"] = per_lang
    out["confusion"] = confusion(y, pred)
    out["reliability"] = reliability(p_reasoning, y)
    eps = 1e-12
    t = (y > 0).astype(np.float64)
    out["log_loss"] = round(float(-np.mean(t * np.log(p_reasoning + eps)
                                           + (1 - t) * np.log(1 - p_reasoning + eps))), 4)
    return out


def _recall(y: npt.NDArray[np.int8], pred: npt.NDArray[np.int8], c: int) -> float | None:
    m = y == c
    return float(np.mean(pred[m] == c)) if m.any() else None


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def format_summary(s: dict[str, Any], title: str = "") -> str:
    """Human-readable text of :func:`summary`."""
    lines = [title] if title else []
    lines.append(f"rows {s['n']}  balanced accuracy {_pct(s['balanced_accuracy'])}  "
                 f"accuracy {_pct(s['accuracy'])}  log loss {s['log_loss']}  "
                 f"wrong at confidence >= 0.9: {_pct(s.get('confident_error_rate'))}")
    for code, v in s["per_language"].items():
        lines.append(f"  {code}: n={v['n']:<5} balanced accuracy {_pct(v['balanced_accuracy'])}"
                     f"  (recall reasoning {_pct(v['recall_reasoning'])},"
                     f" expression {_pct(v['recall_expression'])};"
                     f" wrong at >= 0.9: {_pct(v.get('confident_error_rate'))})")
    c = s["confusion"]
    lines.append("  confusion (rows: true, columns: predicted)   reasoning  expression")
    for t in ("reasoning", "expression"):
        lines.append(f"    {t:<40} {c[t]['reasoning']:>9}  {c[t]['expression']:>10}")
    lines.append("  reliability   band        n     mean conf  accuracy")
    for b in s["reliability"]:
        mc = "-" if b["mean_confidence"] is None else f"{b['mean_confidence']:.3f}"
        acc = "-" if b["accuracy"] is None else f"{b['accuracy']:.3f}"
        lines.append(f"                {b['band']}  {b['n']:>6}  {mc:>9}  {acc:>8}")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"
