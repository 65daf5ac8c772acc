"""The Kubernetes manifests: valid against the API schemas (offline: kubernetes-validate ships
them; the Prometheus Operator's kinds through the models cloudcoil generates from its CRDs),
consistent with each other, and carrying a config and policies the gateway accepts."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.config import DEV_KEY_SHA256
from tests.deploy.support import DEPLOY, K8S, alert_rules, load_script
from tests.support import REPO

#: The oldest Kubernetes minor version the manifests must work on, and the newest known.
K8S_VERSIONS = ("1.27.0", "1.37.0")
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def objects(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_objects() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in manifest_files():
        for obj in objects(path):
            out[(obj["kind"], obj["metadata"]["name"])] = obj
    return out


def validate_core(obj: dict[str, Any], version: str) -> None:
    kv = pytest.importorskip("kubernetes_validate",
                             reason="kubernetes-validate is in the test extra")
    kv.validate(obj, version, strict=True)


def validate_operator(obj: dict[str, Any]) -> None:
    """pydantic models of the operator's CRD schemas (types, enums, patterns); fields the
    schema does not know are dropped by the model, so a round trip must give the input back."""
    models = pytest.importorskip("cloudcoil.models.prometheus_operator.v1",
                                 reason="cloudcoil-models-prometheus-operator is in the test extra")
    model = getattr(models, obj["kind"]).model_validate(obj)
    assert model.model_dump(mode="json", by_alias=True, exclude_none=True) == obj, (
        f"{obj['kind']} has fields its schema does not define")


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_manifest_validates_against_its_schema(path: Path) -> None:
    docs = objects(path)
    assert docs
    for obj in docs:
        if obj["kind"] in OPERATOR_KINDS:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            validate_operator(obj)
        else:
            for version in K8S_VERSIONS:
                validate_core(obj, version)


def test_schema_validation_is_strict() -> None:
    """A typo is an error, not silently ignored (so the test above means something)."""
    kv = pytest.importorskip("kubernetes_validate")
    deployment = copy.deepcopy(all_objects()[("Deployment", "federated-router")])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, K8S_VERSIONS[-1], strict=True)
    deployment = copy.deepcopy(all_objects()[("Deployment", "federated-router")])
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, K8S_VERSIONS[-1], strict=True)
    monitor = copy.deepcopy(all_objects()[("ServiceMonitor", "federated-router")])
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(AssertionError, match="does not define"):
        validate_operator(monitor)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert k["kind"] == "Kustomization"
    listed = set(k["resources"])
    on_disk = {p.name for p in manifest_files()}
    assert listed == on_disk - {"secret.example.yaml"}


def test_generated_manifests_are_up_to_date() -> None:
    build = load_script(K8S / "build.py", "deploy_k8s_build")
    for path, text in build.render().items():
        assert path.read_text() == text, (
            f"{path.name} is out of date: run python deploy/k8s/build.py and commit it")


# ----------------------------------------------------------------------------- consistency

def _gateway() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    dep = all_objects()[("Deployment", "federated-router")]
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dep, pod, container


def test_deployment_runs_replicas_with_probes_limits_and_secrets() -> None:
    dep, pod, c = _gateway()
    assert dep["spec"]["replicas"] == 3
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8000}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
    res = c["resources"]
    assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e for e in c["env"]}
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert {"ROUTER_ADMIN_KEY", "ROUTER_KEY_APP", "OPENAI_API_KEY", "DEEPSEEK_API_KEY",
            "ANTHROPIC_API_KEY", "GEMINI_API_KEY"} <= set(refs)
    secret = all_objects()[("Secret", "federated-router-secrets")]
    for ref in refs.values():
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    # the gateway listens on all interfaces and finds its config where the ConfigMap is mounted
    args = c["args"]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    config_path = Path(args[args.index("--config") + 1])
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["config"]["mountPath"] == str(config_path.parent)
    assert volumes["config"]["configMap"]["name"] == "federated-router-config"
    config_map = all_objects()[("ConfigMap", "federated-router-config")]
    assert config_path.name in config_map["data"]
    # policies: the whole ConfigMap as a directory (a subPath mount never sees updates)
    assert env["ROUTER_POLICY"]["value"] == mounts["policies"]["mountPath"]
    assert "subPath" not in mounts["policies"] and "subPath" not in mounts["config"]
    assert volumes["policies"]["configMap"]["name"] == "federated-router-policies"
    # a read-only root: everything written goes to emptyDirs
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert mounts["tmp"]["mountPath"] == "/tmp" and "emptyDir" in volumes["tmp"]
    assert Path(env["ROUTER_JOURNAL_PATH"]["value"]).parent == Path(mounts["data"]["mountPath"])
    # replicas share one Redis: the Service redis.yaml defines
    redis_svc = all_objects()[("Service", "federated-router-redis")]
    assert env["ROUTER_STORE_URL"]["value"] == \
        f"redis://{redis_svc['metadata']['name']}:{redis_svc['spec']['ports'][0]['port']}/0"


def test_shutdown_fits_in_the_grace_period() -> None:
    _, pod, c = _gateway()
    cfg = gateway_config()
    pause = float(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > cfg.server.shutdown_grace_seconds + pause


def test_service_hpa_pdb_and_monitor_point_at_the_gateway() -> None:
    objs = all_objects()
    dep, _, _ = _gateway()
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    svc = objs[("Service", "federated-router")]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    (port,) = svc["spec"]["ports"]
    assert port["name"] == "http" and port["targetPort"] == "http"
    hpa = objs[("HorizontalPodAutoscaler", "federated-router")]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": dep["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] >= dep["spec"]["replicas"]
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    pdb = objs[("PodDisruptionBudget", "federated-router")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] < dep["spec"]["replicas"]
    mon = objs[("ServiceMonitor", "federated-router")]
    assert mon["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (endpoint,) = mon["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"
    # the job label (the Service's app.kubernetes.io/name) is the job the alert rules name
    job = svc["metadata"]["labels"][mon["spec"]["jobLabel"]]
    down = next(r for r in alert_rules() if r.name == "RouterDown")
    assert f'job="{job}"' in down.expr
    prom_job = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert job in {s["job_name"] for s in prom_job["scrape_configs"]}


def test_prometheusrule_carries_the_alert_rules() -> None:
    rule = all_objects()[("PrometheusRule", "federated-router")]
    names = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert names == [r.name for r in alert_rules()]


# ----------------------------------------------------------------------------- the gateway's view


def gateway_env(tmp: Path | None = None) -> dict[str, str]:
    """The container's environment as the Deployment sets it (Secrets as placeholders)."""
    _, _, c = _gateway()
    env = {e["name"]: e.get("value", f"secret-{e['name'].lower()}") for e in c["env"]}
    if tmp is not None:
        env["ROUTER_POLICY"] = str(tmp)
    return env


