"""What a proof shows, read from the evidence and its seal and checked to agree.

The evidence JSON names the event, the parties and the content; the CAdES
seal adds what the JSON cannot say about itself: who sealed it (the seal
certificate) and the qualified time (the signature timestamp's genTime).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from asn1crypto import cms, core, tsp, x509

from lre.runtime import asn1crypto_fix
from lre.server.domain.letters import ETSI_EVENT_URI, EvidenceEvent

asn1crypto_fix.apply()

PARIS = ZoneInfo("Europe/Paris")
FORMATS = ("lre-evidence/1",)
# ETSI EN 319 422 qcStatements: a token from a qualified TSA says so.
_ESI4_QTST_STATEMENT_1 = "0.4.0.19422.1.1"
_QC_STATEMENTS = "1.3.6.1.5.5.7.1.3"


class ProofInputError(ValueError):
    """The evidence or its seal cannot make a proof (malformed, or they disagree)."""


@dataclass(frozen=True)
class Party:
    name: str
    email: str


@dataclass(frozen=True)
class ContentPart:
    filename: str
    media_type: str
    size: int
    digest_method: str
    digest: str


@dataclass(frozen=True)
class SealInfo:
    subject: str
    serial_hex: str
    certificate_sha256: str
    timestamp_time: dt.datetime
    tsa: str
    timestamp_qualified: bool


@dataclass(frozen=True)
class ProofDocument:
    evidence_id: str
    event: EvidenceEvent
    event_time: dt.datetime
    issuer: str
    sender: Party
    recipient: Party
    letter_id: str
    submission_time: dt.datetime
    parts: tuple[ContentPart, ...]
    reason: str | None
    reason_code: str | None
    seal: SealInfo
    evidence_sha256: str


def read(evidence: bytes, seal: bytes) -> ProofDocument:
    """Raises ProofInputError unless ``seal`` is a CMS seal over exactly ``evidence``."""
    info = _read_seal(evidence, seal)
    try:
        doc = json.loads(evidence)
        if doc.get("format") not in FORMATS:
            raise ProofInputError(f"evidence format {doc.get('format')!r} is not {FORMATS}")
        uri = doc["event"]
        if not uri.startswith(ETSI_EVENT_URI):
            raise ProofInputError(f"event {uri!r} is not an ETSI EN 319 522 event")
        return ProofDocument(
            evidence_id=doc["evidenceId"],
            event=EvidenceEvent(uri.removeprefix(ETSI_EVENT_URI)),
            event_time=_time(doc["eventTime"]),
            issuer=doc["issuer"],
            sender=_party(doc["sender"]),
            recipient=_party(doc["recipient"]),
            letter_id=doc["letterId"],
            submission_time=_time(doc["submissionTime"]),
            parts=tuple(
                ContentPart(
                    filename=p["filename"],
                    media_type=p["mediaType"],
                    size=int(p["size"]),
                    digest_method=p["digestMethod"],
                    digest=p["digestValue"],
                )
                for p in doc["contentDigests"]
            ),
            reason=doc.get("reason"),
            reason_code=doc.get("reasonCode"),
            seal=info,
            evidence_sha256=hashlib.sha256(evidence).hexdigest(),
        )
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ProofInputError(f"not an evidence document: {type(exc).__name__} {exc}") from None
    except ValueError as exc:
        if isinstance(exc, ProofInputError):
            raise
        raise ProofInputError(f"not an evidence document: {exc}") from None


def _party(value: dict[str, Any]) -> Party:
    return Party(name=str(value["name"]), email=str(value["email"]))


def _time(value: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ProofInputError(f"time {value!r} has no offset")
    return when.astimezone(dt.UTC)


def _read_seal(evidence: bytes, seal: bytes) -> SealInfo:
    try:
        content_info = cms.ContentInfo.load(seal)
        signed = content_info["content"]
        if content_info["content_type"].native != "signed_data":
            raise ProofInputError("the seal is not CMS SignedData")
        sealed = signed["encap_content_info"]["content"].native
        signer = signed["signer_infos"][0]
        sid = signer["sid"].chosen
        certificate = next(
            c.chosen
            for c in signed["certificates"]
            if c.name == "certificate"
            and c.chosen.issuer == sid["issuer"]
            and c.chosen.serial_number == sid["serial_number"].native
        )
        token = next(
            a["values"][0]
            for a in signer["unsigned_attrs"]
            if a["type"].native == "signature_time_stamp_token"
        )
        token_signed = token["content"]
        tst = tsp.TSTInfo.load(token_signed["encap_content_info"]["content"].parsed.dump())
        tsa_name = _common_name(tst["tsa"].chosen) if tst["tsa"].native is not None else ""
        qualified = _ESI4_QTST_STATEMENT_1 in _qc_statement_ids(tst)
    except (ValueError, TypeError, KeyError, StopIteration) as exc:
        raise ProofInputError(f"not a CAdES seal with a signature timestamp: {exc}") from None
    if sealed != evidence:
        raise ProofInputError("the seal does not encapsulate this evidence")
    return SealInfo(
        subject=_common_name(certificate.subject),
        serial_hex=format(certificate.serial_number, "x"),
        certificate_sha256=hashlib.sha256(certificate.dump()).hexdigest(),
        timestamp_time=tst["gen_time"].native.astimezone(dt.UTC),
        tsa=tsa_name,
        timestamp_qualified=qualified,
    )


def _common_name(name: x509.Name) -> str:
    """The CN if there is one (what people read), else the whole name."""
    common_name = name.native.get("common_name")
    return str(common_name) if common_name else str(name.human_friendly)


class _QcStatement(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 -- asn1crypto's declaration style
        ("statement_id", core.ObjectIdentifier),
        ("statement_info", core.Any, {"optional": True}),
    ]


class _QcStatements(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _QcStatement


def _qc_statement_ids(tst: tsp.TSTInfo) -> set[str]:
    ids: set[str] = set()
    for extension in tst["extensions"] or []:
        if extension["extn_id"].dotted == _QC_STATEMENTS:
            statements = _QcStatements.load(extension["extn_value"].contents)
            ids.update(s["statement_id"].dotted for s in statements)
    return ids
