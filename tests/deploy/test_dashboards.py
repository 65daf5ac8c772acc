"""The Grafana dashboards: generated from router/metrics.py, valid for file provisioning, and
naming only metrics and labels the gateway exports (as do the alert rules)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.metrics import Metrics
from tests.deploy.support import (
    DASHBOARDS,
    DEPLOY,
    PROVISIONING,
    alert_rules,
    dashboard_queries,
    dashboards,
    load_script,
    panels,
    prometheus_dashboards,
    variable_queries,
)

UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def test_committed_dashboards_are_what_build_py_generates() -> None:
    pytest.importorskip("grafana_foundation_sdk",
                        reason="grafana-foundation-sdk is in the test extra: pip install -e '.[test]'")
    build = load_script(DEPLOY / "grafana" / "build.py", "deploy_grafana_build")
    rendered = build.render()
    assert {p.name for p in rendered} == {p.name for p in DASHBOARDS.glob("*.json")}
    for path, text in rendered.items():
        assert path.read_text() == text, (
            f"{path.name} is out of date: run python deploy/grafana/build.py and commit it")


def test_build_py_refuses_a_label_a_metric_does_not_have() -> None:
    pytest.importorskip("grafana_foundation_sdk")
    build = load_script(DEPLOY / "grafana" / "build.py", "deploy_grafana_build")
    with pytest.raises(KeyError, match="no label 'team'"):
        build.sel(build.M.requests, team="~$team")
    assert build.sel(build.M.spend, team="~$team", model="!none") == \
        'router_spend_microdollars_total{team=~"$team", model!="none"}'


def _contains(big: Any, small: Any, path: str = "") -> list[str]:
    """Where ``small`` has something ``big`` lacks (``big`` may add defaults)."""
    if isinstance(small, dict):
        if not isinstance(big, dict):
            return [path]
        return [m for k, v in small.items()
                for m in ([f"{path}.{k}"] if k not in big else _contains(big[k], v, f"{path}.{k}"))]
    if isinstance(small, list):
        if not isinstance(big, list) or len(big) != len(small):
            return [path]
        return [m for i, (b, s) in enumerate(zip(big, small, strict=True))
                for m in _contains(b, s, f"{path}[{i}]")]
    return [] if big == small else [f"{path}: {small!r} became {big!r}"]


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARDS.glob("*.json")))
def test_dashboard_survives_grafanas_schema_models(name: str) -> None:
    """Parsed by the SDK's models (generated from Grafana's dashboard and panel schemas) and
    encoded again, nothing of the file is lost or changed: every field is one Grafana knows."""
    pytest.importorskip("grafana_foundation_sdk")
    import json

    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    plugins.register_default_plugins()
    d = dashboards()[name]
    back = json.loads(json.dumps(Dashboard.from_json(d), cls=JSONEncoder))
    assert _contains(back, d) == []
    assert _contains({"a": 1}, {"a": 1, "typo": 2}) == [".typo"]


# ----------------------------------------------------------------------------- structure


@pytest.mark.parametrize("name", sorted(prometheus_dashboards()))
def test_dashboard_is_valid_for_grafana_provisioning(name: str) -> None:
    d = dashboards()[name]
    assert d["title"] and UID.match(d["uid"]), d.get("uid")
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    assert "id" not in d or d["id"] is None  # provisioning assigns ids
    assert d["time"]["from"] and d["time"]["to"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for v in variables.values():
        assert v["name"] and v["type"] in {"datasource", "query", "custom", "interval", "constant"}
        if v["type"] == "query":
            assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert v["query"].startswith("label_values(")
            assert v["includeAll"] and v["allValue"] == ".*"
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    used_vars: set[str] = set()
    for p in panels(d):
        assert p["type"] and p["title"], p
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] >= 1 and g["x"] + g["w"] <= 24 and g["h"] >= 1, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        targets = p["targets"]
        assert targets, f"panel {p['title']} has no query"
        refs = [t["refId"] for t in targets]
        assert len(set(refs)) == len(refs) and all(refs), p["title"]
        for t in targets:
            assert t["expr"].strip() and t["datasource"] == p["datasource"]
            used_vars |= set(re.findall(r"\$(\w+)", t["expr"]))
        if p["type"] in {"stat", "bargauge", "piechart", "table"}:
            unit = p["fieldConfig"]["defaults"].get("unit")
            assert unit, f"{p['title']}: no unit"
    for v in variables.values():
        if v["type"] == "query":
            used_vars |= set(re.findall(r"\$(\w+)", v["query"]))
    builtin = {v for v in used_vars if v.startswith("__")}
    assert used_vars - builtin <= set(variables), used_vars - set(variables)


def test_cost_dashboard_has_the_panels_finance_asks_for() -> None:
    d = dashboards()["llm-cost.json"]
    assert d["title"] == "LLM cost"
    variables = {v["name"] for v in d["templating"]["list"]}
    assert {"team", "key", "model"} <= variables
    titles = {p["title"] for p in panels(d)}
    for wanted in ("Spend rate by model", "Spend rate by team", "Spend by model", "Spend by team",
                   "Savings", "Savings by team", "Cost per request", "Cost per request by model",
                   "Tokens per second by model", "Routing mix: requests by task and model",
                   "Budget used", "Days left at the current burn rate",
                   "Budget burn-down: remaining"):
        assert wanted in titles, wanted
    money_panels = [p for p in panels(d) if p["type"] != "row"
                    and any("microdollars" in t["expr"] for t in p["targets"])]
    assert len(money_panels) > 10
    for p in money_panels:  # micro-dollars are shown as dollars, or as a ratio of two sums
        unit = p["fieldConfig"]["defaults"]["unit"]
        assert unit in {"currencyUSD", "percentunit"}, (p["title"], unit)
        for t in p["targets"]:
            if "microdollars" in t["expr"]:
                assert ("/ 1e6" in t["expr"]) == (unit == "currencyUSD"), (p["title"], t["expr"])


def test_health_dashboard_covers_the_gateway() -> None:
    d = dashboards()["gateway-health.json"]
    assert d["title"] == "Gateway health"
    assert {"model", "route", "instance", "job"} <= {v["name"] for v in d["templating"]["list"]}
    exprs = " ".join(t["expr"] for p in panels(d) if p["type"] != "row" for t in p["targets"])
    m = Metrics()
    for collector in (m.requests, m.request_duration, m.overhead, m.upstream_duration, m.ttft,
                      m.fallbacks, m.retries, m.upstream_errors, m.store_errors,
                      m.policy_reloads):
        assert collector._name in exprs, collector._name
    assert "histogram_quantile(0.99" in exprs


# ----------------------------------------------------------------------------- metric names


def exported_names() -> dict[str, tuple[str, ...]]:
    """Every sample name the gateway's collectors produce, with the labels each carries."""
    out: dict[str, tuple[str, ...]] = {}
    for c in Metrics().registry._collector_to_names:  # every collector registered
        labels = tuple(c._labelnames)
        name, kind = c._name, c._type
        if kind == "counter":
            out[f"{name}_total"] = labels
        elif kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                out[name + suffix] = (*labels, "le") if suffix == "_bucket" else labels
        else:
            out[name] = labels
    return out


