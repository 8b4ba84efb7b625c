"""The Kubernetes manifests: valid against the Kubernetes schemas, and wired
together (selectors, ports, ConfigMaps, the signer reachable only from the
server), naming only settings and commands the code has."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support import contract

MANIFESTS = contract.DEPLOY / "kubernetes"
# The oldest Kubernetes the manifests support (native gRPC probes are GA from
# 1.27) and the newest whose schemas kubernetes-validate bundles.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Custom resources: their operators' schemas are not bundled; their shape is
# checked below where it matters (the PrometheusRule against the rules file).
CUSTOM = {
    "monitoring.coreos.com/v1": {"PodMonitor", "PrometheusRule"},
    "postgresql.cnpg.io/v1": {"Cluster", "ScheduledBackup"},
    "cert-manager.io/v1": {"Issuer", "Certificate"},
}


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path, document))
    return found


DOCUMENTS = _documents()


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in DOCUMENTS if d["kind"] == kind]


def _named(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in _of_kind(kind) if d["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    checked = 0
    for path, document in DOCUMENTS:
        if document["kind"] in CUSTOM.get(document["apiVersion"], set()):
            assert document["metadata"]["name"], path
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {document['kind']} {document['metadata']['name']}: {exc}")
        checked += 1
    assert checked >= 15


def test_every_object_is_in_the_namespace() -> None:
    for path, document in DOCUMENTS:
        if document["kind"] != "Namespace":
            assert document["metadata"].get("namespace") == "lre", path


def _pod_labels() -> list[dict[str, str]]:
    return [
        d["spec"]["template"]["metadata"]["labels"]
        for d in _of_kind("Deployment") + _of_kind("Job")
    ]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def test_selectors_select_pods() -> None:
    for deployment in _of_kind("Deployment"):
        assert _selects(
            deployment["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]
        )
    selectors = [("Service", {"matchLabels": s["spec"]["selector"]}) for s in _of_kind("Service")]
    selectors += [
        ("PodDisruptionBudget", p["spec"]["selector"]) for p in _of_kind("PodDisruptionBudget")
    ]
    selectors += [("PodMonitor", p["spec"]["selector"]) for p in _of_kind("PodMonitor")]
    selectors += [("NetworkPolicy", n["spec"]["podSelector"]) for n in _of_kind("NetworkPolicy")]
    for kind, selector in selectors:
        assert any(_selects(selector, labels) for labels in _pod_labels()), (kind, selector)


def _containers(kind: str, name: str) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = _named(kind, name)["spec"]["template"]["spec"]["containers"]
    return containers


def test_probes_and_ports_are_declared() -> None:
    for deployment in _of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                spec = container.get(probe, {})
                for action in ("grpc", "httpGet"):
                    if action in spec:
                        port = spec[action]["port"]
                        assert port in ports or port in ports.values(), (container["name"], probe)


def test_the_server_api_is_highly_available_and_probed_on_the_health_port() -> None:
    server = _named("Deployment", "lre-server")
    assert server["spec"]["replicas"] >= 2
    assert _named("PodDisruptionBudget", "lre-server")["spec"]["minAvailable"] >= 1
    hpa = _named("HorizontalPodAutoscaler", "lre-server")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "lre-server"
    assert hpa["spec"]["minReplicas"] >= 2
    (container,) = _containers("Deployment", "lre-server")
    health = next(p["containerPort"] for p in container["ports"] if p["name"] == "health")
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["grpc"]["port"] == health
    server_toml = _config()["server"]
    assert server_toml["health_address"].endswith(f":{health}")
    assert server_toml["run_workers"] is False
    assert container["command"] == ["lre-server", "serve"]


def _config() -> dict[str, Any]:
    return tomllib.loads(_named("ConfigMap", "lre-config")["data"]["lre.toml"])


def test_the_config_names_only_settings_the_code_has() -> None:
    for section, values in _config().items():
        unknown = contract.unknown_settings(section, set(values))
        assert not unknown, f"[{section}] no such settings {sorted(unknown)}"


WORKLOADS = ("Deployment", "Job", "CronJob")


def _pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    spec = document["spec"]
    if document["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def test_commands_and_environment_exist() -> None:
    pods = [_pod_spec(d) for _, d in DOCUMENTS if d["kind"] in WORKLOADS]
    assert len(pods) == 5
    for pod in pods:
        for container in pod["containers"]:
            if not container["image"].startswith("registry.example.org/lre:"):
                continue
            problem = contract.unknown_command(container["command"])
            assert problem is None, problem
            names = {e["name"] for e in container.get("env", [])}
            assert not contract.unknown_env(names), contract.unknown_env(names)
            for probe in ("livenessProbe", "readinessProbe"):
                exec_ = container.get(probe, {}).get("exec")
                if exec_:
                    assert contract.unknown_command(exec_["command"]) is None


def test_the_signer_is_headless_and_reached_only_by_the_server() -> None:
    service = _named("Service", "lre-signer")
    assert service["spec"]["clusterIP"] == "None"
    assert _config()["server"]["signer_address"].startswith("dns:///lre-signer.lre.svc")
    policy = _named("NetworkPolicy", "lre-signer-ingress")
    grpc_rules = [
        r for r in policy["spec"]["ingress"] if {"port": 50052, "protocol": "TCP"} in r["ports"]
    ]
    (rule,) = grpc_rules
    sources = {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"]}
    # The API and its workers are one server (the workers seal evidence).
    assert sources == {"server", "workers"}
    assert _named("NetworkPolicy", "default-deny-ingress")["spec"]["podSelector"] == {}


def test_volumes_refer_to_the_shipped_config() -> None:
    for deployment in _of_kind("Deployment"):
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, (deployment["metadata"]["name"], mount["name"])
        config_maps = {v["configMap"]["name"] for v in volumes.values() if "configMap" in v}
        # lre-pki holds the operator's CA certificates; lre-config is shipped.
        assert config_maps <= {"lre-config", "lre-pki"}


def test_the_prometheus_rule_is_the_rules_file() -> None:
    rules = yaml.safe_load((contract.DEPLOY / "prometheus" / "lre-rules.yml").read_text())
    (rule,) = _of_kind("PrometheusRule")
    assert rule["spec"] == rules, "run `make deploy-rules`"
