"""Build the Grafana dashboards from the collectors router/metrics.py declares.

    python deploy/grafana/build.py           # (re)write deploy/grafana/dashboards/*.json
    python deploy/grafana/build.py --check   # exit 1 if a committed file differs from a fresh build

Every metric name and label in a query comes from a collector object of
``router.metrics.Metrics`` (``sel(M.spend, team=...)``), never from a string typed here: renaming
a metric or dropping a label breaks this script, and tests/deploy/test_dashboards.py fails until
the JSON is regenerated. The dashboards are built with Grafana's own dashboards-as-code SDK
(``grafana-foundation-sdk``, pinned in pyproject's ``test`` extra, since the output must be
byte-identical from one run to the next).

Money is counted in integer micro-dollars; every money query divides by 1e6 and the panels show
USD. Template variables: ``$datasource``, and ``$team``, ``$key``, ``$model`` (cost) or ``$job``,
``$instance``, ``$route``, ``$model`` (health); "All" is the regex ``.*``.

"Spend ledger" reads the PostgreSQL table the ledger exporter writes (router/budgets/export/
postgres.py; its columns are checked against the table's DDL here), for months of history:
``$ledger`` (a PostgreSQL data source), ``$table``, ``$bucket`` (day, week, month), ``$team``,
``$user``, ``$key``, ``$model`` (multi-value lists; "All" is every value).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from grafana_foundation_sdk.builders import bargauge, piechart, prometheus, stat, table, timeseries  # noqa: E402
from grafana_foundation_sdk.builders import common as cb  # noqa: E402
from grafana_foundation_sdk.builders import dashboard as db  # noqa: E402
from grafana_foundation_sdk.cog import builder as cogbuilder  # noqa: E402
from grafana_foundation_sdk.cog import variants as cogvariants  # noqa: E402
from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: E402
from grafana_foundation_sdk.cog.runtime import UnknownDataquery  # noqa: E402
from grafana_foundation_sdk.models import common as cm  # noqa: E402
from grafana_foundation_sdk.models import dashboard as dm  # noqa: E402

from router.budgets.export.postgres import COLUMNS, SCHEMA  # noqa: E402
from router.metrics import Metrics  # noqa: E402

M = Metrics()
OUT = HERE / "dashboards"
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
#: Labels Prometheus adds to every scraped sample (not declared by the collectors).
TARGET_LABELS = frozenset({"job", "instance"})
USD = "1e6"  # micro-dollars per dollar (PromQL literal)

# ----------------------------------------------------------------------------- PromQL helpers


def _kind(collector: Any) -> str:
    return str(collector._type)


def labels_of(collector: Any) -> tuple[str, ...]:
    return tuple(collector._labelnames)


def sample(collector: Any, suffix: str = "") -> str:
    """The sample name Prometheus stores: counters get ``_total``; histograms a suffix."""
    name = str(collector._name)
    kind = _kind(collector)
    if kind == "counter":
        assert not suffix, name
        return f"{name}_total"
    if kind == "histogram":
        assert suffix in {"_bucket", "_sum", "_count"}, (name, suffix)
        return name + suffix
    assert kind == "gauge" and not suffix, (name, kind, suffix)
    return name


def sel(collector: Any, suffix: str = "", **match: str) -> str:
    """``metric{label op "value"}``. A value starting with ``~`` is a regex match (``=~``),
    ``!~`` a negative one, ``!`` a negative equality; anything else an equality. Every label
    must be one the collector declares (or ``job``/``instance``)."""
    allowed = set(labels_of(collector)) | TARGET_LABELS
    parts = []
    for label, value in match.items():
        if label not in allowed:
            raise KeyError(f"{collector._name} has no label {label!r} (has {sorted(allowed)})")
        if value.startswith("!~"):
            parts.append(f'{label}!~"{value[2:]}"')
        elif value.startswith("~"):
            parts.append(f'{label}=~"{value[1:]}"')
        elif value.startswith("!"):
            parts.append(f'{label}!="{value[1:]}"')
        else:
            parts.append(f'{label}="{value}"')
    return sample(collector, suffix) + ("{" + ", ".join(parts) + "}" if parts else "")


def by(labels: Iterable[str], collector: Any | None = None) -> str:
    labels = tuple(labels)
    if collector is not None:
        allowed = set(labels_of(collector)) | TARGET_LABELS | {"le"}
        missing = [lb for lb in labels if lb not in allowed]
        if missing:
            raise KeyError(f"{collector._name} has no label(s) {missing}")
    return f"by ({', '.join(labels)}) " if labels else ""


def rate(collector: Any, group: Iterable[str] = (), window: str = "$__rate_interval",
         fn: str = "rate", **match: str) -> str:
    suffix = "_bucket" if _kind(collector) == "histogram" else ""
    return f"sum {by(group, collector)}({fn}({sel(collector, suffix, **match)}[{window}]))"


def increase(collector: Any, group: Iterable[str] = (), **match: str) -> str:
    return rate(collector, group, window="$__range", fn="increase", **match)


def quantile(q: float, collector: Any, group: Iterable[str] = (), **match: str) -> str:
    group = (*tuple(group), "le")
    return f"histogram_quantile({q}, {rate(collector, group, **match)})"


def per_budget(collector: Any, agg: str = "max") -> str:
    """Budget gauges: every replica publishes the same shared numbers; keep one per budget."""
    return f"{agg} {by(('scope', 'scope_id', 'period'), collector)}({sel(collector)})"


# ----------------------------------------------------------------------------- panel helpers


class Panels:
    """Collects the rows and panels of one dashboard, numbering panels and queries."""

    def __init__(self, dashboard: db.Dashboard, ds: dm.DataSourceRef | None = None) -> None:
        self.dashboard = dashboard
        self.ds = ds or DS
        self.next_id = 1

    def row(self, title: str) -> None:
        self.dashboard.with_row(db.Row(title).id(self._id()))

    def add(self, panel: Any, *queries: Any, w: int = 8, h: int = 8,
            description: str = "") -> None:
        panel.id(self._id()).datasource(self.ds).span(w).height(h)
        if description:
            panel.description(description)
        for i, q in enumerate(queries):
            panel.with_target(q.ref_id(chr(ord("A") + i)).datasource(self.ds))
        self.dashboard.with_panel(panel)

    def _id(self) -> int:
        n = self.next_id
        self.next_id += 1
        return n


def query(expr: str, legend: str = "", *, instant: bool = False,
          table_format: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr)
    if legend:
        q.legend_format(legend)
    if instant:
        q.instant()
    else:
        q.range()
    if table_format:
        q.format(dm_prom_table())
    return q


def dm_prom_table() -> Any:
    from grafana_foundation_sdk.models import prometheus as pm

    return pm.PromQueryFormat.TABLE


def steps(*pairs: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=v, color=c) for v, c in pairs])


def ts(title: str, unit: str, *, stacked: bool = False, bars: bool = False) -> timeseries.Panel:
    p = (timeseries.Panel().title(title).unit(unit).fill_opacity(10)
         .legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
                 .placement(cm.LegendPlacement.BOTTOM).show_legend(True)
                 .calcs(["mean", "max", "lastNotNull"])))
    if stacked:
        p.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    if bars:
        p.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80)
    return p


def big(title: str, unit: str, decimals: int | None = None,
        thresholds: db.ThresholdsConfig | None = None) -> stat.Panel:
    p = (stat.Panel().title(title).unit(unit).graph_mode(cm.BigValueGraphMode.NONE)
         .color_mode(cm.BigValueColorMode.VALUE)
         .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
         .thresholds(thresholds or steps((None, "blue"))))
    if decimals is not None:
        p.decimals(decimals)
    return p


def bars(title: str, unit: str, thresholds: db.ThresholdsConfig | None = None) -> bargauge.Panel:
    return (bargauge.Panel().title(title).unit(unit)
            .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
            .orientation(cm.VizOrientation.HORIZONTAL)
            .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .thresholds(thresholds or steps((None, "blue"))))


def variable(name: str, label: str, query_text: str) -> db.QueryVariable:
    return (db.QueryVariable(name).label(label).query(query_text).datasource(DS)
            .multi(True).include_all(True).all_value(".*")
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC))


def base_dashboard(title: str, uid: str, description: str) -> db.Dashboard:
    return (db.Dashboard(title).uid(uid).description(description)
            .tags(["federated-router", "llm"]).editable().refresh("30s").time("now-6h", "now")
            .timezone("browser").tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .with_variable(db.DatasourceVariable("datasource").label("Data source")
                           .type("prometheus")))


# ----------------------------------------------------------------------------- SQL helpers

PG_TYPE = "grafana-postgresql-datasource"
PG = dm.DataSourceRef(type_val=PG_TYPE, uid="${ledger}")
#: The ledger table's columns, read from the DDL the exporter runs: a renamed column breaks
#: this script (and tests/ledger/test_dashboard.py runs every query on a real PostgreSQL).
TABLE_COLUMNS = frozenset(line.split()[0] for line in SCHEMA.splitlines()
                          if line.startswith("    ") and not line.strip().startswith(")"))


def col(name: str) -> str:
    """A column of the ledger table, checked."""
    if name not in TABLE_COLUMNS:
        raise KeyError(f"the ledger table has no column {name!r} (has {sorted(TABLE_COLUMNS)})")
    return name


class Sql(cogbuilder.Builder[cogvariants.Dataquery]):
    """A raw SQL target of Grafana's PostgreSQL data source (the SDK ships no builder for it;
    this one gives the JSON the data source's query editor saves in code mode)."""

    def __init__(self, sql: str, fmt: str = "table") -> None:
        self.sql = " ".join(sql.split())
        self.fmt = fmt
        self._ref = "A"
        self._ds = PG

    def ref_id(self, ref: str) -> Sql:
        self._ref = ref
        return self

    def datasource(self, ds: dm.DataSourceRef) -> Sql:
        self._ds = ds
        return self

    def build(self) -> cogvariants.Dataquery:
        return UnknownDataquery({"refId": self._ref, "datasource": self._ds.to_json(),
                                 "editorMode": "code", "format": self.fmt, "rawQuery": True,
                                 "rawSql": self.sql})


