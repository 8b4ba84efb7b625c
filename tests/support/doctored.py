"""PDFs doctored as a forger would: a change appended as an incremental update,
which leaves the signed bytes as they were (so the signature itself still verifies)."""

from __future__ import annotations

import io

from pyhanko.pdf_utils import embed, generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

OVERLAY_TEXT = "1er janvier 2020 - FALSIFIE"
FORGED_TITLE = "Preuve de refus / Proof of refusal"


def with_overlay(pdf: bytes) -> bytes:
    """A visible line of text drawn over the first page."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    font = writer.add_object(
        generic.DictionaryObject(
            {
                generic.NameObject("/Type"): generic.NameObject("/Font"),
                generic.NameObject("/Subtype"): generic.NameObject("/Type1"),
                generic.NameObject("/BaseFont"): generic.NameObject("/Helvetica"),
            }
        )
    )
    content = f"BT /Forged 28 Tf 1 0 0 rg 60 420 Td ({OVERLAY_TEXT}) Tj ET".encode()
    stream = writer.add_object(generic.StreamObject(stream_data=content))
    resources = generic.DictionaryObject(
        {
            generic.NameObject("/Font"): generic.DictionaryObject(
                {generic.NameObject("/Forged"): font}
            )
        }
    )
    writer.add_stream_to_page(0, stream, resources=resources)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def with_title(pdf: bytes, title: str = FORGED_TITLE) -> bytes:
    """The document information's /Title replaced, nothing else."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    reference = writer.trailer.raw_get("/Info")
    info = reference.get_object()
    info[generic.NameObject("/Title")] = generic.TextStringObject(title)
    writer.mark_update(reference)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def with_xmp_title(pdf: bytes, title: str = FORGED_TITLE) -> bytes:
    """The catalog's XMP metadata stream rewritten with another title (the
    one a viewer shows with /DisplayDocTitle), the same object redefined."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    reference = writer.root.raw_get("/Metadata")
    stream = reference.get_object()
    xmp = stream.data.decode()
    start = xmp.index("<rdf:li", xmp.index("<dc:title"))
    start = xmp.index(">", start) + 1
    end = xmp.index("</rdf:li>", start)
    forged = generic.StreamObject(
        {k: v for k, v in stream.items() if k not in ("/Length", "/Filter", "/DecodeParms")},
        stream_data=(xmp[:start] + title + xmp[end:]).encode(),
    )
    writer.objects[(reference.generation, reference.idnum)] = forged
    writer.mark_update(reference)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def with_attachment(pdf: bytes, name: str = "refusal.json") -> bytes:
    """A third embedded file, beside the evidence and its seal."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    data = embed.EmbeddedFileObject.from_file_data(writer, b'{"event": "refused"}')
    embed.embed_file(writer, embed.FileSpec(name, file_name=name, embedded_data=data))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
