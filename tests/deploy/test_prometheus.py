"""The dashboards and alert rules against a real Prometheus scraping real gateways.

One scenario per module (``stack``): a redis-server, the fake upstream, and two gateways sharing
the Redis budget store, as a fleet does —

* ``A``: the test catalogue (tests/gateway/conftest.py) with two worker processes (multiprocess
  metrics) and a policy with budgets;
* ``B``: ``deploy/config.yaml`` itself — the container's config — with the repository's
  ``policies/`` and its OpenAI/DeepSeek models pointed at the fake upstream;

a Prometheus scraping both every second with ``deploy/prometheus/rules/*.yml`` loaded, and
traffic through the ``openai`` SDK: chat, streams, ``auto`` with a task, a fallback, upstream
failures, unknown models, embeddings, two teams and three keys, a policy reload, a refused
policy edit, a key budget spent to the limit and a team budget past 80%, then Redis stopped
(store errors, 503s). Every PromQL expression of the dashboards and of the alert rules must
then return data.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from router.budgets import Period, open_store, window_of
from tests.budgets.conftest import REDIS_SERVER, RedisServer
from tests.deploy.support import (
    DEPLOY,
    NO_PROMETHEUS,
    PROMETHEUS,
    PROMTOOL,
    RULES,
    Prometheus,
    Query,
    alert_rules,
    dashboard_queries,
    finite,
    parse_label_values,
    strip_threshold,
    substitute,
    variable_queries,
)
from tests.gateway.conftest import ENV, GATEWAY_KEY, LIMITED_KEY, POLICY, write_config
from tests.support import REPO, Proc, start_fake_upstream, start_gateway

pytestmark = pytest.mark.slow

APP_KEY = "sk-test-deploy-app-key"
#: B's server.metrics_auth token (deploy/config.yaml); A's /metrics is open and ignores it.
METRICS_TOKEN = "test-deploy-metrics-token"
FAKE_KEY = ENV["FAKE_UPSTREAM_KEY"]
#: Exactly max_tokens=10 completion tokens: the reservation (worst case) equals the cost.
EXACT = [{"role": "user", "content": "[[fake:tokens=10]] budget test"}]
HELLO = [{"role": "user", "content": "Say hello"}]

#: Alert rules the scenario makes fire: their full expression must return data. The others
#: only return data when something is wrong, so their expression is run without its threshold
#: comparison (``x > 0.05`` -> ``x``).
FIRING = {
    "RouterBudgetNearlySpent",    # team ads weekly: 2 requests more of 2.25 (89-99%)
    "RouterBudgetExhausted",      # key limited daily: 2 requests more of 2 (100%)
    "RouterHighErrorRate",        # 502 (broken-alone) and 503 (Redis down): ~10% of requests
    "RouterBudgetStoreErrors",    # Redis stopped
    "RouterPolicyReloadFailed",   # an invalid policy edit
}


def base_policy() -> str:
    """The gateway tests' policy without the Anthropic model, whose litellm path costs seconds
    on the first call: ``auto`` then routes to gpt-4o (reasoning) or gpt-4o-mini (expression)."""
    return "\n".join(line for line in POLICY.splitlines() if "claude-fake" not in line) + "\n"


def budgets(extra: str = "") -> str:
    return base_policy() + (
        "budgets:\n"
        "  global: {daily: {limit_usd: 100}}\n"
        "  teams:\n"
        "    search: {monthly: {limit_usd: 10}}\n" + extra)


@dataclass
class Stack:
    prom: Prometheus
    a: Proc
    b: Proc
    cost_micro: int
    traffic: dict[str, Any]


def _scraped_once_more(prom: Prometheus) -> None:
    """Wait until Prometheus has scraped every target again (so the next events land in a later
    sample than what is already stored: rate() then sees an increase)."""
    def latest() -> float:
        return min(float(s["value"][1]) for s in prom.query("timestamp(up)"))
    t0 = latest()
    deadline = time.monotonic() + 10
    while latest() <= t0:
        assert time.monotonic() < deadline, "Prometheus stopped scraping"
        time.sleep(0.1)


def _write_atomically(path: Path, text: str) -> None:
    """As an editor or the kubelet does: the reloader never reads a half-written file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _wait_metric(gw: Proc, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"{gw.url}/metrics", timeout=5) as r:
            if text in r.read().decode():
                return
        assert time.monotonic() < deadline, f"{text!r} not in {gw.url}/metrics:\n{gw.log()}"
        time.sleep(0.1)