#: Each filter variable: the expression it filters (a missing key or user reads as '-').
LEDGER_FILTERS = {"team": col(COLUMNS["team"]),
                  "user": f"coalesce({col(COLUMNS['user'])}, '-')",
                  "key": f"coalesce({col(COLUMNS['key'])}, '-')",
                  "model": col(COLUMNS["model"])}  # fmt: skip
WHERE = (f"$__timeFilter({col('ts')}) AND "
         + " AND ".join(f"{expr} IN (${name})" for name, expr in LEDGER_FILTERS.items()))
SPEND = f"sum({col('actual_micro')}) / 1e6"
REFERENCE = f"sum({col('reference_micro')}) / 1e6"
SAVED = f"sum({col('reference_micro')} - {col('actual_micro')}) / 1e6"


def sql_variable(name: str, label: str, expr: str) -> db.QueryVariable:
    return (db.QueryVariable(name).label(label).datasource(PG)
            .query(f"SELECT DISTINCT {expr} FROM $table WHERE $__timeFilter({col('ts')}) "
                   "ORDER BY 1")
            .multi(True).include_all(True)
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC))


def over_time(group: str, value: str = SPEND) -> Sql:
    """One series per ``group`` value, bucketed by ``$bucket``."""
    return Sql(f"SELECT date_trunc('$bucket', {col('ts')}) AS time, {group} AS metric, "
               f"{value} AS value FROM $table WHERE {WHERE} GROUP BY 1, 2 ORDER BY 1, 2",
               "time_series")


