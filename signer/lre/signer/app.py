"""One signer process: the token, its certificates, the TSA and the sealer,
and the health monitor that reconnects to the token without a restart."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lre.signer import clock, metrics, pki, timesources
from lre.signer.config import SignerSettings
from lre.signer.errors import SignerError, TokenUnavailable
from lre.signer.pades import PadesSigner
from lre.signer.pdf_digest import PdfDigestSigner
from lre.signer.revocation import CrlFile
from lre.signer.seal import EvidenceSealer
from lre.signer.timesources import BuiltinSource
from lre.signer.token import Token
from lre.signer.tsa import CmsSigner, TimestampAuthority
from lre.signer.wrapping import KeyWrapper, WrapKeys

log = logging.getLogger("lre.signer")


@dataclass(frozen=True)
class _Keys:
    """What exists once the token is connected and its certificates are read."""

    tsa: TimestampAuthority
    sealer: EvidenceSealer
    pades: PadesSigner
    pdf_digest: PdfDigestSigner
    chains: dict[str, list[bytes]]


def load_ca_chain(settings: SignerSettings) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(settings.ca_chain_file.read_bytes())


def wrap_keys(settings: SignerSettings) -> WrapKeys:
    return WrapKeys.from_settings(
        settings.wrap_key_label, settings.wrap_key_labels_previous, settings.wrap_mechanism
    )


class Signer:
    def __init__(self, settings: SignerSettings) -> None:
        self.settings = settings
        self.token = Token(settings.pkcs11_module, settings.token_label, settings.pin)
        self.wrapper = KeyWrapper(self.token, wrap_keys(settings))
        # External TSAs are read before anything starts: a bad entry stops startup.
        self.external_tsas = timesources.external_sources(
            settings.timestamp_sources, settings.external_tsa_file
        )
        self.clock = clock.from_settings(
            settings.clock_sources(),
            settings.clock_max_offset_ms,
            settings.clock_check_interval_s,
            settings.clock_quorum,
            settings.clock_journal_file,
            settings.tsa_accuracy_ms,
        )
        self.ca_chain = load_ca_chain(settings)
        self._keys: _Keys | None = None
        self._healthy: bool | None = None
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None

    # -- what the services use -----------------------------------------------

    def _ready(self) -> _Keys:
        keys = self._keys
        if keys is None or not self.token.connected:
            raise TokenUnavailable("the token is not available")
        return keys

    @property
    def tsa(self) -> TimestampAuthority:
        return self._ready().tsa

    @property
    def sealer(self) -> EvidenceSealer:
        return self._ready().sealer

    @property
    def pades(self) -> PadesSigner:
        return self._ready().pades

    @property
    def pdf_digest(self) -> PdfDigestSigner:
        return self._ready().pdf_digest

    def certificate_chain(self, purpose: str) -> list[bytes]:
        return self._ready().chains[purpose]

    def wrap_key(self, key: bytes, context: bytes) -> bytes:
        self._ready()
        return self.wrapper.wrap(key, context)

    def unwrap_key(self, wrapped: bytes, context: bytes) -> bytes:
        self._ready()
        return self.wrapper.unwrap(wrapped, context)

    def rewrap_key(self, wrapped: bytes, context: bytes) -> tuple[bytes, bool]:
        self._ready()
        return self.wrapper.rewrap(wrapped, context)

    # -- health ------------------------------------------------------------------

    def _connect(self) -> None:
        s = self.settings
        self.token.connect()
        seal_cert = self.token.certificate(s.seal_key_label)
        tsa_cert = self.token.certificate(s.tsa_key_label)
        chain = [c.public_bytes(serialization.Encoding.DER) for c in self.ca_chain]
        tsa = TimestampAuthority(
            CmsSigner(self.token, s.tsa_key_label, tsa_cert),
            self.clock,
            s.tsa_policy_oid,
            s.tsa_accuracy_ms,
            s.qualified,
        )
        sources = timesources.ordered(
            s.timestamp_sources, self.external_tsas, BuiltinSource(tsa, self.ca_chain)
        )
        sealer = EvidenceSealer(
            CmsSigner(self.token, s.seal_key_label, seal_cert),
            sources,
            self.ca_chain,
            CrlFile(s.crl_file),
        )
        pades = PadesSigner(
            self.token, s.seal_key_label, seal_cert, self.ca_chain, sources, s.crl_file
        )
        pdf_digest = PdfDigestSigner(
            CmsSigner(self.token, s.seal_key_label, seal_cert),
            sources,
            self.ca_chain,
            CrlFile(s.crl_file),
        )
        self._keys = _Keys(
            tsa,
            sealer,
            pades,
            pdf_digest,
            {pki.SEAL: [seal_cert, *chain], pki.TIMESTAMPING: [tsa_cert, *chain]},
        )
        for purpose, der in ((pki.SEAL, seal_cert), (pki.TIMESTAMPING, tsa_cert)):
            not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
            metrics.CERT_EXPIRY.labels(purpose).set(not_after.timestamp())

    def check_health(self) -> bool:
        """Connects if needed and makes a real signature with each key."""
        try:
            if self._keys is None or not self.token.connected:
                self._connect()
            self.token.probe(self.settings.seal_key_label)
            self.token.probe(self.settings.tsa_key_label)
            healthy = True
        except SignerError as exc:
            self._keys = None
            if self._healthy is not False:
                log.warning("token not usable", extra={"reason": str(exc)})
            healthy = False
        except Exception:
            # A bug here must not silence health: report it and stay unhealthy.
            self._keys = None
            log.exception("health check failed unexpectedly")
            healthy = False
        if healthy and self._healthy is not True:
            log.info("token usable")
        self._healthy = healthy
        metrics.TOKEN_UP.set(1 if healthy else 0)
        return healthy

    def start_monitor(self, on_change: Callable[[bool], None]) -> None:
        def run() -> None:
            last: bool | None = None
            while not self._stop.is_set():
                healthy = self.check_health()
                if healthy != last:
                    on_change(healthy)
                    last = healthy
                self._stop.wait(self.settings.health_check_interval_s)

        self._monitor = threading.Thread(target=run, name="token-health", daemon=True)
        self._monitor.start()

    def close(self) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        self.clock.close()
        self.token.close()
