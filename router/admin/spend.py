"""Spend reports over the ledger, and the check that the ledger equals the budget counters.

Shared by ``GET /admin/spend`` and ``router spend`` (so both print the same numbers):

* :func:`resolve_range` turns ``period`` / ``since`` / ``until`` into a time range. Without
  ``since``/``until``, ``period`` (default ``month``) is the *current* calendar window in the
  store's time zone; with them, a ``period`` other than ``total`` splits the range into that
  period's calendar windows (one group of rows per day, week or month).
* :func:`spend_report` runs :meth:`BudgetStore.ledger_query` once per window: money stays in
  integer µ$ (the USD fields are µ$ / 1e6, for display). With the ledger exported
  (``store.ledger``), :class:`router.budgets.export.History` answers instead: the store for the
  periods it still holds, the archive plus the store's unexported rows for older ones.
* :func:`spend_check` compares, for every budget counter of the current windows (and ``total``),
  the counter's settled µ$ with the sum of the ledger rows of that window and scope. The store
  writes both in one transaction (one Lua script on Redis), so they are equal unless a budget
  was added in the middle of its window (its counter then starts later than the ledger), or the
  ledger was trimmed without an archive (``export: none``: windows before the trim differ).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from router.admin.keys import PERIOD_NAMES
from router.budgets.keys import CounterTotal, KeyStore
from router.budgets.spec import (
    GROUP_FIELDS,
    STATUS_ERROR,
    Period,
    SpendRow,
    Window,
    window_of,
)
from router.budgets.store import BudgetStore

#: "Forever" for open-ended ranges (year 5138): finite, so every store compares it plainly.
END_OF_TIME = 1e11
#: At most this many windows in one bucketed report (a year and a day of days).
MAX_WINDOWS = 367
#: The ledger column each scope's budgets are named by (global: every row).
SCOPE_FIELD: Mapping[str, str | None] = {"global": None, "team": "team", "user": "user",
                                         "key": "key"}  # fmt: skip


class ReportError(ValueError):
    """Bad report parameters (-> 400 naming ``param``, or a CLI usage error)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def iso(t: float | None, tz: ZoneInfo | None = None) -> str | None:
    if t is None or not math.isfinite(t) or t <= 0 or t >= END_OF_TIME:
        return None
    return datetime.fromtimestamp(t, tz or UTC).isoformat()


def usd(micro: int) -> float:
    return micro / 1_000_000


