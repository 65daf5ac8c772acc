"""Helpers for the deploy tests: where things are, the PromQL the dashboards and alert rules hold,
and a real Prometheus server started on a free loopback port."""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from tests.support import REPO, binary, free_port

DEPLOY = REPO / "deploy"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
RULES = DEPLOY / "prometheus" / "rules"
K8S = DEPLOY / "k8s"


PROMETHEUS = binary("prometheus")
PROMTOOL = binary("promtool")
NO_PROMETHEUS = ("prometheus / promtool binaries not found: install the Debian package "
                 "(apt-get install prometheus; .ci/run does) to run the Prometheus tests")

#: What Grafana would put in place of each dashboard variable, for running the queries by hand:
#: "All" is the regex ``.*`` for every query variable; ``$__rate_interval`` is at least four
#: scrape intervals (the tests scrape every second; 1m also covers the whole short test run);
#: ``$__range`` is the dashboard's time range (longer than the test's data: increase()
#: extrapolates over what there is).
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "10m",
    "$team": ".*",
    "$key": ".*",
    "$model": ".*",
    "$job": ".*",
    "$instance": ".*",
    "$route": ".*",
}


def load_script(path: Path, name: str) -> ModuleType:
    """Import the script at ``path`` (e.g. ``deploy/grafana/build.py``) as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def substitute(expr: str) -> str:
    for var in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(var, SUBSTITUTIONS[var])
    leftover = re.findall(r"\$\{?\w+", expr)
    assert not leftover, f"unknown dashboard variable(s) {leftover} in {expr}"
    return expr


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def source_type(dashboard: dict[str, Any]) -> str:
    """The kind of data source a dashboard's ``datasource`` variable selects: ``prometheus``,
    or ``grafana-postgresql-datasource`` (the spend ledger, tests/ledger/test_dashboard.py)."""
    (ds,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    return str(ds["query"])


def prometheus_dashboards() -> dict[str, dict[str, Any]]:
    return {n: d for n, d in dashboards().items() if source_type(d) == "prometheus"}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


@dataclass(frozen=True)
class Query:
    where: str
    expr: str


def dashboard_queries() -> list[Query]:
    """The PromQL of the Prometheus dashboards' panels."""
    out = []
    for name, d in prometheus_dashboards().items():
        for p in panels(d):
            for t in p.get("targets", []):
                out.append(Query(f"{name} panel {p['id']} '{p['title']}' {t['refId']}", t["expr"]))
    return out


def variable_queries() -> list[Query]:
    out = []
    for name, d in prometheus_dashboards().items():
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                out.append(Query(f"{name} variable ${v['name']}", v["query"]))
    return out


@dataclass(frozen=True)
class Rule:
    name: str
    expr: str
    group: str
    labels: dict[str, str] = field(default_factory=dict)


def alert_rules() -> list[Rule]:
    out = []
    for path in sorted(RULES.glob("*.yml")):
        for g in yaml.safe_load(path.read_text())["groups"]:
            for r in g["rules"]:
                out.append(Rule(r.get("alert") or r["record"], r["expr"].strip(), g["name"],
                                r.get("labels", {})))
    return out


_THRESHOLD = re.compile(r"\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?[-+]?[0-9.]+(?:e[-+]?[0-9]+)?\s*$")


def strip_threshold(expr: str) -> str | None:
    """The expression without its trailing comparison(s) with a number (``x > 0.05``,
    ``x >= 0.8 < 0.99``, ``up == 0``), or None when it does not end in one."""
    out = expr.strip()
    stripped = False
    while (m := _THRESHOLD.search(out)) is not None:
        out = out[: m.start()].rstrip()
        stripped = True
    return out if stripped else None


_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<match>.+),\s*)?(?P<label>\w+)\)$")


def parse_label_values(query: str) -> tuple[str | None, str]:
    m = _LABEL_VALUES.match(query.strip())
    assert m, f"not a label_values() query: {query}"
    return m.group("match"), m.group("label")


# ----------------------------------------------------------------------------- Prometheus


class Prometheus:
    """A real Prometheus server with its own config and TSDB directory."""

    def __init__(self, tmp: Path, scrape_targets: list[str], rule_files: list[Path],
                 interval: str = "1s", bearer_token: str | None = None) -> None:
        assert PROMETHEUS is not None
        self.tmp = tmp
        self.port = free_port()
        self.config = tmp / "prometheus.yml"
        self.config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": interval, "evaluation_interval": interval,
                       "scrape_timeout": interval},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{
                "job_name": "federated-router",
                "static_configs": [{"targets": scrape_targets}],
                # as deploy/prometheus/prometheus.yml sends the gateway's metrics token
                **({"authorization": {"type": "Bearer", "credentials": bearer_token}}
                   if bearer_token else {}),
            }],
        }, sort_keys=False))
        self.log_path = tmp / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.config}",
             f"--storage.tsdb.path={self.tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready after {timeout}s:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def api(self, path: str, **params: str | list[str]) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query: the result vector (a scalar result counts as one sample)."""
        try:
            data = self.api("query", query=expr)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"Prometheus refused {expr!r}: {exc.read().decode()}") from None
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def wait_for(self, expr: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"no data for {expr!r} after {timeout}s")
            time.sleep(0.25)


def finite(result: list[dict[str, Any]]) -> bool:
    """Whether any sample of an instant-query result is a number (not NaN, not ±Inf)."""
    import math

    return any(math.isfinite(float(s["value"][1])) for s in result)
