"""Factories for proofing: a local CA that issues personal certificates, a
local eID broker that signs ID tokens (real cryptography, no network)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import TypedDict

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lre.v1 import identity_pb2, identity_pb2_grpc

ISSUER = "https://eid.example.test"
AUDIENCE = "lre-provider"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def person_subject(given_name: str, family_name: str) -> x509.Name:
    """A natural person's certificate subject (ETSI EN 319 412-2)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{given_name} {family_name}"),
            x509.NameAttribute(NameOID.GIVEN_NAME, given_name),
            x509.NameAttribute(NameOID.SURNAME, family_name),
        ]
    )


def organisation_subject(name: str, identifier: str = "NTRFR-552100554") -> x509.Name:
    """A legal person's certificate subject (ETSI EN 319 412-3)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, identifier),
        ]
    )


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
        self,
        subject: x509.Name,
        days: int = 365,
        signing: bool = True,
        extensions: tuple[x509.Extension[x509.ExtensionType], ...] = (),
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usage = x509.KeyUsage(
            signing, signing, not signing, False, False, False, False, False, False
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
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
        )
        for extension in extensions:
            builder = builder.add_extension(extension.value, extension.critical)
        return key, builder.sign(self.key, hashes.SHA256())

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
            "given_name": "Camille",
            "family_name": "Dupont",
            "birthdate": "1990-04-12",
        }
        body.update(claims)
        return jwt.encode(body, self.key, algorithm="ES256", headers={"kid": self.kid})


CA = LocalCA("Qualified CA (test)")
OTHER_CA = LocalCA("Unknown CA (test)")
BROKER = Broker()


class EidSettings(TypedDict):
    eid_jwks_file: str
    eid_issuer: str
    eid_audience: str


def eid_broker_settings(directory: Path) -> EidSettings:
    """The server settings that trust BROKER (its JWKS written under
    ``directory``), for ``server_process(..., **eid_broker_settings(tmp_path))``."""
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps({"keys": [BROKER.jwk()]}))
    return EidSettings(eid_jwks_file=str(jwks), eid_issuer=ISSUER, eid_audience=AUDIENCE)


def proof_with_eid(
    identity: identity_pb2_grpc.IdentityServiceStub, party: str, **claims: object
) -> None:
    """The person proofs as ``party`` with an ID token BROKER signs with ``claims``
    (given_name, family_name...), as a portal forwards it."""
    nonce = f"n-{uuid.uuid4()}"
    identity.ProofWithEidAssertion(
        identity_pb2.ProofWithEidAssertionRequest(
            party=party, id_token=BROKER.id_token(nonce, **claims), nonce=nonce
        )
    )