def parse_instant(text: str, tz: ZoneInfo, param: str) -> float:
    """Unix seconds, an ISO date (midnight in ``tz``) or an ISO date-time (``tz`` if naive)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(f"'{param}' must be an ISO 8601 date or date-time, or Unix seconds; "
                          f"got {text!r}.", param) from None  # fmt: skip
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.timestamp()


@dataclass(frozen=True, slots=True)
class ReportRange:
    """What a report covers: ``windows`` are ``(label, since, until)`` (label None: the rows
    are not split by window); ``window`` names the current window a period-only report covers."""

    since: float
    until: float
    period: Period | None
    windows: tuple[tuple[str | None, float, float], ...]
    window: str | None = None


def resolve_range(
    *, period: str | None, since: str | None, until: str | None, now: float, tz: ZoneInfo
) -> ReportRange:
    p: Period | None = None
    if period is not None:
        p = PERIOD_NAMES.get(period)
        if p is None:
            raise ReportError(f"'period' must be day, week, month or total; got {period!r}.",
                              "period")  # fmt: skip
    if since is None and until is None:
        p = p or Period.MONTHLY
        if p is Period.TOTAL:
            return ReportRange(0.0, END_OF_TIME, p, ((None, 0.0, END_OF_TIME),), "total")
        w = window_of(p, now, tz)
        assert w.reset_at is not None
        return ReportRange(w.start, w.reset_at, p, ((None, w.start, w.reset_at),), w.id)
    t0 = parse_instant(since, tz, "since") if since is not None else 0.0
    t1 = parse_instant(until, tz, "until") if until is not None else END_OF_TIME
    if t1 <= t0:
        raise ReportError("'until' must be after 'since'.", "until")
    if p is None or p is Period.TOTAL:
        return ReportRange(t0, t1, p, ((None, t0, t1),))
    if since is None:
        raise ReportError(f"Splitting by {p.value} needs 'since'.", "since")
    if until is None:  # split up to the end of the current window, not to the end of time
        t1 = window_of(p, now, tz).reset_at or END_OF_TIME
    windows: list[tuple[str | None, float, float]] = []
    cur: Window = window_of(p, t0, tz)
    while cur.start < t1:
        assert cur.reset_at is not None
        windows.append((cur.id, max(t0, cur.start), min(t1, cur.reset_at)))
        if len(windows) > MAX_WINDOWS:
            raise ReportError(f"The range spans more than {MAX_WINDOWS} {p.value} windows: "
                              "narrow it or choose a longer period.", "period")  # fmt: skip
        cur = window_of(p, cur.reset_at, tz)
    return ReportRange(t0, t1, p, tuple(windows))


def parse_group_by(values: Iterable[str] | None) -> list[str]:
    """``team,model`` or repeated values; each one of team, user, key, model, task, status."""
    out: list[str] = []
    for value in values or ():
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            if name not in GROUP_FIELDS:
                raise ReportError(f"Cannot group by {name!r}: use "
                                  f"{', '.join(GROUP_FIELDS)}.", "group_by")  # fmt: skip
            if name not in out:
                out.append(name)
    return out


def parse_filters(given: Mapping[str, str | None]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in given.items():
        if value is None:
            continue
        if name not in GROUP_FIELDS:
            raise ReportError(f"Cannot filter by {name!r}.", name)
        out[name] = value
    return out


def _money(requests: int, prompt: int, completion: int, est: int, actual: int,
           ref: int, failed: int = 0) -> dict[str, Any]:  # fmt: skip
    return {
        "requests": requests, "failed_requests": failed, "prompt_tokens": prompt,
        "completion_tokens": completion,
        "estimated_micro": est, "actual_micro": actual, "reference_micro": ref,
        "savings_micro": ref - actual, "actual_usd": usd(actual), "reference_usd": usd(ref),
        "savings_usd": usd(ref - actual),
    }  # fmt: skip


def _row_json(window: str | None, row: SpendRow, failed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"window": window} if window is not None else {}
    out["group"] = dict(row.group)
    out.update(_money(row.requests, row.prompt_tokens, row.completion_tokens,
                      row.estimated_micro, row.actual_micro, row.reference_micro,
                      failed))  # fmt: skip
    return out


def _with_failed(rows: Sequence[SpendRow], group_by: Sequence[str]) -> list[tuple[SpendRow, int]]:
    """Rows queried with ``status`` added to ``group_by``, folded back into ``group_by``'s groups,
    each with its count of failed requests (status ``error``: answered with an error, charged
    nothing); largest spend first, as the stores sort."""
    folded: dict[tuple[Any, ...], list[int]] = {}
    groups: dict[tuple[Any, ...], dict[str, str | None]] = {}
    for row in rows:
        key = tuple(row.group.get(g) for g in group_by)
        groups[key] = {g: row.group.get(g) for g in group_by}
        sums = folded.setdefault(key, [0] * 7)
        for i, v in enumerate((row.requests, row.prompt_tokens, row.completion_tokens,
                               row.estimated_micro, row.actual_micro, row.reference_micro)):
            sums[i] += v
        if row.group.get("status") == STATUS_ERROR:
            sums[6] += row.requests
    out = [(SpendRow(groups[k], *s[:6]), s[6]) for k, s in folded.items()]
    out.sort(key=lambda r: (-r[0].actual_micro, tuple(str(v) for v in r[0].group.values())))
    return out


async def spend_report(
    store: BudgetStore, rng: ReportRange, group_by: Sequence[str], filters: Mapping[str, str]
) -> dict[str, Any]:
    """The report as JSON-ready data: ``data`` (one row per window and group, largest spend
    first within a window) and ``total``."""
    tz = store.calendar.tz
    ledger = store.history or store  # with an archive: the rows trimmed from the store too
    data: list[dict[str, Any]] = []
    sums = [0] * 7
    by_status = [*group_by, "status"] if "status" not in group_by else list(group_by)
    for label, t0, t1 in rng.windows:
        rows = await ledger.ledger_query(t0, t1, by_status, dict(filters) or None)
        for row, failed in _with_failed(rows, group_by):
            data.append(_row_json(label, row, failed))
            for i, v in enumerate((row.requests, row.prompt_tokens, row.completion_tokens,
                                   row.estimated_micro, row.actual_micro, row.reference_micro,
                                   failed)):
                sums[i] += v
    return {
        "object": "spend_report", "timezone": store.timezone,
        "period": rng.period.value if rng.period is not None else None, "window": rng.window,
        "since": iso(rng.since, tz), "until": iso(rng.until, tz),
        "group_by": list(group_by), "filters": dict(filters),
        "data": data, "total": _money(*sums),
    }  # fmt: skip


async def spend_check(store: BudgetStore, keys: KeyStore, now: float) -> dict[str, Any]:
    """Every budget counter of the current windows (and ``total``) against its ledger sum."""
    current = {p: window_of(p, now, store.calendar.tz) for p in Period}
    ledger = store.history or store  # windows older than the hot store: its archive too
    by_id = {(p.value, w.id) for p, w in current.items()}
    counters = [c for c in await keys.budget_counters({w.id for w in current.values()})
                if (c.period, c.window) in by_id and c.scope in SCOPE_FIELD]  # fmt: skip
    sums: dict[tuple[str, str], dict[str | None, int]] = {}
    for c in counters:
        k = (c.period, c.scope)
        if k in sums:
            continue
        w = current[Period(c.period)]
        t0 = max(0.0, w.start)
        t1 = w.reset_at if w.reset_at is not None else END_OF_TIME
        field = SCOPE_FIELD[c.scope]
        rows = await ledger.ledger_query(t0, t1, [field] if field else [])
        sums[k] = {(r.group.get(field) if field else None): r.actual_micro for r in rows}
    out = [_check_row(c, sums[(c.period, c.scope)], current[Period(c.period)], store)
           for c in sorted(counters, key=lambda c: (c.budget, c.window))]  # fmt: skip
    return {
        "object": "spend_check", "timezone": store.timezone, "time": iso(now, store.calendar.tz),
        "ok": all(r["ok"] for r in out), "budgets": len(out),
        "mismatches": sum(1 for r in out if not r["ok"]), "data": out,
    }  # fmt: skip


def _check_row(c: CounterTotal, sums: Mapping[str | None, int], w: Window,
               store: BudgetStore) -> dict[str, Any]:  # fmt: skip
    ledger = sums.get(c.scope_id if SCOPE_FIELD[c.scope] else None, 0)
    tz = store.calendar.tz
    return {
        "budget": c.budget, "scope": c.scope, "scope_id": c.scope_id, "period": c.period,
        "window": c.window, "since": iso(w.start, tz), "until": iso(w.reset_at, tz),
        "counter_micro": c.spent_micro, "ledger_micro": ledger,
        "difference_micro": c.spent_micro - ledger, "reserved_micro": c.reserved_micro,
        "ok": c.spent_micro == ledger,
    }  # fmt: skip


# ------------------------------------------------------------------------------- text output


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]  # fmt: skip

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i >= numeric_from else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _usd(micro: int) -> str:
    return f"{micro / 1_000_000:,.6f}"


def format_report(report: Mapping[str, Any]) -> str:
    group_by: list[str] = report["group_by"]
    bucketed = any("window" in r for r in report["data"])
    lead = (["window"] if bucketed else []) + group_by
    headers = [*lead, "requests", "failed", "prompt_tok", "completion_tok", "actual_usd",
               "reference_usd", "savings_usd"]  # fmt: skip

    def cells(r: Mapping[str, Any], names: Sequence[str]) -> list[str]:
        return [*names, f"{r['requests']:,}", f"{r.get('failed_requests', 0):,}",
                f"{r['prompt_tokens']:,}",
                f"{r['completion_tokens']:,}", _usd(r["actual_micro"]),
                _usd(r["reference_micro"]), _usd(r["savings_micro"])]  # fmt: skip

    width = max(1, len(lead))
    if not lead:
        headers = ["", *headers]
    rows = []
    for r in report["data"] if lead else ():  # without groups the one row is the total
        names = ([r["window"]] if bucketed else []) + [
            "-" if r["group"].get(g) is None else str(r["group"][g]) for g in group_by]
        rows.append(cells(r, names))
    rows.append(cells(report["total"], ["TOTAL"] + [""] * (width - 1)))
    since = report["since"] or "the beginning"
    until = report["until"] or "now"
    flt = " ".join(f"{k}={v}" for k, v in report["filters"].items())
    span = f"{report['period']} {report['window']}: " if report.get("window") else ""
    head = (f"Spend, {span}from {since} to {until} ({report['timezone']})"
            f"{' where ' + flt if flt else ''}")
    foot = ("\n\nfailed: of the requests, those answered with an error (502, 503, ...): charged "
            "nothing" if report["total"].get("failed_requests") else "")
    return head + "\n\n" + _table(headers, rows, numeric_from=len(headers) - 7) + foot


def format_check(check: Mapping[str, Any]) -> str:
    headers = ["budget", "window", "counter_usd", "ledger_usd", "difference_usd", "ok"]
    rows = [[r["budget"], r["window"], _usd(r["counter_micro"]), _usd(r["ledger_micro"]),
             _usd(r["difference_micro"]), "ok" if r["ok"] else "MISMATCH"]
            for r in check["data"]]  # fmt: skip
    verdict = ("ledger equals the budget counters" if check["ok"]
               else f"{check['mismatches']} budget(s) differ from the ledger")  # fmt: skip
    return (f"Budget counters of the current windows vs the ledger ({check['timezone']}): "
            f"{check['budgets']} budget(s), {verdict}\n\n" + _table(headers, rows, numeric_from=2))
