"""Qualified certificates in proofing (eIDAS art. 24(1a)(c)): the certificate's
QCStatements and its issuer, a qualified CA on an EU trusted list (ETSI TS
119 612 XML, XAdES-signed by a test scheme operator), as pyHanko assesses them.
Real artefacts: a test PKI, a signed list on disk, a real database."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.runtime.config import ConfigError
from lre.server.adapters.trusted_lists import TrustedListError, TrustedLists, configured
from lre.server.domain.errors import FailedPrecondition
from lre.server.domain.identity import AssuranceLevel, IdentityRecord
from lre.server.domain.letters import PartyKind
from lre.server.domain.proofing import NotQualified
from lre.server.services.identity import IdentityPolicy, IdentityService, NewParty
from lre.server.storage.store import Stores
from tests.support.journal import security_journal
from tests.support.proofing import LocalCA, organisation_subject, person_subject
from tests.support.services import KEY, Clock
from tests.support.trusted_list import (
    FOR_E_SEALS,
    WITHDRAWN,
    Service,
    broken,
    qc_statements,
    trusted_list,
    write_pem,
)

QUALIFIED_CA = LocalCA("Qualified CA for signatures (test)")
SEAL_CA = LocalCA("Qualified CA for seals (test)")
PLAIN_CA = LocalCA("Non-qualified CA (test)")
WITHDRAWN_CA = LocalCA("Withdrawn CA (test)")
TL_SIGNER = LocalCA("Trusted list signer (test)")
ANCHORS = (QUALIFIED_CA.cert, SEAL_CA.cert, PLAIN_CA.cert, WITHDRAWN_CA.cert)
CAMILLE = person_subject("Camille", "Dupont")
BAILLEUR = organisation_subject("Bailleur SARL")
SERVICES = [
    Service("Qualified signatures (test)", QUALIFIED_CA.cert),
    Service("Qualified seals (test)", SEAL_CA.cert, issues_for=FOR_E_SEALS),
    Service("Withdrawn (test)", WITHDRAWN_CA.cert, status=WITHDRAWN),
]


@pytest.fixture
def listed(tmp_path: Path) -> Path:
    path = tmp_path / "ZZ.xml"
    path.write_bytes(trusted_list(SERVICES, TL_SIGNER))
    return path


def _service(
    database: sessionmaker[DbSession], clock: Clock, lists: Path, required: bool = True
) -> IdentityService:
    policy = IdentityPolicy(
        secrets_key=KEY,
        trust_anchors=ANCHORS,
        trusted_lists=TrustedLists((lists,), (TL_SIGNER.cert,)),
        require_qualified=required,
    )
    return IdentityService(Stores(database), policy, clock)


@pytest.fixture
def service(database: sessionmaker[DbSession], clock: Clock, listed: Path) -> IdentityService:
    return _service(database, clock, listed)


def _party(service: IdentityService, natural: bool = True) -> uuid.UUID:
    new = (
        NewParty(PartyKind.NATURAL_PERSON, False, "p@example.org",
                 given_name="Camille", family_name="Dupont")
        if natural
        else NewParty(PartyKind.LEGAL_PERSON, True, "p@example.org", company_name="Bailleur SARL")
    )  # fmt: skip
    return service.parties.create("gateway", str(uuid.uuid4()), new).id


def _prove(
    service: IdentityService,
    ca: LocalCA,
    subject: x509.Name = CAMILLE,
    natural: bool = True,
    compliance: bool = True,
    qc_type: str = "qct_esign",
    sscd: bool = True,
) -> tuple[uuid.UUID, IdentityRecord]:
    party = _party(service, natural)
    key, cert = ca.issue(subject, extensions=(qc_statements(compliance, qc_type, sscd),))
    challenge = service.proofing.begin_certificate(party)
    signature = key.sign(challenge.challenge, ec.ECDSA(hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return party, service.proofing.complete_certificate(party, challenge.id, [der], signature, [])


def test_a_qualified_certificate_proofs_at_high_and_the_record_names_the_list(
    service: IdentityService, listed: Path, database: sessionmaker[DbSession]
) -> None:
    party, record = _prove(service, QUALIFIED_CA)
    assert record.level is AssuranceLevel.HIGH
    assert service.parties.level(party) is AssuranceLevel.HIGH
    qualification = record.details["qualification"]
    assert qualification["qualified"] is True
    assert qualification["qc_type"] == "qct_esign" and qualification["qscd"] is True
    assert qualification["service"] == "Qualified signatures (test)"
    sha256 = hashlib.sha256(listed.read_bytes()).hexdigest()
    assert qualification["trusted_list"]["sha256"] == sha256
    assert qualification["trusted_list"]["territory"] == "ZZ"
    assert qualification["trusted_list"]["sequence_number"] == 7
    assert record.evidence_summary.startswith("qualified certificate ")
    assert "ZZ trusted list #7: Qualified signatures (test)" in record.evidence_summary
    proofed = [e for e in security_journal(database) if e["kind"] == "identity_proofed"]
    assert proofed[-1]["certificateQualified"] == "true"
    assert proofed[-1]["trustedList"] == "ZZ trusted list #7"
    assert proofed[-1]["trustedListSha256"] == sha256
    assert proofed[-1]["qualifiedService"] == "Qualified signatures (test)"


@pytest.mark.parametrize(
    ("ca", "compliance", "qc_type", "sscd", "why"),
    [
        (QUALIFIED_CA, False, "qct_esign", True, "declares no QcCompliance"),
        (PLAIN_CA, True, "qct_esign", True, "no qualified CA on the configured trusted lists"),
        (WITHDRAWN_CA, True, "qct_esign", True, "no qualified CA on the configured trusted lists"),
        # An electronic seal's certificate belongs to a legal person.
        (SEAL_CA, True, "qct_eseal", True, "QcType qct_eseal does not proof a natural person"),
        # A seal CA's service issues no certificates for signatures.
        (SEAL_CA, True, "qct_esign", True, "no qualified CA on the configured trusted lists"),
        # Qualified, but for advanced signatures only: its key is on no QSCD.
        (QUALIFIED_CA, True, "qct_esign", False, "its key is on no qualified .* device"),
    ],
)
def test_a_certificate_that_is_not_qualified_is_refused_at_high(
    service: IdentityService,
    database: sessionmaker[DbSession],
    ca: LocalCA,
    compliance: bool,
    qc_type: str,
    sscd: bool,
    why: str,
) -> None:
    with pytest.raises(NotQualified, match=f"^the certificate is not qualified: .*{why}") as caught:
        _prove(service, ca, compliance=compliance, qc_type=qc_type, sscd=sscd)
    assert isinstance(caught.value, FailedPrecondition)
    refused = [e for e in security_journal(database) if e["kind"] == "proofing_refused"]
    assert refused[-1]["reason"] == "not_qualified"
    assert not [e for e in security_journal(database) if e["kind"] == "identity_proofed"]


def test_a_company_by_its_seal_or_by_the_signature_of_a_person_acting_for_it(
    service: IdentityService,
) -> None:
    _, sealed = _prove(service, SEAL_CA, BAILLEUR, natural=False, qc_type="qct_eseal")
    assert sealed.level is AssuranceLevel.HIGH
    assert sealed.details["qualification"]["qc_type"] == "qct_eseal"
    acting = x509.Name(
        [
            *CAMILLE,
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bailleur SARL"),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, "NTRFR-552100554"),
        ]
    )
    _, signed = _prove(service, QUALIFIED_CA, acting, natural=False)
    assert signed.details["matched"]["acting_person"] == "Camille Dupont"
    # A signature certificate that names no person proofs no company.
    with pytest.raises(NotQualified, match="must name the natural person"):
        _prove(service, QUALIFIED_CA, BAILLEUR, natural=False)


def test_not_required_the_record_still_says_whether_it_was(
    database: sessionmaker[DbSession], clock: Clock, listed: Path
) -> None:
    service = _service(database, clock, listed, required=False)
    _, record = _prove(service, PLAIN_CA)
    assert record.level is AssuranceLevel.HIGH
    assert record.details["qualification"] == {
        "qualified": False,
        "reason": "its issuer is no qualified CA on the configured trusted lists",
    }
    assert not record.evidence_summary.startswith("qualified")


def test_a_list_past_its_next_update_or_replaced_by_a_broken_one_qualifies_nothing(
    database: sessionmaker[DbSession], clock: Clock, listed: Path, tmp_path: Path
) -> None:
    stale = tmp_path / "stale.xml"
    stale.write_bytes(trusted_list(SERVICES, TL_SIGNER, next_update_days=-1))
    with pytest.raises(NotQualified, match="ZZ trusted list #7 is past its next update"):
        _prove(_service(database, clock, stale), QUALIFIED_CA)
    closed = tmp_path / "closed.xml"
    closed.write_bytes(trusted_list(SERVICES, TL_SIGNER, next_update_days=None))
    with pytest.raises(NotQualified, match="ZZ trusted list #7 is closed"):
        _prove(_service(database, clock, closed), QUALIFIED_CA)

    service = _service(database, clock, listed)
    assert _prove(service, QUALIFIED_CA)[1].level is AssuranceLevel.HIGH
    listed.write_bytes(broken(listed.read_bytes()))  # replaced while serving: fails closed
    with pytest.raises(NotQualified, match="trusted lists cannot be used now"):
        _prove(service, QUALIFIED_CA)


def test_a_certificate_whose_qc_statements_cannot_be_read_is_refused_not_an_error(
    service: IdentityService,
) -> None:
    party = _party(service)
    oid = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3")
    garbled = x509.Extension(oid, False, x509.UnrecognizedExtension(oid, b"\x02\x01\x05"))
    key, cert = QUALIFIED_CA.issue(CAMILLE, extensions=(garbled,))
    challenge = service.proofing.begin_certificate(party)
    signature = key.sign(challenge.challenge, ec.ECDSA(hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    with pytest.raises(NotQualified, match="its QCStatements extension cannot be read"):
        service.proofing.complete_certificate(party, challenge.id, [der], signature, [])


def test_a_list_whose_signature_does_not_verify_does_not_load(listed: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(broken(listed.read_bytes()))
    with pytest.raises(TrustedListError, match=r"tampered\.xml: its signature does not verify"):
        TrustedLists((tampered,), (TL_SIGNER.cert,))
    # Signed, but by someone else than the configured scheme operator.
    other = tmp_path / "other.xml"
    other.write_bytes(trusted_list(SERVICES, LocalCA("Someone else")))
    signers = write_pem(tmp_path / "signers.pem", TL_SIGNER.cert)
    with pytest.raises(ConfigError, match=r"_FILES: trusted list other\.xml"):
        configured(str(other), signers, required=True)
    garbage = tmp_path / "garbage.xml"
    garbage.write_bytes(b"not XML <")
    with pytest.raises(TrustedListError, match=r"garbage\.xml: not a TS 119 612 list"):
        TrustedLists((garbage,), (TL_SIGNER.cert,))
    with pytest.raises(ConfigError, match="LRE_SERVER_TRUSTED_LIST_SIGNERS_FILE"):
        configured(str(listed), None, required=True)
    with pytest.raises(ConfigError, match="LRE_SERVER_PROOFING_REQUIRE_QUALIFIED"):
        configured("", None, required=True)
    assert configured(f"{listed}, ", signers, required=True) is not None
