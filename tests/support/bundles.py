"""An evidence bundle as the server builds it, over real seals and a real PDF
proof from a signer process, without a database: the log part is a small
RFC 9162 tree built with the domain's own functions (the evidence's leaf
among others), its head sealed by the signer as ``EventLog.seal_head`` has
it sealed. The forgery tests build one with another signer (another
subscriber of the same CA) exactly so."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Callable

from lre.runtime import bundle_layout as layout
from lre.server.adapters.signer import SignerClient
from lre.server.domain import log
from lre.server.domain.evidence import EvidenceDocument, IssuerDetails, PartDigest, PartyDetails
from lre.server.domain.letters import EvidenceEvent, LetterState
from lre.server.proofs import proof_pdf
from lre.server.proofs.bundle import build_bundle, zip_members

LEAF_INDEX = 2
TREE_SIZE = 5


def record(letter: str, evidence: bytes, seal: bytes, evidence_id: str) -> log.LogRecord:
    return log.LogRecord(
        letter_id=letter,
        state=LetterState.DEPOSITED,
        event_time=dt.datetime.now(dt.UTC),
        event=EvidenceEvent.SUBMISSION_ACCEPTANCE,
        evidence_id=f"letters/{letter}/evidence/{evidence_id}",  # as the server's log names it
        document_sha256=log.sha256_hex(evidence),
        seal_sha256=log.sha256_hex(seal),
    )


def build_test_bundle(
    client: SignerClient,
    provider_name: str = "LRE Test Provider SAS",
    head_client: SignerClient | None = None,
    archive: Callable[[bytes, bytes], tuple[bytes, bytes]] | None = None,
) -> bytes:
    """A bundle of one evidence sealed, stamped and signed through ``client``,
    its tree head sealed through ``head_client`` (a signer whose keys were
    rotated since) or the same. ``archive`` takes the seal and the PDF proof
    and returns them with archive timestamps (the bundle then carries both seals)."""
    letter, evidence_id = str(uuid.uuid4()), str(uuid.uuid4())
    evidence = EvidenceDocument(
        evidence_id=evidence_id,
        event=EvidenceEvent.SUBMISSION_ACCEPTANCE,
        event_time=dt.datetime.now(dt.UTC),
        policy_oid="2.999.319522.1",
        issuer=IssuerDetails.of(provider_name, client.certificate_chain("seal")[0]),
        sender=PartyDetails("Société Dupont & Fils", "courrier@dupont.example", str(uuid.uuid4())),
        recipient=PartyDetails("Élodie Martin-Lefèvre", "elodie@example.org", str(uuid.uuid4())),
        letter_id=f"letters/{letter}",
        submission_time=dt.datetime.now(dt.UTC),
        parts=(PartDigest("mise-en-demeure.pdf", "application/pdf", 183422, "ab" * 32),),
    ).to_json()
    seal = client.seal(evidence)
    leaves = [
        record(str(uuid.uuid4()), b"other %d" % i, b"seal %d" % i, str(uuid.uuid4())).leaf()
        for i in range(TREE_SIZE)
    ]
    leaves[LEAF_INDEX] = record(letter, evidence, seal, evidence_id).leaf()
    hashes_ = [log.leaf_hash(leaf) for leaf in leaves]
    head = log.tree_head_document(
        TREE_SIZE, log.root(hashes_), dt.datetime.now(dt.UTC), provider_name, 1, None
    )
    pdf = proof_pdf(evidence, seal, client)
    archived, pdf = archive(seal, pdf) if archive else (None, pdf)
    bundle = build_bundle(
        evidence=evidence,
        seal=seal,
        archive_seal=archived,
        proof_pdf=pdf,
        leaf=leaves[LEAF_INDEX],
        leaf_index=LEAF_INDEX,
        audit_path=log.inclusion_proof(LEAF_INDEX, hashes_),
        tree_head=head,
        tree_head_seal=(head_client or client).seal(head),
    )
    return bundle


def members_of(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(members: dict[str, bytes], manifest: bool = True) -> bytes:
    """The members zipped again, with a manifest recomputed over them (as a
    forger would, so that the manifest does not give the change away)."""
    members = dict(members)
    if manifest:
        listed = json.loads(members[layout.MANIFEST])
        listed["members"] = {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in members.items()
            if name != layout.MANIFEST
        }
        members[layout.MANIFEST] = json.dumps(listed).encode()
    return zip_members(members)
