"""What the identity services are configured with."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from cryptography import x509

from lre.server.adapters.at_rest import SecretsKeys
from lre.server.adapters.revocation import RevocationChecker
from lre.server.adapters.trusted_lists import TrustedLists
from lre.server.domain.identity import AssuranceLevel

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class EidBroker:
    """An OpenID Connect provider whose ID tokens proof identities."""

    issuer: str
    audience: str
    keys: jwt.PyJWKSet
    acr_levels: dict[str, AssuranceLevel]


@dataclass(frozen=True)
class IdentityPolicy:
    # Encrypts TOTP seeds and codes at rest; its current key keys the HMACs of
    # codes and document numbers (a code issued before a rotation is asked again).
    secrets_key: SecretsKeys
    session_ttl: dt.timedelta = dt.timedelta(minutes=30)
    lockout_threshold: int = 5
    lockout: dt.timedelta = dt.timedelta(minutes=15)
    proof_validity: dt.timedelta = dt.timedelta(days=365)
    trust_anchors: tuple[x509.Certificate, ...] = ()
    eid: EidBroker | None = None
    # The server's own revocation check of proofing certificates (CRL
    # distribution points, OCSP); None: only the CRLs the party sends.
    revocation: RevocationChecker | None = None
    # The EU trusted lists that say which proofing certificates are qualified
    # (recorded when configured); with require_qualified, level high by
    # certificate takes a qualified one (eIDAS art. 24(1a)(c)).
    trusted_lists: TrustedLists | None = None
    require_qualified: bool = False

    def __post_init__(self) -> None:
        if self.require_qualified and self.trusted_lists is None:
            # Without lists nothing could be shown qualified: refused rather
            # than left to accept every certificate.
            raise ValueError("a qualified certificate is required but no trusted list is set")
