"""Proofing by certificate and by eID assertion, over real cryptography: a
local CA, a local OpenID Connect key pair, real databases."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain import journal
from lre.server.domain.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from lre.server.domain.identity import AssuranceLevel, ProofingMethod
from lre.server.domain.letters import PartyKind
from lre.server.domain.proofing import IdentityMismatch
from lre.server.services.identity import EidBroker, IdentityPolicy, IdentityService, NewParty
from lre.server.storage.store import Stores
from tests.support.journal import security_journal
from tests.support.parties import person
from tests.support.proofing import (
    AUDIENCE,
    BROKER,
    CA,
    ISSUER,
    OTHER_CA,
    Broker,
    organisation_subject,
    person_subject,
)
from tests.support.services import KEY, Clock


@pytest.fixture
def policy() -> IdentityPolicy:
    return IdentityPolicy(
        secrets_key=KEY,
        trust_anchors=(CA.cert,),
        eid=EidBroker(
            ISSUER,
            AUDIENCE,
            BROKER.jwks(),
            {
                "eidas1": AssuranceLevel.LOW,
                "eidas2": AssuranceLevel.SUBSTANTIAL,
                "eidas3": AssuranceLevel.HIGH,
            },
        ),
    )


def _party(service: IdentityService) -> uuid.UUID:
    return service.parties.create(
        "gateway",
        str(uuid.uuid4()),
        NewParty(
            PartyKind.LEGAL_PERSON, True, "contact@bailleur.example", company_name="Bailleur SARL"
        ),
    ).id


BAILLEUR = organisation_subject("Bailleur SARL")


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _prove(
    service: IdentityService,
    party: uuid.UUID,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    crls=(),
):
    challenge = service.proofing.begin_certificate(party)
    signature = key.sign(challenge.challenge, ec.ECDSA(hashes.SHA256()))
    return service.proofing.complete_certificate(
        party, challenge.id, [_der(cert)], signature, list(crls)
    )


def test_a_signed_challenge_with_a_trusted_certificate_proofs_at_high(
    service: IdentityService,
) -> None:
    party = _party(service)
    key, cert = CA.issue(BAILLEUR)
    record = _prove(service, party, key, cert, [CA.crl([])])
    assert (record.method, record.level) == (ProofingMethod.CERTIFICATE, AssuranceLevel.HIGH)
    assert record.expire_time is not None and record.expire_time <= cert.not_valid_after_utc
    assert service.parties.level(party) is AssuranceLevel.HIGH


@pytest.mark.parametrize(
    "case", ["wrong anchor", "revoked", "no signing usage", "tampered signature", "stale CRL"]
)
def test_certificate_refusals(service: IdentityService, case: str) -> None:
    party = _party(service)
    key, cert = (OTHER_CA if case == "wrong anchor" else CA).issue(
        BAILLEUR, signing=case != "no signing usage"
    )
    crls = {"revoked": [CA.crl([cert])], "stale CRL": [CA.crl([], next_update_days=-1)]}.get(
        case, []
    )
    challenge = service.proofing.begin_certificate(party)
    signed = challenge.challenge + (b"!" if case == "tampered signature" else b"")
    signature = key.sign(signed, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(AuthenticationFailed, match=r"^certificate proof refused$"):
        service.proofing.complete_certificate(party, challenge.id, [_der(cert)], signature, crls)
    assert service.parties.level(party) is None


def test_an_expired_certificate_is_refused_and_logged_without_its_subject(
    service: IdentityService, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    party = _party(service)
    key, cert = CA.issue(BAILLEUR, days=2)
    clock.advance(days=3)
    with caplog.at_level(logging.INFO), pytest.raises(AuthenticationFailed):
        _prove(service, party, key, cert)
    (refused,) = [r for r in caplog.records if r.getMessage() == "certificate proof refused"]
    assert refused.reason == "chain: certificate expired"  # type: ignore[attr-defined]
    # The verifier's own message names the subject: a person's name, not logged.
    assert not any("Bailleur" in str(vars(r)) for r in caplog.records)


def test_a_refusal_naming_an_invented_party_is_counted_not_journaled(
    service: IdentityService, database: sessionmaker[DbSession]
) -> None:
    """Anyone may name a party that does not exist; the journal is permanent."""
    invented = uuid.uuid4()
    key, cert = CA.issue(BAILLEUR)
    before = security_journal(database)
    counted = REGISTRY.get_sample_value("lre_identity_unknown_party_attempts_total") or 0
    with pytest.raises(AuthenticationFailed):
        service.proofing.complete_certificate(
            invented, uuid.uuid4(), [_der(cert)], key.sign(b"x", ec.ECDSA(hashes.SHA256())), []
        )
    assert security_journal(database) == before
    assert REGISTRY.get_sample_value("lre_identity_unknown_party_attempts_total") == counted + 1
    # A party that exists: its refusal is journaled.
    party = _party(service)
    with pytest.raises(AuthenticationFailed):
        service.proofing.complete_certificate(party, uuid.uuid4(), [_der(cert)], b"x", [])
    (refused,) = [e for e in security_journal(database) if e["kind"] == "proofing_refused"]
    assert refused["subject"] == f"parties/{party}"


def test_a_challenge_serves_once_and_only_its_party(service: IdentityService, clock: Clock) -> None:
    party, other = _party(service), _party(service)
    key, cert = CA.issue(BAILLEUR)
    challenge = service.proofing.begin_certificate(party)
    signature = key.sign(challenge.challenge, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(AuthenticationFailed):
        service.proofing.complete_certificate(other, challenge.id, [_der(cert)], signature, [])
    service.proofing.complete_certificate(party, challenge.id, [_der(cert)], signature, [])
    with pytest.raises(AuthenticationFailed):
        service.proofing.complete_certificate(party, challenge.id, [_der(cert)], signature, [])
    late = service.proofing.begin_certificate(party)
    clock.advance(minutes=6)
    with pytest.raises(AuthenticationFailed):
        service.proofing.complete_certificate(
            party, late.id, [_der(cert)], key.sign(late.challenge, ec.ECDSA(hashes.SHA256())), []
        )


def test_malformed_certificate_input_is_invalid_argument(service: IdentityService) -> None:
    party = _party(service)
    challenge = service.proofing.begin_certificate(party)
    for chain, crls, field in (
        ([], [], "certificate_chain"),
        ([b"junk"], [], "certificate_chain"),
        ([_der(CA.cert)], [b"junk"], "revocation_data"),
    ):
        with pytest.raises(InvalidArgument) as raised:
            service.proofing.complete_certificate(party, challenge.id, chain, b"sig", crls)
        assert raised.value.field == field


@pytest.mark.parametrize(
    ("acr", "level"),
    [
        ("eidas2", AssuranceLevel.SUBSTANTIAL),
        ("eidas3", AssuranceLevel.HIGH),
        ("eidas1", AssuranceLevel.LOW),
    ],
)
def test_an_id_token_proofs_at_the_level_of_its_acr(
    service: IdentityService, acr: str, level: AssuranceLevel
) -> None:
    party = person(service)
    record = service.proofing.with_eid_assertion(
        party, BROKER.id_token("n-" + acr, acr=acr), "n-" + acr
    )
    assert (record.method, record.level) == (ProofingMethod.EID_ASSERTION, level)


def _tampered(token: str) -> str:
    header, body, signature = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(body))
    claims["acr"] = "eidas3"
    return ".".join(
        [header, jwt.utils.base64url_encode(json.dumps(claims).encode()).decode(), signature]
    )


@pytest.mark.parametrize(
    "case",
    [
        "tampered",
        "wrong audience",
        "wrong issuer",
        "expired",
        "foreign key",
        "nonce mismatch",
        "unknown acr",
        "no nonce claim",
    ],
)
def test_eid_refusals(service: IdentityService, case: str) -> None:
    party = person(service)
    nonce = f"n-{uuid.uuid4()}"
    now = int(dt.datetime.now(dt.UTC).timestamp())
    token = {
        "tampered": lambda: _tampered(BROKER.id_token(nonce)),
        "wrong audience": lambda: BROKER.id_token(nonce, aud="someone-else"),
        "wrong issuer": lambda: BROKER.id_token(nonce, iss="https://evil.example"),
        "expired": lambda: BROKER.id_token(nonce, iat=now - 3600, exp=now - 600),
        "foreign key": lambda: Broker(kid=BROKER.kid).id_token(nonce),
        "nonce mismatch": lambda: BROKER.id_token("another-nonce"),
        "unknown acr": lambda: BROKER.id_token(nonce, acr="loa-unknown"),
        "no nonce claim": lambda: jwt.encode(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": "x",
                "iat": now,
                "exp": now + 300,
                "acr": "eidas2",
            },
            BROKER.key,
            algorithm="ES256",
            headers={"kid": BROKER.kid},
        ),
    }[case]()
    with pytest.raises(AuthenticationFailed, match=r"^eID assertion refused$"):
        service.proofing.with_eid_assertion(party, token, nonce)
    assert service.parties.level(party) is None


def test_a_replayed_assertion_is_refused(service: IdentityService) -> None:
    party = person(service)
    token = BROKER.id_token("n-replay")
    service.proofing.with_eid_assertion(party, token, "n-replay")
    with pytest.raises(AuthenticationFailed):
        service.proofing.with_eid_assertion(person(service), token, "n-replay")


def test_unconfigured_methods_say_so(database_url: str, clock: Clock) -> None:
    from lre.server.storage import db

    engine = db.make_engine(database_url)
    db.migrate(engine)
    bare = IdentityService(Stores(db.sessions(engine)), IdentityPolicy(secrets_key=KEY), clock)
    party = _party(bare)
    with pytest.raises(FailedPrecondition):
        bare.proofing.begin_certificate(party)
    with pytest.raises(FailedPrecondition):
        bare.proofing.with_eid_assertion(party, "x.y.z", "n")
    engine.dispose()


def test_document_check_proofs_at_substantial_and_keeps_no_number(
    service: IdentityService, clock: Clock, database: sessionmaker[DbSession]
) -> None:
    party = person(service)
    assert service.parties.level(party) is None
    record = service.proofing.record_document_check(
        party, "passport", "19AB12345", clock.now + dt.timedelta(days=30), "op-7"
    )
    assert record.level is AssuranceLevel.SUBSTANTIAL
    assert service.parties.level(party) is AssuranceLevel.SUBSTANTIAL
    with database() as session:
        stored = json.dumps(
            session.execute(text("SELECT details FROM identity_records")).scalar_one()
        )
    assert "19AB12345" not in stored and "document_number_hmac" in stored
    clock.advance(days=31)
    assert service.parties.level(party) is None  # the document expired
    with pytest.raises(InvalidArgument) as raised:
        service.proofing.record_document_check(
            party, "passport", "19AB12345", clock.now - dt.timedelta(days=1), "op-7"
        )
    assert raised.value.field == "document_expire_time"
    with pytest.raises(NotFound):
        service.proofing.record_document_check(
            uuid.uuid4(), "passport", "1", clock.now + dt.timedelta(days=9), "op"
        )
    for kind in ("", "Passport", "passport\nforged: line", "id card", "x" * 65, "9-card"):
        with pytest.raises(InvalidArgument) as raised:
            service.proofing.record_document_check(
                party, kind, "19AB12345", clock.now + dt.timedelta(days=9), "op-7"
            )
        assert raised.value.field == "document_type"


def test_a_document_proofs_no_longer_than_the_policy_allows(
    service: IdentityService, clock: Clock
) -> None:
    """A document valid for decades (or a mistyped year 9999) proofs for the
    policy's validity, as a certificate or an eID does."""
    party = person(service)
    record = service.proofing.record_document_check(
        party, "id-card", "X1", dt.datetime(9999, 12, 31, tzinfo=dt.UTC), "op-7"
    )
    assert record.expire_time == clock.now + dt.timedelta(days=365)
    # The document's own expiry stays on record, with the check's details.
    assert record.details["document_expire_time"] == "9999-12-31T00:00:00+00:00"
    clock.advance(days=366)
    assert service.parties.level(party) is None


