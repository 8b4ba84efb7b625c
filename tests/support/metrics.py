"""Prometheus samples: of this process's registry, and of a server's /metrics."""

from __future__ import annotations

import ssl
import urllib.request
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import ServerProcess


def metric(name: str, **labels: str) -> float:
    """A sample of this process's Prometheus registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def grpc_counter(server: ServerProcess, name: str, method: str, code: str | None = None) -> float:
    """A grpc_server_* counter of the method whose full name ends with ``method``."""
    with urllib.request.urlopen(server.metrics_url, timeout=5) as reply:
        families = text_string_to_metric_families(reply.read().decode())
        for family in families:
            for sample in family.samples:
                labels = sample.labels
                if (
                    sample.name == f"grpc_server_{name}_total"
                    and f"/{labels['grpc_service']}/{labels['grpc_method']}".endswith(method)
                    and labels.get("grpc_code") == code
                ):
                    return sample.value
    return 0.0


def grpc_handled(server: ServerProcess, method: str, code: str) -> float:
    return grpc_counter(server, "handled", method, code)


def tls_metric(server: ServerProcess, ca: Path, name: str, **labels: str) -> float:
    """The sum of a sample's values (by name and labels) as a server with
    mutual TLS exposes them on its HTTPS /metrics port."""
    context = ssl.create_default_context(cafile=str(ca))
    url = server.metrics_url.replace("http://", "https://")
    with urllib.request.urlopen(url, timeout=5, context=context) as reply:
        return sum(
            sample.value
            for family in text_string_to_metric_families(reply.read().decode())
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )
