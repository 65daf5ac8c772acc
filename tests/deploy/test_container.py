"""The image and docker-compose, checked statically (no Docker engine here): the Dockerfile parses
with Docker's own parser and copies files that exist and are not ignored; the container's config
starts on 0.0.0.0 (no development key) once given its store; docker-compose wires the gateway,
Redis, Prometheus and Grafana to files that exist. tests/deploy/test_prometheus.py runs
deploy/config.yaml for real, as the second gateway of its fleet."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.config import DEV_KEY_SHA256, ConfigError, load_config
from tests.deploy.support import DEPLOY, PROMTOOL
from tests.support import REPO, free_port

DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"


def instructions() -> list[Any]:
    dockerfile = pytest.importorskip("dockerfile", reason="dockerfile is in the test extra")
    return list(dockerfile.parse_file(str(DOCKERFILE)))


def final_stage(cmds: list[Any]) -> list[Any]:
    starts = [i for i, c in enumerate(cmds) if c.cmd.upper() == "FROM"]
    return cmds[starts[-1]:]


def test_dockerfile_builds_a_non_root_python_311_slim_image() -> None:
    cmds = instructions()
    stage = final_stage(cmds)
    assert stage[0].value[0] == "python:3.11-slim"
    assert all(c.value[0] == "python:3.11-slim" for c in cmds if c.cmd.upper() == "FROM")
    by = {c.cmd.upper(): c for c in stage}
    user = by["USER"].value[0].split(":")[0]
    assert user not in {"root", "0"} and int(user) >= 1000
    assert by["ENTRYPOINT"].json and list(by["ENTRYPOINT"].value) == ["router", "serve"]
    cmd = list(by["CMD"].value)
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert by["EXPOSE"].value == ("8000",)
    assert "/readyz" in " ".join(by["HEALTHCHECK"].value)
    env = dict(zip(by["ENV"].value[::2], by["ENV"].value[1::2], strict=True))
    assert env["ROUTER_CONFIG"] == "/etc/router/config.yaml"
    assert env["ROUTER_POLICY"] == "/etc/router/policies"
    # the image exports the spend ledger to PostgreSQL: psycopg comes with the postgres extra
    runs = " ".join(" ".join(c.value) for c in cmds if c.cmd.upper() == "RUN")
    assert '".[postgres]"' in runs and '"federated-router[postgres]"' in runs
    copies = {c.value[-1]: c.value[0] for c in stage if c.cmd.upper() == "COPY"
              and not any(f.startswith("--from") for f in c.flags)}
    assert copies[env["ROUTER_CONFIG"]] == "deploy/config.yaml"
    assert copies[env["ROUTER_POLICY"] + "/default.yaml"] == "policies/default.yaml"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins, ``!`` re-includes; a pattern
    matching a directory matches everything under it."""
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pat = raw[1:] if negate else raw
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(p, pat.replace("**/", ""))
               for p in prefixes):
            ignored = not negate
    return ignored


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    patterns = [ln.strip() for ln in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    sources = []
    for c in instructions():
        if c.cmd.upper() == "COPY" and not any(f.startswith("--from") for f in c.flags):
            sources += list(c.value[:-1])
    assert sources
    for src in sources:
        path = REPO / src
        assert path.exists(), src
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
        for f in files:
            rel = f.relative_to(REPO).as_posix()
            assert not _ignored(rel, patterns), f"{rel} is excluded by Dockerfile.dockerignore"
    assert _ignored("tests/support.py", patterns) and _ignored(".git/HEAD", patterns)
    assert _ignored("router/__pycache__/x.pyc", patterns)
    # the package data the image needs (the classifier) is in the wheel pip builds
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"**/*.json"' in pyproject and '"**/*.bin"' in pyproject


# ----------------------------------------------------------------------------- deploy/config.yaml

STORE = {"ROUTER_STORE_URL": "redis://redis:6379/0",
         "ROUTER_LEDGER_URL": "postgresql://router:pw@postgres:5432/router"}
#: Run from another directory, ``python -m router`` must still import this checkout's router
#: (not another editable install of the package).
CHECKOUT = {"PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                          if p)}


def test_container_config_needs_its_store_and_has_no_development_key() -> None:
    with pytest.raises(ConfigError, match="ROUTER_STORE_URL is not set"):
        load_config(DEPLOY / "config.yaml", env={})
    with pytest.raises(ConfigError, match="ROUTER_LEDGER_URL is not set"):
        load_config(DEPLOY / "config.yaml", env={"ROUTER_STORE_URL": STORE["ROUTER_STORE_URL"]})
    cfg = load_config(DEPLOY / "config.yaml", env={**STORE, "ROUTER_POLICY": str(REPO / "policies")})
    assert cfg.server.host == "0.0.0.0" and cfg.store.url == STORE["ROUTER_STORE_URL"]
    # a fleet's ledger leaves Redis for PostgreSQL after a day, exported by the elected replica
    ledger = cfg.store.ledger
    assert (ledger.export, ledger.url, ledger.retain_hot, ledger.in_gateway) == (
        "postgres", STORE["ROUTER_LEDGER_URL"], 86400.0, True)
    files = load_config(DEPLOY / "config.yaml", env={
        **STORE, "ROUTER_LEDGER_EXPORT": "files", "ROUTER_LEDGER_URL": "/mnt/shared/ledger",
        "ROUTER_LEDGER_RETAIN_HOT": "6h"}).store.ledger
    assert (files.export, files.url, files.retain_hot) == ("files", "/mnt/shared/ledger", 21600)
    assert not any(k.key_sha256 == DEV_KEY_SHA256 for k in cfg.auth.keys)
    assert all(k.key_env for k in cfg.auth.keys)  # secrets come from the environment
    # the catalogue of the image is the repository's default one
    assert cfg.models.keys() == load_config(REPO / "config.yaml", env={}).models.keys()


def test_router_serve_takes_0000_with_the_container_config_not_with_the_dev_key(
        tmp_path: Path) -> None:
    """``router serve --host 0.0.0.0``: refused with config.yaml (development key); with
    deploy/config.yaml the gateway starts and goes on to bind, which fails here only because
    the test holds the port (so nothing ever listens on all interfaces)."""
    res = subprocess.run([sys.executable, "-m", "router", "serve", "--config",
                          str(REPO / "config.yaml"), "--host", "0.0.0.0",
                          "--port", str(free_port())],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, **CHECKOUT})
    assert res.returncode == 2 and "refusing to listen on 0.0.0.0" in res.stderr
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))  # bound, never listening
        port = held.getsockname()[1]
        res = subprocess.run(
            [sys.executable, "-m", "router", "serve", "--config", str(DEPLOY / "config.yaml"),
             "--host", "0.0.0.0", "--port", str(port)],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env={**os.environ, **CHECKOUT, "ROUTER_STORE_URL": "redis://127.0.0.1:9/0",
                 "ROUTER_LEDGER_URL": "postgresql://router@127.0.0.1:9/router",
                 "ROUTER_POLICY": str(REPO / "policies"), "ROUTER_KEY_APP": "sk-test-app",
                 "ROUTER_JOURNAL_PATH": str(tmp_path / "journal.db"), "PYTHONPATH": str(REPO)})
    out = res.stdout + res.stderr
    assert "refusing" not in out, out
    assert res.returncode not in (0, 2) and "address already in use" in out.lower(), out


