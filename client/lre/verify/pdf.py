"""The PDF proof: its PAdES signature, by pyHanko's validator, and the
evidence and seal it embeds."""

from __future__ import annotations

import datetime as dt
import io
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.rw_common import PdfHandler
from pyhanko.sign.diff_analysis import (
    CatalogModificationRule,
    DocInfoRule,
    DSSCompareRule,
    FormUpdatingRule,
    GenericFieldModificationRule,
    MetadataUpdateRule,
    ModificationLevel,
    ObjectStreamRule,
    SigFieldCreationRule,
    SigFieldModificationRule,
    StandardDiffPolicy,
    XrefStreamRule,
)
from pyhanko.sign.validation import DocumentSecurityStore, validate_pdf_signature
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.status import SignatureCoverageLevel

from lre.verify.cms import SealProblem, Timestamp

# pyHanko logs what it finds wrong; the verifier says it itself.
logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)


# What may change after a proof was signed: validation data (the DSS) and
# document timestamps (B-LTA), nothing a reader sees. pyHanko's default
# policy also lets an update change the catalog's /MarkInfo, and rewrite the
# XMP metadata stream with any well-formed XML (pyHanko's own updates write
# it again, the same); here /MarkInfo stays as signed, and the XMP must say
# what it said when signed (``_validation_data_only_after``). /Version and
# /Extensions may rise with the DSS (ISO 32002 declares itself there) and
# change nothing shown.
AFTER_SIGNING = StandardDiffPolicy(
    global_rules=[
        CatalogModificationRule(  # type: ignore[no-untyped-call]
            ignored_keys=frozenset({"/DSS", "/AcroForm", "/Version", "/Extensions", "/Metadata"})
        ),
        DocInfoRule().as_qualified(ModificationLevel.LTA_UPDATES),
        XrefStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
        ObjectStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
        DSSCompareRule().as_qualified(ModificationLevel.LTA_UPDATES),
        MetadataUpdateRule().as_qualified(  # type: ignore[no-untyped-call]
            ModificationLevel.LTA_UPDATES
        ),
    ],
    form_rule=FormUpdatingRule(
        field_rules=[
            SigFieldCreationRule(),  # type: ignore[no-untyped-call]
            SigFieldModificationRule(),
            GenericFieldModificationRule(),
        ],
    ),
)


_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# What an update of the PDF rewrites in its XMP metadata.
_XMP_REWRITTEN = frozenset(
    {
        "{http://ns.adobe.com/xap/1.0/}ModifyDate",
        "{http://ns.adobe.com/xap/1.0/}MetadataDate",
        "{http://ns.adobe.com/pdf/1.3/}Producer",
        "{http://ns.adobe.com/xap/1.0/mm/}History",
        "{http://www.aiim.org/pdfa/ns/extension/}schemas",
    }
)


@dataclass(frozen=True)
class PdfSignature:
    signer: str
    time: dt.datetime
    anchored: bool
    certificate: asn1_x509.Certificate  # the signer's
    tsa: asn1_x509.Certificate  # the signature timestamp's
    timestamp: Timestamp


def check_signature(
    pdf: bytes, anchors: list[asn1_x509.Certificate], bundle_roots: list[asn1_x509.Certificate]
) -> PdfSignature:
    """One PAdES B-LT signature, intact, timestamped, with a DSS, covering the
    whole file, and its chain valid at its timestamp's time from the DSS alone
    (CRLs required), up to ``anchors``, or with none given up to
    ``bundle_roots`` (not anchored).

    Proofs made before the DSS was written in the signed revision have it in
    one revision after the signature: accepted when that revision is the
    last and adds validation data only (pyHanko's diff analysis under
    ``AFTER_SIGNING``), leaving /Info and the XMP metadata saying what they
    said when signed, which that analysis does not look at."""
    reader = _reader(pdf)
    signatures = reader.embedded_regular_signatures
    if len(signatures) != 1:
        raise SealProblem(f"{len(signatures)} signatures in the PDF, one expected")
    (signature,) = signatures
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        raise SealProblem("no DSS: the PDF carries no validation data (not B-LT)") from None
    if not list(dss.crls):
        raise SealProblem("the DSS holds no CRL (not B-LT)")
    when = _timestamp_time(signature.signer_info)
    roots = anchors or bundle_roots
    context = dss.as_validation_context(
        {
            "trust_roots": roots,
            "allow_fetching": False,
            "revocation_mode": "require",
            "moment": when,
        }
    )
    status = validate_pdf_signature(
        signature, context, ts_validation_context=context, diff_policy=AFTER_SIGNING
    )
    if not status.intact:
        raise SealProblem("the signed bytes were changed (digest mismatch)")
    if not status.valid:
        raise SealProblem("the signature value does not verify")
    ts = status.timestamp_validity
    if ts is None or not (ts.intact and ts.valid):
        raise SealProblem("no valid signature timestamp (not B-T)")
    if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        pass
    elif status.coverage != SignatureCoverageLevel.ENTIRE_REVISION:
        raise SealProblem("the signature does not cover its whole revision")
    elif not _validation_data_only_after(reader, signature.signed_revision, status):
        raise SealProblem(
            "the PDF was changed after it was signed: bytes appended after the signature"
            " (pdfsig: Not total document signed)"
        )
    if not (status.trusted and ts.trusted):
        raise SealProblem(
            "the signer's or the TSA's chain is not valid at the signature's time "
            + ("under the trust anchors given" if anchors else "up to a root in the PDF")
            + " with the DSS's CRLs"
        )
    return PdfSignature(
        status.signing_cert.subject.human_friendly,
        when,
        bool(anchors),
        status.signing_cert,
        ts.signing_cert,
        # The TSA's certificates are in the DSS, which the long-term check reads.
        Timestamp(when, ts.signing_cert, []),
    )


def _validation_data_only_after(reader: PdfFileReader, signed: int, status: Any) -> bool:
    """Whether the one revision after the signed one adds validation data and
    nothing else: the DSS, in the document information only what pyHanko
    rewrites at every update (/ModDate, /Producer), and the XMP metadata
    stating what it stated (``_xmp``)."""
    level = status.modification_level
    if level is None or level > ModificationLevel.LTA_UPDATES:
        return False
    # Document timestamps (PAdES B-LTA) each add a revision after the
    # validation data; the diff analysis above allowed only those.
    if reader.xrefs.total_revisions - 1 != signed + 1 and not reader.embedded_timestamp_signatures:
        return False
    info_signed = _info(reader.get_historical_resolver(signed))
    info_now = _info(reader)
    keys = (set(info_signed) | set(info_now)) - {"/ModDate", "/Producer"}
    if any(info_signed.get(k) != info_now.get(k) for k in keys):
        return False
    return _xmp(reader.get_historical_resolver(signed)) == _xmp(reader)


def _xmp(revision: PdfHandler) -> dict[str, list[object]] | None:
    """What the catalog's XMP metadata states as of ``revision``: each
    property's values, whether written as an attribute or an element.
    Updates rewrite the packet (pyHanko writes its own serialisation, its
    name as producer, a new modification date and history): those are left
    out, every other statement must stay."""
    root = _resolved(revision, revision.trailer_view.raw_get("/Root"))
    if not isinstance(root, DictionaryObject):
        raise SealProblem("the document catalog is not a dictionary")
    if "/Metadata" not in root:
        return None
    metadata = _resolved(revision, root.raw_get("/Metadata"))
    if not isinstance(metadata, StreamObject):
        raise SealProblem("the XMP metadata is not a stream")
    data = metadata.data
    # No XMP packet declares a DTD; without one no entity can expand or reach
    # outside (the XML attacks defusedxml exists for).
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise SealProblem("the XMP metadata declares a DTD")
    try:
        packet = ET.fromstring(data)  # noqa: S314 -- no DTD, above
    except (ET.ParseError, ValueError):
        raise SealProblem("the XMP metadata is not XML") from None
    rdf = packet if packet.tag == _RDF + "RDF" else packet.find(_RDF + "RDF")
    if rdf is None:
        raise SealProblem("the XMP metadata holds no RDF")
    stated: dict[str, list[object]] = {}
    for description in rdf:
        if description.tag != _RDF + "Description":
            stated.setdefault(description.tag, []).append(ET.tostring(description))
            continue
        for name, value in description.attrib.items():
            if not name.startswith(_RDF):
                stated.setdefault(name, []).append(value.strip())
        for element in description:
            items = [
                (li.get(_XML_LANG, ""), (li.text or "").strip())
                for container in element
                if container.tag in (_RDF + "Alt", _RDF + "Seq", _RDF + "Bag")
                for li in container.findall(_RDF + "li")
            ]
            stated.setdefault(element.tag, []).append(items or (element.text or "").strip())
    return {k: v for k, v in stated.items() if k not in _XMP_REWRITTEN}


def _resolved(revision: PdfHandler, value: Any) -> Any:
    """``value``, an indirect one resolved as of ``revision``."""
    return revision.get_object(value.reference) if isinstance(value, IndirectObject) else value


def _info(revision: PdfHandler) -> dict[str, str]:
    """The document information as of ``revision``, resolved in that revision."""
    try:
        info = revision.trailer_view.raw_get("/Info")
    except KeyError:
        return {}
    if isinstance(info, IndirectObject):
        info = revision.get_object(info.reference)
    if not isinstance(info, DictionaryObject):
        raise SealProblem("the document information is not a dictionary")
    return {str(k): str(v) for k, v in info.items()}


def attachments(pdf: bytes) -> dict[str, bytes]:
    """The embedded files of the document (name tree /EmbeddedFiles)."""
    reader = _reader(pdf)
    try:
        names = _deref(reader.root.get("/Names"))
        tree = _deref(names.get("/EmbeddedFiles")) if isinstance(names, DictionaryObject) else None
        found: dict[str, bytes] = {}
        if isinstance(tree, DictionaryObject):
            _walk(tree, found, depth=0)
        return found
    except (PdfError, KeyError, TypeError, ValueError) as exc:
        raise SealProblem(f"the PDF's attachments cannot be read ({type(exc).__name__})") from None


def _walk(node: DictionaryObject, found: dict[str, bytes], depth: int) -> None:
    if depth > 16:
        raise SealProblem("the PDF's attachment tree is too deep")
    for kid in _deref(node.get("/Kids", ArrayObject())):
        _walk(_deref(kid), found, depth + 1)
    pairs = list(_deref(node.get("/Names", ArrayObject())))
    for name, spec in zip(pairs[::2], pairs[1::2], strict=True):
        stream = _deref(_deref(spec)["/EF"])["/F"]
        found[str(_deref(name))] = _deref(stream).data


def _deref(value: Any) -> Any:
    return value.get_object() if isinstance(value, IndirectObject) else value  # type: ignore[no-untyped-call]


def _reader(pdf: bytes) -> PdfFileReader:
    if not pdf.startswith(b"%PDF-"):
        raise SealProblem("not a PDF")
    try:
        return PdfFileReader(io.BytesIO(pdf), strict=False)
    except (PdfError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise SealProblem(f"not a readable PDF ({type(exc).__name__})") from None


def _timestamp_time(signer_info: object) -> dt.datetime:
    try:
        for attr in signer_info["unsigned_attrs"] or []:  # type: ignore[index]
            if attr["type"].native == "signature_time_stamp_token":
                token = attr["values"][0]["content"]["encap_content_info"]["content"]
                info = tsp.TSTInfo.load(bytes(token.contents))
                when: dt.datetime = info["gen_time"].native
                return when
    except (ValueError, KeyError, TypeError) as exc:
        raise SealProblem(
            f"the signature timestamp is not readable ({type(exc).__name__})"
        ) from None
    raise SealProblem("no signature timestamp (not B-T)")
