"""Pure parts: calendar windows, the reservation rule, GCRA, specs, errors, store URLs."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from router.budgets import (
    BudgetExceeded,
    BudgetSpec,
    Calendar,
    Period,
    RateLimited,
    RateLimitSpec,
    Scope,
    StoreUnavailable,
    open_store,
    reservation_amount,
    window_of,
)
from router.budgets.amount import output_cost_micro
from router.budgets.errors import BudgetError
from router.budgets.factory import sqlite_path
from router.budgets.rules import gcra, over_limit

UTC_Z = ZoneInfo("UTC")
SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")


def ts(*args: int, tz: ZoneInfo = UTC_Z) -> float:
    return datetime(*args, tzinfo=tz).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("period", "when", "wid", "start", "reset"),
    [
        ("daily", (2025, 1, 31, 23, 59), "2025-01-31", (2025, 1, 31), (2025, 2, 1)),
        ("weekly", (2025, 1, 15, 8), "2025-W03", (2025, 1, 13), (2025, 1, 20)),
        ("weekly", (2024, 12, 31), "2025-W01", (2024, 12, 30), (2025, 1, 6)),  # ISO year
        ("monthly", (2024, 12, 31, 12), "2024-12", (2024, 12, 1), (2025, 1, 1)),
        ("monthly", (2024, 2, 29), "2024-02", (2024, 2, 1), (2024, 3, 1)),
    ],
)
def test_windows_are_calendar_aligned(
    period: str, when: tuple[int, ...], wid: str, start: tuple[int, ...], reset: tuple[int, ...]
) -> None:
    w = window_of(period, ts(*when, tz=SH), SH)
    assert (w.id, w.start, w.reset_at) == (wid, ts(*start, tz=SH), ts(*reset, tz=SH))
    assert w.contains(ts(*when, tz=SH)) and not w.contains(w.reset_at or 0)


def test_window_follows_the_configured_zone() -> None:
    t = ts(2025, 1, 31, 20, 0)  # 20:00 UTC is 04:00 next day in Shanghai
    assert window_of(Period.DAILY, t, UTC_Z).id == "2025-01-31"
    assert window_of(Period.DAILY, t, SH).id == "2025-02-01"
    assert window_of(Period.MONTHLY, t, SH).id == "2025-02"


def test_dst_days_last_23_and_25_hours() -> None:
    spring = window_of(Period.DAILY, ts(2025, 3, 9, 12, tz=NY), NY)
    fall = window_of(Period.DAILY, ts(2025, 11, 2, 12, tz=NY), NY)
    assert spring.reset_at is not None and fall.reset_at is not None
    assert spring.reset_at - spring.start == 23 * 3600
    assert fall.reset_at - fall.start == 25 * 3600


def test_total_window_never_resets_and_calendar_caches() -> None:
    w = window_of(Period.TOTAL, 0, UTC_Z)
    assert (w.id, w.reset_at) == ("total", None) and w.contains(1e12)
    cal = Calendar("Europe/Paris")
    a = cal.window(Period.DAILY, ts(2025, 6, 1, 10))
    assert cal.window(Period.DAILY, ts(2025, 6, 1, 11)) is a
    assert cal.window(Period.DAILY, ts(2025, 6, 2, 10)).id == "2025-06-02"


def test_reservation_rule() -> None:
    # $10/M output (10_000_000 µ$ per million tokens), 16K output limit, prompt costs 500 µ$
    kw = dict(prompt_cost_micro=500, output_micro_per_1m=10_000_000, output_limit=16_384)
    p = reservation_amount(max_tokens=None, expected_output_tokens=1024, **kw)  # type: ignore[arg-type]
    assert (p.amount_micro, p.output_tokens) == (500 + 163_840, 16_384)
    assert (p.fallback_micro, p.fallback_output_tokens) == (500 + 10_240, 1024)
    assert p.output_cap(p.amount_micro) == 16_384 and p.output_cap(p.fallback_micro) == 1024
    assert p.overshoot_bound_micro == 163_840 - 10_240
    strict = reservation_amount(max_tokens=None, expected_output_tokens=1024, strict=True, **kw)  # type: ignore[arg-type]
    assert strict.fallback_micro is None and strict.amount_micro == p.amount_micro
    given = reservation_amount(max_tokens=100_000, expected_output_tokens=1024, **kw)  # type: ignore[arg-type]
    assert given.fallback_micro is None and given.output_tokens == 16_384  # capped at the limit
    small = reservation_amount(max_tokens=200, expected_output_tokens=1024, **kw)  # type: ignore[arg-type]
    assert (small.amount_micro, small.fallback_micro) == (2500, None)
    free = reservation_amount(
        prompt_cost_micro=0, output_micro_per_1m=0, max_tokens=None, output_limit=8192,
        expected_output_tokens=512,
    )  # fmt: skip
    assert (free.amount_micro, free.fallback_micro) == (0, None)
    assert output_cost_micro(1, 400_000) == 1  # 0.4 µ$ rounds up: never short
    with pytest.raises(ValueError):
        reservation_amount(max_tokens=-1, expected_output_tokens=1, **kw)  # type: ignore[arg-type]


def test_gcra() -> None:
    ok, tat, wait = gcra(None, 100.0, 1, 60)
    assert ok and tat == 101.0 and wait == 0
    tat2: float | None = None
    for _ in range(60):
        ok, tat2, _w = gcra(tat2, 100.0, 1, 60)
        assert ok
    ok, same, wait = gcra(tat2, 100.0, 1, 60)
    assert not ok and same == tat2 and wait == pytest.approx(1.0)


def test_over_limit_rules() -> None:
    b = BudgetSpec(Scope.USER, "ann", Period.DAILY, 100)
    assert not over_limit(b, 60, 40) and over_limit(b, 60, 41)
    assert not over_limit(b, 100, 0)
    blocking = BudgetSpec(Scope.USER, "ann", Period.DAILY, 100, block_zero_cost=True)
    assert over_limit(blocking, 100, 0) and not over_limit(blocking, 99, 0)


def test_spec_validation() -> None:
    b = BudgetSpec("team", "x", "monthly", 5)  # type: ignore[arg-type]
    assert b.scope is Scope.TEAM and b.period is Period.MONTHLY and b.key == "team:x:monthly"
    for bad in [
        lambda: BudgetSpec(Scope.TEAM, "", Period.DAILY, 1),
        lambda: BudgetSpec(Scope.TEAM, "a\nb", Period.DAILY, 1),
        lambda: BudgetSpec(Scope.TEAM, "x", Period.DAILY, -1),
        lambda: BudgetSpec(Scope.TEAM, "x", Period.DAILY, 1.5),  # type: ignore[arg-type]
        lambda: BudgetSpec(Scope.TEAM, "x", Period.DAILY, 10, soft_limit_micro=11),
        lambda: BudgetSpec("org", "x", Period.DAILY, 1),  # type: ignore[arg-type]
        lambda: RateLimitSpec(Scope.KEY, "k", requests_per_minute=0),
    ]:
        with pytest.raises((ValueError, TypeError)):
            bad()


def test_errors_carry_data_for_the_http_layer() -> None:
    e = BudgetExceeded(scope="key", scope_id="app", period="daily", window="2025-01-31",
                       limit_micro=1_000_000, spent_micro=990_000, requested_micro=20_000,
                       reset_at=ts(2025, 2, 1))  # fmt: skip
    assert isinstance(e, BudgetError)
    assert e.details()["reset_at"] == "2025-02-01T00:00:00+00:00"
    assert "$1" in str(e) and "app" in str(e)
    r = RateLimited(scope="key", scope_id="app", kind="tokens", limit_per_minute=10,
                    retry_after_s=0.2)  # fmt: skip
    assert r.retry_after_header == "1" and isinstance(r, BudgetError)
    u = StoreUnavailable(store="redis", reason="ConnectionError")
    assert u.details() == {"store": "redis", "reason": "ConnectionError"}


def test_store_urls(tmp_path: object) -> None:
    assert sqlite_path("sqlite:///./router-data/router.db") == ("./router-data/router.db", {})
    assert sqlite_path("sqlite:////var/lib/r.db?synchronous=full") == (
        "/var/lib/r.db",
        {"synchronous": "full"},
    )
    assert sqlite_path("sqlite:///:memory:")[0] == ":memory:"
    for bad in ["sqlite://relative.db", "sqlite:///"]:
        with pytest.raises(ValueError):
            sqlite_path(bad)
    with pytest.raises(ValueError):
        open_store("postgres://x")
    with pytest.raises(ValueError):
        open_store("redis://127.0.0.1:1/0", fail_mode="maybe")
    s = open_store("sqlite:///:memory:", timezone="Asia/Shanghai")
    assert s.kind == "sqlite" and s.timezone == "Asia/Shanghai"
