"""The Kubernetes kit as `kubectl apply -k` applies it: rendered by kubectl's
kustomize, valid against the Kubernetes schemas, the namespace first, images
pinned, the database and Prometheus admitted by the network policies, a CA
of its own for the server->signer link, secrets as files, and wired together
(selectors, ports, ConfigMaps), naming only settings and commands the code has."""

from __future__ import annotations

import posixpath
import re
import tomllib
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support import contract
from tests.support.kustomize import KIT, render

PRODUCTION = "overlays/production"
# What is applied: the production overlay, and beside it, where
# prometheus-operator runs, the monitoring kustomization.
APPLIED = (PRODUCTION, "monitoring")
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
WORKLOADS = ("Deployment", "Job", "CronJob")


def _documents() -> list[dict[str, Any]]:
    return [d for directory in APPLIED for d in render(directory)]


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _documents() if d["kind"] == kind]


def _named(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in _of_kind(kind) if d["metadata"]["name"] == name]
    return found


def _pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    spec = document["spec"]
    if document["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def _pod_labels(document: dict[str, Any]) -> dict[str, str]:
    spec = document["spec"]
    if document["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    labels: dict[str, str] = spec["template"]["metadata"]["labels"]
    return labels


def _workloads() -> list[dict[str, Any]]:
    return [d for d in _documents() if d["kind"] in WORKLOADS]


def _config() -> dict[str, Any]:
    (config_map,) = _of_kind("ConfigMap")
    return tomllib.loads(config_map["data"]["lre.toml"])


@pytest.mark.parametrize("version", VERSIONS)
def test_the_kit_validates_against_the_kubernetes_schemas(version: str) -> None:
    checked = 0
    for document in _documents():
        if document["kind"] in CUSTOM.get(document["apiVersion"], set()):
            assert document["metadata"]["name"]
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{document['kind']} {document['metadata']['name']}: {exc}")
        checked += 1
    assert checked >= 18


def test_the_namespace_comes_first_and_holds_everything() -> None:
    production = render(PRODUCTION)
    assert production[0]["kind"] == "Namespace"
    assert production[0]["metadata"]["name"] == "lre"
    assert [d for d in production if d["kind"] == "Namespace"] == production[:1]
    for document in production[1:] + render("monitoring"):
        assert document["metadata"].get("namespace") == "lre", document["metadata"]


def test_monitoring_is_optional() -> None:
    """The production overlay needs no prometheus-operator CRD; the
    monitoring kustomization brings them alone, and admits Prometheus to
    the metrics ports only, which every pod it scrapes names `metrics`."""
    assert not [d for d in render(PRODUCTION) if d["apiVersion"].startswith("monitoring.")]
    monitoring = render("monitoring")
    assert {d["kind"] for d in monitoring} == {"PodMonitor", "PrometheusRule", "NetworkPolicy"}
    (policy,) = [d for d in monitoring if d["kind"] == "NetworkPolicy"]
    (rule,) = policy["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == ["metrics"]
    for monitor in [d for d in monitoring if d["kind"] == "PodMonitor"]:
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["port"] == "metrics"
        scraped = [
            d
            for d in _of_kind("Deployment")
            if _selects(monitor["spec"]["selector"], _pod_labels(d))
        ]
        assert scraped, monitor["metadata"]["name"]
        for deployment in scraped:
            assert _selects(policy["spec"]["podSelector"], _pod_labels(deployment))
            container = _pod_spec(deployment)["containers"][0]
            assert "metrics" in {p["name"] for p in container["ports"]}


def test_images_are_pinned_and_production_by_digest() -> None:
    for path in KIT.rglob("*.yaml"):
        assert not re.search(r":latest\b", path.read_text()), path
    base = [c["image"] for d in render("base") if d["kind"] in WORKLOADS for c in _containers(d)]
    assert base and all(re.fullmatch(r"[a-z0-9./-]+:[\w][\w.-]*", i) for i in base), base
    production = [c["image"] for d in _workloads() for c in _containers(d)]
    assert len(production) == len(base)
    for image in production:
        assert re.fullmatch(r"[a-z0-9./-]+@sha256:[0-9a-f]{64}", image), image


def _containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    pod = _pod_spec(document)
    containers: list[dict[str, Any]] = pod["containers"] + pod.get("initContainers", [])
    return containers


def test_the_signer_link_has_a_ca_of_its_own() -> None:
    issuers = {i["metadata"]["name"]: i["spec"]["ca"]["secretName"] for i in _of_kind("Issuer")}
    issuer_of = {
        c["spec"]["secretName"]: c["spec"]["issuerRef"]["name"] for c in _of_kind("Certificate")
    }
    link = issuer_of["lre-signer-tls"]
    # Both ends of the link under one CA, the transport under another.
    assert issuer_of["lre-signer-client-tls"] == link
    assert issuer_of["lre-server-tls"] != link
    assert issuers[issuer_of["lre-server-tls"]] != issuers[link]
    server = _config()["server"]
    assert server["signer_tls_ca_file"].startswith(_mount("lre-server", "lre-signer-client-tls"))
    assert server["tls_client_ca_file"].startswith(_mount("lre-server", "lre-server-tls"))


def _mount(deployment: str, secret: str) -> str:
    """Where ``deployment``'s first container mounts ``secret``."""
    pod = _pod_spec(_named("Deployment", deployment))
    (volume,) = [
        v["name"] for v in pod["volumes"] if v.get("secret", {}).get("secretName") == secret
    ]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume]
    path: str = mount["mountPath"]
    return path


def test_secrets_are_files_never_the_environment() -> None:
    password_file = _config()["server"]["database_password_file"]
    # A user in the URL, no password.
    assert re.match(r"postgresql\+psycopg://lre@", _config()["server"]["database_url"])
    users = 0
    for workload in _workloads():
        for container in _containers(workload):
            for variable in container.get("env", []):
                assert "valueFrom" not in variable, (workload["metadata"]["name"], variable)
                assert "PASSWORD" not in variable["name"], variable
                assert not re.search(r"://[^/@]*:[^/@]*@", variable.get("value", "")), variable
        pod = _pod_spec(workload)
        secrets = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
        db = [name for name, s in secrets.items() if s["secretName"] == "lre-db-app"]
        if not db:
            continue
        users += 1
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] in db]
        (item,) = secrets[mount["name"]]["items"]
        assert item["key"] == "password"
        assert posixpath.join(mount["mountPath"], item["path"]) == password_file
    # The API, the workers, the migrate Job and the verify-log CronJob.
    assert users == 4


