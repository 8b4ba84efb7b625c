"""The server finds a proofing certificate's revocation status itself
(`proofing_revocation = "fetch"`): from the CRL distribution point the
certificate names, served over HTTP by a local process, and from the OCSP
responder its AIA names (`openssl ocsp` on a loopback port). A revoked
certificate is refused though the party sent no CRL; a status that cannot
be shown is refused too (level high fails closed); what was fetched is kept."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.adapters.revocation import RevocationChecker
from lre.server.domain.errors import AuthenticationFailed
from lre.server.domain.identity import AssuranceLevel
from lre.server.domain.letters import PartyKind
from lre.server.services.identity import IdentityPolicy, IdentityService, NewParty
from lre.server.storage.store import Stores
from tests.support.proofing import person_subject
from tests.support.revocation import PublishingCA
from tests.support.services import KEY, Clock


@pytest.fixture
def ca(tmp_path: Path) -> PublishingCA:
    return PublishingCA(tmp_path / "ca")


@pytest.fixture
def identity(database: sessionmaker[DbSession], clock: Clock, ca: PublishingCA) -> IdentityService:
    policy = IdentityPolicy(
        secrets_key=KEY,
        trust_anchors=(ca.cert,),
        revocation=RevocationChecker((ca.cert,), cache_s=600, timeout_s=2),
    )
    return IdentityService(Stores(database), policy, clock)


def _prove(service: IdentityService, key: ec.EllipticCurvePrivateKey, cert) -> AssuranceLevel:
    party = service.parties.create(
        "gateway",
        str(uuid.uuid4()),
        NewParty(PartyKind.NATURAL_PERSON, False, "camille@example.org",
                 given_name="Camille", family_name="Dupont"),
    ).id  # fmt: skip
    challenge = service.proofing.begin_certificate(party)
    signature = key.sign(challenge.challenge, ec.ECDSA(hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    # No CRL sent: what the server finds is what counts.
    record = service.proofing.complete_certificate(party, challenge.id, [der], signature, [])
    return record.level


CAMILLE = person_subject("Camille", "Dupont")


def test_a_revoked_certificate_is_refused_by_the_crl_at_its_distribution_point(
    identity: IdentityService, ca: PublishingCA
) -> None:
    good_key, good = ca.issue(CAMILLE, ocsp=False)
    bad_key, bad = ca.issue(CAMILLE, ocsp=False)
    ca.revoke(bad)
    with ca.crl_server():
        assert _prove(identity, good_key, good) is AssuranceLevel.HIGH
        with pytest.raises(AuthenticationFailed):
            _prove(identity, bad_key, bad)
    # The CRL is kept: with its server gone, the good certificate still proofs.
    assert _prove(identity, good_key, good) is AssuranceLevel.HIGH


def test_a_revoked_certificate_is_refused_by_its_ocsp_responder(
    identity: IdentityService, ca: PublishingCA
) -> None:
    good_key, good = ca.issue(CAMILLE, crl=False)
    bad_key, bad = ca.issue(CAMILLE, crl=False)
    ca.revoke(bad)
    with ca.ocsp_responder():
        assert _prove(identity, good_key, good) is AssuranceLevel.HIGH
        with pytest.raises(AuthenticationFailed):
            _prove(identity, bad_key, bad)


def test_an_unknown_status_is_refused(
    identity: IdentityService, ca: PublishingCA, caplog: pytest.LogCaptureFixture
) -> None:
    # Its distribution point answers nothing, and it names no OCSP responder.
    key, cert = ca.issue(CAMILLE, ocsp=False)
    with (
        caplog.at_level(logging.INFO, logger="lre.server.revocation"),
        pytest.raises(AuthenticationFailed),
    ):
        _prove(identity, key, cert)
    reasons = [str(getattr(r, "reason", "")) for r in caplog.records]
    assert "revocation status unknown" in reasons, reasons
    # The validator's own message names the subject: a person's name, not logged.
    assert not any("Camille" in str(vars(r)) for r in caplog.records)


def test_offline_the_operators_files_decide(
    database: sessionmaker[DbSession], clock: Clock, ca: PublishingCA, tmp_path: Path
) -> None:
    """No fetching: the CRLs and OCSP responses the operators keep in a directory."""
    kept = tmp_path / "revocation"
    kept.mkdir()
    policy = IdentityPolicy(
        secrets_key=KEY,
        trust_anchors=(ca.cert,),
        revocation=RevocationChecker(
            (ca.cert,), cache_s=600, timeout_s=2, offline_dir=kept, fetch=False
        ),
    )
    service = IdentityService(Stores(database), policy, clock)
    good_key, good = ca.issue(CAMILLE)
    bad_key, bad = ca.issue(CAMILLE)
    ca.revoke(bad)
    # Nothing in the directory yet: unknown, refused (and nothing fetched: no server runs).
    with pytest.raises(AuthenticationFailed):
        _prove(service, good_key, good)
    (kept / "ca.crl").write_bytes((ca.root / "www" / "ca.crl").read_bytes())
    assert _prove(service, good_key, good) is AssuranceLevel.HIGH
    with pytest.raises(AuthenticationFailed):
        _prove(service, bad_key, bad)

    # An OCSP response alone says the same.
    (kept / "ca.crl").unlink()
    ca.ocsp_response(good, kept / "good.ocsp")
    ca.ocsp_response(bad, kept / "bad.ocsp")
    # The responses are dated by the real clock, to the second: the test's
    # clock, frozen when the test began, is brought past them.
    clock.now = max(clock.now, dt.datetime.now(dt.UTC).replace(microsecond=0)) + dt.timedelta(
        seconds=2
    )
    assert _prove(service, good_key, good) is AssuranceLevel.HIGH
    with pytest.raises(AuthenticationFailed):
        _prove(service, bad_key, bad)
