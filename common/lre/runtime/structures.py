"""ASN.1 structures the signer encodes and decodes, declared once.

RFC 3161 (TimeStampReq, TSTInfo, TimeStampResp), RFC 5652 (CMS SignedData),
RFC 5035 (ESSCertIDv2), RFC 2986 (PKCS#10), ETSI EN 319 422 (qcStatements).
Encoding is cryptography's declarative ASN.1 (DER only, in Rust): decoding
rejects anything that is not DER, and encoding costs microseconds.
"""

from __future__ import annotations

from typing import Annotated

from cryptography import x509
from cryptography.hazmat import asn1

OID = x509.ObjectIdentifier

SHA256 = OID("2.16.840.1.101.3.4.2.1")
SHA384 = OID("2.16.840.1.101.3.4.2.2")
SHA512 = OID("2.16.840.1.101.3.4.2.3")
ECDSA_WITH_SHA256 = OID("1.2.840.10045.4.3.2")
ID_DATA = OID("1.2.840.113549.1.7.1")
ID_SIGNED_DATA = OID("1.2.840.113549.1.7.2")
ID_CT_TST_INFO = OID("1.2.840.113549.1.9.16.1.4")
ID_CONTENT_TYPE = OID("1.2.840.113549.1.9.3")
ID_MESSAGE_DIGEST = OID("1.2.840.113549.1.9.4")
ID_SIGNING_TIME = OID("1.2.840.113549.1.9.5")
ID_SIGNING_CERTIFICATE_V2 = OID("1.2.840.113549.1.9.16.2.47")
ID_SIGNATURE_TIME_STAMP_TOKEN = OID("1.2.840.113549.1.9.16.2.14")
ID_QC_STATEMENTS = OID("1.3.6.1.5.5.7.1.3")
ESI4_QTST_STATEMENT_1 = OID("0.4.0.19422.1.1")


@asn1.sequence
class AlgorithmIdentifier:
    algorithm: OID
    parameters: asn1.Null | None


@asn1.sequence
class MessageImprint:
    hash_algorithm: AlgorithmIdentifier
    hashed_message: bytes


@asn1.sequence
class Extension:
    extn_id: OID
    critical: Annotated[bool, asn1.Default(False)]
    extn_value: bytes


@asn1.sequence
class TimeStampReq:
    version: int
    message_imprint: MessageImprint
    req_policy: OID | None
    nonce: int | None
    cert_req: Annotated[bool, asn1.Default(False)]
    extensions: Annotated[list[Extension] | None, asn1.Implicit(0)]


@asn1.sequence
class Accuracy:
    seconds: int | None
    millis: Annotated[int | None, asn1.Implicit(0)]
    micros: Annotated[int | None, asn1.Implicit(1)]


@asn1.sequence
class TSTInfo:
    version: int
    policy: OID
    message_imprint: MessageImprint
    serial_number: int
    gen_time: asn1.GeneralizedTime
    accuracy: Accuracy | None
    ordering: Annotated[bool, asn1.Default(False)]
    nonce: int | None
    # GeneralName, directoryName of the TSA certificate's subject.
    tsa: Annotated[asn1.TLV, asn1.Explicit(0)]
    extensions: Annotated[list[Extension] | None, asn1.Implicit(1)]


@asn1.sequence
class QcStatement:
    statement_id: OID


# A SEQUENCE OF or a CHOICE cannot be encoded on its own: these carry one as
# their only field, and `unwrap` takes it out as DER.


@asn1.sequence
class QcStatementsHolder:
    statements: list[QcStatement]


@asn1.sequence
class DirectoryNameHolder:
    # GeneralName, directoryName alternative: [4] EXPLICIT Name.
    directory_name: Annotated[asn1.TLV, asn1.Explicit(4)]


@asn1.sequence
class _OnlyField:
    value: asn1.TLV


def unwrap(holder: object) -> bytes:
    """DER of the only field of a holder above."""
    return asn1.encode_der(asn1.decode_der(_OnlyField, asn1.encode_der(holder)).value)


@asn1.sequence
class Attribute:
    attr_type: OID
    attr_values: asn1.SetOf[asn1.TLV]


@asn1.sequence
class ESSCertIDv2:
    # hashAlgorithm DEFAULT sha256 is omitted: we always hash with SHA-256.
    cert_hash: bytes


@asn1.sequence
class SigningCertificateV2:
    certs: list[ESSCertIDv2]


@asn1.sequence
class IssuerAndSerialNumber:
    issuer: asn1.TLV
    serial_number: int


@asn1.sequence
class SignerInfo:
    version: int
    sid: IssuerAndSerialNumber
    digest_algorithm: AlgorithmIdentifier
    signed_attrs: Annotated[asn1.SetOf[Attribute], asn1.Implicit(0)]
    signature_algorithm: AlgorithmIdentifier
    signature: bytes
    unsigned_attrs: Annotated[asn1.SetOf[Attribute] | None, asn1.Implicit(1)]


@asn1.sequence
class EncapsulatedContentInfo:
    content_type: OID
    # Absent in a detached signature (the PAdES signature of a PDF's byte ranges).
    content: Annotated[bytes | None, asn1.Explicit(0)]


@asn1.sequence
class SignedData:
    version: int
    digest_algorithms: asn1.SetOf[AlgorithmIdentifier]
    encap_content_info: EncapsulatedContentInfo
    certificates: Annotated[asn1.SetOf[x509.Certificate] | None, asn1.Implicit(0)]
    # RevocationInfoChoices: CertificateList DERs (CAdES B-LT validation data).
    crls: Annotated[asn1.SetOf[asn1.TLV] | None, asn1.Implicit(1)]
    signer_infos: asn1.SetOf[SignerInfo]


@asn1.sequence
class ContentInfo:
    content_type: OID
    content: Annotated[SignedData, asn1.Explicit(0)]


@asn1.sequence
class PKIStatusInfo:
    status: int
    status_string: list[str] | None
    fail_info: asn1.BitString | None


@asn1.sequence
class TimeStampResp:
    status: PKIStatusInfo
    time_stamp_token: ContentInfo | None


@asn1.sequence
class CertificationRequestInfo:
    version: int
    subject: asn1.TLV
    subject_pk_info: asn1.TLV
    attributes: Annotated[asn1.SetOf[Attribute], asn1.Implicit(0)]


@asn1.sequence
class CertificationRequest:
    certification_request_info: CertificationRequestInfo
    signature_algorithm: AlgorithmIdentifier
    signature: asn1.BitString


def tlv(der: bytes) -> asn1.TLV:
    """A value encoded elsewhere, carried as it is."""
    return asn1.decode_der(asn1.TLV, der)


def attribute(attr_type: OID, *values_der: bytes) -> Attribute:
    return Attribute(attr_type=attr_type, attr_values=asn1.SetOf([tlv(v) for v in values_der]))


def algorithm(oid: OID) -> AlgorithmIdentifier:
    return AlgorithmIdentifier(algorithm=oid, parameters=None)
