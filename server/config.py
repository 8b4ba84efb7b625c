"""Server settings: defaults here, overridable by ``[server]`` in the
``LRE_CONFIG`` TOML file and by ``LRE_SERVER_*`` environment variables."""

from __future__ import annotations

from dataclasses import dataclass

from lre import config


@dataclass(frozen=True)
class ServerSettings:
    # SQLite for the zero-setup default; postgresql+psycopg://... in production.
    database_url: str = "sqlite:///var/lre.db"
    grpc_address: str = "127.0.0.1:50051"
    # Prometheus /metrics.
    metrics_address: str = "127.0.0.1:9101"
    signer_address: str = "127.0.0.1:50052"
    grpc_threads: int = 16
    health_check_interval_s: float = 2.0
    log_level: str = "INFO"


def load() -> ServerSettings:
    return config.load(ServerSettings, "server")
