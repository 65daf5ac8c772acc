"""Weighted, L2-regularised logistic regression on hashed sparse features, in numpy only.

Training needs no scikit-learn or scipy: the matrix products are ``np.bincount`` over a CSR-like
layout, the optimiser is a plain L-BFGS with a backtracking line search. Everything is
deterministic, so the shipped weights rebuild to the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from router.classify.features import Featurizer

F64 = npt.NDArray[np.float64]


@dataclass
class Design:
    """Rows of hashed features (as row ids, column ids, values) plus dense explicit features."""

    rows: npt.NDArray[np.intp]
    cols: npt.NDArray[np.intp]
    vals: F64
    explicit: F64  # n x k
    n_hashed: int

    @property
    def n(self) -> int:
        return int(self.explicit.shape[0])

    def take(self, mask: npt.NDArray[np.bool_]) -> Design:
        """The rows where ``mask`` is true, renumbered."""
        new_id = np.cumsum(mask) - 1
        keep = mask[self.rows]
        return Design(new_id[self.rows[keep]], self.cols[keep], self.vals[keep],
                      self.explicit[mask], self.n_hashed)


def design(feat: Featurizer, texts: Sequence[str]) -> Design:
    rows, cols, vals, expl = [], [], [], []
    for i, text in enumerate(texts):
        ft = feat.featurize(text)
        v = np.empty(len(ft.idx))
        v[:ft.m] = ft.body_scale
        v[ft.m:ft.mh] = ft.head_scale
        v[ft.mh:] = ft.material_scale
        rows.append(np.full(len(v), i, dtype=np.intp))
        cols.append(ft.idx)
        vals.append(v)
        expl.append(ft.explicit)
    return Design(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals),
                  np.asarray(expl, dtype=np.float64), feat.n_hashed)


@dataclass
class Fit:
    hashed: F64
    explicit: F64
    bias: float
    iterations: int
    loss: float

    def weights(self) -> npt.NDArray[np.float32]:
        return np.concatenate([self.hashed, self.explicit]).astype(np.float32)


def margins(d: Design, f: Fit) -> F64:
    z = np.bincount(d.rows, weights=d.vals * f.hashed[d.cols], minlength=d.n)
    return z + d.explicit @ f.explicit + f.bias


def _lbfgs(fun_grad: object, x0: F64, iters: int, m: int = 10, tol: float = 1e-7) -> tuple[
        F64, float, int]:
    fg = fun_grad  # (x) -> (f, g)
    x = x0.copy()
    f, g = fg(x)  # type: ignore[operator]
    s_hist: list[F64] = []
    y_hist: list[F64] = []
    it = 0
    for it in range(1, iters + 1):  # noqa: B007 - the count is returned
        q = g.copy()
        alphas = []
        for s, y in zip(reversed(s_hist), reversed(y_hist), strict=True):
            a = float(s @ q) / float(y @ s)
            alphas.append(a)
            q -= a * y
        if y_hist:
            q *= float(s_hist[-1] @ y_hist[-1]) / float(y_hist[-1] @ y_hist[-1])
        for s, y, a in zip(s_hist, y_hist, reversed(alphas), strict=True):
            b = float(y @ q) / float(y @ s)
            q += (a - b) * s
        direction = -q
        slope = float(g @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            s_hist.clear()
            y_hist.clear()
            direction, slope = -g, -float(g @ g)
        step = 1.0 if s_hist else min(1.0, 1.0 / max(float(np.abs(g).sum()), 1e-12))
        while True:
            x_new = x + step * direction
            f_new, g_new = fg(x_new)  # type: ignore[operator]
            if f_new <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_vec, y_vec = x_new - x, g_new - g
        if float(s_vec @ y_vec) > 1e-12:
            s_hist.append(s_vec)
            y_hist.append(y_vec)
            if len(s_hist) > m:
                s_hist.pop(0)
                y_hist.pop(0)
        converged = abs(f - f_new) <= tol * max(1.0, abs(f))
        x, f, g = x_new, f_new, g_new
        if converged:
            break
    return x, float(f), it


def fit(d: Design, y: npt.NDArray[np.int8], weights: F64, lam: float, lam_explicit: float,
        iters: int = 300) -> Fit:
    """Minimise sum(c * logloss) + lam/2 |w_hashed|^2 + lam_explicit/2 |w_explicit|^2.

    ``y`` is +1 for reasoning, -1 for expression, 0 for neither (a soft target of 0.5: the
    loss pulls such rows towards a margin of 0); ``weights`` are normalised to sum to 1.
    """
    c = weights / weights.sum()
    nh, k = d.n_hashed, d.explicit.shape[1]
    target = (y.astype(np.float64) + 1.0) / 2.0  # probability of reasoning: 1, 0 or 0.5

    def fun_grad(theta: F64) -> tuple[float, F64]:
        wh, we, b = theta[:nh], theta[nh:nh + k], theta[-1]
        z = np.bincount(d.rows, weights=d.vals * wh[d.cols], minlength=d.n) + d.explicit @ we + b
        # cross-entropy against the target: t log(1 + e^-z) + (1 - t) log(1 + e^z)
        loss = float(c @ (target * np.logaddexp(0.0, -z) + (1 - target) * np.logaddexp(0.0, z)))
        gz = c * (1.0 / (1.0 + np.exp(-z)) - target)
        gh = np.bincount(d.cols, weights=d.vals * gz[d.rows], minlength=nh) + lam * wh
        ge = d.explicit.T @ gz + lam_explicit * we
        loss += 0.5 * lam * float(wh @ wh) + 0.5 * lam_explicit * float(we @ we)
        return loss, np.concatenate([gh, ge, [gz.sum()]])

    theta, loss, it = _lbfgs(fun_grad, np.zeros(nh + k + 1), iters)
    return Fit(theta[:nh], theta[nh:nh + k], float(theta[-1]), it, loss)


def platt(z: F64, y: npt.NDArray[np.int8], weights: F64 | None = None) -> tuple[float, float]:
    """Fit p = sigmoid(a z + b) to labels by Newton's method on the (weighted) log loss."""
    t = (y > 0).astype(np.float64)
    c = np.ones_like(z) if weights is None else weights / weights.mean()
    a, b = 1.0, 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(a * z + b)))
        r = c * (p - t)
        s = c * p * (1 - p) + 1e-12
        g = np.array([r @ z, r.sum()])
        h = np.array([[s @ (z * z), s @ z], [s @ z, s.sum()]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - float(step[0]), b - float(step[1])
        if float(np.abs(step).max()) < 1e-10:
            break
    return a, b
