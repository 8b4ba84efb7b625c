"""The tamper-evident log: what a leaf says, and the RFC 9162 Merkle tree
over the leaves (section 2.1: leaf hash SHA-256(0x00 || leaf), node hash
SHA-256(0x01 || left || right), split at the largest power of two below n).

Each leaf records one state change of one letter and, when there is one, the
digests of the evidence that proves it, so that changing, deleting or
inserting a row of the evidence table no longer matches the log. Leaves of
other kinds (a ``kind`` in them; a leaf without one is a letter's) are the
journal: what a recipient said about receiving letters (a consent, CPCE
L100, its withdrawal, a professional declaration) and the security journal
(proofing, credentials, sessions, operators' acts, the processes and the
signer's keys; ``lre.server.domain.journal``), with keyed hashes of personal
data rather than the data (the log is kept, and shown to auditors, long
after a party's data may be erased)."""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lre.server.domain.evidence import _utc
from lre.server.domain.letters import EvidenceEvent, LetterState

FORMAT = "lre-log/1"
# Journal leaves that commit to personal data by salted digests (the salt
# kept beside the data and erased with it: domain.retention.salted_digest).
FORMAT_V2 = "lre-log/2"
FORMATS = frozenset({FORMAT, FORMAT_V2})


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
    """The journal's entries (a ``kind`` in the leaf): what a recipient said
    about receiving letters, and the security journal (EN 319 401 7.10;
    their fields in ``lre.server.domain.journal``)."""

    CONSENT_GRANTED = "consent_granted"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    PROFESSIONAL_DECLARED = "professional_declared"
    PROFESSIONAL_ENDED = "professional_ended"
    PARTY_CORRECTED = "party_corrected"
    PARTY_ERASED = "party_erased"
    PERSONAL_DATA_EXPORTED = "personal_data_exported"
    IDENTITY_PROOFED = "identity_proofed"
    PROOFING_REFUSED = "proofing_refused"
    ENROLMENT_CODE_ISSUED = "enrolment_code_issued"
    CREDENTIALS_ENROLLED = "credentials_enrolled"
    PASSWORD_SET = "password_set"  # noqa: S105 (an event's name)
    TOTP_ENROLLED = "totp_enrolled"
    EMAIL_CODE_ISSUED = "email_code_issued"
    SESSION_CREATED = "session_created"
    SESSION_REVOKED = "session_revoked"
    AUTHENTICATION_FAILED = "authentication_failed"
    LOCKED_OUT = "locked_out"
    LEGAL_HOLD_SET = "legal_hold_set"
    LEGAL_HOLD_RELEASED = "legal_hold_released"
    BOUNCE_RECORDED = "bounce_recorded"
    EVIDENCE_READ = "evidence_read"
    CONTENT_DOWNLOADED = "content_downloaded"
    PROCESS_STARTED = "process_started"
    SIGNER_CERTIFICATE = "signer_certificate"
    SIGNER_DOWN = "signer_down"
    SIGNER_UP = "signer_up"


