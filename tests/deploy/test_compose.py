"""The evaluation stack's compose file refers only to what exists: files,
images built from the Containerfile, commands and settings the code has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import contract

COMPOSE_DIR = contract.DEPLOY / "compose"
CONTAINERFILE = contract.DEPLOY / "container" / "Containerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _containerfile_targets() -> set[str]:
    return set(re.findall(r"^FROM \S+ AS (\S+)$", CONTAINERFILE.read_text(), re.MULTILINE))


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return env


def test_bind_mounts_exist(compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (COMPOSE_DIR / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in named, f"{name}: volume {source} is not declared"


def test_lre_images_are_containerfile_targets(compose: dict[str, Any]) -> None:
    targets = _containerfile_targets()
    assert {"runtime", "dev"} <= targets
    header = (COMPOSE_DIR / "compose.yaml").read_text()
    for name, service in compose["services"].items():
        image = service["image"]
        if image.startswith("localhost/lre:"):
            target = image.split(":")[1]
            assert target in targets, f"{name}: {image} is not built by the Containerfile"
            # The build command the file documents makes that very tag.
            assert f"--target {target} -t {image}" in header


def test_the_build_section_builds_that_image(compose: dict[str, Any]) -> None:
    builds = [s for s in compose["services"].values() if "build" in s]
    assert len(builds) == 1
    (service,) = builds
    context = (COMPOSE_DIR / service["build"]["context"]).resolve()
    assert context == contract.ROOT
    assert (context / service["build"]["dockerfile"]).resolve() == CONTAINERFILE
    assert service["image"] == f"localhost/lre:{service['build']['target']}"


def test_commands_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if service["image"].startswith("localhost/lre:"):
            problem = contract.unknown_command(service["command"])
            assert problem is None, f"{name}: {problem}"


def test_settings_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        unknown = contract.unknown_env(set(_env(service)))
        assert not unknown, f"{name}: no such settings {sorted(unknown)}"


def test_the_api_runs_without_workers_and_workers_run_alone(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert _env(services["server"])["LRE_SERVER_RUN_WORKERS"] == "false"
    assert services["workers"]["command"] == ["lre-server", "work"]
    assert services["migrate"]["command"] == ["lre-server", "migrate"]
    assert services["signer-setup"]["command"][:2] == ["lre-signer", "dev-setup"]


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    """`up --wait` waits for health checks: every service that keeps running
    has one, those of the image run its own commands on the ports its
    settings open, and the server waits for a healthy signer."""
    services = compose["services"]
    one_shots = {n for n, s in services.items() if s.get("restart") == "on-failure"}
    assert one_shots == {"signer-setup", "migrate"}
    for name, service in services.items():
        if name in one_shots:
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] == "CMD", f"{name}: no health check"
        if test[1] == "lre-client":
            assert contract.unknown_command(test[1:]) is None
            port = test[3].rsplit(":", 1)[1]
            env = _env(service)
            assert any(
                k.endswith("_HEALTH_ADDRESS") and v.endswith(f":{port}") for k, v in env.items()
            ), f"{name}: nothing listens on {test[3]}"
    for dependant in ("server", "workers"):
        assert services[dependant]["depends_on"]["signer"]["condition"] == "service_healthy"


def test_dependencies_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_prometheus_scrapes_the_stack_with_the_shipped_rules(compose: dict[str, Any]) -> None:
    services = compose["services"]
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    mounts = dict(v.split(":")[1::-1] for v in services["prometheus"]["volumes"])
    for rule_file in config["rule_files"]:
        assert Path(COMPOSE_DIR / mounts[rule_file]).resolve() == (
            contract.DEPLOY / "prometheus" / "lre-rules.yml"
        )
    for job in config["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host, port = target.split(":")
            assert host in services, f"{job['job_name']}: no service {host}"
            env = _env(services[host])
            # The port the process listens on (its metrics/http address setting).
            addresses = [
                v
                for k, v in env.items()
                if k in ("LRE_SERVER_METRICS_ADDRESS", "LRE_SIGNER_METRICS_ADDRESS")
            ]
            assert addresses, f"{host} does not publish metrics on 0.0.0.0"
            assert addresses[0] == f"0.0.0.0:{port}", f"{host}: {addresses[0]} vs {port}"


def test_grafana_provisions_the_shipped_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[1::-1] for v in grafana["volumes"])
    provider = yaml.safe_load((COMPOSE_DIR / "grafana/provisioning/dashboards/lre.yml").read_text())
    folder = provider["providers"][0]["options"]["path"]
    dashboards = [m for m in mounts if m.startswith(folder + "/")]
    assert dashboards, "no dashboard mounted where the provider looks"
    assert (COMPOSE_DIR / mounts[dashboards[0]]).resolve() == (
        contract.DEPLOY / "grafana" / "lre-dashboard.json"
    )


def test_containerfile_copies_what_exists_and_runs_as_non_root() -> None:
    text = CONTAINERFILE.read_text()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for path in source.split():
            assert (contract.ROOT / path).exists(), f"COPY {path}: not in the repository"
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    for stage in stages:
        name = stage.split()[2] if " AS " in stage.splitlines()[0] else "?"
        if name in ("runtime", "dev"):
            users = re.findall(r"^USER (\S+)$", stage, re.MULTILINE)
            assert users and users[-1].split(":")[0] not in ("root", "0"), name
    # No vendor PKCS#11 library is installed; the p11-kit client module is.
    assert "p11-kit-modules" in text
    assert not re.search(r"libCryptoki|libcknfast|libcs_pkcs11|cloudhsm_pkcs11", text)


def test_the_object_store_overlay_extends_the_stack_with_real_settings(
    compose: dict[str, Any],
) -> None:
    overlay = yaml.safe_load((COMPOSE_DIR / "object-store.yaml").read_text())
    services = overlay["services"]
    for name in ("server", "workers"):
        assert name in compose["services"], name
        env = _env(services[name])
        assert env["LRE_SERVER_CONTENT_STORE"] == "s3"
        assert not contract.unknown_env(
            set(env) - {"LRE_SERVER_S3_ACCESS_KEY", "LRE_SERVER_S3_SECRET_KEY"}
        )
        assert set(services[name]["depends_on"]) <= set(services) | set(compose["services"])
    for volume in services["seaweedfs"]["volumes"]:
        source = volume.split(":")[0]
        assert not source.startswith(".") or (COMPOSE_DIR / source).exists(), source
    # The bucket the servers are told to use is the one made with Object Lock.
    command = " ".join(services["bucket"]["command"])
    bucket = _env(services["server"])["LRE_SERVER_S3_BUCKET"]
    assert f"create-bucket --bucket {bucket}" in command
    assert "--object-lock-enabled-for-bucket" in command
