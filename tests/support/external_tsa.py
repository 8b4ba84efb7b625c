"""A second, independently configured timestamp authority: another
`lre-signer` process on its own SoftHSM token, with its own root CA (another
name, another key), serving RFC 3161 over HTTP on a loopback port. What the
provider's signer is configured to use as an external TSA in the tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from lre.signer import pki
from lre.signer.devsetup import softhsm_module
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.signer import key_ceremony

TOKEN = "qtsp"
ROOT_NAME = "Test QTSP Root CA"


@dataclass(frozen=True)
class ExternalTsaPki:
    root: Path

    @property
    def chain(self) -> Path:
        """The TSA's certificate, then its root: the expected certificate."""
        return self.root / "tsa-chain.pem"

    @property
    def root_ca(self) -> Path:
        return self.root / "root-ca.pem"

    @property
    def crl(self) -> Path:
        return self.root / "crl.pem"

    @property
    def tsa_cert(self) -> Path:
        return self.root / "tsa.pem"

    def env(self) -> dict[str, str]:
        return {
            "SOFTHSM2_CONF": str(self.root / "softhsm2.conf"),
            "LRE_SIGNER_PKCS11_MODULE": str(softhsm_module()),
            "LRE_SIGNER_TOKEN_LABEL": TOKEN,
            "LRE_SIGNER_PIN_FILE": str(self.root / "pin"),
            "LRE_SIGNER_CA_CHAIN_FILE": str(self.root_ca),
            "LRE_SIGNER_CRL_FILE": str(self.crl),
            # It only stamps: its one key stands for the seal key a signer needs.
            "LRE_SIGNER_SEAL_KEY_LABEL": "qtsp-tsa",
            "LRE_SIGNER_TSA_KEY_LABEL": "qtsp-tsa",
            "LRE_SIGNER_TSA_POLICY_OID": "1.3.6.1.4.1.99999.3161",
            "LRE_SIGNER_HEALTH_CHECK_INTERVAL_S": "0.2",
        }


def make_external_tsa(root: Path) -> ExternalTsaPki:
    """Its own token, keys made on it, certificates from its own CA."""
    made = ExternalTsaPki(root)
    tokens = root / "tokens"
    tokens.mkdir(parents=True)
    (root / "softhsm2.conf").write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    (root / "pin").write_text("qtsp-pin\n", encoding="utf-8")
    env = made.env()
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", TOKEN,
         "--pin", "qtsp-pin", "--so-pin", "qtsp-so-pin"],
        env={**os.environ, "SOFTHSM2_CONF": env["SOFTHSM2_CONF"]},
        check=True,
        capture_output=True,
    )  # fmt: skip
    ca = pki.LocalCA.create(ROOT_NAME)
    ca.save(root / "root-ca.key", made.root_ca)
    made.crl.write_bytes(ca.issue_crl().public_bytes(serialization.Encoding.PEM))
    made.tsa_cert.write_bytes(
        key_ceremony(
            {k: v for k, v in {**os.environ, **env}.items() if k != "LRE_CONFIG"},
            (root / "root-ca.key", made.root_ca),
            ("qtsp-tsa", pki.TIMESTAMPING, "CN=Test QTSP TSA,O=Test QTSP,C=BE"),
        )[0]
    )
    made.chain.write_bytes(made.tsa_cert.read_bytes() + made.root_ca.read_bytes())
    return made


@contextmanager
def serving(made: ExternalTsaPki, log: Path, http_port: int | None = None) -> Iterator[str]:
    """The external TSA serving; yields its RFC 3161 URL."""
    http_port = http_port or free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "LRE_CONFIG"},
        **made.env(),
        "LRE_SIGNER_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SIGNER_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
    }
    url = f"http://127.0.0.1:{http_port}/tsa"
    with running([str(BIN / "lre-signer"), "serve"], env, log):
        assert wait_for(lambda: _answers(url), timeout=60), log.read_text()
        yield url


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        request = urllib.request.Request(
            url, data=b"", headers={"Content-Type": "application/timestamp-query"}
        )
        with urllib.request.urlopen(request, timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False
