"""A proof as a PDF/A-3a and PDF/UA-1 document, laid out by Typst from a template file.

PDF/A-3, not PDF/A-2: the proof carries the evidence JSON and its CMS seal
as embedded files, and PDF/A-2 allows only PDF/A files as attachments;
PDF/A-3 allows any file, each tied to the document by /AF with an
AFRelationship. Level "a" (tagged, every character with its Unicode value)
and PDF/UA-1: a structure tree, the language of every passage (French, with
the English in English), so that a screen reader reads a proof and names
and digests can be searched and copied exactly. PDF/A-4 is not used: it is
PDF 2.0, which PDF/UA-1 excludes. Fonts are DejaVu (Debian
fonts-dejavu-core), embedded as subsets; Typst takes a few milliseconds a
page (docs/performance.md, where the engines were compared).

``templates/proof.typ`` holds every label and the layout, so a provider
brands or translates it without touching this code; what it prints comes
from here, already worded and formatted.

The data reaches Typst as a string literal in the few lines of source that
call the template (``typeset``), not through ``sys.inputs``: Typst keeps
what it laid out between documents, but ``sys.inputs`` is part of its
standard library, so data given that way makes every document new and a
proof cost twice as much (docs/performance.md). Only the template files
are read from disk; nothing a proof prints is written there.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import threading
import unicodedata
from pathlib import Path
from typing import Any

import typst
from fontTools.ttLib import TTFont

from lre.server.domain.letters import EvidenceEvent
from lre.server.domain.window import AcceptanceWindow
from lre.server.proofs.document import PARIS, Authentication, Party, ProofDocument, read
from lre.server.proofs.events import REASONS, TEXTS

PDF_STANDARDS: list[typst.PDFStandard] = ["a-3a", "ua-1"]
FONTS = Path("/usr/share/fonts/truetype/dejavu")
TEMPLATES = Path(__file__).parent / "templates"
_MONTHS_FR = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip
# The window's events: the proof says when the recipient was notified and
# until when they could answer.
_AFTER_NOTIFICATION = frozenset(
    {
        EvidenceEvent.CONSIGNMENT_ACCEPTANCE,
        EvidenceEvent.CONSIGNMENT_REJECTION,
        EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY,
        EvidenceEvent.CONTENT_HANDOVER,
    }
)
# A compiler keeps its fonts, parsed templates and layouts between
# documents; one per thread, as a compilation holds it.
_compilers = threading.local()


def attachment_names(doc: ProofDocument) -> tuple[str, str]:
    """The names the evidence and its seal carry inside the PDF."""
    return f"evidence-{doc.evidence_id}.json", f"evidence-{doc.evidence_id}.p7m"


def render_proof(evidence: bytes, seal: bytes) -> bytes:
    """The unsigned PDF proof of one evidence, in French and English.

    ``evidence`` is the sealed JSON document, ``seal`` its CAdES seal (DER);
    both are embedded as attachments. The caller then has it signed
    (``lre.server.proofs.pades``). Raises ProofInputError when the seal is
    not over this evidence or either cannot be read.
    """
    return render_document(read(evidence, seal), evidence, seal)


def render_document(doc: ProofDocument, evidence: bytes, seal: bytes) -> bytes:
    """``render_proof`` of an evidence already read (``document.read``)."""
    # Identical inputs give identical bytes: the dates written are the seal's time.
    timestamp = doc.seal.timestamp_time.replace(microsecond=0)
    return typeset("proof.typ", "proof", view(doc, evidence, seal), timestamp)


def typeset(template: str, function: str, data: dict[str, Any], timestamp: dt.datetime) -> bytes:
    """The PDF/A-3a and PDF/UA-1 document that ``function(data)`` of
    ``templates/template`` lays out, dated ``timestamp``.

    ``data`` goes into the source as one JSON string literal: ASCII only
    (``ensure_ascii``), with the two characters a Typst string gives meaning
    to, the backslash and the double quote, escaped; so nothing in it (a
    party's name, a reason stated by a recipient) can end the string and be
    read as Typst code. What it prints passes through ``printable`` first
    (``code_points`` tells the template whether any character was replaced);
    the attachments (``data["attachments"]``) go in as they are.
    """
    printed, replaced = _printable(data)
    printed["code_points"] = replaced
    literal = json.dumps(printed).replace("\\", "\\\\").replace('"', '\\"')
    source = f'#import "{template}": {function}\n#{function}(json(bytes("{literal}")))\n'
    pdf = _compiler().compile(
        input=source.encode(), pdf_standards=PDF_STANDARDS, timestamp=timestamp
    )
    assert isinstance(pdf, bytes)  # one PDF, never pages as images
    return pdf


# The faces the templates use for text, regular and bold. Typst does not
# reliably fall back to another font's glyph on its own, so a character
# counts as drawable when both have it; the mono face of identifiers and
# digests names DejaVu Sans as its fallback in the templates.
FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")


# Characters kept without a glyph: the space and line break Typst lays out
# itself (a tab or a carriage return beside a tab it refuses: printed as a
# space and a line break), and the joiners that shape Persian or Indic
# names (invisible).
_LAID_OUT = frozenset("\n \u200c\u200d")


@functools.cache
def drawable() -> frozenset[int]:
    """The characters a proof prints as they are: both faces of ``FACES`` have
    a glyph for them and PDF/A allows them (no control, format, private-use
    or unassigned code point: a byte order mark or a private glyph in a name
    is refused by Typst under PDF/A although the fonts map it), and
    ``_LAID_OUT``."""
    faces = []
    for name in FACES:
        font = TTFont(FONTS / name, lazy=True)
        try:
            faces.append(frozenset(font.getBestCmap()))
        finally:
            font.close()
    glyphs = frozenset.intersection(*faces)
    return frozenset(
        c for c in glyphs if not unicodedata.category(chr(c)).startswith("C")
    ) | frozenset(ord(c) for c in _LAID_OUT)


def printable(text: str) -> str:
    """``text`` as a proof can print it: any other character than those of
    ``drawable`` (a name in Chinese, a rare symbol, a stray byte order mark)
    as its code point, "[U+674E]", for PDF/A wants every glyph embedded and
    Typst refuses a page that has none for a character. The attached
    evidence keeps the exact text."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    kept = drawable()
    if all(ord(c) in kept for c in text):
        return text
    return "".join(c if ord(c) in kept else f"[U+{ord(c):04X}]" for c in text)


def _printable(data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Every string of ``data`` through ``printable``, the attachments apart,
    and whether any came out changed."""
    replaced = False

    def walk(value: Any) -> Any:
        nonlocal replaced
        if isinstance(value, str):
            shown = printable(value)
            replaced = replaced or shown != value
            return shown
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    printed = {k: v if k == "attachments" else walk(v) for k, v in data.items()}
    return printed, replaced


def _compiler() -> typst.Compiler:
    compiler: typst.Compiler | None = getattr(_compilers, "compiler", None)
    if compiler is None:
        if not FONTS.is_dir():
            raise RuntimeError(f"no fonts in {FONTS} (Debian package fonts-dejavu-core)")
        compiler = typst.Compiler(root=TEMPLATES, font_paths=[FONTS], ignore_system_fonts=True)
        _compilers.compiler = compiler
    return compiler


def view(doc: ProofDocument, evidence: bytes, seal: bytes) -> dict[str, Any]:
    """Everything the template prints, worded and formatted."""
    text = TEXTS[doc.event]
    json_name, seal_name = attachment_names(doc)
    when = doc.seal.timestamp_time
    qualified = doc.seal.timestamp_qualified
    reference = doc.letter_reference or doc.letter_id
    return {
        "title": f"{text.title.fr} / {text.title.en} — {reference}",
        "description": f"{text.title.en}: {doc.event.value} of {reference}, "
        f"evidence {doc.evidence_id}",
        "keywords": [reference, doc.evidence_id],
        "issuer": doc.issuer,
        "title_fr": text.title.fr,
        "title_en": text.title.en,
        "event": doc.event.value,
        "reference": doc.letter_reference,
        "letter_id": doc.letter_id,
        "evidence_id": doc.evidence_id,
        "policy": doc.policy_id,
        "time": {
            "paris": paris(when),
            "utc": utc(when),
            "qualified": qualified,
            "tsa": doc.seal.tsa,
            "recorded": utc(doc.event_time),
        },
        "parties": [_party(doc.sender), _party(doc.recipient)],
        "submission": {"paris": paris(doc.submission_time), "utc": utc(doc.submission_time)},
        "window": _window(doc),
        "reason": _reason(doc),
        "parts": [
            {
                "filename": p.filename,
                "media_type": p.media_type,
                "size": f"{p.size:,}".replace(",", "\u202f"),
                "hex": _grouped(p.digest),
                "base64": base64.b64encode(bytes.fromhex(p.digest)).decode(),
            }
            for p in doc.parts
        ],
        "meaning_fr": text.meaning.fr,
        "meaning_en": text.meaning.en,
        "json_name": json_name,
        "seal_name": seal_name,
        "seal": {
            "subject": doc.seal.subject,
            "serial": str(doc.seal.serial),
            "serial_hex": format(doc.seal.serial, "x"),
            "sha256": _grouped(doc.seal.certificate_sha256),
            "sha256_base64": base64.b64encode(bytes.fromhex(doc.seal.certificate_sha256)).decode(),
        },
        "evidence_sha256": _grouped(doc.evidence_sha256),
        "attachments": [
            {
                "name": json_name,
                # Canonical JSON is UTF-8: Typst turns the string back into the same bytes.
                "data": evidence.decode(),
                "relationship": "source",
                "mime": "application/json",
                "description": "Evidence (ETSI EN 319 522), canonical JSON / preuve, JSON",
            },
            {
                "name": seal_name,
                "data": list(seal),
                "relationship": "supplement",
                "mime": "application/pkcs7-mime",
                "description": "CAdES seal of the evidence (CMS, DER) / cachet CAdES",
            },
        ],
    }


def _party(party: Party) -> dict[str, Any]:
    item: dict[str, Any] = {"name": party.name, "email": party.email, "id": party.party_id}
    if party.registration_id is not None:
        item["registration"] = party.registration_id
    if party.delegate is not None:
        item["delegate"] = {"name": party.delegate[0], "role": party.delegate[1]}
    if party.correction is not None:
        item["correction"] = {
            "name": party.correction[0],
            "paris": paris(party.correction[1]),
            "utc": utc(party.correction[1]),
        }
    if party.authentication is not None:
        item["authentication"] = _authentication(party.authentication)
    return item


def _window(doc: ProofDocument) -> dict[str, str] | None:
    """When the recipient was notified and the last day to answer (CPCE R53-3 I)."""
    if doc.event is EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE:
        # The window runs from the recorded hand-off to the mail system, as the
        # letter's deadline and its notice do.
        notified = doc.event_time
    elif doc.event in _AFTER_NOTIFICATION and doc.notification_time is not None:
        notified = doc.notification_time
    else:
        return None
    window = AcceptanceWindow(notified)
    last = window.closes_at - dt.timedelta(seconds=1)
    local = last.astimezone(PARIS)
    return {
        "notified_paris": paris(notified),
        "notified_utc": utc(notified),
        "last_day_fr": f"{_day_fr(local.date())} à 23 h 59 min 59 s, heure de Paris "
        f"({_offset(local)})",
        "last_day_en": f"{local:%d %B %Y}, 23:59:59 Paris time ({_offset(local)})",
        "last_day_utc": utc(last).removesuffix(".000 UTC") + " UTC",
    }


def _reason(doc: ProofDocument) -> dict[str, str] | None:
    if doc.reason_code is None and doc.reason is None:
        return None
    words = REASONS.get(doc.reason_code or "")
    return {
        "fr": words.fr if words else "",
        "en": words.en if words else "",
        "code": doc.reason_code or "",
        "stated": doc.reason or "",
    }


_LEVELS = {
    "http://eidas.europa.eu/LoA/low": ("faible", "low"),
    "http://eidas.europa.eu/LoA/substantial": ("substantiel", "substantial"),
    "http://eidas.europa.eu/LoA/high": ("élevé", "high"),
}
_FACTORS = {
    "knowledge": ("mot de passe", "password"),
    "possession": ("appareil", "device"),
    "inherence": ("biométrie", "biometrics"),
    "otp": ("code à usage unique", "one-time code"),
}


def _authentication(authn: Authentication) -> dict[str, str]:
    """How a party authenticated for the event, in French and in English."""
    level_fr, level_en = _LEVELS.get(authn.level, (authn.level, authn.level))
    factors = [_FACTORS.get(m, (m, m)) for m in authn.method]
    return {
        "fr": f"eIDAS {level_fr} ({', '.join(f for f, _ in factors)})",
        "en": f"eIDAS {level_en} ({', '.join(e for _, e in factors)})",
        "utc": utc(authn.time),
    }


def _day_fr(day: dt.date) -> str:
    return f"{day.day} {_MONTHS_FR[day.month - 1]} {day.year}"


def _offset(local: dt.datetime) -> str:
    offset = local.strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"


def paris(when: dt.datetime) -> str:
    """A time as the proof prints it in Paris time, with its offset."""
    local = when.astimezone(PARIS)
    return (
        f"{_day_fr(local.date())}, {local:%H:%M:%S},{local.microsecond // 1000:03d} "
        f"({_offset(local)})"
    )


def utc(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.") + (
        f"{when.microsecond // 1000:03d} UTC"
    )


def _grouped(hex_digits: str) -> str:
    """Hex in groups of 8, so that a digest breaks between groups, never inside one."""
    return " ".join(hex_digits[i : i + 8] for i in range(0, len(hex_digits), 8))