# ----------------------------------------------------------------------------- docker-compose

_INTERP = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_runs_the_stack() -> None:
    c = compose()
    services = c["services"]
    assert set(services) == {"gateway", "redis", "postgres", "prometheus", "grafana"}
    gw = services["gateway"]
    assert (DEPLOY / gw["build"]["context"] / gw["build"]["dockerfile"]).resolve() == DOCKERFILE
    env = gw["environment"]
    assert env["ROUTER_STORE_URL"] == "redis://redis:6379/0"
    assert services["gateway"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["gateway"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["redis"]
    # every provider key the catalogue names, the admin key and the app key are passed through
    cfg = load_config(DEPLOY / "config.yaml", env={**STORE, "ROUTER_POLICY": str(REPO / "policies")})
    wanted = {m.api_key_env for m in cfg.models.values() if m.api_key_env}
    wanted |= {k.key_env for k in cfg.auth.keys if k.key_env} | {"ROUTER_ADMIN_KEY"}
    assert wanted <= set(env), wanted - set(env)
    # the app key must be given: compose stops with a message instead of starting keyless
    m = _INTERP.search(env["ROUTER_KEY_APP"])
    assert m and m.group(2) == ":?"
    # the policies on the host are the gateway's policy directory (hot reload)
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) if v.count(":") == 2 else v.split(":", 1)
                  for v in gw["volumes"])
    assert mounts["../policies"] == env["ROUTER_POLICY"]
    for name in c["volumes"]:
        assert any(v.startswith(f"{name}:") for s in services.values()
                   for v in s.get("volumes", []))


