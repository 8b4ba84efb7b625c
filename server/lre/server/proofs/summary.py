"""A mailing's sealed summary as a PDF/A-3a and PDF/UA-1 document, laid out
by Typst from ``templates/mailing.typ``: the summary JSON and its CAdES seal
attached, as a proof carries its evidence, then signed like a proof.

One page per ~40 recipients: a mailing of 5,000 is a long document, made on
request (``GetMailingReport`` with the sealed format), never at deposit."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from lre.server.proofs.document import ProofInputError, read_seal
from lre.server.proofs.render import paris, typeset, utc


def attachment_names(mailing_id: str) -> tuple[str, str]:
    return f"mailing-{mailing_id}.json", f"mailing-{mailing_id}.p7m"


def render_summary(document: bytes, seal: bytes) -> tuple[bytes, str]:
    """The unsigned PDF of a sealed summary, and the seal certificate's
    subject (who signs the PDF). Raises ProofInputError unless ``seal`` is
    over ``document``."""
    info = read_seal(document, seal)
    try:
        summary = json.loads(document)
        mailing_id = summary["mailing"].removeprefix("mailings/")
        deposited = dt.datetime.fromisoformat(summary["depositTime"])
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise ProofInputError(f"not a mailing summary: {exc}") from None
    json_name, seal_name = attachment_names(mailing_id)
    when = info.timestamp_time
    view: dict[str, Any] = {
        "summary": summary,
        "title": f"Récapitulatif d'envoi multiple / Mailing summary — {summary['reference']}",
        "deposit": {"paris": paris(deposited), "utc": utc(deposited)},
        "sealed": {"paris": paris(when), "utc": utc(when), "tsa": info.tsa},
        "seal_subject": info.subject,
        "json_name": json_name,
        "seal_name": seal_name,
        "attachments": [
            {
                "name": json_name,
                "data": document.decode(),
                "relationship": "source",
                "mime": "application/json",
                "description": "Mailing summary, canonical JSON / récapitulatif, JSON",
            },
            {
                "name": seal_name,
                "data": list(seal),
                "relationship": "supplement",
                "mime": "application/pkcs7-mime",
                "description": "CAdES seal of the summary (CMS, DER) / cachet CAdES",
            },
        ],
    }
    return typeset("mailing.typ", "summary", view, when.replace(microsecond=0)), info.subject
