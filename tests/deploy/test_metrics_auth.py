"""server.metrics_auth across the deployment files: the container config requires the token, and
Prometheus (compose) and the ServiceMonitor (Kubernetes) send the one the gateway reads."""

from __future__ import annotations

import yaml

from router.config import load_config
from tests.deploy.support import DEPLOY
from tests.deploy.test_k8s import all_objects, gateway_config
from tests.support import REPO


def test_the_container_config_requires_the_metrics_token() -> None:
    cfg = load_config(DEPLOY / "config.yaml", env={"ROUTER_STORE_URL": "redis://r:6379/0",
                                                   "ROUTER_LEDGER_URL": "postgresql://r@p/r",
                                                   "ROUTER_POLICY": str(REPO / "policies")})
    assert cfg.server.metrics_auth is not None
    assert cfg.server.metrics_auth.token_env == "ROUTER_METRICS_TOKEN"
    assert not cfg.server.api_docs
    # the loopback default stays open (and without the schema)
    local = load_config(REPO / "config.yaml", env={})
    assert local.server.metrics_auth is None and not local.server.api_docs


def test_servicemonitor_sends_the_token_the_pods_read() -> None:
    objs = all_objects()
    cfg = gateway_config()
    assert cfg.server.metrics_auth is not None
    env_name = cfg.server.metrics_auth.token_env
    container = objs[("Deployment", "federated-router")]["spec"]["template"]["spec"][
        "containers"][0]
    (ref,) = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] == env_name]
    (endpoint,) = objs[("ServiceMonitor", "federated-router")]["spec"]["endpoints"]
    auth = endpoint["authorization"]
    assert auth["type"] == "Bearer"
    assert auth["credentials"] == {"name": ref["name"], "key": ref["key"]}
    assert ref["key"] in objs[("Secret", "federated-router-secrets")]["stringData"]


def test_compose_prometheus_sends_the_token_the_gateway_reads() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    (secret,) = services["prometheus"]["secrets"]
    assert compose["secrets"][secret["source"]]["environment"] == "ROUTER_METRICS_TOKEN"
    assert services["gateway"]["environment"]["ROUTER_METRICS_TOKEN"].startswith(
        "${ROUTER_METRICS_TOKEN:?")
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "federated-router"]
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "metrics-token"}
    assert secret["target"] == "/etc/prometheus/metrics-token"