def gateway_config(policy_dir: Path | None = None) -> Any:
    """The ConfigMap's config.yaml, read the way the gateway reads it in the pod."""
    from router.config import build_config
    from router.yamlfile import parse_text

    text = all_objects()[("ConfigMap", "federated-router-config")]["data"]["config.yaml"]
    return build_config(parse_text(text, "configmap/federated-router-config/config.yaml",
                                   gateway_env(policy_dir)))


def test_configmaps_hold_a_config_and_policies_the_gateway_accepts(tmp_path: Path) -> None:
    from router.costs.pricing import resolve_catalogue
    from router.policy import load_policy

    policies = all_objects()[("ConfigMap", "federated-router-policies")]["data"]
    assert policies.keys() == {p.name for p in (REPO / "policies").glob("*.yaml")}
    pol_dir = tmp_path / "policies"
    pol_dir.mkdir()
    for name, text in policies.items():
        (pol_dir / name).write_text(text)
    cfg = gateway_config(pol_dir)
    assert cfg.store.url.startswith("redis://")
    assert cfg.server.host == "0.0.0.0" and cfg.server.workers == 1
    assert not any(k.key_sha256 == DEV_KEY_SHA256 for k in cfg.auth.keys), (
        "router serve refuses a non-loopback host while the development key is configured")
    policy = load_policy(pol_dir, cfg, resolve_catalogue(cfg))
    assert policy.version


def test_container_args_are_valid_for_router_serve() -> None:
    from router.cli import build_parser

    _, _, c = _gateway()
    args = build_parser().parse_args(["serve", *c["args"]])
    assert args.host == "0.0.0.0" and args.config
    assert shlex.join(c["args"])


def test_the_ledger_goes_to_the_postgres_of_postgres_yaml() -> None:
    """The Deployment's ledger URL names postgres.yaml's Service, database and user, with the
    password of the same Secret key the StatefulSet gives PostgreSQL (Kubernetes expands
    ``$(ROUTER_PG_PASSWORD)`` from the variable defined before it)."""
    from urllib.parse import urlsplit

    _, _, c = _gateway()
    env = [e["name"] for e in c["env"]]
    values = {e["name"]: e for e in c["env"]}
    raw = values["ROUTER_LEDGER_URL"]["value"]
    assert "$(ROUTER_PG_PASSWORD)" in raw
    assert env.index("ROUTER_PG_PASSWORD") < env.index("ROUTER_LEDGER_URL")
    url = urlsplit(raw.replace("$(ROUTER_PG_PASSWORD)", "pw"))
    svc = all_objects()[("Service", "federated-router-postgres")]
    sts = all_objects()[("StatefulSet", "federated-router-postgres")]
    assert url.hostname == svc["metadata"]["name"] and url.port == svc["spec"]["ports"][0]["port"]
    assert svc["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    (pg,) = sts["spec"]["template"]["spec"]["containers"]
    pg_env = {e["name"]: e for e in pg["env"]}
    assert url.username == pg_env["POSTGRES_USER"]["value"]
    assert url.path == "/" + pg_env["POSTGRES_DB"]["value"]
    ref = values["ROUTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == ref["key"]
    assert ref["key"] in all_objects()[("Secret", "federated-router-secrets")]["stringData"]
    cfg = gateway_config()
    assert cfg.store.ledger.export == "postgres" and cfg.store.ledger.url == raw
    assert cfg.store.ledger.retain_hot == 86400.0
