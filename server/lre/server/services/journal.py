"""Security journal entries that no other transaction carries: the process
starting with its configuration, and what this server sees of the signer
(its certificates, and its health going down and up). Entries that record a
change of data (proofing, credentials, sessions, holds, bounces, evidence
reads) are written by the services that make the change, in its transaction."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from lre.server.adapters.signer import KeyPurpose, SignerClient
from lre.server.domain import journal
from lre.server.domain.errors import DependencyUnavailable
from lre.server.domain.log import JournalRecord, LogKind
from lre.server.storage.store import Stores

logger = logging.getLogger("lre.journal")

# A password in a URL (postgresql://user:password@host/db): never in the digest's input.
_URL_PASSWORD = re.compile(r"(://[^/@:]*):[^/@]*@")
PURPOSES: tuple[KeyPurpose, ...] = ("seal", "timestamping")


def effective_settings(settings: Any) -> dict[str, str]:
    """The settings as the journal digests them: every field, as text, with
    passwords in URLs masked (the settings hold paths to secrets, never the
    secrets themselves)."""
    values = dataclasses.asdict(settings)
    return {k: _URL_PASSWORD.sub(r"\1:***@", str(v)) for k, v in sorted(values.items())}


def settings_digest(settings: Any) -> str:
    canonical = json.dumps(effective_settings(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class SecurityJournal:
    def __init__(self, stores: Stores, clock: Callable[[], dt.datetime]) -> None:
        self._stores = stores
        self._clock = clock

    def record(
        self, kind: LogKind, subject: str, **facts: str | bool | dt.datetime | None
    ) -> JournalRecord:
        """One entry in its own transaction."""
        now = self._clock()
        entry = journal.entry(kind, subject, now, **facts)
        with self._stores.begin() as store:
            store.log.append_journal(entry, now)
        return entry

    def process_started(self, command: str, version: str, settings: Any, instance: str) -> None:
        self.record(
            LogKind.PROCESS_STARTED,
            f"processes/{instance}",
            command=command,
            version=version,
            settingsSha256=settings_digest(settings),
        )


@dataclasses.dataclass(frozen=True)
class CertificateSeen:
    sha256: str
    subject: str
    issuer: str
    serial: str
    not_after: dt.datetime


class SignerWatch:
    """What the signer shows this server: its health (NOT_SERVING while its
    token cannot sign, or unreachable) and the certificates of its seal and
    TSA keys. Journals the first observation and every change; a change the
    journal could not take (database down) is journaled at the next look."""

    def __init__(self, journal_: SecurityJournal, signer: SignerClient, observer: str) -> None:
        self._journal = journal_
        self._signer = signer
        self._observer = observer
        self._up: bool | None = None
        self._certificates: dict[str, CertificateSeen] = {}

    def look(self) -> bool:
        """Whether the signer is serving; journals what changed."""
        up = self._signer.serving()
        if up != self._up:
            kind = LogKind.SIGNER_UP if up else LogKind.SIGNER_DOWN
            self._journal.record(kind, "signer", observer=self._observer)
            logger.info("signer health journaled", extra={"serving": up})
            self._up = up
        if not up:
            return False
        for purpose in PURPOSES:
            try:
                chain = self._signer.certificate_chain(purpose)
            except DependencyUnavailable:
                return False
            if not chain:
                continue
            seen = _seen(chain[0])
            if self._certificates.get(purpose) != seen:
                self._journal.record(
                    LogKind.SIGNER_CERTIFICATE,
                    f"signer/{purpose}",
                    certificateSha256=seen.sha256,
                    certificateSubject=seen.subject,
                    certificateIssuer=seen.issuer,
                    serial=seen.serial,
                    notAfter=seen.not_after,
                )
                self._certificates[purpose] = seen
        return True


def _seen(der: bytes) -> CertificateSeen:
    certificate = x509.load_der_x509_certificate(der)
    return CertificateSeen(
        sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        serial=format(certificate.serial_number, "x"),
        not_after=certificate.not_valid_after_utc,
    )