def test_compose_postgres_holds_the_ledger_and_grafana_reads_it() -> None:
    from urllib.parse import urlsplit

    c = compose()
    pg = c["services"]["postgres"]["environment"]
    raw = c["services"]["gateway"]["environment"]["ROUTER_LEDGER_URL"]
    # the same password, given once: compose stops with a message when it is not set
    m = _INTERP.search(raw)
    assert m and m.group(1) == _INTERP.search(pg["POSTGRES_PASSWORD"]).group(1)
    assert m.group(2) == ":?"
    url = urlsplit(raw.replace(m.group(0), "pw"))
    assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432)
    assert url.username == pg["POSTGRES_USER"] and url.path == "/" + pg["POSTGRES_DB"]
    # the gateway's config takes the URL, with the postgres target by default
    cfg = load_config(DEPLOY / "config.yaml", env={
        "ROUTER_STORE_URL": "redis://redis:6379/0", "ROUTER_LEDGER_URL": url.geturl()})
    assert cfg.store.ledger.export == "postgres"
    # Grafana's data source: the same database, as the read-only role the init script creates
    ds = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" /
                         "postgres.yaml").read_text())["datasources"][0]
    assert ds["type"] == "grafana-postgresql-datasource" and ds["url"] == "postgres:5432"
    assert ds["jsonData"]["database"] == pg["POSTGRES_DB"]
    init = [v for v in c["services"]["postgres"]["volumes"]
            if v.split(":")[1].startswith("/docker-entrypoint-initdb.d/")]
    (mount,) = init
    script = (DEPLOY / mount.split(":")[0]).read_text()
    assert f"CREATE ROLE {ds['user']} LOGIN" in script
    secret = ds["secureJsonData"]["password"].lstrip("$").strip("{}")
    assert secret in c["services"]["grafana"]["environment"]
    assert secret in pg  # the init script reads it from the postgres container's environment


def test_compose_bind_mounts_exist_and_prometheus_scrapes_the_gateway() -> None:
    c = compose()
    for name, svc in c["services"].items():
        for v in svc.get("volumes", []):
            src = v.split(":", 1)[0]
            if src.startswith("."):
                assert (DEPLOY / src).exists(), f"{name}: {src}"
    prom = c["services"]["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prom["volumes"] if v.startswith(".")}
    config_flag = next(a for a in prom["command"] if a.startswith("--config.file="))
    container_config = config_flag.split("=", 1)[1]
    assert mounts[container_config] == "./prometheus/prometheus.yml"
    prom_cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    for pattern in prom_cfg["rule_files"]:  # relative to the config file, in the container
        container_dir = str(Path(container_config).parent / Path(pattern).parent)
        assert mounts[container_dir] == "./prometheus/rules"
    gateway_jobs = [s for s in prom_cfg["scrape_configs"] if s["job_name"] == "federated-router"]
    (job,) = gateway_jobs
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    port = load_config(DEPLOY / "config.yaml", env={**STORE}).server.port
    assert targets == [f"gateway:{port}"]
    assert c["services"]["gateway"]["ports"] == [f"{port}:{port}"]
    ds = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" /
                         "prometheus.yaml").read_text())["datasources"][0]
    assert ds["url"] == "http://prometheus:9090"
    assert ds["jsonData"]["timeInterval"] == prom_cfg["global"]["scrape_interval"]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
def test_compose_prometheus_config_is_valid_in_its_container_layout(tmp_path: Path) -> None:
    """Lay the files out as the Prometheus container sees them, then promtool check config."""
    etc = tmp_path / "etc" / "prometheus"
    etc.mkdir(parents=True)
    shutil.copy(DEPLOY / "prometheus" / "prometheus.yml", etc / "prometheus.yml")
    shutil.copytree(DEPLOY / "prometheus" / "rules", etc / "rules")
    # the metrics token, where compose mounts its secret: the file prometheus.yml names
    prom = compose()["services"]["prometheus"]
    (secret,) = prom["secrets"]
    assert compose()["secrets"][secret["source"]] == {"environment": "ROUTER_METRICS_TOKEN"}
    target = Path(secret["target"])
    prom_cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in prom_cfg["scrape_configs"] if j["job_name"] == "federated-router"]
    assert target == Path("/etc/prometheus") / job["authorization"]["credentials_file"]
    (tmp_path / target.relative_to("/")).write_text("token\n")
    assert "ROUTER_METRICS_TOKEN" in compose()["services"]["gateway"]["environment"]
    assert PROMTOOL is not None
    res = subprocess.run([PROMTOOL, "check", "config", str(etc / "prometheus.yml")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "1 rule files found" in res.stdout, res.stdout + res.stderr


def test_docker_compose_config_when_the_cli_has_compose(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True,
                                        timeout=30).returncode != 0:
        pytest.skip("docker compose is not installed (checked statically above)")
    res = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
                         capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin:/usr/local/bin", "ROUTER_KEY_APP": "x",
                              "ROUTER_METRICS_TOKEN": "y"})
    assert res.returncode == 0, res.stderr
