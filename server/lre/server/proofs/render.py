"""A proof as a PDF/A-3u document: HTML from a Jinja2 template, laid out by WeasyPrint.

PDF/A-3, not PDF/A-2: the proof carries the evidence JSON and its CMS seal
as embedded files, and PDF/A-2 allows only PDF/A files as attachments;
PDF/A-3 allows any file, each tied to the document with an
AFRelationship. Level "u" (every character with its Unicode value) on top
of "b", so that names and digests can be searched and copied exactly.
Fonts are DejaVu (Debian fonts-dejavu-core), embedded as subsets.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources

import jinja2
from weasyprint import CSS, HTML, Attachment

from lre.server.proofs.document import PARIS, Authentication, ProofDocument, read
from lre.server.proofs.events import TEXTS

PDF_VARIANT = "pdf/a-3u"
_MONTHS_FR = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("lre.server.proofs", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

_STYLESHEET = CSS(
    string=resources.files("lre.server.proofs").joinpath("templates/proof.css").read_text("utf-8")
)


def attachment_names(doc: ProofDocument) -> tuple[str, str]:
    """The names the evidence and its seal carry inside the PDF."""
    return f"evidence-{doc.evidence_id}.json", f"evidence-{doc.evidence_id}.p7m"


def render_proof(evidence: bytes, seal: bytes) -> bytes:
    """The unsigned PDF proof of one evidence, in French and English.

    ``evidence`` is the sealed JSON document, ``seal`` its CAdES seal (DER);
    both are embedded as attachments. The caller then has the signer sign it
    (``SignerClient.sign_pdf``). Raises ProofInputError when the seal is not
    over this evidence or either cannot be read.
    """
    doc = read(evidence, seal)
    json_name, seal_name = attachment_names(doc)
    html = _env.get_template("proof.html.j2").render(
        doc=doc,
        text=TEXTS[doc.event],
        json_name=json_name,
        seal_name=seal_name,
        paris_fr=_paris_fr,
        utc=_utc,
        authentication=_authentication,
        size=_size,
    )
    created = doc.seal.timestamp_time
    return bytes(
        HTML(string=html, url_fetcher=_fetch_nothing).write_pdf(
            stylesheets=[_STYLESHEET],
            pdf_variant=PDF_VARIANT,
            attachments=[
                Attachment(
                    string=evidence,
                    name=json_name,
                    description="Evidence (ETSI EN 319 522), canonical JSON / preuve, JSON",
                    relationship="Source",
                    created=created,
                    modified=created,
                ),
                Attachment(
                    string=seal,
                    name=seal_name,
                    description="CAdES seal of the evidence (CMS, DER) / cachet CAdES",
                    relationship="Supplement",
                    created=created,
                    modified=created,
                ),
            ],
            # Identical inputs give identical bytes, hence the same PDF identifier.
            pdf_identifier=doc.evidence_id.encode(),
        )
    )


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


def _authentication(authn: Authentication) -> tuple[str, str]:
    """How a party authenticated for the event, in French and in English."""
    level_fr, level_en = _LEVELS.get(authn.level, (authn.level, authn.level))
    factors = [_FACTORS.get(m, (m, m)) for m in authn.method]
    return (
        f"eIDAS {level_fr} ({', '.join(f for f, _ in factors)})",
        f"eIDAS {level_en} ({', '.join(e for _, e in factors)})",
    )


def _fetch_nothing(url: str, *args: object, **kwargs: object) -> dict[str, object]:
    """The page needs no resource: nothing named in an evidence is ever fetched."""
    raise ValueError(f"proofs load no external resource ({url[:40]!r})")


def _paris_fr(when: dt.datetime) -> str:
    local = when.astimezone(PARIS)
    offset = local.strftime("%z")
    return (
        f"{local.day} {_MONTHS_FR[local.month - 1]} {local.year}, "
        f"{local:%H:%M:%S},{local.microsecond // 1000:03d} "
        f"(UTC{offset[:3]}:{offset[3:]})"
    )


def _utc(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.") + (
        f"{when.microsecond // 1000:03d} UTC"
    )


def _size(octets: int) -> str:
    return f"{octets:,}".replace(",", "\u202f")