def test_the_database_and_its_operator_are_admitted() -> None:
    (cluster,) = _of_kind("Cluster")
    policy = _named("NetworkPolicy", "lre-db-ingress")
    # CloudNativePG labels its instances with their cluster's name.
    assert policy["spec"]["podSelector"]["matchLabels"] == {"cnpg.io/cluster": "lre-db"}
    assert cluster["metadata"]["name"] == "lre-db"
    assert _config()["server"]["database_url"].split("@")[1].startswith("lre-db-rw.lre.svc:5432/")
    rules = policy["spec"]["ingress"]

    def admitted(labels: dict[str, str], port: int) -> bool:
        return any(
            {"port": port, "protocol": "TCP"} in r["ports"]
            and any("podSelector" in f and _selects(f["podSelector"], labels) for f in r["from"])
            for r in rules
        )

    clients = [w for w in _workloads() if "db" in {v["name"] for v in _pod_spec(w)["volumes"]}]
    assert len(clients) == 4
    for workload in clients:
        assert admitted(_pod_labels(workload), 5432), workload["metadata"]["name"]
    assert not admitted(_pod_labels(_named("Deployment", "lre-signer")), 5432)
    # Replication between the instances, and the operator's namespace.
    assert admitted({"cnpg.io/cluster": "lre-db"}, 5432)
    operator = [
        r
        for r in rules
        if any(
            f.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            == "cnpg-system"
            for f in r["from"]
        )
    ]
    assert operator and {"port": 8000, "protocol": "TCP"} in operator[0]["ports"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def test_selectors_select_pods() -> None:
    pods = [_pod_labels(d) for d in _workloads()]
    for deployment in _of_kind("Deployment"):
        assert _selects(deployment["spec"]["selector"], _pod_labels(deployment))
    selectors = [("Service", {"matchLabels": s["spec"]["selector"]}) for s in _of_kind("Service")]
    selectors += [
        ("PodDisruptionBudget", p["spec"]["selector"]) for p in _of_kind("PodDisruptionBudget")
    ]
    selectors += [("PodMonitor", p["spec"]["selector"]) for p in _of_kind("PodMonitor")]
    selectors += [
        ("NetworkPolicy", n["spec"]["podSelector"])
        for n in _of_kind("NetworkPolicy")
        if "cnpg.io/cluster" not in n["spec"]["podSelector"].get("matchLabels", {})
    ]
    for kind, selector in selectors:
        assert any(_selects(selector, labels) for labels in pods), (kind, selector)


def test_probes_and_ports_are_declared() -> None:
    for deployment in _of_kind("Deployment"):
        for container in _pod_spec(deployment)["containers"]:
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
    (container,) = _pod_spec(server)["containers"]
    health = next(p["containerPort"] for p in container["ports"] if p["name"] == "health")
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["grpc"]["port"] == health
    server_toml = _config()["server"]
    assert server_toml["health_address"].endswith(f":{health}")
    assert server_toml["run_workers"] is False
    assert container["command"] == ["lre-server", "serve"]


def test_the_config_names_only_settings_the_code_has() -> None:
    assert _config() == tomllib.loads((KIT / "base" / "lre.toml").read_text())
    for section, values in _config().items():
        unknown = contract.unknown_settings(section, set(values))
        assert not unknown, f"[{section}] no such settings {sorted(unknown)}"


def test_commands_and_environment_exist() -> None:
    assert len(_workloads()) == 5
    for workload in _workloads():
        for container in _pod_spec(workload)["containers"]:
            if container["name"] == "hsm-client":
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
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 50052, "protocol": "TCP"}]
    sources = {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"]}
    # The API and its workers are one server (the workers seal evidence).
    assert sources == {"server", "workers"}
    assert _named("NetworkPolicy", "default-deny-ingress")["spec"]["podSelector"] == {}
    # Its metrics are apart from /tsa, which TSA clients may be let reach.
    signer = _config()["signer"]
    assert signer["metrics_address"].rsplit(":", 1)[1] != signer["http_address"].rsplit(":", 1)[1]


def test_volumes_refer_to_the_shipped_config() -> None:
    (config_map,) = _of_kind("ConfigMap")
    generated = config_map["metadata"]["name"]
    # The generated name carries the content's hash: a new setting rolls the pods.
    assert re.fullmatch(r"lre-config-[a-z0-9]{10}", generated)
    for workload in _workloads():
        pod = _pod_spec(workload)
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, (workload["metadata"]["name"], mount["name"])
        config_maps = {v["configMap"]["name"] for v in volumes.values() if "configMap" in v}
        # lre-pki holds the operator's CA certificates; the config is generated.
        assert generated in config_maps and config_maps <= {generated, "lre-pki"}


def test_the_prometheus_rule_is_the_rules_file() -> None:
    rules = yaml.safe_load((contract.DEPLOY / "prometheus" / "lre-rules.yml").read_text())
    (rule,) = _of_kind("PrometheusRule")
    assert rule["spec"] == rules, "run `make deploy-rules`"


# What the kustomize built into kubectl 1.20 (Debian's kubernetes-client,
# kustomize 2.0) reads: no components, no `labels`, directories only under
# `bases`. A newer field renders here and fails there.
KUSTOMIZE_2_FIELDS = {
    "apiVersion", "kind", "namespace", "resources", "bases", "configMapGenerator",
    "secretGenerator", "generatorOptions", "images", "commonLabels", "commonAnnotations",
    "patchesStrategicMerge", "patchesJson6902", "namePrefix", "nameSuffix",
}  # fmt: skip


def test_the_kustomizations_stay_within_kubectl_1_20() -> None:
    found = sorted(KIT.rglob("kustomization.yaml"))
    assert len(found) == 5
    for path in found:
        kustomization = yaml.safe_load(path.read_text())
        assert set(kustomization) <= KUSTOMIZE_2_FIELDS, (path, set(kustomization))
        assert kustomization["kind"] == "Kustomization", path
        for resource in kustomization.get("resources", []):
            assert (path.parent / resource).is_file(), (path, resource)
        for base in kustomization.get("bases", []):
            assert (path.parent / base / "kustomization.yaml").is_file(), (path, base)
