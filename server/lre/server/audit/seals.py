"""Checks that a seal covers exactly its document: CAdES B-T as the signer
makes it (RFC 5652 SignedData encapsulating the document, ETSI EN 319 122-1
signed attributes, an RFC 3161 signature timestamp, by our TSA or an
external one, whose tokens may be RSA and use SHA-384 or SHA-512).

Per seal, in process: the encapsulated content is the document, the
message-digest attribute is its SHA-256, signing-certificate-v2 names the
signing certificate, the signature over the signed attributes verifies, the
timestamp's imprint is the SHA-256 of that signature and the TSA's signature
verifies. Each distinct certificate's chain to `seal_trust_anchors_file` is
checked once, by `openssl verify`, and remembered: a log of a million seals
has a handful of certificates, and a process per seal (`openssl cms -verify`)
would cost hours.

With the provider's declared certificates (`provider_certificates_file`: its
seal certificates, current and retired, and its TSAs'), a seal must also be
by one of the seal certificates and its timestamp by one of the TSAs: the
anchors certify every subscriber of their CA, not only the provider."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from lre.runtime import structures as s

_DIGESTS = {s.SHA256: "sha256", s.SHA384: "sha384", s.SHA512: "sha512"}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_ECDSA = {
    s.ECDSA_WITH_SHA256: "sha256",
    x509.ObjectIdentifier("1.2.840.10045.4.3.3"): "sha384",
    x509.ObjectIdentifier("1.2.840.10045.4.3.4"): "sha512",
}
_SIGNATURES = {
    **_ECDSA,
    x509.ObjectIdentifier("1.2.840.113549.1.1.11"): "sha256",  # sha256WithRSAEncryption
    x509.ObjectIdentifier("1.2.840.113549.1.1.12"): "sha384",
    x509.ObjectIdentifier("1.2.840.113549.1.1.13"): "sha512",
}
_RSA_ENCRYPTION = x509.ObjectIdentifier("1.2.840.113549.1.1.1")

# openssl verify -purpose: the TSA's certificate must be for timestamping.
ANY, TIMESTAMPING = "any", "timestampsign"


class Provider:
    """The provider's declared seal and TSA certificates (DER), from a PEM
    file; a certificate with the timeStamping extended key usage is a TSA's."""

    def __init__(self, path: Path) -> None:
        self.seals: set[bytes] = set()
        self.tsas: set[bytes] = set()
        for certificate in x509.load_pem_x509_certificates(path.read_bytes()):
            der = certificate.public_bytes(serialization.Encoding.DER)
            try:
                usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
                tsa = ExtendedKeyUsageOID.TIME_STAMPING in usages
            except x509.ExtensionNotFound:
                tsa = False
            (self.tsas if tsa else self.seals).add(der)


