"""A proof signed in one pass: PAdES baseline B-LT (ETSI EN 319 142-1) with the
validation data in the signed revision.

The server writes one incremental revision over the rendered PDF/A: the DSS
(the seal's and the TSA's chains and the CAs' CRLs, the same for every proof,
fetched from the signer once and again only when it changes) and the
signature dictionary, whose byte ranges then cover the whole file. The
signer is asked only for the CMS over their digest (``SignPdfDigest``): the
signature value and its timestamp, what needs the token. A genuine proof is
thus signed as a whole (pdfsig: "Total document signed"), and anything
appended later, an overlay or a changed /Info, leaves bytes outside the
signature that every reader reports.

Catalog version: no PDF 2.0 feature is used (the ISO 32002 extension that
pyHanko's PdfSigner registers for ECDSA would bump the catalog to /2.0,
contradicting the PDF/A-3 claim, which is PDF 1.7); the ESIC developer
extension says the signature is PAdES, as ETSI asks for PDF 1.7 files.
/Info and the XMP stay as rendered (they agree, as PDF/A wants): the
signature dictionary dates the signing, and pyHanko's rewrite of both
(producer, modification date) would be half of the assembly's CPU.
"""

from __future__ import annotations

import datetime as dt
import io
import threading
from dataclasses import dataclass
from typing import Protocol

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.signers import constants
from pyhanko.sign.signers.cms_embedder import PdfCMSEmbedder, SigIOSetup, SigObjSetup
from pyhanko.sign.signers.pdf_byterange import SignatureObject
from pyhanko.sign.validation import DocumentSecurityStore

from lre.server.adapters.signer import PdfValidationData, StaleValidationData
from lre.server.domain.errors import DependencyUnavailable

FIELD_NAME = "ProviderSeal"
# Beside the certificates, what the CMS holds: signed attributes, two ECDSA
# signatures, the TSTInfo, algorithm identifiers (~1 KB in all), with margin.
_CMS_OVERHEAD = 4_096
# Signing attempts while the signer says the validation data changed.
_ATTEMPTS = 3


class DigestSigner(Protocol):
    """What signing needs of the signer (SignerClient's calls)."""

    def pdf_validation_data(self) -> PdfValidationData: ...

    def sign_pdf_digest(self, document_digest: bytes, validation_data_id: bytes) -> bytes: ...


@dataclass(frozen=True)
class _Dss:
    id: bytes
    certificates: tuple[asn1_x509.Certificate, ...]
    crls: tuple[asn1_crl.CertificateList, ...]
    # Room for the CMS in /Contents (hex digits): it carries at most the
    # certificates the DSS has (the seal's and its CAs', the TSA's in the
    # token), so their size bounds it; known ahead, no estimating pass.
    reserved: int


class ProofSigner:
    """Signs rendered proofs through one signer client, caching its validation data."""

    def __init__(self, signer: DigestSigner) -> None:
        self._signer = signer
        self._lock = threading.Lock()
        self._dss: _Dss | None = None

    def sign(self, pdf: bytes, signer_name: str) -> bytes:
        """``pdf`` with its signature revision. Raises DependencyUnavailable
        while the signer cannot sign."""
        dss = self._current()
        for _ in range(_ATTEMPTS - 1):
            try:
                return _signed(pdf, dss, signer_name, self._signer)
            except StaleValidationData:
                # A CRL was renewed since the DSS was fetched: again with the new one.
                dss = self._current(refresh=True)
        try:
            return _signed(pdf, dss, signer_name, self._signer)
        except StaleValidationData:
            # Signer processes that disagree (one has read the new CRL file, the
            # next not yet): the caller tries again later, as for a signer down.
            raise DependencyUnavailable("the signers' validation data is changing") from None

    def _current(self, refresh: bool = False) -> _Dss:
        with self._lock:
            dss = self._dss
        if dss is None or refresh:
            dss = _parse(self._signer.pdf_validation_data())
            with self._lock:
                self._dss = dss
        return dss


