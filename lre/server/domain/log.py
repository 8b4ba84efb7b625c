"""The tamper-evident log: what a leaf says, and the RFC 9162 Merkle tree
over the leaves (section 2.1: leaf hash SHA-256(0x00 || leaf), node hash
SHA-256(0x01 || left || right), split at the largest power of two below n).

Each leaf records one state change of one letter and, when there is one, the
digests of the evidence that proves it, so that changing, deleting or
inserting a row of the evidence table no longer matches the log. Leaves of
other kinds (a ``kind`` in them; a leaf without one is a letter's) record
what a recipient said about receiving letters: a consent (CPCE L100), its
withdrawal, a professional declaration; with keyed hashes of the e-mail
addresses rather than the addresses (the log is kept, and shown to
auditors, long after a party's data may be erased)."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass

from lre.server.domain.evidence import _utc
from lre.server.domain.letters import EvidenceEvent, LetterState

FORMAT = "lre-log/1"


@dataclass(frozen=True)
class LogRecord:
    letter_id: str
    state: LetterState
    event_time: dt.datetime
    event: EvidenceEvent | None = None
    evidence_id: str | None = None
    document_sha256: str | None = None
    seal_sha256: str | None = None
    # Set when the change is an operator's legal hold (no evidence).
    legal_hold: bool | None = None

    def leaf(self) -> bytes:
        """Canonical JSON: the same record always has the same bytes."""
        record: dict[str, str | bool] = {
            "format": FORMAT,
            "letter": f"letters/{self.letter_id}",
            "state": self.state.value,
            "eventTime": _utc(self.event_time),
        }
        if self.event is not None:
            record["event"] = self.event.value
        if self.evidence_id is not None:
            record["evidence"] = self.evidence_id
        if self.document_sha256 is not None:
            record["documentSha256"] = self.document_sha256
        if self.seal_sha256 is not None:
            record["sealSha256"] = self.seal_sha256
        if self.legal_hold is not None:
            record["legalHold"] = self.legal_hold
        return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


class LogKind(enum.Enum):
    CONSENT_GRANTED = "consent_granted"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    PROFESSIONAL_DECLARED = "professional_declared"


def email_hmac(key: bytes, address: str) -> str:
    """An e-mail address as the log keeps it: whoever holds the provider's
    key (an auditor it is shown to) can tell whether a given address is the
    one, nobody can read it back."""
    normalised = address.strip().lower().encode()
    return hmac.new(key, b"log-email:" + normalised, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class PartyLogRecord:
    """A leaf about a party rather than a letter. ``subject`` is the resource
    ("parties/{id}" or "parties/{id}/consents/{id}"); ``facts`` are the
    minimised details (keyed hashes, method, declared identifier)."""

    kind: LogKind
    subject: str
    event_time: dt.datetime
    facts: tuple[tuple[str, str], ...] = ()

    def leaf(self) -> bytes:
        record = {
            **dict(self.facts),
            "format": FORMAT,
            "kind": self.kind.value,
            "subject": self.subject,
            "eventTime": _utc(self.event_time),
        }
        return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(hashes: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes; the hash of the empty string for an empty tree."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    level = list(hashes)
    # Bottom-up pairing gives the same tree as the recursive split: a lone
    # last node is carried up unchanged.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1."""
    n = len(hashes)
    if not 0 <= index < n:
        raise ValueError("leaf index outside the tree")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(index, hashes[:k]), root(hashes[k:])]
    return [*inclusion_proof(index - k, hashes[k:]), root(hashes[:k])]


def consistency_proof(old_size: int, hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1."""
    if not 0 < old_size <= len(hashes):
        raise ValueError("the old tree size must be between 1 and the new size")
    return _subproof(old_size, hashes, True)


def _subproof(m: int, hashes: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if complete else [root(hashes)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, hashes[:k], complete), root(hashes[k:])]
    return [*_subproof(m - k, hashes[k:], False), root(hashes[:k])]


def tree_head_document(size: int, root_hash: bytes, at: dt.datetime, issuer: str) -> bytes:
    """What the signer seals for a tree head (canonical JSON)."""
    return json.dumps(
        {
            "format": "lre-tree-head/1",
            "issuer": issuer,
            "treeSize": size,
            "rootHash": root_hash.hex(),
            "hashAlgorithm": "SHA-256 (RFC 9162)",
            "time": _utc(at),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
