"""A member state's trusted list, in small (ETSI TS 119 612 XML, XAdES-signed
by a test scheme operator with signxml, as pyHanko verifies it), and the
QCStatements (ETSI EN 319 412-5) of qualified test certificates."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from pyhanko.sign.ades import qualified_asn1
from signxml.algorithms import SignatureMethod
from signxml.xades.xades import XAdESSigner

from tests.support.proofing import LocalCA

TSL = "http://uri.etsi.org/02231/v2#"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_SVC = "http://uri.etsi.org/TrstSvc"
CA_QC = f"{_SVC}/Svctype/CA/QC"
GRANTED = f"{_SVC}/TrustedList/Svcstatus/granted"
WITHDRAWN = f"{_SVC}/TrustedList/Svcstatus/withdrawn"
FOR_E_SIGNATURES = f"{_SVC}/TrustedList/SvcInfoExt/ForeSignatures"
FOR_E_SEALS = f"{_SVC}/TrustedList/SvcInfoExt/ForeSeals"


def qc_statements(
    compliance: bool = True, qc_type: str | None = "qct_esign", sscd: bool = True
) -> x509.Extension[x509.ExtensionType]:
    """A QCStatements extension (1.3.6.1.5.5.7.1.3): QcCompliance (the
    certificate is an EU qualified one), QcSSCD (its key is on a qualified
    device) with it unless ``sscd`` is false, and QcType when given."""
    statements = []
    if compliance:
        statements.append({"statement_id": "qc_compliance"})
        if sscd:
            statements.append({"statement_id": "qc_sscd"})
    if qc_type is not None:
        statements.append(
            {
                "statement_id": "qc_type",
                "statement_info": qualified_asn1.QcCertificateType([qc_type]),
            }
        )
    value = qualified_asn1.QcStatements(
        [qualified_asn1.QcStatement({**s, "statement_info": s.get("statement_info", core.Void())})
         for s in statements]
    )  # fmt: skip
    oid = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3")
    return x509.Extension(oid, False, x509.UnrecognizedExtension(oid, value.dump()))


@dataclass(frozen=True)
class Service:
    """One CA/QC service: the CA certificate it is known by, what it issues for."""

    name: str
    ca: x509.Certificate
    issues_for: str = FOR_E_SIGNATURES
    status: str = GRANTED


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{TSL}}}{tag}", **attrs)
    if text is not None:
        element.text = text
    return element


def _names(parent: etree._Element, tag: str, name: str) -> None:
    _el(_el(parent, tag), "Name", name, **{XML_LANG: "en"})


def _time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trusted_list(
    services: list[Service],
    signer: LocalCA,
    territory: str = "ZZ",
    sequence: int = 7,
    next_update_days: int | None = 180,
) -> bytes:
    """The list, signed (enveloped XAdES, the signature last, as TS 119 612 asks);
    ``next_update_days`` None: a closed list (NextUpdate empty)."""
    now = dt.datetime.now(dt.UTC)
    root = etree.Element(
        f"{{{TSL}}}TrustServiceStatusList",
        nsmap={"tsl": TSL},
        TSLTag="http://uri.etsi.org/19612/TSLTag",
        Id="tsl",
    )
    scheme = _el(root, "SchemeInformation")
    _el(scheme, "TSLVersionIdentifier", "5")
    _el(scheme, "TSLSequenceNumber", str(sequence))
    _el(scheme, "TSLType", f"{_SVC}/TrustedList/TSLType/EUgeneric")
    _names(scheme, "SchemeOperatorName", "Test supervisory body")
    address = _el(scheme, "SchemeOperatorAddress")
    postal = _el(_el(address, "PostalAddresses"), "PostalAddress", **{XML_LANG: "en"})
    _el(postal, "StreetAddress", "1 rue de l'Exemple")
    _el(postal, "Locality", "Paris")
    _el(postal, "CountryName", territory)
    _el(_el(address, "ElectronicAddress"), "URI", "mailto:tl@example.test", **{XML_LANG: "en"})
    _names(scheme, "SchemeName", f"{territory}: Trusted list (test)")
    _el(_el(scheme, "SchemeInformationURI"), "URI", "https://tl.example.test/", **{XML_LANG: "en"})
    _el(scheme, "StatusDeterminationApproach", f"{_SVC}/TrustedList/StatusDetn/EUappropriate")
    _el(
        _el(scheme, "SchemeTypeCommunityRules"),
        "URI",
        f"{_SVC}/TrustedList/schemerules/EUcommon",
        **{XML_LANG: "en"},
    )
    _el(scheme, "SchemeTerritory", territory)
    _el(_el(scheme, "PolicyOrLegalNotice"), "TSLLegalNotice", "Test only.", **{XML_LANG: "en"})
    _el(scheme, "HistoricalInformationPeriod", "65535")
    _el(scheme, "ListIssueDateTime", _time(now - dt.timedelta(days=1)))
    next_update = _el(scheme, "NextUpdate")
    if next_update_days is not None:
        _el(next_update, "dateTime", _time(now + dt.timedelta(days=next_update_days)))
    providers = _el(root, "TrustServiceProviderList")
    for service in services:
        provider = _el(providers, "TrustServiceProvider")
        information = _el(provider, "TSPInformation")
        _names(information, "TSPName", f"{service.name} provider")
        _el(_el(information, "TSPInformationURI"), "URI", "https://tsp.example.test/",
            **{XML_LANG: "en"})  # fmt: skip
        described = _el(_el(_el(provider, "TSPServices"), "TSPService"), "ServiceInformation")
        _el(described, "ServiceTypeIdentifier", CA_QC)
        _names(described, "ServiceName", service.name)
        der = service.ca.public_bytes(serialization.Encoding.DER)
        _el(
            _el(_el(described, "ServiceDigitalIdentity"), "DigitalId"),
            "X509Certificate",
            base64.b64encode(der).decode(),
        )
        _el(described, "ServiceStatus", service.status)
        _el(described, "StatusStartingTime", _time(now - dt.timedelta(days=30)))
        extension = _el(_el(described, "ServiceInformationExtensions"), "Extension",
                        Critical="false")  # fmt: skip
        _el(_el(extension, "AdditionalServiceInformation"), "URI", service.issues_for,
            **{XML_LANG: "en"})  # fmt: skip
    signed = XAdESSigner(signature_algorithm=SignatureMethod.ECDSA_SHA256).sign(
        root,
        key=signer.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert=[signer.cert.public_bytes(serialization.Encoding.PEM).decode()],
    )
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def broken(signed_list: bytes) -> bytes:
    """The same list with a service's name changed after signing."""
    text, marker = signed_list.decode(), '<tsl:ServiceName><tsl:Name xml:lang="en">'
    start = text.index(marker) + len(marker)
    return (text[:start] + "X" + text[start + 1 :]).encode()


def write_pem(path: Path, *certificates: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))
    return path
