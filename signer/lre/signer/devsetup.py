"""Development token and PKI under a local folder, for `make run` and tests.

Idempotent: a second run finds the token, keys, certificates and config and
reuses them. Never for production: the CA key sits in a file.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pkcs11 import ObjectClass

from lre.dev.tls import create_dev_tls
from lre.signer import pki
from lre.signer.config import SignerSettings
from lre.signer.token import Token

TOKEN_LABEL = "lre"  # noqa: S105 -- a label, not a secret
SOFTHSM_MODULE_CANDIDATES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/local/lib/softhsm/libsofthsm2.so"),
)


@dataclass(frozen=True)
class DevPaths:
    root: Path

    @property
    def softhsm_conf(self) -> Path:
        return self.root / "softhsm" / "softhsm2.conf"

    @property
    def pin_file(self) -> Path:
        return self.root / "secrets" / "token.pin"

    @property
    def so_pin_file(self) -> Path:
        return self.root / "secrets" / "token.so-pin"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def provider_certificates(self) -> Path:
        """What the provider publishes beside its root for `lre-verify
        --provider`: its seal and TSA certificates, current and retired."""
        return self.pki / "provider-certificates.pem"

    @property
    def config(self) -> Path:
        return self.root / "lre.toml"

    @property
    def server_key(self) -> Path:
        return self.root / "secrets" / "server.key"

    @property
    def database(self) -> Path:
        return self.root / "lre.db"


def softhsm_module() -> Path:
    for candidate in SOFTHSM_MODULE_CANDIDATES:
        if candidate.exists():
            return candidate
    raise FileNotFoundError("libsofthsm2.so not found: install the softhsm2 package")


def _secret(path: Path, size: int = 8) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(secrets.token_hex(size) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def _init_token(paths: DevPaths) -> None:
    tokens = paths.root / "softhsm" / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    if not paths.softhsm_conf.exists():
        paths.softhsm_conf.write_text(
            f"directories.tokendir = {tokens.resolve()}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n",
            encoding="utf-8",
        )
    os.environ["SOFTHSM2_CONF"] = str(paths.softhsm_conf.resolve())
    shown = subprocess.run(
        ["softhsm2-util", "--show-slots"], capture_output=True, text=True, check=True
    )
    if f"Label:            {TOKEN_LABEL}" in shown.stdout:
        return
    pin, so_pin = _secret(paths.pin_file), _secret(paths.so_pin_file)
    # PINs on the command line are visible to local users for an instant; this
    # is a development token on the developer's own machine.
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            TOKEN_LABEL,
            "--pin",
            pin,
            "--so-pin",
            so_pin,
        ],
        capture_output=True,
        check=True,
    )


def settings_for(paths: DevPaths) -> SignerSettings:
    return SignerSettings(
        pkcs11_module=softhsm_module(),
        token_label=TOKEN_LABEL,
        pin_file=paths.pin_file.resolve(),
        ca_chain_file=(paths.pki / "ca-chain.pem").resolve(),
        crl_file=(paths.pki / "crls.pem").resolve(),
    )


def dev_setup(root: Path) -> DevPaths:
    paths = DevPaths(root)
    root.mkdir(parents=True, exist_ok=True)
    _init_token(paths)
    settings = settings_for(paths)
    token = Token(settings.pkcs11_module, settings.token_label, settings.pin)
    token.connect()
    try:
        paths.pki.mkdir(exist_ok=True)
        key_file, root_file = paths.pki / "root-ca.key", paths.pki / "root-ca.pem"
        if key_file.exists():
            ca = pki.LocalCA.load(key_file, root_file)
        else:
            ca = pki.LocalCA.create()
            ca.save(key_file, root_file)
        (paths.pki / "ca-chain.pem").write_bytes(root_file.read_bytes())
        _publish_crl(ca, settings.crl_file)
        for label, purpose, subject in (
            (settings.seal_key_label, pki.SEAL, "CN=LRE Development Seal,O=LRE development,C=FR"),
            (
                settings.tsa_key_label,
                pki.TIMESTAMPING,
                "CN=LRE Development TSA,O=LRE development,C=FR",
            ),
        ):
            if not token.has_object(ObjectClass.PRIVATE_KEY, label):
                token.generate_ec_key(label)
            if not token.has_object(ObjectClass.CERTIFICATE, label):
                der = ca.issue(pki.build_csr(token, label, subject), purpose)
                pki.import_certificate(token, label, der)
            cert_pem = _pem(token.certificate(label))
            (paths.pki / f"{purpose}.pem").write_bytes(cert_pem)
            _declare(paths.provider_certificates, cert_pem)
        if not token.has_object(ObjectClass.SECRET_KEY, settings.wrap_key_label):
            token.generate_wrap_key(settings.wrap_key_label)
    finally:
        token.close()
    _secret(paths.server_key, 32)
    create_dev_tls(paths.root / "tls")
    if not paths.config.exists():
        paths.config.write_text(_config_text(paths, settings), encoding="utf-8")
    return paths


def _declare(published: Path, cert_pem: bytes) -> None:
    """Adds a certificate to the provider's published set, keeping the ones
    it had: a retired certificate still verifies what it sealed."""
    known = published.read_bytes() if published.exists() else b""
    if cert_pem not in known:
        published.write_bytes(known + cert_pem)


def _publish_crl(ca: pki.LocalCA, crl_file: Path) -> None:
    """A new CRL once the published one is past half its life (30 days)."""
    if crl_file.exists():
        next_update = x509.load_pem_x509_crl(crl_file.read_bytes()).next_update_utc
        if next_update is not None and next_update - dt.datetime.now(dt.UTC) > dt.timedelta(
            days=15
        ):
            return
    crl_file.write_bytes(ca.issue_crl().public_bytes(serialization.Encoding.PEM))


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def _config_text(paths: DevPaths, settings: SignerSettings) -> str:
    return f"""# Written by `lre-signer dev-setup`; edit freely, it is not overwritten.
[signer]
pkcs11_module = "{settings.pkcs11_module}"
token_label = "{settings.token_label}"
pin_file = "{settings.pin_file}"
ca_chain_file = "{settings.ca_chain_file}"
crl_file = "{settings.crl_file}"

[server]
database_url = "sqlite:///{paths.database.resolve()}"
secrets_key_file = "{paths.server_key.resolve()}"
mail_transport = "maildir:{(paths.root / "mail").resolve()}"
seal_trust_anchors_file = "{(paths.pki / "root-ca.pem").resolve()}"
provider_certificates_file = "{paths.provider_certificates.resolve()}"
"""
