"""Settings from a TOML file and the environment.

Each process describes its settings as a frozen dataclass whose field defaults
are the documented defaults. Values come, lowest priority first, from those
defaults, the ``[section]`` of the TOML file named by ``LRE_CONFIG``, and
environment variables ``{PREFIX}{FIELD}`` (e.g. ``LRE_SIGNER_GRPC_ADDRESS``).
Secrets are read from files (``*_file`` fields) so they stay out of process
listings and configuration dumps. When ``$CREDENTIALS_DIRECTORY`` is set
(systemd's ``LoadCredential=``), a relative path given to a ``*_file`` or
``*_files*`` setting names a file there (``pin_file = "token.pin"``); the
defaults stay relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from cryptography import x509
from cryptography.x509.oid import NameOID

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it, never its value."""


def _convert(name: str, raw: Any, kind: Any) -> Any:
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        kinds = [k for k in typing.get_args(kind) if k is not type(None)]
        if raw in ("", None):
            return None
        kind = kinds[0]
    if isinstance(raw, str):
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{name}: expected a boolean")
        if kind is Path:
            return Path(raw)
        try:
            return kind(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: expected {kind.__name__}") from exc
    if kind is Path:
        return Path(raw)
    if kind is float and isinstance(raw, int):
        return float(raw)
    if not isinstance(raw, kind):
        raise ConfigError(f"{name}: expected {kind.__name__}")
    return raw


def load(cls: type[T], section: str, env: typing.Mapping[str, str] | None = None) -> T:
    """Build ``cls`` from defaults, the TOML file's ``[section]`` and the environment."""
    env = os.environ if env is None else env
    prefix = f"LRE_{section.upper()}_"
    values: dict[str, Any] = {}
    config_file = env.get("LRE_CONFIG")
    if config_file:
        with open(config_file, "rb") as fh:
            values.update(tomllib.load(fh).get(section, {}))
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - fields
    if unknown:
        raise ConfigError(f"[{section}] unknown settings: {', '.join(sorted(unknown))}")
    for field in fields:
        if prefix + field.upper() in env:
            values[field] = env[prefix + field.upper()]
    converted = {k: _convert(prefix + k.upper(), v, hints[k]) for k, v in values.items()}
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials:
        for name, value in converted.items():
            if "_file" in name:
                converted[name] = _in_credentials(Path(credentials), value)
    return cls(**converted)


def _in_credentials(directory: Path, value: Any) -> Any:
    """A relative path (or comma-separated paths) under ``directory``."""
    if isinstance(value, Path):
        return value if value.is_absolute() else directory / value
    if isinstance(value, str):
        paths = [p.strip() for p in value.split(",") if p.strip()]
        return ",".join(str(_in_credentials(directory, Path(p))) for p in paths)
    return value


def read_secret(path: Path | None, env_name: str) -> str | None:
    """A secret from a file (preferred) or an environment variable."""
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    return os.environ.get(env_name)


def with_password(url: str, password_file: Path | None, setting: str) -> str:
    """``url`` with the password from ``password_file`` put in it,
    percent-encoded (a password may hold ``@``, ``/`` or ``%``): the file is
    the secret, and neither the URL in the configuration nor the environment
    carries it."""
    if password_file is None:
        return url
    scheme, sep, rest = url.partition("://")
    user, at, host = rest.partition("@")
    if not sep or not at or not user or ":" in user:
        raise ConfigError(f"{setting}: needs a database URL with a user and no password")
    try:
        password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{setting}: {exc.strerror}: {password_file}") from None
    return f"{scheme}://{user}:{quote(password, safe='')}@{host}"


PROFILES = ("development", "production")
# The organisation name of the development CA (lre.dev.tls): a certificate it
# issued is never a production identity.
DEVELOPMENT_CA_ORGANIZATION = "LRE development"


def production_problems(
    settings: Any, prefix: str, must_differ: tuple[str, ...], rules: dict[str, str]
) -> list[str]:
    """What keeps ``settings`` from running as production: each setting of
    ``must_differ`` still at its development default, each setting of
    ``rules`` failing its rule (the rule's text says what it wants), and any
    TLS file issued by the development CA. Empty under the development profile.
    """
    if settings.profile not in PROFILES:
        return [f"{prefix}PROFILE: development or production"]
    if settings.profile != "production":
        return []
    defaults = {f.name: f.default for f in dataclasses.fields(settings)}
    problems = [
        f"{prefix}{name.upper()}: still the development default"
        for name in must_differ
        if getattr(settings, name) == defaults[name]
    ]
    problems += [f"{prefix}{name.upper()}: {rule}" for name, rule in rules.items()]
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if field.name.endswith("ca_file") and isinstance(value, Path) and _development_ca(value):
            problems.append(f"{prefix}{field.name.upper()}: names the development CA")
    return problems


def _development_ca(path: Path) -> bool:
    """Whether the PEM file names the development CA (unreadable files are
    reported where they are opened, not here)."""
    try:
        text = path.read_bytes()
    except OSError:
        return False
    try:
        certificates = x509.load_pem_x509_certificates(text)
    except ValueError:
        return False
    return any(
        a.value == DEVELOPMENT_CA_ORGANIZATION
        for c in certificates
        for a in c.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )
