"""The proof's page laid out by ReportLab (platypus), for bench/pdf_proofs.py:
a candidate engine measured on the same content as the Typst template (the
same view), not used by the product. ReportLab's open-source edition writes
neither a structure tree (tags) nor PDF/A-3 attachments with AFRelationship.
Needs ``reportlab`` (not a dependency of the project) and fonts-dejavu-core."""

from __future__ import annotations

import io
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, Preformatted, SimpleDocTemplate, Table, TableStyle

from lre.server.proofs.document import read
from lre.server.proofs.render import FONTS, view

for _name, _file in (
    ("DV", "DejaVuSans.ttf"),
    ("DVB", "DejaVuSans-Bold.ttf"),
    ("DVI", "DejaVuSans-Oblique.ttf"),
    ("DVM", "DejaVuSansMono.ttf"),
    ("DVS", "DejaVuSerif-Bold.ttf"),
):
    pdfmetrics.registerFont(TTFont(_name, str(FONTS / _file)))
NAVY = colors.HexColor("#1d3557")
BODY = ParagraphStyle("body", fontName="DV", fontSize=8.2, leading=10.8)
ENGLISH = ParagraphStyle("en", parent=BODY, fontName="DVI", textColor=colors.HexColor("#3a4a5c"))
TITLE = ParagraphStyle("h1", fontName="DVS", fontSize=18, leading=22, textColor=NAVY)
HEADING = ParagraphStyle("h2", fontName="DVB", fontSize=10, leading=13, textColor=NAVY)
MONO = ParagraphStyle("mono", parent=BODY, fontName="DVM", fontSize=7.3)


def _e(value: object) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _label(fr: str, en: str) -> Paragraph:
    return Paragraph(f"<font name='DVB'>{_e(fr)}</font><br/>{_e(en)}", BODY)


def render(evidence: bytes, seal: bytes) -> bytes:
    p: dict[str, Any] = view(read(evidence, seal), evidence, seal)
    out = io.BytesIO()
    page = SimpleDocTemplate(
        out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=11 * mm,
        bottomMargin=15 * mm, title=p["title"], author=p["issuer"],
    )  # fmt: skip
    rows = [
        [_label("Référence", "Reference"), Paragraph(f"{_e(p['reference'])} — {_e(p['letter_id'])}", MONO)],
        [_label("Date et heure", "Date and time"),
         Paragraph(f"{_e(p['time']['paris'])} heure de Paris<br/>{_e(p['time']['utc'])}", BODY)],
        *[[_label(fr, en), Paragraph(f"{_e(x['name'])}<br/>{_e(x['email'])} — {_e(x['id'])}", BODY)]
          for (fr, en), x in zip((("Expéditeur", "Sender"), ("Destinataire", "Recipient")), p["parties"], strict=True)],
        [_label("Dépôt", "Submission"), Paragraph(f"{_e(p['submission']['paris'])} — {_e(p['submission']['utc'])}", BODY)],
        [_label("Preuve n°", "Evidence id"), Paragraph(_e(p["evidence_id"]), MONO)],
    ]  # fmt: skip
    if p["window"]:
        w = p["window"]
        rows.insert(-1, [_label("Délai de réponse", "Time to answer"),
                         Paragraph(f"{_e(w['notified_paris'])}<br/>{_e(w['last_day_fr'])}<br/>{_e(w['last_day_en'])}", BODY)])  # fmt: skip
    facts = Table(rows, colWidths=[33 * mm, None])
    facts.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#eef2f7")),
        ("LINEBELOW", (0, 0), (-1, -1), 0.5, colors.HexColor("#d5dce5")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))  # fmt: skip
    parts = Table(
        [["Fichier / File", "Type", "Octets", "SHA-256"]]
        + [[Paragraph(_e(x["filename"]), BODY), x["media_type"], x["size"],
            Paragraph(f"{x['hex']}<br/>{x['base64']}", MONO)] for x in p["parts"]],
        colWidths=["30%", "15%", "12%", "43%"],
    )  # fmt: skip
    parts.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "DV", 7.5)]))
    page.build([
        Paragraph(_e(p["issuer"]), HEADING),
        Paragraph(_e(p["title_fr"]), TITLE),
        Paragraph(_e(p["title_en"]), ENGLISH),
        facts,
        Paragraph("Contenu / Content", HEADING),
        parts,
        Paragraph("Portée juridique / Legal meaning", HEADING),
        Paragraph(_e(p["meaning_fr"]), BODY),
        Paragraph(_e(p["meaning_en"]), ENGLISH),
        Paragraph("Vérification / How to verify", HEADING),
        Preformatted("pdfsig proof.pdf\npdfdetach -saveall proof.pdf", MONO),
        Paragraph(f"{_e(p['seal']['subject'])}, n° {p['seal']['serial']}<br/>SHA-256 {p['seal']['sha256']}", MONO),
    ])  # fmt: skip
    return out.getvalue()