SELECTOR = re.compile(r"\b(router_[a-z_]+)(?:\{([^}]*)\})?")
BY = re.compile(r"\b(?:by|on|ignoring|without)\s*\(([^)]*)\)")


def _check_expr(where: str, expr: str, names: dict[str, tuple[str, ...]]) -> list[str]:
    problems = []
    used = SELECTOR.findall(expr)
    labels_here: set[str] = {"job", "instance", "le"}
    for name, matchers in used:
        if name not in names:
            problems.append(f"{where}: {name} is not exported by router/metrics.py")
            continue
        labels_here |= set(names[name])
        for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
            if label not in names[name] and label not in ("job", "instance"):
                problems.append(f"{where}: {name} has no label {label!r}")
    for group in BY.findall(expr):
        for label in (x.strip() for x in group.split(",") if x.strip()):
            if label not in labels_here:
                problems.append(f"{where}: no metric in the expression has label {label!r}")
    return problems


def test_dashboards_and_rules_name_only_exported_metrics_and_labels() -> None:
    names = exported_names()
    assert "router_spend_microdollars_total" in names
    exprs: list[tuple[str, str]] = [(q.where, q.expr) for q in dashboard_queries()]
    exprs += [(q.where, q.expr) for q in variable_queries()]
    exprs += [(f"alert {r.name}", r.expr) for r in alert_rules()]
    problems: list[str] = []
    for where, expr in exprs:
        problems += _check_expr(where, expr, names)
    assert not problems, "\n".join(problems)
    # and the dashboards use every collector the gateway declares
    text = " ".join(e for _, e in exprs)
    unused = [n for n in names if not n.endswith(("_sum", "_count")) and n not in text]
    assert not unused, f"metrics no dashboard or alert shows: {unused}"


def test_check_expr_catches_drift() -> None:
    names = exported_names()
    assert _check_expr("x", "sum by (team) (rate(router_spend_microdollars_total[1m]))", names) == []
    assert _check_expr("x", "rate(router_requests_total{team=\"a\"}[1m])", names)
    assert _check_expr("x", "router_budget_hours_to_exhaustion", names)
    assert _check_expr("x", "sum by (teem) (router_spend_microdollars_total)", names)


# ----------------------------------------------------------------------------- provisioning


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_grafana_provisioning_files() -> None:
    ds_files = sorted((PROVISIONING / "datasources").glob("*.yaml"))
    db_files = sorted((PROVISIONING / "dashboards").glob("*.yaml"))
    assert ds_files and db_files
    datasources = [d for f in ds_files for d in _yaml(f)["datasources"]]
    for f in ds_files + db_files:
        assert _yaml(f)["apiVersion"] == 1, f
    prom = [d for d in datasources if d["type"] == "prometheus"]
    assert len(prom) == 1 and prom[0]["isDefault"] and prom[0]["access"] == "proxy"
    assert prom[0]["url"].startswith("http") and prom[0]["uid"] and prom[0]["name"]
    providers = [p for f in db_files for p in _yaml(f)["providers"]]
    assert len(providers) == 1
    provider = providers[0]
    assert provider["type"] == "file" and provider["name"] and provider["folder"]
    # docker-compose mounts the dashboards where the provider reads them
    compose = _yaml(DEPLOY / "docker-compose.yml")
    grafana_mounts = dict(v.rsplit(":", 1)[0].split(":", 1)
                          for v in compose["services"]["grafana"]["volumes"] if v.startswith("./"))
    assert grafana_mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert grafana_mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    uids = [d["uid"] for d in dashboards().values()]
    assert len(uids) == len(set(uids)) and len(uids) >= 3
    # the spend ledger's dashboard has its PostgreSQL data source provisioned
    pg = [d for d in datasources if d["type"] == "grafana-postgresql-datasource"]
    assert len(pg) == 1 and pg[0]["uid"] and pg[0]["jsonData"]["database"]
    assert pg[0]["secureJsonData"]["password"].startswith("$")  # from the environment
