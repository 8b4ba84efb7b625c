"""What a proof shows, read from the evidence and its seal and checked to agree.

The evidence JSON names the event, the parties and the content; the CAdES
seal adds what the JSON cannot say about itself: who sealed it (the seal
certificate) and the qualified time (the signature timestamp's genTime).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from asn1crypto import cms, core, tsp, x509

from lre.runtime import asn1crypto_fix
from lre.server.domain.letters import ETSI_EVENT_URI, EvidenceEvent

asn1crypto_fix.apply()

PARIS = ZoneInfo("Europe/Paris")
# v1: issuer as a bare name, digests in hex; v2 (EN 319 522-2 details): docs/evidence.md.
FORMATS = ("lre-evidence/1", "lre-evidence/2")
# ETSI EN 319 422 qcStatements: a token from a qualified TSA says so.
_ESI4_QTST_STATEMENT_1 = "0.4.0.19422.1.1"
_QC_STATEMENTS = "1.3.6.1.5.5.7.1.3"


class ProofInputError(ValueError):
    """The evidence or its seal cannot make a proof (malformed, or they disagree)."""


@dataclass(frozen=True)
class Authentication:
    method: tuple[str, ...]
    level: str  # the eIDAS level-of-assurance URI
    time: dt.datetime


@dataclass(frozen=True)
class Party:
    name: str
    email: str
    # v2 only: the party's id and how it authenticated for this event, when it did.
    party_id: str | None = None
    authentication: Authentication | None = None
    # A legal person's registration identifier (2.5.4.97 form), and who acted
    # for the party (EN 319 522-2 delegate details: "given family", role).
    registration_id: str | None = None
    delegate: tuple[str, str] | None = None
    # The party's latest name correction before the evidence, and when.
    correction: tuple[str, dt.datetime] | None = None


@dataclass(frozen=True)
class ContentPart:
    filename: str
    media_type: str
    size: int
    digest_method: str
    digest: str  # hex, whatever the evidence's encoding (what sha256sum prints)


@dataclass(frozen=True)
class SealInfo:
    subject: str
    serial: int
    certificate_sha256: str
    timestamp_time: dt.datetime
    tsa: str
    timestamp_qualified: bool
    # The TSA's stated accuracy of timestamp_time (RFC 3161 accuracy); zero when absent.
    timestamp_accuracy: dt.timedelta


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
    policy_id: str | None = None  # v2: the evidence issuer policy
    # The reference the letter's e-mails carry, and when its recipient was
    # notified (what the acceptance window is counted from), when the evidence says.
    letter_reference: str | None = None
    notification_time: dt.datetime | None = None


def read(evidence: bytes, seal: bytes) -> ProofDocument:
    """Raises ProofInputError unless ``seal`` is a CMS seal over exactly ``evidence``
    (and, in v2, made with the certificate the evidence names)."""
    info, certificate_sha256 = _seal_of(evidence, seal)
    try:
        doc = json.loads(evidence)
        version = doc.get("format")
        if version not in FORMATS:
            raise ProofInputError(f"evidence format {version!r} is not {FORMATS}")
        uri = doc["event"]
        if not uri.startswith(ETSI_EVENT_URI):
            raise ProofInputError(f"event {uri!r} is not an ETSI EN 319 522 event")
        v2 = version == "lre-evidence/2"
        if v2:
            named = doc["issuer"]["certificate"]
            if base64.b64decode(named["digestValue"], validate=True) != certificate_sha256:
                raise ProofInputError("the seal certificate is not the one the evidence names")
        return ProofDocument(
            evidence_id=doc["evidenceId"],
            event=EvidenceEvent(uri.removeprefix(ETSI_EVENT_URI)),
            event_time=_time(doc["eventTime"]),
            issuer=str(doc["issuer"]["name"] if v2 else doc["issuer"]),
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
                    digest=(
                        base64.b64decode(p["digestValue"], validate=True).hex()
                        if v2
                        else p["digestValue"]
                    ),
                )
                for p in doc["contentDigests"]
            ),
            reason=doc.get("reason"),
            reason_code=doc.get("reasonCode"),
            seal=info,
            evidence_sha256=hashlib.sha256(evidence).hexdigest(),
            policy_id=doc.get("policyId"),
            letter_reference=doc.get("letterReference"),
            notification_time=(
                _time(doc["notificationTime"]) if "notificationTime" in doc else None
            ),
        )
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError, binascii.Error) as exc:
        raise ProofInputError(f"not an evidence document: {type(exc).__name__} {exc}") from None
    except ValueError as exc:
        if isinstance(exc, ProofInputError):
            raise
        raise ProofInputError(f"not an evidence document: {exc}") from None


def read_seal(evidence: bytes, seal: bytes) -> SealInfo:
    """What the seal says of itself; raises ProofInputError unless it is over ``evidence``."""
    return _seal_of(evidence, seal)[0]


def _party(value: dict[str, Any]) -> Party:
    authn = value.get("authentication")
    return Party(
        name=str(value["name"]),
        email=str(value["email"]),
        party_id=value.get("id"),
        registration_id=value.get("registrationId"),
        correction=(
            (
                str(value["nameCorrection"]["correction"]),
                _time(value["nameCorrection"]["time"]),
            )
            if "nameCorrection" in value
            else None
        ),
        delegate=(
            (
                f"{value['delegate']['givenName']} {value['delegate']['familyName']}",
                str(value["delegate"].get("role", "")),
            )
            if "delegate" in value
            else None
        ),
        authentication=(
            Authentication(tuple(authn["method"]), str(authn["level"]), _time(authn["time"]))
            if authn
            else None
        ),
    )


def _time(value: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ProofInputError(f"time {value!r} has no offset")
    return when.astimezone(dt.UTC)


# A proof's e-mail reads its seal, then the PDF's rendering reads it again;
# reading costs ~1 ms of parsing, the answer depends on the two inputs only.
# Kept for evidences of a letter's size, not for a mailing's summary (which
# can hold thousands of recipients, and is read once).
_CACHED_UP_TO = 64 * 1024


def _seal_of(evidence: bytes, seal: bytes) -> tuple[SealInfo, bytes]:
    evidence, seal = bytes(evidence), bytes(seal)
    if len(evidence) + len(seal) > _CACHED_UP_TO:
        return _read_seal(evidence, seal)
    return _read_seal_cached(evidence, seal)


def _read_seal(evidence: bytes, seal: bytes) -> tuple[SealInfo, bytes]:
    try:
        content_info = cms.ContentInfo.load(seal)
        signed = content_info["content"]
        if content_info["content_type"].native != "signed_data":
            raise ProofInputError("the seal is not CMS SignedData")
        sealed = signed["encap_content_info"]["content"].native
        signer = signed["signer_infos"][0]
        subject, serial, certificate_sha256 = _signer_certificate(signed, signer)
        token = next(
            a["values"][0]
            for a in signer["unsigned_attrs"]
            if a["type"].native == "signature_time_stamp_token"
        )
        token_signed = token["content"]
        tst = tsp.TSTInfo.load(token_signed["encap_content_info"]["content"].parsed.dump())
        tsa_name, qualified = _tsa(tst)
        accuracy = _accuracy(tst["accuracy"])
    except (ValueError, TypeError, KeyError, StopIteration) as exc:
        raise ProofInputError(f"not a CAdES seal with a signature timestamp: {exc}") from None
    if sealed != evidence:
        raise ProofInputError("the seal does not encapsulate this evidence")
    info = SealInfo(
        subject=subject,
        serial=serial,
        certificate_sha256=certificate_sha256.hex(),
        timestamp_time=tst["gen_time"].native.astimezone(dt.UTC),
        tsa=tsa_name,
        timestamp_qualified=qualified,
        timestamp_accuracy=accuracy,
    )
    return info, certificate_sha256


_read_seal_cached = functools.lru_cache(maxsize=64)(_read_seal)

# What a seal says of its key's certificate and of its TSA is the same in
# every seal they make: read once (names and chains are most of a seal's
# parsing), by the bytes that say it.
_KNOWN: dict[bytes, Any] = {}


def _known(key: bytes, read: Callable[[], Any]) -> Any:
    value = _KNOWN.get(key)
    if value is None:
        value = read()
        if len(_KNOWN) >= 64:  # a few keys and TSAs at once, renewed now and then
            _KNOWN.clear()
        _KNOWN[key] = value
    return value


def _signer_certificate(signed: cms.SignedData, signer: cms.SignerInfo) -> tuple[str, int, bytes]:
    """The sealing certificate among those the seal carries: its common
    name, serial and SHA-256."""

    def read() -> tuple[str, int, bytes]:
        sid = signer["sid"].chosen
        serial, issuer = sid["serial_number"].native, sid["issuer"]
        # The serial first: comparing X.500 names normalises every attribute
        # (~1 ms a name), and a seal carries the whole chain.
        certificate = next(
            c.chosen
            for c in signed["certificates"]
            if c.name == "certificate"
            and c.chosen.serial_number == serial
            and (c.chosen.issuer.dump() == issuer.dump() or c.chosen.issuer == issuer)
        )
        return (
            _common_name(certificate.subject),
            certificate.serial_number,
            hashlib.sha256(certificate.dump()).digest(),
        )

    result: tuple[str, int, bytes] = _known(
        b"c" + signed["certificates"].dump() + signer["sid"].dump(), read
    )
    return result


def _tsa(tst: tsp.TSTInfo) -> tuple[str, bool]:
    """The TSA's name, and whether its timestamps say they are qualified."""

    def read() -> tuple[str, bool]:
        name = _common_name(tst["tsa"].chosen) if tst["tsa"].native is not None else ""
        return name, _ESI4_QTST_STATEMENT_1 in _qc_statement_ids(tst)

    result: tuple[str, bool] = _known(b"t" + tst["tsa"].dump() + tst["extensions"].dump(), read)
    return result


def _accuracy(value: tsp.Accuracy) -> dt.timedelta:
    if value.native is None:
        return dt.timedelta(0)
    native = value.native
    return dt.timedelta(
        seconds=native.get("seconds") or 0,
        milliseconds=native.get("millis") or 0,
        microseconds=native.get("micros") or 0,
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
