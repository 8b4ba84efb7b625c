"""Proofing by certificate and by eID assertion, over real cryptography: a
local CA, a local OpenID Connect key pair, real databases."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lre.server.domain.errors import AuthenticationFailed, FailedPrecondition, InvalidArgument
from lre.server.domain.identity import AssuranceLevel, ProofingMethod
from lre.server.domain.letters import PartyKind
from lre.server.services.identity import EidBroker, IdentityPolicy, IdentityService, NewParty
from tests.integration.services.conftest import KEY, Clock

ISSUER = "https://eid.example.test"
AUDIENCE = "lre-provider"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class LocalCA:
    def __init__(self, common_name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self, subject: str, days: int = 365, signing: bool = True
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usage = x509.KeyUsage(
            signing, signing, not signing, False, False, False, False, False, False
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(usage, critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return key, cert

    def crl(self, revoked: list[x509.Certificate], next_update_days: int = 7) -> bytes:
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - dt.timedelta(days=2))
            .next_update(now + dt.timedelta(days=next_update_days))
        )
        for cert in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(cert.serial_number)
                .revocation_date(now)
                .build()
            )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


class Broker:
    """A local eID broker: an EC key pair published as a JWKS."""

    def __init__(self, kid: str = "broker-1") -> None:
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwk(self) -> dict[str, str]:
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": "ES256"}

    def jwks(self) -> jwt.PyJWKSet:
        return jwt.PyJWKSet([self.jwk()])

    def id_token(self, nonce: str, **claims: object) -> str:
        now = int(dt.datetime.now(dt.UTC).timestamp())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "fc-1234",
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "acr": "eidas2",
        }
        body.update(claims)
        return jwt.encode(body, self.key, algorithm="ES256", headers={"kid": self.kid})


CA = LocalCA("Qualified CA (test)")
OTHER_CA = LocalCA("Unknown CA (test)")
BROKER = Broker()


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
    return service.create_party(
        str(uuid.uuid4()),
        NewParty(
            PartyKind.LEGAL_PERSON, True, "contact@bailleur.example", company_name="Bailleur SARL"
        ),
    ).id


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _prove(
    service: IdentityService,
    party: uuid.UUID,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    crls=(),
):
    challenge = service.begin_certificate_proofing(party)
    signature = key.sign(challenge.challenge, ec.ECDSA(hashes.SHA256()))
    return service.complete_certificate_proofing(
        party, challenge.id, [_der(cert)], signature, list(crls)
    )


def test_a_signed_challenge_with_a_trusted_certificate_proofs_at_high(
    service: IdentityService,
) -> None:
    party = _party(service)
    key, cert = CA.issue("Bailleur SARL")
    record = _prove(service, party, key, cert, [CA.crl([])])
    assert (record.method, record.level) == (ProofingMethod.CERTIFICATE, AssuranceLevel.HIGH)
    assert record.expire_time is not None and record.expire_time <= cert.not_valid_after_utc
    assert service.level(party) is AssuranceLevel.HIGH


@pytest.mark.parametrize(
    "case", ["wrong anchor", "revoked", "no signing usage", "tampered signature", "stale CRL"]
)
def test_certificate_refusals(service: IdentityService, case: str) -> None:
    party = _party(service)
    key, cert = (OTHER_CA if case == "wrong anchor" else CA).issue(
        "Bailleur SARL", signing=case != "no signing usage"
    )
    crls = {"revoked": [CA.crl([cert])], "stale CRL": [CA.crl([], next_update_days=-1)]}.get(
        case, []
    )
    challenge = service.begin_certificate_proofing(party)
    signed = challenge.challenge + (b"!" if case == "tampered signature" else b"")
    signature = key.sign(signed, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(AuthenticationFailed, match=r"^certificate proof refused$"):
        service.complete_certificate_proofing(party, challenge.id, [_der(cert)], signature, crls)
    assert service.level(party) is None


def test_an_expired_certificate_is_refused(service: IdentityService, clock: Clock) -> None:
    party = _party(service)
    key, cert = CA.issue("Bailleur SARL", days=2)
    clock.advance(days=3)
    with pytest.raises(AuthenticationFailed):
        _prove(service, party, key, cert)


def test_a_challenge_serves_once_and_only_its_party(service: IdentityService, clock: Clock) -> None:
    party, other = _party(service), _party(service)
    key, cert = CA.issue("Bailleur SARL")
    challenge = service.begin_certificate_proofing(party)
    signature = key.sign(challenge.challenge, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(AuthenticationFailed):
        service.complete_certificate_proofing(other, challenge.id, [_der(cert)], signature, [])
    service.complete_certificate_proofing(party, challenge.id, [_der(cert)], signature, [])
    with pytest.raises(AuthenticationFailed):
        service.complete_certificate_proofing(party, challenge.id, [_der(cert)], signature, [])
    late = service.begin_certificate_proofing(party)
    clock.advance(minutes=6)
    with pytest.raises(AuthenticationFailed):
        service.complete_certificate_proofing(
            party, late.id, [_der(cert)], key.sign(late.challenge, ec.ECDSA(hashes.SHA256())), []
        )


def test_malformed_certificate_input_is_invalid_argument(service: IdentityService) -> None:
    party = _party(service)
    challenge = service.begin_certificate_proofing(party)
    for chain, crls, field in (
        ([], [], "certificate_chain"),
        ([b"junk"], [], "certificate_chain"),
        ([_der(CA.cert)], [b"junk"], "revocation_data"),
    ):
        with pytest.raises(InvalidArgument) as raised:
            service.complete_certificate_proofing(party, challenge.id, chain, b"sig", crls)
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
    party = _party(service)
    record = service.proof_with_eid_assertion(
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
    party = _party(service)
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
        service.proof_with_eid_assertion(party, token, nonce)
    assert service.level(party) is None


def test_a_replayed_assertion_is_refused(service: IdentityService) -> None:
    party = _party(service)
    token = BROKER.id_token("n-replay")
    service.proof_with_eid_assertion(party, token, "n-replay")
    with pytest.raises(AuthenticationFailed):
        service.proof_with_eid_assertion(_party(service), token, "n-replay")


def test_unconfigured_methods_say_so(database_url: str, clock: Clock) -> None:
    from lre.server.storage import db

    engine = db.make_engine(database_url)
    db.migrate(engine)
    bare = IdentityService(db.sessions(engine), IdentityPolicy(secrets_key=KEY), clock)
    party = _party(bare)
    with pytest.raises(FailedPrecondition):
        bare.begin_certificate_proofing(party)
    with pytest.raises(FailedPrecondition):
        bare.proof_with_eid_assertion(party, "x.y.z", "n")
    engine.dispose()