def email_hmac(key: bytes, address: str) -> str:
    """An e-mail address as the log keeps it: whoever holds the provider's
    key (an auditor it is shown to) can tell whether a given address is the
    one, nobody can read it back."""
    normalised = address.strip().lower().encode()
    return hmac.new(key, b"log-email:" + normalised, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class JournalRecord:
    """A leaf of the journal rather than a letter's. ``subject`` is the
    resource it is about ("parties/{id}", "parties/{id}/consents/{id}",
    "letters/{id}", "signer/seal"...); ``facts`` are the minimised details
    (keyed hashes, method, level, who acted), strings only."""

    kind: LogKind
    subject: str
    event_time: dt.datetime
    facts: tuple[tuple[str, str], ...] = ()
    format: str = FORMAT

    def leaf(self) -> bytes:
        record = {
            **dict(self.facts),
            "format": self.format,
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


# (level, position) -> the hash of the perfect subtree over leaves
# [position * 2**level, (position + 1) * 2**level): a stored node, or computed.
Node = Callable[[int, int], bytes]


def _list_node(hashes: Sequence[bytes]) -> Node:
    return lambda level, position: root(hashes[position << level : (position + 1) << level])


def peaks(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees the first ``size`` leaves decompose into, largest first."""
    found, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            found.append((level, start >> level))
            start += 1 << level
    return found


def range_hash(start: int, end: int, node: Node) -> bytes:
    """MTH(D[start:end]) for the subtrees RFC 9162 proofs name (``start`` a
    multiple of a power of two at least ``end - start``): O(log n) nodes."""
    parts = [node(level, (start >> level) + position) for level, position in peaks(end - start)]
    if not parts:
        return hashlib.sha256(b"").digest()
    result = parts[-1]
    for part in reversed(parts[:-1]):
        result = node_hash(part, result)
    return result


def inclusion_path(index: int, size: int, node: Node) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1, from O(log n) nodes."""
    if not 0 <= index < size:
        raise ValueError("leaf index outside the tree")

    def path(lo: int, n: int) -> list[bytes]:
        if n == 1:
            return []
        k = _split(n)
        if index < lo + k:
            return [*path(lo, k), range_hash(lo + k, lo + n, node)]
        return [*path(lo + k, n - k), range_hash(lo, lo + k, node)]

    return path(0, size)


def consistency_path(old_size: int, size: int, node: Node) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1, from O(log n) nodes."""
    if not 0 < old_size <= size:
        raise ValueError("the old tree size must be between 1 and the new size")

    def subproof(m: int, lo: int, n: int, complete: bool) -> list[bytes]:
        if m == n:
            return [] if complete else [range_hash(lo, lo + n, node)]
        k = _split(n)
        if m <= k:
            return [*subproof(m, lo, k, complete), range_hash(lo + k, lo + n, node)]
        return [*subproof(m - k, lo + k, n - k, False), range_hash(lo, lo + k, node)]

    return subproof(old_size, 0, size, True)


def inclusion_proof(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    return inclusion_path(index, len(hashes), _list_node(hashes))


def consistency_proof(old_size: int, hashes: Sequence[bytes]) -> list[bytes]:
    return consistency_path(old_size, len(hashes), _list_node(hashes))


def verify_inclusion(
    leaf_hash_: bytes, index: int, size: int, path: Sequence[bytes], root_hash: bytes
) -> bool:
    """RFC 9162 2.1.3.2: the audit path leads from the leaf to the root."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf_hash_
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root_hash


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: the tree of ``second`` leaves extends that of ``first``."""
    if first == second:
        return not path and first_root == second_root
    if not 0 < first < second or not path:
        return False
    if first & (first - 1) == 0:  # a power of two: the old root starts the path
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root


class MerkleRange:
    """The RFC 9162 root of a growing tree in O(log n) memory: the roots of
    the perfect subtrees the leaves so far decompose into (a compact range),
    largest first. Streaming a log through it gives the root at every size;
    ``append`` returns the perfect subtrees each leaf completes, to store."""

    def __init__(self, size: int = 0, peak_hashes: Sequence[bytes] = ()) -> None:
        if len(peak_hashes) != size.bit_count():
            raise ValueError("one peak hash per 1 bit of the size")
        self.size = size
        self._peaks = list(peak_hashes)

    def append(self, leaf_hash_: bytes) -> list[tuple[int, int, bytes]]:
        """(level, position, hash) of the leaf and of each subtree it completes."""
        completed = [(0, self.size, leaf_hash_)]
        self._peaks.append(leaf_hash_)
        # Merge equal-sized subtrees: one merge per trailing 1 bit of the old size.
        size, level = self.size, 0
        while size & 1:
            right = self._peaks.pop()
            self._peaks.append(node_hash(self._peaks.pop(), right))
            size >>= 1
            level += 1
            completed.append((level, ((self.size + 1) >> level) - 1, self._peaks[-1]))
        self.size += 1
        return completed

    def root(self) -> bytes:
        if not self._peaks:
            return hashlib.sha256(b"").digest()
        # The smaller subtrees on the right are hashed first (RFC 9162's split).
        result = self._peaks[-1]
        for peak in reversed(self._peaks[:-1]):
            result = node_hash(peak, result)
        return result


def tree_head_document(
    size: int,
    root_hash: bytes,
    at: dt.datetime,
    issuer: str,
    number: int,
    previous: tuple[int, bytes] | None,
) -> bytes:
    """What the signer seals for a tree head (canonical JSON). Heads are
    numbered from 1 and each names the size and root of the one before, so a
    deleted head leaves a gap its successor points into."""
    document: dict[str, object] = {
        "format": "lre-tree-head/2",
        "issuer": issuer,
        "number": number,
        "treeSize": size,
        "rootHash": root_hash.hex(),
        "hashAlgorithm": "SHA-256 (RFC 9162)",
        "time": _utc(at),
    }
    if previous is not None:
        document["previousTreeSize"], document["previousRootHash"] = previous[0], previous[1].hex()
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class PublishedHead:
    """A sealed tree head as written outside the database (one JSON line of
    the `tree_head_export` file): what a rolled-back database must still match."""

    number: int
    tree_size: int
    root_hash: bytes
    document: bytes
    seal: bytes

    def line(self) -> bytes:
        return (
            json.dumps(
                {
                    "number": self.number,
                    "treeSize": self.tree_size,
                    "rootHash": self.root_hash.hex(),
                    "document": base64.b64encode(self.document).decode(),
                    "seal": base64.b64encode(self.seal).decode(),
                },
                sort_keys=True,
                separators=(",", ":"),
            ).encode()
            + b"\n"
        )

    @classmethod
    def parse(cls, line: bytes) -> PublishedHead:
        """Raises ValueError (or one of its subclasses) on anything malformed."""
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        number, size = record["number"], record["treeSize"]
        if not (isinstance(number, int) and isinstance(size, int)):
            raise ValueError("number and treeSize must be integers")
        head = cls(
            number,
            size,
            bytes.fromhex(record["rootHash"]),
            base64.b64decode(record["document"], validate=True),
            base64.b64decode(record["seal"], validate=True),
        )
        # What counts is the sealed document: the line's own fields must say the same.
        document = json.loads(head.document)
        if not isinstance(document, dict) or (
            document.get("number"),
            document.get("treeSize"),
            document.get("rootHash"),
        ) != (number, size, record["rootHash"]):
            raise ValueError("the line does not say what its sealed document says")
        return head