def _ledger_spend(url: str, period: Period, **filters: str) -> int:
    """The ledger's spend in the current window of ``period`` (µ$), filtered."""

    async def spend() -> int:
        store = open_store(url)
        try:
            w = window_of(period, time.time(), store.calendar.tz)
            rows = await store.ledger_query(w.start, w.reset_at or 4e9, (), filters)
            return rows[0].actual_micro if rows else 0
        finally:
            await store.close()

    return asyncio.run(spend())


def _call(fn: Any, **kwargs: Any) -> int:
    try:
        fn(**kwargs)
        return 200
    except openai.APIStatusError as exc:
        return exc.status_code


def _traffic(a_tests: openai.OpenAI, a_limited: openai.OpenAI, b_app: openai.OpenAI
             ) -> list[int]:
    chat = a_tests.chat.completions.create
    out = [
        _call(chat, model="gpt-4o-mini", messages=HELLO),
        _call(chat, model="gpt-4o", messages=HELLO, max_tokens=20),
        _call(chat, model="auto", messages=HELLO, extra_headers={"x-router-task": "reasoning"}),
        _call(chat, model="auto", messages=HELLO, extra_headers={"x-router-task": "expression"}),
        _call(chat, model="broken", messages=HELLO),         # retry, then fallback to gpt-4o
        _call(chat, model="broken-alone", messages=HELLO),   # 502 after a retry
        _call(chat, model="broken-alone", messages=HELLO),
        _call(chat, model="no-such-model", messages=HELLO),  # 404
        _call(a_limited.chat.completions.create, model="gpt-4o-mini", messages=HELLO),
        _call(b_app.chat.completions.create, model="gpt-4o-mini", messages=HELLO),
        _call(b_app.chat.completions.create, model="deepseek-chat", messages=HELLO),
        _call(a_tests.embeddings.create, model="text-embedding-3-small", input="hello"),
    ]
    for client, model in ((a_tests, "gpt-4o-mini"), (a_tests, "auto"), (b_app, "gpt-4o-mini")):
        stream = client.chat.completions.create(model=model, messages=HELLO, stream=True,
                                                extra_headers={"x-router-task": "expression"})
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        out.append(200)
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if PROMETHEUS is None or PROMTOOL is None:
        pytest.skip(NO_PROMETHEUS)
    if REDIS_SERVER is None:
        pytest.skip("redis-server not found: the deploy scenario runs the gateways as a fleet "
                    "on one Redis (apt-get install redis-server; .ci/run does)")
    tmp = tmp_path_factory.mktemp("deploy")
    redis = RedisServer(tmp)
    redis.start()
    started: list[Any] = [redis]
    try:
        fake = start_fake_upstream(tmp)
        started.append(fake)
        dir_a = tmp / "a"
        dir_a.mkdir()
        # A reserves in Redis per request (no leases), so that the Redis outage below shows at
        # once as 503s and store errors; with leases (B, the deploy config) a replica keeps
        # serving from what it has leased (tests/budgets/test_fail_mode.py).
        config_a = write_config(dir_a, fake.url, policy=budgets(), store=redis.url,
                                extra=f"  lease_fraction: 0\n  ledger: {{url: {tmp / 'ledger'}}}")
        env_b = {
            "ROUTER_STORE_URL": redis.url, "ROUTER_POLICY": str(REPO / "policies"),
            "ROUTER_KEY_APP": APP_KEY, "ROUTER_KEY_APP_TEAM": "platform",
            "ROUTER_JOURNAL_PATH": str(tmp / "journal-b.db"),
            # the fleet's ledger archive: a directory both replicas share (the deploy default
            # is PostgreSQL, tests/ledger runs that)
            "ROUTER_LEDGER_EXPORT": "files", "ROUTER_LEDGER_URL": str(tmp / "ledger"),
            "ROUTER_OPENAI_BASE": f"{fake.url}/v1", "ROUTER_DEEPSEEK_BASE": f"{fake.url}/v1",
            "OPENAI_API_KEY": FAKE_KEY, "DEEPSEEK_API_KEY": FAKE_KEY,
            "ROUTER_METRICS_TOKEN": METRICS_TOKEN,
        }
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            fut_a = pool.submit(start_gateway, config_a, dir_a, ENV, ["--workers", "2"])
            fut_b = pool.submit(start_gateway, DEPLOY / "config.yaml", tmp, env_b,
                                ["--host", "127.0.0.1"])
        # both done: keep every gateway that started (so that it is stopped), then fail
        failures = [exc for exc in (fut_a.exception(), fut_b.exception()) if exc is not None]
        started += [f.result() for f in (fut_a, fut_b) if f.exception() is None]
        if failures:
            raise failures[0]
        a, b = started[2], started[3]
        prom = Prometheus(tmp, [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"],
                          sorted(RULES.glob("*.yml")), bearer_token=METRICS_TOKEN)
        prom.start()
        started.append(prom)
        prom.wait_ready()
        prom.wait_for('up{job="federated-router"} == 1')

        def client(gw: Proc, key: str) -> openai.OpenAI:
            return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=30)

        a_tests, a_limited, b_app = client(a, GATEWAY_KEY), client(a, LIMITED_KEY), client(b, APP_KEY)
        raw = a_tests.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", max_tokens=10, messages=EXACT)  # type: ignore[arg-type]
        cost = round(float(raw.headers["x-router-cost-usd"]) * 1e6)
        assert cost > 0

        # Two waves a scrape apart: the first creates the series, the second increases them.
        statuses = _traffic(a_tests, a_limited, b_app)
        _scraped_once_more(prom)
        statuses += _traffic(a_tests, a_limited, b_app)

        # A policy edit adding budgets for key "limited" (2 requests' worth, daily) and team
        # "ads" (2.25 requests' worth, weekly): reloaded without a restart. A budget added
        # mid-period starts from what the ledger holds for its scope (the key's requests above,
        # all of team ads'), so the limits are that plus the requests' worth.
        prior = _ledger_spend(redis.url, Period.DAILY, key="limited")
        prior_team = _ledger_spend(redis.url, Period.WEEKLY, team="ads")
        _write_atomically(dir_a / "policy.yaml", budgets(
            f"    ads: {{weekly: {{limit_usd: {(prior_team + 2.25 * cost) / 1e6:.6f}}}}}\n"
            f"  keys:\n    limited: {{daily: {{limit_usd: {(prior + 2 * cost) / 1e6:.6f}}}}}\n"))
        # both worker processes of A reloaded (each counts its own reload)
        _wait_metric(a, 'router_policy_reloads_total{result="ok"} 2.0')
        limited = [_call(a_limited.chat.completions.create, model="gpt-4o-mini", max_tokens=10,
                         messages=EXACT) for _ in range(3)]
        assert limited == [200, 200, 429], limited
        # An invalid edit: refused, the running policy stays.
        _write_atomically(dir_a / "policy.yaml", budgets() + "no_such_section: true\n")
        _wait_metric(a, 'router_policy_reloads_total{result="error"} 2.0')
        # The budget gauges are published every 5 s: wait for the key budget to show as spent.
        prom.wait_for('router_budget_spent_microdollars{scope="key", scope_id="limited"} '
                      '>= on (scope, scope_id, period) '
                      'router_budget_limit_microdollars', timeout=20)
        statuses += _traffic(a_tests, a_limited, b_app)
        assert {200, 404, 502} <= set(statuses) <= {200, 404, 429, 502}, statuses

        # The budget store goes away: 503 with fail_mode closed, and store errors.
        redis.stop()
        down = [_call(a_tests.chat.completions.create, model="gpt-4o-mini", messages=HELLO)]
        _scraped_once_more(prom)
        down.append(_call(a_tests.chat.completions.create, model="gpt-4o-mini", messages=HELLO))
        assert down == [503, 503], down
        prom.wait_for("router_store_errors_total")
        _scraped_once_more(prom)
        _scraped_once_more(prom)
        yield Stack(prom, a, b, cost, {"statuses": statuses, "limited": limited, "down": down,
                                       "prior": prior})
    finally:
        for thing in reversed(started):
            thing.stop()


