"""Renewal of archive timestamps: every evidence's seal (CAdES B-LTA) and
stored PDF proof (PAdES B-LTA) get a new archive timestamp before the
certificates their last timestamp relies on expire, or before the sunset
of its algorithms, so that the chain of timestamps keeps proving when the
evidence existed however long it is kept (docs/evidence.md, "Archive
timestamps").

Two steps, each in bounded batches: ``register`` looks at evidence never
looked at (the backfill of what exists, then each new evidence), records
until when its timestamps prove it; ``renew`` extends those whose coverage
ends within ``renew_before``, and gives every evidence its first archive
timestamp at once (B-LTA from the start: its signature timestamp is
otherwise its only link), each renewal a new version beside the earlier
ones, the latest being served. A renewal that would not extend the
coverage (the TSA's certificate ends no later, or the sunset comes first)
is not made: the worker would otherwise renew the same evidence forever.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from lre.server.domain.errors import WriteConflict
from lre.server.proofs import archive
from lre.server.storage.archive import Archived
from lre.server.storage.store import Stores

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchivePolicy:
    renew_before: dt.timedelta
    sunset: dt.datetime | None
    batch: int


@dataclass(frozen=True)
class Renewals:
    registered: int
    renewed: int


class ArchiveRenewal:
    def __init__(
        self,
        stores: Stores,
        stamper: archive.TimeStamper,
        validation: Callable[[], tuple[archive.ValidationData, dt.datetime]],
        policy: ArchivePolicy,
        clock: Callable[[], dt.datetime],
    ) -> None:
        """``validation`` gives what renewals add (chains and CRLs) and how far
        a timestamp made now reaches (its TSA chain's earliest expiry)."""
        self._stores = stores
        self._stamper = stamper
        self._validation = validation
        self._policy = policy
        self._clock = clock

    def register(self) -> int:
        """Records until when up to a batch of evidence never looked at are
        covered; how many."""
        now = self._clock()
        with self._stores.read() as store:
            found = store.archive.unregistered(self._policy.batch)
        covered = []
        for evidence_id, seal in found:
            try:
                covered.append((evidence_id, archive.covered_until(seal, self._policy.sunset)))
            except (ValueError, KeyError, TypeError):  # the seal's problems are ValueErrors
                # Unreadable seal: due at once, so the renewal says so loudly.
                logger.warning("evidence seal unreadable for archive coverage")
                covered.append((evidence_id, now))
        with self._stores.begin() as store:
            store.archive.register(covered, now)
        return len(covered)

    def renew(self) -> int:
        """One more archive timestamp on up to a batch of evidence whose
        coverage ends soonest and within ``renew_before``; how many."""
        now = self._clock()
        data, reach = self._validation()
        if self._policy.sunset is not None:
            reach = min(reach, self._policy.sunset)
        with self._stores.read() as store:
            due = store.archive.due(now + self._policy.renew_before, reach, self._policy.batch)
        done = 0
        # Timestamps are asked for outside any transaction (SQLite would hold
        # its write lock meanwhile); each renewal is then its own short write.
        for item in due:
            renewed = self._renewed(item, data)
            until = archive.covered_until(renewed.seal, self._policy.sunset)
            try:
                with self._stores.begin() as store:
                    store.archive.add_version(renewed, until, now)
            except WriteConflict:
                continue  # another worker renewed it meanwhile: its version stands
            done += 1
        return done

    def _renewed(self, item: Archived, data: archive.ValidationData) -> Archived:
        seal = archive.archive_seal(item.seal, self._stamper, data)
        pdf = archive.archive_pdf(item.pdf, self._stamper, data) if item.pdf else None
        return replace(item, seal=seal, pdf=pdf, version=item.version + 1)

    def step(self) -> Renewals:
        return Renewals(self.register(), self.renew())

    def summary(self) -> tuple[int, dt.datetime | None]:
        """Evidence never looked at, and the earliest end of any coverage."""
        with self._stores.read() as store:
            return store.archive.summary()


def pem_parts(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """The certificates and CRLs (DER) of a PEM file."""
    certificates, crls = [], []
    for kind, _headers, der in pem.unarmor(data, multiple=True):
        if kind == "CERTIFICATE":
            certificates.append(der)
        elif kind == "X509 CRL":
            crls.append(der)
    return certificates, crls


def reach_of(chain: list[bytes]) -> dt.datetime:
    """The earliest expiry of a TSA chain (DER certificates)."""
    reach: dt.datetime = min(
        asn1_x509.Certificate.load(c)["tbs_certificate"]["validity"]["not_after"].native
        for c in chain
    )
    return reach
