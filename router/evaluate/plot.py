"""``router eval replay --plot``: quality against cost, readable without the table.

matplotlib is an optional extra (``pip install -e '.[eval]'``): the gateway never imports it.
"""

from __future__ import annotations

from pathlib import Path

from router.evaluate import metrics as M
from router.evaluate.report import Report


def require_matplotlib() -> str | None:
    """None if plotting can work here, else what to install."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "--plot needs matplotlib: pip install -e '.[eval]' (or pip install matplotlib)"
    return None


def plot_report(r: Report, path: Path, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = r.ref_point
    scale = 1e6  # µ$ -> $
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    # the random mixture: the hull of single models (under the router's curve where they meet)
    hull = M.upper_hull([(p.cost_micro, p.quality) for p in r.singles])
    ax.plot([x / scale for x, _ in hull], [y for _, y in hull], "-", color="#bbbbbb", lw=4,
            label="random mixture of single models", zorder=1)
    # the router's curve, in knob order
    xs = [p.cost_micro / scale for p in r.curve]
    ys = [p.quality for p in r.curve]
    ax.plot(xs, ys, "-o", color="#1f77b4", ms=3.5, lw=1.2, zorder=3,
            label="this policy, its knob (bar_shift) swept")
    right = max(p.cost_micro for p in r.singles) / scale
    for p in r.singles:
        x = p.cost_micro / scale
        near_right = right > 0 and x > 0.7 * right
        ax.plot(x, p.quality, "s", color="#444444", ms=6, zorder=4)
        ax.annotate(p.name + (" (ref.)" if p.name == r.reference else ""), (x, p.quality),
                    textcoords="offset points", xytext=(-6 if near_right else 6, -13),
                    ha="right" if near_right else "left", fontsize=7, color="#444444")
    ax.plot(r.oracle.cost_micro / scale, r.oracle.quality, "*", color="#2ca02c", ms=12, zorder=5,
            label="oracle (cheapest model with the row's best score)")
    ax.plot(r.policy.cost_micro / scale, r.policy.quality, "D", color="#d62728", ms=8, zorder=5,
            label=f"the policy as configured (bar_shift {r.knob:g})")
    target = 0.95 * ref.quality
    ax.axhline(target, color="#d62728", lw=0.8, ls=":",
               label=f"95% of {r.reference}'s quality")
    ax.set_xlabel(f"total cost of the {r.rows:,} requests ($)")
    ax.set_ylabel("quality (mean score)")
    head = title or f"Quality against cost: {', '.join(Path(f).name for f in r.files)}"
    sub = f"route {r.route}; difficulty: {r.difficulty}" if r.difficulty else (
        f"route {r.route}; bars by task class only")
    ax.set_title(f"{head}\n{sub}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
