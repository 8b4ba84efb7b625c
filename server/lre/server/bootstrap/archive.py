"""The archive timestamp renewal made from the settings: the TSA that stamps
(the signer's own, or an external one over HTTP) and what renewals add."""

from __future__ import annotations

import datetime as dt

from lre.runtime.config import ConfigError
from lre.server.adapters.signer import SignerClient
from lre.server.clock import utcnow
from lre.server.config import ServerSettings
from lre.server.proofs.archive import (
    SignerTimeStamper,
    ValidationData,
    http_stamper,
    is_self_signed,
)
from lre.server.services.archive import ArchivePolicy, ArchiveRenewal, pem_parts, reach_of
from lre.server.storage.store import Stores


def build_archive(settings: ServerSettings, stores: Stores, signer: SignerClient) -> ArchiveRenewal:
    """The renewal of archive timestamps, by the configured TSA or the signer's."""
    try:
        day = dt.date.fromisoformat(settings.archive_sunset) if settings.archive_sunset else None
    except ValueError:
        raise ConfigError("LRE_SERVER_ARCHIVE_SUNSET: a date, as 2031-01-01") from None
    external: tuple[list[bytes], list[bytes]] = ([], [])
    if settings.archive_tsa_url:
        if settings.archive_tsa_chain_file is None:
            raise ConfigError("LRE_SERVER_ARCHIVE_TSA_CHAIN_FILE: required with a TSA URL")
        external = pem_parts(settings.archive_tsa_chain_file.read_bytes())
    anchors_file = settings.seal_trust_anchors_file
    anchors = pem_parts(anchors_file.read_bytes())[0] if anchors_file else []

    def validation() -> tuple[ValidationData, dt.datetime]:
        data = signer.pdf_validation_data()
        certificates = [*data.certificates, *external[0]]
        roots = anchors or [c for c in certificates if is_self_signed(c)]
        chain = external[0] or signer.certificate_chain("timestamping")
        made = ValidationData(tuple(certificates), (*data.crls, *external[1]), tuple(roots))
        return made, reach_of(chain)

    stamper = (
        http_stamper(settings.archive_tsa_url, 30.0)
        if settings.archive_tsa_url
        else SignerTimeStamper(signer.timestamp)
    )
    policy = ArchivePolicy(
        dt.timedelta(days=settings.archive_renew_days),
        dt.datetime.combine(day, dt.time(), dt.UTC) if day else None,
        settings.archive_batch,
    )
    return ArchiveRenewal(stores, stamper, validation, policy, utcnow)