def top(group: str, label: str, limit: int = 20) -> Sql:
    return Sql(f"SELECT {group} AS \"{label}\", count(*) AS \"Requests\", "
               f"{SPEND} AS \"Spend\", {REFERENCE} AS \"Reference cost\", "
               f"{SAVED} AS \"Savings\" FROM $table WHERE {WHERE} "
               f"GROUP BY 1 ORDER BY \"Spend\" DESC LIMIT {limit}")


def money_table(title: str) -> table.Panel:
    """A table whose money columns show USD (Requests stays a count)."""
    return (table.Panel().title(title).unit("currencyUSD")
            .with_override(dm.MatcherConfig(id_val="byName", options="Requests"),
                           [dm.DynamicConfigValue(id_val="unit", value="short")]))


# ----------------------------------------------------------------------------- LLM cost

COST_HELP = ("Money is counted by the gateway in integer micro-dollars "
             "(router_*_microdollars_total) and shown here in USD. Savings = what the same "
             "requests would have cost on the policy's reference model, minus what they cost.")


def llm_cost() -> db.Dashboard:
    d = base_dashboard("LLM cost", "router-llm-cost", COST_HELP)
    d.with_variable(variable("team", "Team", f"label_values({sample(M.spend)}, team)"))
    d.with_variable(variable("key", "Key",
                             f'label_values({sample(M.spend)}{{team=~"$team"}}, key)'))
    d.with_variable(variable("model", "Model", f"label_values({sample(M.spend)}, model)"))
    p = Panels(d)
    who = {"team": "~$team", "key": "~$key"}
    f = {**who, "model": "~$model"}
    answered = {"route": "~chat|embeddings", "model": "~$model", "status": "~2.."}

    spend_range = f"{increase(M.spend, **f)} / {USD}"
    ref_range = f"{increase(M.reference_spend, **who)} / {USD}"
    p.row("Spend over the selected range")
    p.add(big("Spend", "currencyUSD", 2), query(spend_range, instant=True), w=4, h=5,
          description="Actual spend of the selected teams, keys and models.")
    p.add(big("Cost on the reference model", "currencyUSD", 2),
          query(ref_range, instant=True), w=4, h=5,
          description="What the same requests would have cost on the policy's reference model "
                      "(team and key filters apply; the model filter does not).")
    p.add(big("Savings", "currencyUSD", 2, steps((None, "red"), (0, "green"))),
          query(f"({increase(M.reference_spend, **who)} - {increase(M.spend, **who)}) / {USD}",
                instant=True), w=4, h=5,
          description="Reference-model cost minus actual spend (team and key filters apply).")
    p.add(big("Savings rate", "percentunit", 1, steps((None, "red"), (0, "green"))),
          query(f"1 - {increase(M.spend, **who)} / {increase(M.reference_spend, **who)}",
                instant=True), w=4, h=5,
          description="Share of the reference-model cost that routing saved.")
    p.add(big("Cost per request", "currencyUSD", 6),
          query(f"{increase(M.spend, model='~$model')} / {increase(M.requests, **answered)} "
                f"/ {USD}", instant=True), w=4, h=5,
          description="Spend divided by answered (2xx) requests, for the selected models. "
                      "router_requests_total has no team or key label, so those filters do "
                      "not apply here.")
    p.add(big("Requests answered", "short", 0), query(increase(M.requests, **answered),
                                                      instant=True), w=4, h=5)

    p.row("Spend rate")
    p.add(ts("Spend rate by model", "currencyUSD", stacked=True),
          query(f"{rate(M.spend, ['model'], **f)} * 3600 / {USD}", "{{model}}"), w=12,
          description="USD per hour.")
    p.add(ts("Spend rate by team", "currencyUSD", stacked=True),
          query(f"{rate(M.spend, ['team'], **f)} * 3600 / {USD}", "{{team}}"), w=12,
          description="USD per hour.")
    p.add(ts("Actual vs reference-model spend", "currencyUSD"),
          query(f"{rate(M.spend, **who)} * 3600 / {USD}", "actual"),
          query(f"{rate(M.reference_spend, **who)} * 3600 / {USD}", "reference model"),
          w=12, description="USD per hour; the gap is the saving.")
    p.add(ts("Savings rate by team", "currencyUSD", stacked=True),
          query(f"({rate(M.reference_spend, ['team'], **who)} - {rate(M.spend, ['team'], **who)})"
                f" * 3600 / {USD}", "{{team}}"), w=12,
          description="USD per hour saved against the reference model.")
    p.add(ts("Cost per request by model", "currencyUSD"),
          query(f"{rate(M.spend, ['model'], model='~$model')} / "
                f"{rate(M.requests, ['model'], **answered)} / {USD}", "{{model}}"), w=12,
          description="Average USD per answered request.")
    p.add(ts("Spend rate by task", "currencyUSD", stacked=True),
          query(f"{rate(M.spend, ['task'], **f)} * 3600 / {USD}", "{{task}}"), w=12,
          description="USD per hour by task class (reasoning, expression; none = not classified).")

    p.row("Cumulative spend over the selected range")
    p.add(bars("Spend by model", "currencyUSD"),
          query(f"{increase(M.spend, ['model'], **f)} / {USD}", "{{model}}", instant=True), w=8)
    p.add(bars("Spend by team", "currencyUSD"),
          query(f"{increase(M.spend, ['team'], **f)} / {USD}", "{{team}}", instant=True), w=8)
    p.add(bars("Savings by team", "currencyUSD", steps((None, "red"), (0, "green"))),
          query(f"({increase(M.reference_spend, ['team'], **who)} - "
                f"{increase(M.spend, ['team'], **who)}) / {USD}", "{{team}}", instant=True),
          w=8)
    p.add(table.Panel().title("Spend by team, key and model").unit("currencyUSD")
          .with_transformation(dm.DataTransformerConfig(id_val="organize", options={
              "excludeByName": {"Time": True},
              "renameByName": {"Value": "Spend (USD)"}})),
          query(f"{increase(M.spend, ['team', 'key', 'model'], **f)} / {USD}", instant=True,
                table_format=True), w=24, h=8)

    p.row("Tokens")
    p.add(ts("Tokens per second by model", "short", stacked=True),
          query(rate(M.prompt_tokens, ["model"], model="~$model"), "{{model}} prompt"),
          query(rate(M.completion_tokens, ["model"], model="~$model"), "{{model}} completion"),
          w=12)
    p.add(bars("Tokens by model", "short"),
          query(increase(M.prompt_tokens, ["model"], model="~$model"), "{{model}} prompt",
                instant=True),
          query(increase(M.completion_tokens, ["model"], model="~$model"), "{{model}} completion",
                instant=True), w=12)

    p.row("Routing")
    p.add(ts("Routing mix: requests by task and model", "reqps", stacked=True),
          query(rate(M.requests, ["task", "model"], route="chat", model="~$model",
                     status="~2.."), "{{task}} → {{model}}"), w=12,
          description="Answered chat requests per second, by the task class the request was "
                      "sorted into and the model that answered.")
    p.add(piechart.Panel().title("Routing mix over the range").unit("short")
          .pie_type(piechart_type())
          .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)),
          query(increase(M.requests, ["task", "model"], route="chat", model="~$model",
                         status="~2.."), "{{task}} → {{model}}", instant=True), w=6)
    p.add(ts("Classifier outcomes", "reqps", stacked=True),
          query(rate(M.classifications, ["task", "band"]), "{{task}} {{band}}"), w=6,
          description="Requests classified per second, by task and confidence band.")
    p.add(ts("Routing mix by difficulty: requests by task and difficulty band", "reqps",
             stacked=True),
          query(rate(M.classifications, ["task", "difficulty"]), "{{task}} {{difficulty}}"),
          w=12, description="Requests per second by task class and the difficulty band the "
                            "estimate put them in (easy, medium, hard; none: the policy has no "
                            "difficulty section). Easy prompts may go below their task's bar, "
                            "hard ones need more (docs/policy.md).")
    p.add(piechart.Panel().title("Difficulty mix over the range").unit("short")
          .pie_type(piechart_type())
          .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)),
          query(increase(M.classifications, ["task", "difficulty"]),
                "{{task}} {{difficulty}}", instant=True), w=12)

    p.row("Budgets")
    used = f"{per_budget(M.budget_spent)} / {per_budget(M.budget_limit)}"
    p.add(bars("Budget used", "percentunit",
               steps((None, "green"), (0.8, "orange"), (0.99, "red"))).min(0).max(1),
          query(used, "{{scope}} {{scope_id}} {{period}}", instant=True), w=8,
          description="Spend (settled + reserved) over the limit, per budget and current window.")
    p.add(bars("Days left at the current burn rate", "d",
               steps((None, "red"), (1, "orange"), (7, "green"))),
          query(f"{per_budget(M.budget_seconds_left, 'min')} / 86400",
                "{{scope}} {{scope_id}} {{period}}", instant=True), w=8,
          description="Remaining budget over the window's average burn rate so far, in days "
                      "(∞: nothing spent yet, or a total budget without a window).")
    p.add(ts("Budget burn-down: remaining", "currencyUSD"),
          query(f"{per_budget(M.budget_remaining)} / {USD}",
                "{{scope}} {{scope_id}} {{period}}"), w=8,
          description="Limit minus spend, per budget (USD). Resets at the start of each window.")
    p.add(table.Panel().title("Budgets").unit("currencyUSD")
          .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
          .with_transformation(dm.DataTransformerConfig(id_val="organize", options={
              "excludeByName": {"Time": True},
              "renameByName": {"Value #A": "Limit (USD)", "Value #B": "Spent (USD)",
                               "Value #C": "Remaining (USD)", "Value #D": "Days left"}}))
          .override_by_name("Days left", [dm.DynamicConfigValue(id_val="unit", value="d")]),
          query(f"{per_budget(M.budget_limit)} / {USD}", instant=True, table_format=True),
          query(f"{per_budget(M.budget_spent)} / {USD}", instant=True, table_format=True),
          query(f"{per_budget(M.budget_remaining)} / {USD}", instant=True, table_format=True),
          query(f"{per_budget(M.budget_seconds_left, 'min')} / 86400", instant=True,
                table_format=True), w=24, h=8)
    return d