# ----------------------------------------------------------------------------- promtool


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMETHEUS)
def test_promtool_check_config_and_rules(tmp_path: Path) -> None:
    # beside the metrics token file it names (a compose secret; see test_container.py)
    config = tmp_path / "prometheus.yml"
    shutil.copy(DEPLOY / "prometheus" / "prometheus.yml", config)
    shutil.copytree(RULES, tmp_path / "rules")
    (tmp_path / "metrics-token").write_text("token\n")
    res = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    rules = sorted(RULES.glob("*.yml"))
    assert rules
    res = subprocess.run([PROMTOOL, "check", "rules", *map(str, rules)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in res.stdout


def test_promtool_check_metrics_on_live_gateways(stack: Stack) -> None:
    """The exposition of both gateways (A merges two workers' files) passes promtool's lint."""
    assert PROMTOOL is not None
    for gw in (stack.a, stack.b):
        req = urllib.request.Request(f"{gw.url}/metrics",
                                     headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
        assert b"router_requests_total" in text
        res = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                             timeout=60)
        assert res.returncode == 0, (res.stdout + res.stderr).decode()


# ----------------------------------------------------------------------------- the queries


def _run(stack: Stack, queries: list[Query]) -> tuple[list[str], list[str]]:
    """Run each query; returns (queries without data, queries whose data is all NaN/Inf)."""
    empty, not_finite = [], []
    for q in queries:
        result = stack.prom.query(substitute(q.expr))
        if not result:
            empty.append(f"{q.where}: {q.expr}")
        elif not finite(result):
            not_finite.append(f"{q.where}: {q.expr} -> {result}")
    return empty, not_finite


def test_every_dashboard_query_returns_data(stack: Stack, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    queries = dashboard_queries()
    assert len(queries) > 40
    empty, not_finite = _run(stack, queries)
    with capsys.disabled():
        print(f"\n[deploy] dashboard queries: {len(queries)} run, "
              f"{len(queries) - len(empty)} returned data, "
              f"{len(queries) - len(empty) - len(not_finite)} with a finite value")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
    # Budgets of a "total" period have no window, hence no finite time to exhaustion; every
    # other query has at least one finite sample.
    assert not not_finite, "dashboard queries with only NaN/Inf:\n" + "\n".join(not_finite)


def test_every_dashboard_variable_has_values(stack: Stack) -> None:
    """``label_values(metric{...}, label)``, as Grafana asks Prometheus' label API."""
    for q in variable_queries():
        match, label = parse_label_values(q.expr)
        params: dict[str, Any] = {"match[]": [substitute(match)]} if match else {}
        values = stack.prom.api(f"label/{label}/values", **params)
        assert values, f"{q.where}: {q.expr} has no values"
    teams = stack.prom.api("label/team/values", **{"match[]": ["router_spend_microdollars_total"]})
    assert {"search", "ads", "platform"} <= set(teams)


def test_every_alert_expression_returns_data(stack: Stack, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    rules = alert_rules()
    assert {r.name for r in rules} >= FIRING
    ran, problems = [], []
    for rule in rules:
        if rule.name in FIRING:
            expr = rule.expr
        else:
            stripped = strip_threshold(rule.expr)
            if stripped is None:
                problems.append(f"{rule.name}: does not fire in the scenario and has no "
                                f"trailing threshold to strip: {rule.expr}")
                continue
            expr = stripped
        ran.append(expr)
        result = stack.prom.query(expr)
        if not result:
            problems.append(f"{rule.name}: no data for {expr}")
        elif not finite(result):
            problems.append(f"{rule.name}: only NaN/Inf for {expr}: {result}")
    with capsys.disabled():
        print(f"\n[deploy] alert expressions: {len(rules)} rules, {len(ran)} run "
              f"({len(FIRING)} in full, firing), {len(ran) - len(problems)} returned data")
    assert not problems, "\n".join(problems)


def test_alert_rules_evaluate_and_the_expected_ones_fire(stack: Stack) -> None:
    """Prometheus loaded the rule files and evaluates every rule without error; the rules the
    scenario triggers are pending or firing, the others inactive."""
    deadline = time.monotonic() + 10
    while True:
        groups = stack.prom.api("rules", type="alert")["groups"]
        state = {r["name"]: r for g in groups for r in g["rules"]}
        active = {n for n, r in state.items() if r["state"] in ("pending", "firing")}
        if active >= FIRING or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(state) == {r.name for r in alert_rules()}
    for name, r in state.items():
        assert r["health"] == "ok", (name, r.get("lastError"))
    assert active >= FIRING, f"expected firing {sorted(FIRING)}, active {sorted(active)}"
    assert "RouterDown" not in active


def test_money_adds_up_in_prometheus(stack: Stack) -> None:
    """Spend in Prometheus (µ$ counters summed over replicas) equals the key budget's gauge:
    the limited key spent exactly two requests of the measured cost on top of what it spent
    before its budget existed (the budget started from that), the limit."""
    q = stack.prom.query
    spent = q('sum(router_spend_microdollars_total{key="limited", model="gpt-4o-mini"})')
    gauge = q('max(router_budget_spent_microdollars{scope="key", scope_id="limited"})')
    limit = q('max(router_budget_limit_microdollars{scope="key", scope_id="limited"})')
    expect = stack.traffic["prior"] + 2 * stack.cost_micro
    assert stack.traffic["prior"] > 0
    assert float(gauge[0]["value"][1]) == float(limit[0]["value"][1]) == expect
    assert float(spent[0]["value"][1]) == expect
    days = q('router_budget_seconds_to_exhaustion{scope="key", scope_id="limited"}')
    assert days and float(days[0]["value"][1]) == 0.0