class SealChecker:
    def __init__(self, anchors: Path, provider: Provider | None = None) -> None:
        self._anchors = anchors
        self._provider = provider
        # (certificate DER, purpose) -> None when it chains to the anchors, else why not.
        self._chains: dict[tuple[bytes, str], str | None] = {}

    def anchor_certificates(self) -> list[bytes]:
        """The anchors (DER), for validators that take them as objects."""
        return [
            c.public_bytes(serialization.Encoding.DER)
            for c in x509.load_pem_x509_certificates(self._anchors.read_bytes())
        ]

    def problem(self, seal: bytes, document: bytes) -> str | None:
        """Why the seal does not cover the document under the anchors, or None."""
        try:
            return self._check(seal, document)
        except ValueError as exc:  # DER decoding, a missing attribute
            return f"is malformed ({_short(exc)})"

    def _check(self, seal: bytes, document: bytes) -> str | None:
        signed, signer_info, certificate = _signed(seal, s.ID_DATA)
        if signed.encap_content_info.content != document:
            return "does not cover its document (the sealed content differs)"
        attributes = _attributes(signer_info)
        if attributes.get(s.ID_MESSAGE_DIGEST) != _octets(hashlib.sha256(document).digest()):
            return "does not cover its document (message-digest differs)"
        why = self._signature(signer_info, certificate)
        if why:
            return why
        cert_der = certificate.public_bytes(serialization.Encoding.DER)
        essv2 = attributes.get(s.ID_SIGNING_CERTIFICATE_V2)
        expected = asn1.encode_der(
            s.SigningCertificateV2(
                certs=[s.ESSCertIDv2(cert_hash=hashlib.sha256(cert_der).digest())]
            )
        )
        if essv2 != expected:
            return "signing-certificate-v2 does not name the signing certificate"
        others = signed.certificates.as_list() if signed.certificates else []
        why = self._chain(certificate, others, ANY)
        if why:
            return why
        if self._provider is not None and cert_der not in self._provider.seals:
            return "is sealed by a certificate that is not one of the provider's seal certificates"
        unsigned = (
            {a.attr_type: a.attr_values.as_list() for a in signer_info.unsigned_attrs.as_list()}
            if signer_info.unsigned_attrs
            else {}
        )
        tokens = unsigned.get(s.ID_SIGNATURE_TIME_STAMP_TOKEN, [])
        if len(tokens) != 1:
            return "has no signature timestamp"
        imprint = hashlib.sha256(signer_info.signature).digest()
        return self.timestamp(asn1.encode_der(tokens[0]), imprint, others)

    def timestamp(
        self, token: bytes, imprint: bytes | None, others: list[x509.Certificate]
    ) -> str | None:
        """Why a timestamp token is not a valid one over ``imprint`` (SHA-256;
        None: its imprint was checked by the caller) by a declared TSA whose
        certificate chains to the anchors, or None."""
        signed, signer_info, tsa = _signed(token, s.ID_CT_TST_INFO)
        content = signed.encap_content_info.content
        if content is None:
            return "has a timestamp without its TSTInfo"
        info = asn1.decode_der(s.TSTInfo, content)
        message = info.message_imprint
        if imprint is not None and (
            message.hash_algorithm.algorithm != s.SHA256 or message.hashed_message != imprint
        ):
            return "has a timestamp over something else than its signature"
        attributes = _attributes(signer_info)
        # An external TSA may sign with another digest than ours (SHA-384, SHA-512).
        digest = _DIGESTS.get(signer_info.digest_algorithm.algorithm)
        if digest is None:
            return "has a timestamp with an unsupported digest algorithm"
        if attributes.get(s.ID_MESSAGE_DIGEST) != _octets(hashlib.new(digest, content).digest()):
            return "has a timestamp whose message-digest differs from its TSTInfo"
        if self._signature(signer_info, tsa):
            return "has a timestamp whose signature does not verify"
        provider = self._provider
        if (
            provider is not None
            and tsa.public_bytes(serialization.Encoding.DER) not in provider.tsas
        ):
            return "has a timestamp by a TSA the provider did not declare"
        return self._chain(tsa, others, TIMESTAMPING)

    @staticmethod
    def _signature(signer_info: s.SignerInfo, certificate: x509.Certificate) -> str | None:
        """ECDSA, or RSA PKCS#1 v1.5 (what external TSAs commonly sign with),
        over SHA-256/384/512."""
        algorithm = signer_info.signature_algorithm.algorithm
        digest = _SIGNATURES.get(algorithm)
        if digest is None and algorithm == _RSA_ENCRYPTION:
            # RFC 3370: rsaEncryption, the digest named by digestAlgorithm.
            digest = _DIGESTS.get(signer_info.digest_algorithm.algorithm)
        if digest is None:
            return "has an unsupported signature algorithm"
        chosen = _HASHES[digest]()
        key = certificate.public_key()
        data = asn1.encode_der(signer_info.signed_attrs)
        try:
            if isinstance(key, ec.EllipticCurvePublicKey) and algorithm in _ECDSA:
                key.verify(signer_info.signature, data, ec.ECDSA(chosen))
            elif isinstance(key, rsa.RSAPublicKey) and algorithm not in _ECDSA:
                key.verify(signer_info.signature, data, padding.PKCS1v15(), chosen)
            else:
                return "has a signing certificate whose key does not fit its signature algorithm"
        except InvalidSignature:
            return "has a signature that does not verify"
        return None

    def _chain(
        self, certificate: x509.Certificate, others: list[x509.Certificate], purpose: str
    ) -> str | None:
        der = certificate.public_bytes(serialization.Encoding.DER)
        if (der, purpose) not in self._chains:
            self._chains[der, purpose] = self._openssl_verify(certificate, others, purpose)
        return self._chains[der, purpose]

    def _openssl_verify(
        self, certificate: x509.Certificate, others: list[x509.Certificate], purpose: str
    ) -> str | None:
        pem = serialization.Encoding.PEM
        with (
            tempfile.NamedTemporaryFile(suffix=".pem") as leaf,
            tempfile.NamedTemporaryFile(suffix=".pem") as untrusted,
        ):
            leaf.write(certificate.public_bytes(pem))
            leaf.flush()
            untrusted.write(b"".join(c.public_bytes(pem) for c in others))
            untrusted.flush()
            result = subprocess.run(
                ["openssl", "verify", "-CAfile", str(self._anchors), "-untrusted",
                 untrusted.name, "-purpose", purpose, leaf.name],
                capture_output=True,
                timeout=30,
            )  # fmt: skip
        if result.returncode != 0:
            return "is signed by a certificate that does not chain to seal_trust_anchors_file"
        return None


def _signed(
    der: bytes, content_type: x509.ObjectIdentifier
) -> tuple[s.SignedData, s.SignerInfo, x509.Certificate]:
    info = asn1.decode_der(s.ContentInfo, der)
    if info.content_type != s.ID_SIGNED_DATA:
        raise ValueError("not CMS SignedData")
    signed = info.content
    if signed.encap_content_info.content_type != content_type:
        raise ValueError("unexpected content type")
    signer_infos = signed.signer_infos.as_list()
    if len(signer_infos) != 1:
        raise ValueError("not exactly one signer")
    (signer_info,) = signer_infos
    sid = signer_info.sid
    for certificate in signed.certificates.as_list() if signed.certificates else []:
        if (
            certificate.serial_number == sid.serial_number
            and certificate.issuer.public_bytes() == asn1.encode_der(sid.issuer)
        ):
            return signed, signer_info, certificate
    raise ValueError("the signing certificate is not included")


def _attributes(signer_info: s.SignerInfo) -> dict[x509.ObjectIdentifier, bytes]:
    """Single-valued signed attributes, as the DER of their value."""
    found = {}
    for attribute in signer_info.signed_attrs.as_list():
        values = attribute.attr_values.as_list()
        if len(values) != 1 or attribute.attr_type in found:
            raise ValueError("an attribute is repeated or has several values")
        found[attribute.attr_type] = asn1.encode_der(values[0])
    return found


def _octets(value: bytes) -> bytes:
    return asn1.encode_der(value)


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
