"""The real signer process: started for the session (its handle and
environment), on a private token copy for a block, and its commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lre.signer.devsetup import DevPaths
from lre.v1 import signing_pb2, signing_pb2_grpc
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status


@dataclass
class SignerProcess:
    grpc_address: str
    http_url: str
    paths: DevPaths
    log: Path

    @property
    def root_ca(self) -> Path:
        return self.paths.pki / "root-ca.pem"

    @property
    def tsa_cert(self) -> Path:
        return self.paths.pki / "timestamping.pem"


def copy_token(paths: DevPaths, into: Path) -> Path:
    """The session token's files copied under ``into``; returns the SOFTHSM2_CONF to use."""
    tokens = into / "tokens"
    shutil.copytree(paths.root / "softhsm" / "tokens", tokens)
    conf = into / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    return conf


def signer_env(paths: DevPaths, grpc_port: int, http_port: int, **extra: str) -> dict[str, str]:
    return {
        "LRE_CONFIG": str(paths.config),
        "SOFTHSM2_CONF": str(paths.softhsm_conf.resolve()),
        "LRE_SIGNER_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        "LRE_SIGNER_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
        "LRE_SIGNER_HEALTH_CHECK_INTERVAL_S": "0.2",
        **extra,
    }


@contextmanager
def signer(
    paths: DevPaths,
    softhsm_conf: Path,
    log: Path,
    env: dict[str, str] | None = None,
    /,
    **settings: str,
) -> Iterator[signing_pb2_grpc.SigningServiceStub]:
    """The real signer on ``softhsm_conf``'s token, with these settings (and environment)."""
    grpc_port, http_port = free_port(), free_port()
    env = {
        **signer_env(paths, grpc_port, http_port),
        "SOFTHSM2_CONF": str(softhsm_conf),
        **{f"LRE_SIGNER_{k.upper()}": v for k, v in settings.items()},
        **(env or {}),
    }
    with running([str(BIN / "lre-signer"), "serve"], env, log):
        address = f"127.0.0.1:{grpc_port}"
        assert wait_for(lambda: health_status(address) == SERVING, timeout=90), log.read_text()
        with grpc.insecure_channel(address) as ch:
            yield signing_pb2_grpc.SigningServiceStub(ch)


def unwrap(stub: signing_pb2_grpc.SigningServiceStub, blob: bytes, context: bytes) -> bytes:
    request = signing_pb2.UnwrapKeyRequest(wrapped_key=blob, context=context)
    return stub.UnwrapKey(request, timeout=10).key


def lre_signer(paths: DevPaths, softhsm_conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One `lre-signer` command on ``softhsm_conf``'s token."""
    env = {**os.environ, "LRE_CONFIG": str(paths.config), "SOFTHSM2_CONF": str(softhsm_conf)}
    return subprocess.run(
        [str(BIN / "lre-signer"), *args], env=env, capture_output=True, text=True, timeout=60
    )


def check_token(
    paths: DevPaths, softhsm_conf: Path, **settings: str
) -> tuple[int, dict[str, str], str]:
    """Runs `lre-signer check-token`; returns its exit code, {check: line} and its whole output."""
    env = {
        **os.environ,
        "LRE_CONFIG": str(paths.config),
        "SOFTHSM2_CONF": str(softhsm_conf),
        **{f"LRE_SIGNER_{k.upper()}": v for k, v in settings.items()},
    }
    done = subprocess.run(
        [str(BIN / "lre-signer"), "check-token"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = {}
    for line in done.stdout.splitlines():
        if line.startswith(("OK ", "FAIL ")):
            status, _, rest = line.partition(" ")
            what, _, why = rest.strip().partition(": ")
            lines[what] = f"{status} {why}"
    return done.returncode, lines, done.stdout + done.stderr


# The key ceremony in one interpreter (an `lre-signer` command each costs an
# interpreter's start): for each (label, purpose, subject), a key made on the
# token, a CSR signed there, the certificate from the CA given stored beside
# it, as `lre-signer create-key`, `csr` and `import-certificate` do.
_CEREMONY = """
import json, sys
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lre.signer import pki
from lre.signer.config import load
from lre.signer.token import Token

ca_key, ca_pem, keys = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
settings = load()
token = Token(settings.pkcs11_module, settings.token_label, settings.pin)
token.connect()
ca = pki.LocalCA.load(ca_key, ca_pem)
try:
    for label, purpose, subject in keys:
        token.generate_ec_key(label)
        der = ca.issue(pki.build_csr(token, label, subject), purpose)
        pki.import_certificate(token, label, der)
        print(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode())
finally:
    token.close()
"""


def key_ceremony(
    env: dict[str, str], ca: tuple[Path, Path], *keys: tuple[str, str, str]
) -> list[bytes]:
    """New keys on the token ``env`` names, certified by ``ca`` (key file,
    certificate file); their certificates (PEM), in order."""
    done = subprocess.run(
        [str(BIN / "python"), "-c", _CEREMONY, str(ca[0]), str(ca[1]), json.dumps(keys)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [
        c.public_bytes(serialization.Encoding.PEM)
        for c in x509.load_pem_x509_certificates(done.stdout.encode())
    ]
