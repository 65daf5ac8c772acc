"""The "Spend ledger" Grafana dashboard against a real PostgreSQL: every panel's and variable's
SQL runs on the table the exporter writes (with Grafana's macros and variables put in as
Grafana would), and the totals, top spenders and monthly rows equal the rows exported. And the
docker-compose init script's read-only role can read that table, not write it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from router.budgets import LedgerRow
from router.budgets.export.base import Entry
from router.budgets.export.postgres import PostgresArchive
from tests.deploy.support import DEPLOY, dashboards, panels
from tests.ledger.pg import PostgresServer

NOW = datetime.now(UTC)
FROM, TO = NOW - timedelta(days=90), NOW
TEAMS = ("search", "ads", "infra")
KEYS = ("k-search", "k-ads", "k-infra", None)
MODELS = ("gpt-4o-mini", "gpt-4o", "deepseek-chat")


def ledger_rows() -> list[LedgerRow]:
    out = []
    for i in range(360):
        t = (NOW - timedelta(days=85) + timedelta(hours=i * 5.5)).timestamp()
        key = KEYS[i % 4]
        out.append(LedgerRow(f"d{i}", MODELS[i % 3], key_alias=key,
                             user=None if key is None else f"u{i % 2}", team=TEAMS[i % 3],
                             task="reasoning", prompt_tokens=100 + i, completion_tokens=10 + i,
                             estimated_micro=5000, actual_micro=1000 + 37 * i,
                             reference_micro=4000 + 11 * i, time=t))
    return out


def usd(micro: int) -> Decimal:
    """µ$ as the dashboard's exact numeric USD."""
    return Decimal(micro) / Decimal(1_000_000)


def quoted(values: Any) -> str:
    return ",".join("'" + v.replace("'", "''") + "'" for v in sorted(set(values)))


def grafana_sql(sql: str, rows: list[LedgerRow], bucket: str = "month") -> str:
    """``sql`` as Grafana sends it: macros expanded, "All" as every value of the variable."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)",
                 lambda m: f"{m.group(1)} BETWEEN '{FROM.isoformat()}' AND '{TO.isoformat()}'", sql)
    values = {"team": quoted(r.team for r in rows if r.team),
              "user": quoted(r.user or "-" for r in rows),
              "key": quoted(r.key_alias or "-" for r in rows),
              "model": quoted(r.model for r in rows),
              "table": "router_ledger", "bucket": bucket}
    for name in sorted(values, key=len, reverse=True):
        sql = sql.replace(f"${name}", values[name])
    assert "$" not in sql, sql
    return sql


@pytest.fixture
def exported(pg_url: str) -> list[LedgerRow]:
    rows = ledger_rows()
    archive = PostgresArchive(pg_url)

    async def write() -> None:
        try:
            await archive.write("test", [Entry(str(i), (i, 0), r) for i, r in enumerate(rows)])
        finally:
            await archive.close()

    asyncio.run(write())
    return rows


def test_every_query_of_the_spend_ledger_dashboard_runs_on_the_exporters_table(
        pg_url: str, exported: list[LedgerRow]) -> None:
    d = dashboards()["spend-ledger.json"]
    targets = [(p, t) for p in panels(d) if p["type"] != "row" for t in p["targets"]]
    assert len(targets) >= 15
    with psycopg.connect(pg_url) as conn:
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                got = [r[0] for r in conn.execute(grafana_sql(v["query"], exported))]
                assert got, v["name"]
        for bucket in ("day", "week", "month"):
            for p, t in targets:
                assert p["datasource"]["type"] == "grafana-postgresql-datasource"
                assert t["datasource"] == p["datasource"] and t["rawQuery"]
                result = conn.execute(grafana_sql(t["rawSql"], exported, bucket)).fetchall()
                assert result, f"{p['title']} ({bucket}) returned nothing"
                if t["format"] == "time_series":
                    assert all(isinstance(r[0], datetime) for r in result), p["title"]

        def value(title: str) -> Any:
            (t,) = [t for p, t in targets if p["title"] == title]
            return conn.execute(grafana_sql(t["rawSql"], exported)).fetchall()

        spend = sum(r.actual_micro for r in exported)
        reference = sum(r.reference_micro for r in exported)
        assert value("Spend") == [(usd(spend),)]
        assert value("Savings") == [(usd(reference - spend),)]
        assert value("Requests") == [(len(exported),)]
        top_teams = value("Top teams")
        by_team = {t: sum(r.actual_micro for r in exported if r.team == t) for t in TEAMS}
        assert [row[0] for row in top_teams] == sorted(by_team, key=lambda t: -by_team[t])
        assert {row[0]: row[2] for row in top_teams} == {t: usd(v) for t, v in by_team.items()}
        keys = {row[0] for row in value("Top keys")}
        assert keys == {"k-search", "k-ads", "k-infra", "-"}  # requests without a key too
        monthly = value("Spend by month, team and model")
        assert sum(row[4] for row in monthly) == usd(spend)
        assert sum(row[3] for row in monthly) == len(exported)


def test_compose_init_script_gives_grafana_a_read_only_role(
        postgres_server: PostgresServer, pg_url: str) -> None:
    env = {**os.environ, "PATH": f"{postgres_server.bin}:{os.environ['PATH']}",
           "PGHOST": "127.0.0.1", "PGPORT": str(postgres_server.port),
           "POSTGRES_USER": postgres_server.user, "POSTGRES_DB": pg_url.rsplit("/", 1)[1],
           "GRAFANA_PG_PASSWORD": "grafana-test-password"}
    res = subprocess.run(["sh", str(DEPLOY / "postgres" / "init-grafana-role.sh")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    asyncio.run(PostgresArchive(pg_url).count())  # the exporter creates the table afterwards
    as_grafana = pg_url.replace(f"//{postgres_server.user}@", "//grafana@")
    with psycopg.connect(as_grafana) as conn:
        assert conn.execute("SELECT count(*) FROM router_ledger").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM router_ledger")