def _parse(data: PdfValidationData) -> _Dss:
    return _Dss(
        data.id,
        tuple(asn1_x509.Certificate.load(c) for c in data.certificates),
        tuple(asn1_crl.CertificateList.load(c) for c in data.crls),
        2 * (sum(len(c) for c in data.certificates) + _CMS_OVERHEAD),
    )


class _ProofWriter(IncrementalPdfFileWriter):
    """pyHanko's incremental writer, leaving the document's metadata as rendered."""

    def _update_meta(self) -> None:
        # pyHanko parses and reserialises the XMP to set the producer and the
        # modification date (~2 ms a proof); the rendered metadata is kept.
        return


def _signed(pdf: bytes, dss: _Dss, signer_name: str, signer: DigestSigner) -> bytes:
    writer = _ProofWriter(io.BytesIO(pdf), strict=False)
    # No VRI: it would be keyed by the signature, which does not exist yet;
    # PAdES baseline verifiers read the DSS's certificates and CRLs as a whole.
    DocumentSecurityStore.supply_dss_in_writer(writer, None, certs=dss.certificates, crls=dss.crls)
    writer.register_extension(constants.ESIC_EXTENSION_1)
    embedding = PdfCMSEmbedder(SigFieldSpec(FIELD_NAME)).write_cms(FIELD_NAME, writer)
    _tag(writer, next(embedding))
    embedding.send(
        SigObjSetup(
            SignatureObject(
                timestamp=dt.datetime.now(dt.UTC),
                subfilter=SigSeedSubFilter.PADES,
                name=signer_name,
                bytes_reserved=dss.reserved,
            )
        )
    )
    prepared, output = embedding.send(SigIOSetup(md_algorithm="sha256"))
    embedding.send(signer.sign_pdf_digest(prepared.document_digest, dss.id))
    return bytes(output.getvalue())


def _tag(writer: IncrementalPdfFileWriter, field: generic.IndirectObject) -> None:
    """The signature's widget in the structure tree, as PDF/UA-1 wants every
    annotation of a page (a Form element, with a text for screen readers), and
    the page's tab order following the structure. A document without a
    structure tree is left as it is."""
    if "/StructTreeRoot" not in writer.root:
        return
    tree = _resolve(writer.root.raw_get("/StructTreeRoot"))
    kids = tree.raw_get("/K")
    document_ref = kids[0] if isinstance(kids, generic.ArrayObject) else kids
    document = _resolve(document_ref)
    widget = _resolve(field)
    page_ref = widget.raw_get("/P")
    key = int(tree.get("/ParentTreeNextKey", 0))
    form = writer.add_object(
        _dictionary(
            Type=generic.NameObject("/StructElem"),
            S=generic.NameObject("/Form"),
            P=document_ref,
            Alt=generic.TextStringObject(
                "Cachet électronique du prestataire / the provider's electronic seal"
            ),
            K=_dictionary(Type=generic.NameObject("/OBJR"), Obj=field, Pg=page_ref),
        )
    )
    children = document.raw_get("/K") if "/K" in document else None
    if isinstance(children, generic.ArrayObject):
        children.append(form)
    else:
        document[generic.NameObject("/K")] = generic.ArrayObject(
            [form] if children is None else [children, form]
        )
    writer.update_container(document)
    tree["/ParentTree"]["/Nums"].extend([_number(key), form])
    tree[generic.NameObject("/ParentTreeNextKey")] = _number(key + 1)
    writer.update_container(tree)
    widget[generic.NameObject("/StructParent")] = _number(key)
    page = _resolve(page_ref)
    page[generic.NameObject("/Tabs")] = generic.NameObject("/S")
    writer.update_container(page)


# pyHanko's PDF objects, typed.
def _resolve(value: generic.PdfObject) -> generic.DictionaryObject:
    resolved = value.get_object()  # type: ignore[no-untyped-call]
    assert isinstance(resolved, generic.DictionaryObject)
    return resolved


def _dictionary(**entries: generic.PdfObject) -> generic.DictionaryObject:
    return generic.DictionaryObject(  # type: ignore[no-untyped-call]
        {generic.NameObject(f"/{k}"): v for k, v in entries.items()}
    )


def _number(value: int) -> generic.NumberObject:
    return generic.NumberObject(value)  # type: ignore[no-untyped-call]
