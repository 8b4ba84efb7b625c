"""The cryptographic checks behind proofing: an X.509 certificate that signed
our challenge, an eID broker's ID token. Pure functions: no database."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from lre.server.adapters.trusted_lists import Qualification
from lre.server.domain.proofing import Verified, qualified_for
from lre.server.services.identity.settings import EidBroker

EID_ALGORITHMS = ["ES256", "ES384", "RS256", "PS256"]


class Refused(Exception):
    """The proof does not hold; the message says why (for logs, not callers)."""


def certificate_refusal(
    anchors: tuple[x509.Certificate, ...],
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    crls: list[x509.CertificateRevocationList],
    challenge: bytes,
    signature: bytes,
    now: dt.datetime,
) -> str | None:
    """Why the certificate proof fails, or None when it holds: the chain to
    an anchor, valid now, a key usage that allows signatures, not revoked by
    the CRLs given, and the challenge signed with the certificate's key."""
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(anchors)))
        .time(now)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        chain = verifier.verify(leaf, intermediates).chain
    except verification.VerificationError:
        # A reason of our own words: the verifier's message quotes the
        # certificate's subject (a person's name), which is not logged.
        return _chain_refusal(leaf, intermediates, now)
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return "no key usage"
    if not (usage.digital_signature or usage.content_commitment):
        return "key usage allows no signature"
    issuer = chain[1] if len(chain) > 1 else chain[0]
    for crl in crls:
        if crl.issuer != leaf.issuer or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            continue
        if crl.next_update_utc is not None and crl.next_update_utc < now:
            return "revocation data out of date"
        if crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None:
            return "certificate revoked"
    key = leaf.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, challenge, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
        else:
            return "unsupported key type"
    except InvalidSignature:
        return "challenge signature does not verify"
    return None


def qualification_refusal(
    qualification: Qualification, natural_person: bool, matched: dict[str, str]
) -> str | None:
    """Why the certificate is no qualified certificate for this party, or None."""
    if not qualification.qualified:
        return qualification.reason
    if not qualification.qscd:
        # eIDAS art. 24(1a)(c) asks for the certificate of a qualified
        # signature or seal, which is made on a qualified device (art. 3(12)).
        return "its key is on no qualified signature or seal creation device (QSCD)"
    names_person = natural_person or "acting_person" in matched
    return qualified_for(natural_person, qualification.qc_type, names_person)


def eid_claims(broker: EidBroker, id_token: str, now: dt.datetime) -> dict[str, Any]:
    """The claims of an ID token the broker signed for us, still valid at
    ``now`` (the service's time, not the host's); Refused otherwise."""
    try:
        key = broker.keys[jwt.get_unverified_header(id_token)["kid"]]
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key.key,
            algorithms=EID_ALGORITHMS,
            audience=broker.audience,
            issuer=broker.issuer,
            options={
                "require": ["exp", "iat", "iss", "aud", "sub", "nonce"],
                "verify_iat": False,
            },
            leeway=dt.timedelta(seconds=30),
        )
        if now.timestamp() >= float(claims["exp"]) + 30:
            raise jwt.ExpiredSignatureError("expired at the service's time")
    except (jwt.PyJWTError, KeyError) as exc:
        raise Refused(type(exc).__name__) from None
    return claims


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = [str(a.value) for a in name.get_attributes_for_oid(oid)]
    return " ".join(values) if values else None


def certificate_identity(leaf: x509.Certificate) -> Verified:
    """Who a certificate names: given name and surname for a natural person
    (ETSI EN 319 412-2), organisation name and identifier for a legal person
    (EN 319 412-3). The common name is a label, not an identity: not used."""
    subject = leaf.subject
    return Verified(
        given_name=_attribute(subject, NameOID.GIVEN_NAME),
        family_name=_attribute(subject, NameOID.SURNAME),
        organisation_name=_attribute(subject, NameOID.ORGANIZATION_NAME),
        organisation_identifier=_attribute(subject, NameOID.ORGANIZATION_IDENTIFIER),
    )


def eid_identity(claims: dict[str, Any]) -> Verified:
    """Who an ID token names (OpenID Connect standard claims): an eID proofs a
    natural person."""
    birth_date = None
    # Absent or partial ("0000-05-04"): not compared, not recorded.
    with contextlib.suppress(KeyError, ValueError):
        birth_date = dt.date.fromisoformat(str(claims["birthdate"]))
    return Verified(
        given_name=str(claims.get("given_name") or "") or None,
        family_name=str(claims.get("family_name") or "") or None,
        birth_date=birth_date,
    )


def _chain_refusal(
    leaf: x509.Certificate, intermediates: list[x509.Certificate], now: dt.datetime
) -> str:
    """Why no path was found, in a word: the most common causes, checked."""
    for certificate in (leaf, *intermediates):
        which = "certificate" if certificate is leaf else "intermediate certificate"
        if now < certificate.not_valid_before_utc:
            return f"chain: {which} not yet valid"
        if now > certificate.not_valid_after_utc:
            return f"chain: {which} expired"
    if leaf.issuer == leaf.subject:
        return "chain: self-signed certificate"
    return "chain: no valid path to a trust anchor"