def test_a_certificate_for_someone_else_proofs_nobody(service: IdentityService) -> None:
    """Mallory's valid certificate does not proof Camille; the challenge is spent."""
    camille = person(service)
    key, cert = CA.issue(person_subject("Mallory", "Martin"))
    challenge = service.proofing.begin_certificate(camille)
    signature = key.sign(challenge.challenge, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(IdentityMismatch, match="family_name"):
        service.proofing.complete_certificate(camille, challenge.id, [_der(cert)], signature, [])
    assert service.parties.level(camille) is None
    with pytest.raises(AuthenticationFailed):  # one attempt per challenge
        service.proofing.complete_certificate(camille, challenge.id, [_der(cert)], signature, [])
    key, cert = CA.issue(person_subject("CAMILLE", "Dupont"))
    record = _prove(service, camille, key, cert)
    assert record.details["matched"] == {"family_name": "Dupont", "given_name": "CAMILLE"}
    assert record.details["certificate_chain"]  # the evidence, kept
    company = _party(service)
    key, cert = CA.issue(organisation_subject("Autre SARL"))
    with pytest.raises(IdentityMismatch, match="organisation_name"):
        _prove(service, company, key, cert)


def test_proofs_name_a_party_as_its_latest_matching_proofing_did(
    service: IdentityService, database: sessionmaker[DbSession], clock: Clock
) -> None:
    """What e-mails and evidence name: the names the latest proofing that
    matched any verified (a later document check matched none), as read from
    the store, never a proofing's other details."""
    camille = person(service)
    key, cert = CA.issue(person_subject("CAMILLE", "Dupont"))
    _prove(service, camille, key, cert)
    clock.advance(seconds=1)
    service.proofing.record_document_check(
        camille, "passport", "19AB12345", clock.now + dt.timedelta(days=30), "op-7"
    )
    with Stores(database).read() as store:
        ((details, _),) = store.letters.parties([camille]).values()
    assert details.name == "CAMILLE Dupont"  # as the certificate says, not "Camille Dupont"
    assert details.email == "camille@example.org"


def test_of_several_proofings_the_latest_names_each_party_and_only_its_own(
    service: IdentityService, database: sessionmaker[DbSession], clock: Clock
) -> None:
    """Names are read for several parties at once: each gets its own latest
    certificate's, whatever the others' records and however many it has."""
    camille, dominique, claude = person(service), person(service), person(service)
    for given, family in (("CAMILLE", "DUPONT"), ("Camille", "DUPONT"), ("camille", "Dupont")):
        key, cert = CA.issue(person_subject(given, family))
        _prove(service, camille, key, cert)
        clock.advance(seconds=1)
    key, cert = CA.issue(person_subject("CAMILLE", "Dupont"))
    _prove(service, dominique, key, cert)  # a namesake, proofed last
    service.proofing.record_document_check(
        claude, "passport", "19AB12345", clock.now + dt.timedelta(days=30), "op-7"
    )
    with Stores(database).read() as store:
        found = store.letters.parties([camille, dominique, claude])
    assert {party: details.name for party, (details, _) in found.items()} == {
        camille: "camille Dupont",
        dominique: "CAMILLE Dupont",
        claude: "Camille Dupont",  # as registered: a document check matches no names
    }


def test_a_nonce_in_other_characters_is_a_refused_assertion(service: IdentityService) -> None:
    camille = person(service)
    with pytest.raises(AuthenticationFailed):
        service.proofing.with_eid_assertion(camille, BROKER.id_token("n-é"), "n-\uff45")
    assert service.parties.level(camille) is None


def test_an_eid_for_someone_else_proofs_nobody(service: IdentityService) -> None:
    camille = person(service)
    token = BROKER.id_token("n-mallory", given_name="Mallory", family_name="Martin")
    with pytest.raises(IdentityMismatch):
        service.proofing.with_eid_assertion(camille, token, "n-mallory")
    assert service.parties.level(camille) is None
    record = service.proofing.with_eid_assertion(camille, BROKER.id_token("n-ok"), "n-ok")
    assert record.details["matched"]["birth_date"] == "1990-04-12"
    assert record.details["claims"]["sub"] == "fc-1234"
    with pytest.raises(IdentityMismatch):  # an eID proofs a person, not a company
        service.proofing.with_eid_assertion(_party(service), BROKER.id_token("n-co"), "n-co")


def test_a_document_checked_in_person_proofs_at_high(
    service: IdentityService, clock: Clock
) -> None:
    party = person(service)
    record = service.proofing.record_document_check(
        party,
        "passport",
        "19AB12345",
        clock.now + dt.timedelta(days=30),
        "op-7",
        operator_certificate="operator.lre.test",
        person_present=True,
    )
    assert record.level is AssuranceLevel.HIGH
    assert record.details["person_present"] is True
    assert record.details["operator_certificate"] == "operator.lre.test"


def test_proofing_decisions_and_refusals_are_journaled(
    service: IdentityService, database: sessionmaker[DbSession]
) -> None:
    party, other = _party(service), _party(service)
    key, cert = CA.issue(BAILLEUR)
    record = _prove(service, party, key, cert, [CA.crl([])])
    challenge = service.proofing.begin_certificate(party)
    with pytest.raises(AuthenticationFailed):  # the party's challenge, presented for another
        service.proofing.complete_certificate(other, challenge.id, [_der(cert)], b"x", [])
    eid_party = person(service)
    eid = service.proofing.with_eid_assertion(eid_party, BROKER.id_token("n-j"), "n-j")
    with pytest.raises(AuthenticationFailed):
        service.proofing.with_eid_assertion(eid_party, BROKER.id_token("n-j"), "n-j")
    entries = security_journal(database)
    by_party = {
        p: [e for e in entries if e["subject"] == f"parties/{p}" and "roof" in e["kind"]]
        for p in (party, other, eid_party)
    }
    (proofed,) = by_party[party]
    # lre-log/2: the record bound by a digest salted with the record's own salt.
    assert proofed["format"] == "lre-log/2" and "recordSha256" not in proofed
    assert proofed["recordSaltedSha256"] == journal.identity_record_salted_digest(record)
    assert proofed["certificateSha256"] == cert.fingerprint(hashes.SHA256()).hex()
    assert (proofed["method"], proofed["level"]) == ("certificate", "high")
    (refused,) = by_party[other]
    assert (refused["kind"], refused["reason"]) == ("proofing_refused", "challenge")
    proofed, replayed = sorted(by_party[eid_party], key=lambda e: e["kind"])
    subject = eid.details["sub"]
    assert proofed["eidSubjectHmac"] == journal.keyed(KEY.current, "eid-subject", subject)
    assert (replayed["kind"], replayed["reason"]) == ("proofing_refused", "replayed")
    assert f'"{subject}"' not in json.dumps(entries)
