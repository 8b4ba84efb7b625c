"""CAdES seals (CMS SignedData, RFC 5652) and their RFC 3161 signature
timestamps, checked with asn1crypto (structure) and cryptography (maths).

Every problem is a ``SealProblem`` naming what is wrong; the caller turns it
into a failed check. Nothing here decides trust: see ``chains``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class SealProblem(Exception):
    """What is wrong with a seal, in words a person can act on."""


@dataclass(frozen=True)
class Seal:
    """What a structurally sound seal says (before any check of trust)."""

    signed_data: cms.SignedData
    signer_info: cms.SignerInfo
    certificates: list[asn1_x509.Certificate]
    crls: list[bytes]


@dataclass(frozen=True)
class Timestamp:
    time: dt.datetime
    tsa: asn1_x509.Certificate
    certificates: list[asn1_x509.Certificate]


def load(seal_der: bytes) -> Seal:
    try:
        info = cms.ContentInfo.load(seal_der, strict=True)
        if info["content_type"].native != "signed_data":
            raise SealProblem("not a CMS SignedData")
        signed_data = info["content"]
        (signer_info,) = list(signed_data["signer_infos"])
        certificates = [
            c.chosen for c in signed_data["certificates"] or [] if c.name == "certificate"
        ]
        crls = [c.chosen.dump() for c in signed_data["crls"] or [] if c.name == "crl"]
    except SealProblem:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise SealProblem(f"not a readable CMS SignedData ({type(exc).__name__})") from None
    return Seal(signed_data, signer_info, certificates, crls)


def content(seal: Seal) -> bytes:
    encapsulated = seal.signed_data["encap_content_info"]
    if encapsulated["content"].native is None:
        raise SealProblem("the seal is detached: it encapsulates no document")
    return bytes(encapsulated["content"].contents)


def check_content(seal: Seal, document: bytes) -> None:
    """The seal encapsulates exactly ``document`` and its signed digest is of it."""
    if content(seal) != document:
        raise SealProblem("the seal encapsulates other bytes than the document")
    digest = _signed_attribute(seal.signer_info, "message_digest")
    name = seal.signer_info["digest_algorithm"]["algorithm"].native
    if digest is None or digest.native != _hash(name, document):
        raise SealProblem("the signed message-digest is not the document's")


def check_signature(seal: Seal, candidates: list[asn1_x509.Certificate]) -> asn1_x509.Certificate:
    """The signer's certificate, once the signature over the signed attributes
    verifies with it and signing-certificate-v2 names it."""
    return _check_signer_info(seal.signer_info, [*seal.certificates, *candidates])


def check_timestamp(seal: Seal, candidates: list[asn1_x509.Certificate]) -> Timestamp:
    """The signature timestamp (CAdES B-T): a valid RFC 3161 token over the signature value."""
    token = _unsigned_attribute(seal.signer_info, "signature_time_stamp_token")
    if token is None:
        raise SealProblem("no signature timestamp (the seal is not CAdES B-T)")
    return check_token(
        token,
        lambda algorithm: _hash(algorithm, seal.signer_info["signature"].native),
        candidates,
        "the timestamp is not over this seal's signature value",
    )


def check_token(
    token: cms.ContentInfo,
    expected: Callable[[str], bytes] | None,
    candidates: list[asn1_x509.Certificate],
    mismatch: str = "",
) -> Timestamp:
    """An RFC 3161 token: its TSTInfo signed by a TSA certificate, and (with
    ``expected``, the digest it must be over by algorithm name) over that."""
    try:
        token_data = token["content"]
        (token_signer,) = list(token_data["signer_infos"])
        encapsulated = token_data["encap_content_info"]
        if encapsulated["content_type"].native != "tst_info":
            raise SealProblem("the timestamp token does not hold a TSTInfo")
        tst_der = bytes(encapsulated["content"].contents)
        tst_info = tsp.TSTInfo.load(tst_der, strict=True)
        imprint = tst_info["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        gen_time: dt.datetime = tst_info["gen_time"].native
        token_certs = [
            c.chosen for c in token_data["certificates"] or [] if c.name == "certificate"
        ]
    except SealProblem:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise SealProblem(f"the timestamp token is not readable ({type(exc).__name__})") from None
    if expected is not None and imprint["hashed_message"].native != expected(algorithm):
        raise SealProblem(mismatch)
    digest = _signed_attribute(token_signer, "message_digest")
    name = token_signer["digest_algorithm"]["algorithm"].native
    if digest is None or digest.native != _hash(name, tst_der):
        raise SealProblem("the timestamp token's signed digest is not its TSTInfo's")
    try:
        tsa = _check_signer_info(token_signer, [*token_certs, *candidates])
    except SealProblem as exc:
        raise SealProblem(f"timestamp token: {exc}") from None
    eku = tsa.extended_key_usage_value
    if eku is None or eku.native != ["time_stamping"]:
        raise SealProblem("the timestamp's certificate is not a TSA's (extended key usage)")
    return Timestamp(gen_time, tsa, token_certs)


def _check_signer_info(
    signer_info: cms.SignerInfo, certificates: list[asn1_x509.Certificate]
) -> asn1_x509.Certificate:
    sid = signer_info["sid"]
    if sid.name != "issuer_and_serial_number":
        raise SealProblem("the signer is not named by issuer and serial number")
    wanted = sid.chosen
    signer = next(
        (
            c
            for c in certificates
            if c.issuer == wanted["issuer"] and c.serial_number == wanted["serial_number"].native
        ),
        None,
    )
    if signer is None:
        raise SealProblem("the signer's certificate is in neither the seal nor the bundle")
    ess = _signed_attribute(signer_info, "signing_certificate_v2")
    if ess is None:
        raise SealProblem("no signing-certificate-v2 attribute binds the signer's certificate")
    cert_id = ess["certs"][0]
    algorithm = cert_id["hash_algorithm"]["algorithm"].native
    if cert_id["cert_hash"].native != _hash(algorithm, signer.dump()):
        raise SealProblem("the signing-certificate attribute names another certificate")
    attrs = signer_info["signed_attrs"]
    # RFC 5652 5.4: the signature is over the attributes encoded as a SET OF.
    signed = b"\x31" + attrs.dump()[1:]
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    verify_signature(signer, signer_info["signature"].native, signed, digest_name)
    return signer


def verify_signature(
    certificate: asn1_x509.Certificate, signature: bytes, data: bytes, digest: str
) -> None:
    if digest not in _HASHES:
        raise SealProblem(f"digest algorithm {digest} is not accepted")
    key = x509.load_der_x509_certificate(certificate.dump()).public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_HASHES[digest]()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), _HASHES[digest]())
        else:
            raise SealProblem("the signer's key type is not supported")
    except InvalidSignature:
        raise SealProblem("the signature does not verify") from None


def _hash(name: str, data: bytes) -> bytes:
    if name not in _HASHES:
        raise SealProblem(f"digest algorithm {name} is not accepted")
    return hashlib.new(name, data).digest()


def _signed_attribute(signer_info: cms.SignerInfo, name: str) -> cms.Any | None:
    return _attribute(signer_info["signed_attrs"], name)


def _unsigned_attribute(signer_info: cms.SignerInfo, name: str) -> cms.Any | None:
    return _attribute(signer_info["unsigned_attrs"], name)


def _attribute(attrs: cms.CMSAttributes, name: str) -> cms.Any | None:
    for attr in attrs or []:
        if attr["type"].native == name:
            values = attr["values"]
            if len(values) != 1:
                raise SealProblem(f"the {name} attribute must have one value")
            return values[0]
    return None
