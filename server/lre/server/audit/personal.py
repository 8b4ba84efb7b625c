"""`export` and `verify-export` of what the journal binds of people: the
identity records its ``identity_proofed`` entries name and the consents its
``consent_granted`` and ``consent_withdrawn`` entries name. A successor
provider (the termination plan, eIDAS art. 24(2)(i)) or an auditor receives
them with their proof: each record against the digest its entry states
(``recordSha256``, or ``recordSaltedSha256`` with the salt the record keeps),
each consent against its entry's method, actor and form digest.

A record whose personal data was erased is not exported: the manifest lists
it as erased, and ``verify-export`` counts it rather than calling it missing."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from lre.server.domain import journal
from lre.server.domain.evidence import _utc
from lre.server.domain.identity import Consent, IdentityRecord
from lre.server.domain.log import FORMAT_V2, LogKind
from lre.server.storage import models
from lre.server.storage.records import from_row

RECORDS = "identity-records"
CONSENTS = "consents"
CONSENT_KINDS = {LogKind.CONSENT_GRANTED.value, LogKind.CONSENT_WITHDRAWN.value}


@dataclass
class Exported:
    """What an export wrote of people, for its manifest."""

    records: set[str] = field(default_factory=set)
    consents: set[str] = field(default_factory=set)
    erased: set[str] = field(default_factory=set)

    def manifest(self) -> dict[str, Any]:
        return {
            "identityRecords": len(self.records),
            "consents": len(self.consents),
            "erasedIdentityRecords": sorted(self.erased),
        }


def export_entry(session: DbSession, leaf: dict[str, Any], out: Path, done: Exported) -> None:
    """The row a journal leaf binds, written beside the archive's evidence."""
    kind = leaf.get("kind")
    if kind == LogKind.IDENTITY_PROOFED.value:
        record_id = _id(leaf.get("record"))
        if record_id is None or str(record_id) in done.records | done.erased:
            return
        row = session.execute(
            select(models.IdentityRecord.__table__).where(models.IdentityRecord.id == record_id)
        ).one_or_none()
        if row is None:
            return  # verify-export names it missing
        record = from_row(IdentityRecord, row)
        if record.erase_time is not None:
            done.erased.add(str(record_id))
            return
        salt = record.digest_salt
        document = {
            "content": journal.identity_record_content(record),
            "salt": base64.b64encode(salt).decode() if salt is not None else None,
        }
        (out / RECORDS).mkdir(exist_ok=True)
        _write(out / RECORDS / f"{record_id}.json", document)
        done.records.add(str(record_id))
    elif kind in CONSENT_KINDS:
        consent_id = _id(leaf.get("subject"))
        if consent_id is None:
            return
        row = session.execute(
            select(models.Consent.__table__).where(models.Consent.id == consent_id)
        ).one_or_none()
        if row is None:
            return
        consent = from_row(Consent, row)
        (out / CONSENTS).mkdir(exist_ok=True)
        _write(
            out / CONSENTS / f"{consent_id}.json",
            {
                "recipient": f"parties/{consent.recipient_id}",
                "sender": f"parties/{consent.sender_id}",
                "method": consent.method,
                "actor": consent.actor,
                "formSha256": consent.form_sha256,
                "grantTime": _utc(consent.grant_time),
                "withdrawTime": _utc(consent.withdraw_time) if consent.withdraw_time else None,
            },
        )
        done.consents.add(str(consent_id))


@dataclass
class Checked:
    records: set[str] = field(default_factory=set)
    consents: set[str] = field(default_factory=set)
    erased: int = 0


def check_entry(
    out: Path,
    index: int,
    leaf: dict[str, Any],
    erased: set[str],
    checked: Checked,
    add: Any,
) -> None:
    """The archived row a journal leaf binds, against the leaf."""
    kind = leaf.get("kind")
    if kind == LogKind.IDENTITY_PROOFED.value:
        record_id = _id(leaf.get("record"))
        if record_id is None or str(record_id) in checked.records:
            return
        path = out / RECORDS / f"{record_id}.json"
        if not path.is_file():
            if str(record_id) in erased:
                checked.erased += 1
            else:
                add(f"identity record {record_id} (entry {index}): missing from the archive")
            return
        checked.records.add(str(record_id))
        if not _record_matches(path, leaf):
            add(f"identity record {record_id} (entry {index}): not the record journaled (changed)")
    elif kind in CONSENT_KINDS:
        consent_id = _id(leaf.get("subject"))
        if consent_id is None:
            return
        path = out / CONSENTS / f"{consent_id}.json"
        try:
            consent = json.loads(path.read_bytes())
        except (OSError, ValueError):
            add(f"consent {consent_id} (entry {index}): missing from the archive or malformed")
            return
        checked.consents.add(str(consent_id))
        stated = {name: leaf.get(name) for name in ("method", "actor", "formSha256")}
        archived = {name: consent.get(name) for name in stated}
        recipient = str(leaf.get("subject")).split("/consents/", 1)[0]
        if any(value is not None and archived[name] != value for name, value in stated.items()) or (
            consent.get("recipient") != recipient
        ):
            add(f"consent {consent_id} (entry {index}): not the consent journaled (changed)")


def _record_matches(path: Path, leaf: dict[str, Any]) -> bool:
    try:
        document = json.loads(path.read_bytes())
        content = document["content"]
        salt = document["salt"]
        if not isinstance(content, dict):
            return False
        if leaf.get("format") == FORMAT_V2:
            if not isinstance(salt, str):
                return False
            digest = journal.salted_record_digest(base64.b64decode(salt, validate=True), content)
            return digest == leaf.get("recordSaltedSha256")
        return journal.record_digest(content) == leaf.get("recordSha256")
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _id(name: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(name).rsplit("/", 1)[-1])
    except ValueError:
        return None


def _write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, sort_keys=True, indent=1, default=_plain))


def _plain(value: object) -> str:
    if isinstance(value, dt.datetime):
        return _utc(value)
    return str(value)