def piechart_type() -> Any:
    from grafana_foundation_sdk.models import piechart as pcm

    return pcm.PieChartType.DONUT


# ----------------------------------------------------------------------------- Gateway health

HEALTH_HELP = ("Traffic, errors, latency and the gateway's own overhead; upstream failures, "
               "retries, fallbacks and circuits; budget-store errors and policy reloads.")


def gateway_health() -> db.Dashboard:
    d = base_dashboard("Gateway health", "router-gateway-health", HEALTH_HELP)
    d.with_variable(variable("job", "Job", f"label_values({sample(M.requests)}, job)"))
    d.with_variable(variable("instance", "Replica",
                             f'label_values({sample(M.requests)}{{job=~"$job"}}, instance)'))
    d.with_variable(variable("route", "Route", f"label_values({sample(M.requests)}, route)"))
    d.with_variable(variable("model", "Model", f"label_values({sample(M.requests)}, model)"))
    p = Panels(d)
    t = {"job": "~$job", "instance": "~$instance"}
    req = {**t, "route": "~$route", "model": "~$model"}
    err5 = {**req, "status": "~5.."}

    p.row("Traffic")
    p.add(big("Requests per second", "reqps", 2), query(rate(M.requests, **req), instant=True),
          w=4, h=5)
    p.add(big("5xx ratio", "percentunit", 2, steps((None, "green"), (0.01, "orange"),
                                                   (0.05, "red"))),
          query(f"({rate(M.requests, **err5)} or vector(0)) / {rate(M.requests, **req)}",
                instant=True), w=4, h=5)
    p.add(big("Gateway overhead p99", "s", 4, steps((None, "green"), (0.005, "orange"),
                                                    (0.01, "red"))),
          query(quantile(0.99, M.overhead, route="~$route", **t), instant=True), w=4, h=5)
    p.add(big("Replicas up", "short", 0, steps((None, "red"), (1, "green"))),
          query('sum(up{job=~"$job", instance=~"$instance"})', instant=True), w=4, h=5)
    p.add(big("Fallbacks per second", "reqps", 3),
          query(rate(M.fallbacks, **t), instant=True), w=4, h=5)
    p.add(big("Store errors per second", "short", 3, steps((None, "green"), (1e-9, "red"))),
          query(rate(M.store_errors, **t), instant=True), w=4, h=5)
    p.add(ts("Requests by status", "reqps", stacked=True),
          query(rate(M.requests, ["status"], **req), "{{status}}"), w=12)
    p.add(ts("Requests by route and model", "reqps", stacked=True),
          query(rate(M.requests, ["route", "model"], **req), "{{route}} {{model}}"), w=12,
          description="model = none: no model answered (refused before the call, or every "
                      "attempt failed).")
    p.add(ts("Error ratio by route", "percentunit"),
          query(f"{rate(M.requests, ['route'], **{**req, 'status': '~5..'})} / "
                f"{rate(M.requests, ['route'], **req)}", "{{route}} 5xx"),
          query(f"{rate(M.requests, ['route'], **{**req, 'status': '~4..'})} / "
                f"{rate(M.requests, ['route'], **req)}", "{{route}} 4xx"), w=24)

    p.row("Latency")
    for title, coll, match in (("Request duration (client's view)", M.request_duration,
                                {**t, "route": "~$route"}),
                               ("Gateway overhead", M.overhead, {**t, "route": "~$route"})):
        p.add(ts(title, "s"),
              query(quantile(0.5, coll, **match), "p50"),
              query(quantile(0.9, coll, **match), "p90"),
              query(quantile(0.99, coll, **match), "p99"), w=12,
              description="Gateway overhead: time spent in the gateway itself, before the "
                          "upstream call and after its answer." if coll is M.overhead else "")
    p.add(ts("Upstream duration by model (p50, p99)", "s"),
          query(quantile(0.5, M.upstream_duration, ["model"], model="~$model", **t),
                "{{model}} p50"),
          query(quantile(0.99, M.upstream_duration, ["model"], model="~$model", **t),
                "{{model}} p99"), w=12)
    p.add(ts("Time to first token by model (p50, p90)", "s"),
          query(quantile(0.5, M.ttft, ["model"], model="~$model", **t), "{{model}} p50"),
          query(quantile(0.9, M.ttft, ["model"], model="~$model", **t), "{{model}} p90"), w=12,
          description="Streaming requests: from the request's arrival to the first byte relayed.")

    p.row("Upstreams")
    p.add(ts("Upstream errors by model and reason", "short", stacked=True),
          query(rate(M.upstream_errors, ["model", "reason"], model="~$model", **t),
                "{{model}} {{reason}}"), w=8, description="Failed upstream attempts per second.")
    p.add(ts("Retries by model", "short", stacked=True),
          query(rate(M.retries, ["model"], model="~$model", **t), "{{model}}"), w=8,
          description="Upstream attempts per second that were retries of the same model.")
    p.add(ts("Fallbacks", "reqps", stacked=True),
          query(rate(M.fallbacks, ["from_model", "to_model"], **t),
                "{{from_model}} → {{to_model}}"), w=8,
          description="Requests per second answered by a fallback model.")
    p.add(ts("Circuits by model (0 closed, 1 half-open, 2 open)", "short"),
          query(f"max by (model) ({sel(M.circuit_state, model='~$model', **t)})", "{{model}}"),
          w=12, description="A model whose consecutive failures reached "
                            "server.circuit_breaker.failure_threshold is open: routing and "
                            "fallbacks pass over it until a probe after the cool-down succeeds. "
                            "The worst state among the replicas (each keeps its own).")
    p.add(ts("Circuit openings by model", "short", bars=True),
          query(rate(M.circuit_opened, ["model"], model="~$model", **t, fn="increase"),
                "{{model}}"), w=12,
          description="Circuits opened (failures reached the threshold, or a probe failed).")

    p.row("Budget store and policy")
    p.add(ts("Budget-store errors by operation", "short", bars=True),
          query(rate(M.store_errors, ["op"], **t, fn="increase"), "{{op}}"), w=8,
          description="Failed budget-store operations (Redis unreachable: with fail_mode "
                      "closed, requests get 503).")
    p.add(ts("Policy reloads by result", "short", bars=True),
          query(rate(M.policy_reloads, ["result"], **t, fn="increase"), "{{result}}"), w=8,
          description="A refused edit (error) leaves the running policy in place; the "
                      "gateway log says why.")
    p.add(bars("Policy reloads since each replica started", "short",
               steps((None, "green"))),
          query(f"sum by (instance, result) ({sel(M.policy_reloads, **t)})",
                "{{instance}} {{result}}", instant=True), w=8)
    return d


# ----------------------------------------------------------------------------- spend ledger

LEDGER_HELP = ("Months of spend from the ledger's archive in PostgreSQL (table router_ledger, "
               "written by the gateway's elected exporter, a few seconds behind): every "
               "request once, in integer micro-dollars, shown in USD. Savings = what the same "
               "requests would have cost on the policy's reference model, minus what they cost.")


def spend_ledger() -> db.Dashboard:
    d = (db.Dashboard("Spend ledger").uid("router-spend-ledger").description(LEDGER_HELP)
         .tags(["federated-router", "llm", "finance"]).editable().refresh("5m")
         .time("now-90d", "now").timezone("browser").tooltip(dm.DashboardCursorSync.CROSSHAIR)
         .with_variable(db.DatasourceVariable("ledger").label("Ledger database").type(PG_TYPE))
         .with_variable(db.ConstantVariable("table").value("router_ledger")
                        .description("store.ledger.table of the gateway's config"))
         .with_variable(db.CustomVariable("bucket").label("Bucket").values("day,week,month")
                        .current(dm.VariableOption(selected=True, text="month",
                                                   value="month"))))
    for name, label in (("team", "Team"), ("user", "User"), ("key", "Key"), ("model", "Model")):
        d.with_variable(sql_variable(name, label, LEDGER_FILTERS[name]))
    p = Panels(d, PG)

    p.row("Over the selected range")
    for title, expr, unit, colours in (
            ("Spend", SPEND, "currencyUSD", None),
            ("Cost on the reference model", REFERENCE, "currencyUSD", None),
            ("Savings", SAVED, "currencyUSD", steps((None, "red"), (0, "green"))),
            ("Savings rate", f"1 - sum({col('actual_micro')})::float8 / "
                             f"nullif(sum({col('reference_micro')}), 0)", "percentunit",
             steps((None, "red"), (0, "green"))),
            ("Requests", "count(*)", "short", None),
            ("Cost per request", f"{SPEND} / nullif(count(*), 0)", "currencyUSD", None)):
        decimals = 6 if title == "Cost per request" else (0 if unit == "short" else 2)
        if unit == "percentunit":
            decimals = 1
        p.add(big(title, unit, decimals, colours),
              Sql(f"SELECT {expr} AS value FROM $table WHERE {WHERE}"), w=4, h=5)

    p.row("Spend per $bucket")
    for group, title in (("team", "Spend by team"), ("model", "Spend by model"),
                         ("key", "Spend by key"), ("user", "Spend by user")):
        p.add(ts(title, "currencyUSD", stacked=True, bars=True),
              over_time(LEDGER_FILTERS[group]), w=12,
              description=f"USD per {'$bucket'}, stacked by {group}.")
    p.add(ts("Actual vs reference-model cost", "currencyUSD"),
          Sql(f"SELECT date_trunc('$bucket', {col('ts')}) AS time, {SPEND} AS \"actual\", "
              f"{REFERENCE} AS \"reference model\" FROM $table WHERE {WHERE} "
              "GROUP BY 1 ORDER BY 1", "time_series"), w=12,
          description="USD per $bucket; the gap is what routing saved.")
    p.add(ts("Savings by team", "currencyUSD", stacked=True, bars=True),
          over_time(LEDGER_FILTERS["team"], SAVED), w=12,
          description="USD per $bucket saved against the reference model.")

    p.row("Top spenders over the selected range")
    p.add(money_table("Top keys"), top(LEDGER_FILTERS["key"], "Key"), w=8, h=10)
    p.add(money_table("Top users"), top(LEDGER_FILTERS["user"], "User"), w=8, h=10)
    p.add(money_table("Top teams"), top(LEDGER_FILTERS["team"], "Team"), w=8, h=10)
    p.add(bars("Spend by model", "currencyUSD"),
          Sql(f"SELECT {col('model')} AS metric, {SPEND} AS value FROM $table WHERE {WHERE} "
              "GROUP BY 1 ORDER BY 2 DESC"), w=12, h=8)
    p.add(bars("Savings by model", "currencyUSD", steps((None, "red"), (0, "green"))),
          Sql(f"SELECT {col('model')} AS metric, {SAVED} AS value FROM $table WHERE {WHERE} "
              "GROUP BY 1 ORDER BY 2 DESC"), w=12, h=8)

    p.row("By month")
    p.add(money_table("Spend by month, team and model"),
          Sql(f"SELECT to_char(date_trunc('month', {col('ts')}), 'YYYY-MM') AS \"Month\", "
              f"{col('team')} AS \"Team\", {col('model')} AS \"Model\", "
              f"count(*) AS \"Requests\", {SPEND} AS \"Spend\", {SAVED} AS \"Savings\" "
              f"FROM $table WHERE {WHERE} GROUP BY 1, 2, 3 ORDER BY 1 DESC, 5 DESC"),
          w=24, h=10)
    p.add(ts("Tokens per $bucket by model", "short", stacked=True, bars=True),
          over_time(f"{col('model')} || ' prompt'", f"sum({col('prompt_tokens')})"),
          over_time(f"{col('model')} || ' completion'", f"sum({col('completion_tokens')})"),
          w=24)
    return d


# ----------------------------------------------------------------------------- output

DASHBOARDS = {"llm-cost.json": llm_cost, "gateway-health.json": gateway_health,
              "spend-ledger.json": spend_ledger}


def render() -> dict[Path, str]:
    out = {}
    for name, build in DASHBOARDS.items():
        model = build().build()
        out[OUT / name] = json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True,
                                     ensure_ascii=False) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if a committed dashboard is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render().items():
        current = path.read_text() if path.exists() else None
        if current != text:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    for path in stale:
        verb = "out of date" if args.check else "written"
        print(f"{path.relative_to(REPO)}: {verb}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
