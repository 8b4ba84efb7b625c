"""verify-log over a large log: time and peak memory.

Builds a PostgreSQL database of ``--entries`` log entries (default 1,000,000)
by bulk inserts: letters of four entries each (deposit, notification,
acceptance, content handover), every entry with its evidence, every evidence
with a real CAdES B-T seal (CMS SignedData, signing-certificate-v2 and an
RFC 3161 signature timestamp) made in this process by the signer's own code
(``lre.signer.seal``) over file keys under a throw-away CA instead of the
HSM, and a sealed tree head every ``--head-every`` entries. Then runs
``lre-server verify-log`` as a subprocess, as an auditor would, and reports
its wall time and peak resident memory (``/usr/bin/time``-style, from
``resource.getrusage`` of the child). Usage:
  python bench/verify_log.py [--entries 1000000] [--keep DIR]
  python bench/verify_log.py --reuse DIR     # verify-log again over a kept database
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import POSTGRES
from lre.server.domain import log
from lre.server.domain.evidence import EvidenceDocument, IssuerDetails, PartDigest, PartyDetails
from lre.server.domain.letters import EvidenceEvent, LetterState, PartyKind
from lre.server.domain.window import AcceptanceWindow
from lre.server.storage import db, models
from lre.signer.clock import ClockStatus
from lre.signer.pki import SEAL, TIMESTAMPING, LocalCA
from lre.signer.revocation import CrlFile
from lre.signer.seal import EvidenceSealer
from lre.signer.timesources import BuiltinSource, TimestampSources
from lre.signer.tsa import CmsSigner, TimestampAuthority

LIFE = (
    (EvidenceEvent.SUBMISSION_ACCEPTANCE, LetterState.DEPOSITED),
    (EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE, LetterState.NOTIFIED),
    (EvidenceEvent.CONSIGNMENT_ACCEPTANCE, LetterState.ACCEPTED),
    (EvidenceEvent.CONTENT_HANDOVER, LetterState.ACCEPTED),
)
SENDER = PartyDetails("Bailleur Zephyrin SARL", "gestion@zephyrin.example", str(uuid.uuid4()))
RECIPIENT = PartyDetails("Dest SA", "courrier@dest.example", str(uuid.uuid4()))


class FileKeys:
    """The token's sign_digest over file keys: the bench's stand-in for SoftHSM."""

    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}

    def sign_digest(self, key_label: str, digest: bytes) -> bytes:
        return self.keys[key_label].sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))


class TrustedClock:
    def status(self) -> ClockStatus:
        return ClockStatus(True, None, "bench")

    def close(self) -> None:
        pass


def _sealer(anchors: Path) -> tuple[EvidenceSealer, bytes]:
    ca = LocalCA.create("LRE bench root CA")
    anchors.write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    keys = FileKeys()
    signers = {}
    for label, purpose in (("seal", SEAL), ("tsa", TIMESTAMPING)):
        keys.keys[label] = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bench {label}")]))
            .sign(keys.keys[label], hashes.SHA256())
        )
        der = ca.issue(csr.public_bytes(serialization.Encoding.DER), purpose)
        signers[label] = CmsSigner(keys, label, der)  # type: ignore[arg-type]
    tsa = TimestampAuthority(signers["tsa"], TrustedClock(), "0.4.0.2023.1.1", 1000, False)
    crls = anchors.with_name("bench-crls.pem")
    crls.write_bytes(ca.issue_crl().public_bytes(serialization.Encoding.PEM))
    sources = TimestampSources([BuiltinSource(tsa, [ca.certificate])])
    sealer = EvidenceSealer(signers["seal"], sources, [ca.certificate], CrlFile(crls))
    return sealer, signers["seal"].certificate.public_bytes(serialization.Encoding.DER)


def build(url: str, entries: int, head_every: int, anchors: Path) -> None:
    engine = db.make_engine(url)
    db.migrate(engine)
    sealer, seal_certificate = _sealer(anchors)
    issuer = IssuerDetails.of("Bench provider", seal_certificate)
    start = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
    sender, recipient = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as connection:
        for party, details in ((sender, SENDER), (recipient, RECIPIENT)):
            connection.execute(
                insert(models.Party),
                {
                    "id": party,
                    "kind": PartyKind.LEGAL_PERSON,
                    "professional": True,
                    "company_name": details.name,
                    "email": details.email,
                    "create_time": start,
                },
            )
    tree = log.MerkleRange()
    heads = 0
    previous: tuple[int, bytes] | None = None
    batch: dict[type[models.Base], list[dict[str, object]]] = {}
    began = time.perf_counter()
    for n in range(entries // len(LIFE)):
        letter_id = uuid.uuid4()
        deposit = start + dt.timedelta(seconds=n)
        notified = deposit + dt.timedelta(minutes=1)
        decided = notified + dt.timedelta(hours=1)
        digest = hashlib.sha256(letter_id.bytes).hexdigest()
        part = PartDigest("letter.pdf", "application/pdf", 10240, digest)
        window_closes = AcceptanceWindow(notified).closes_at
        batch.setdefault(models.Letter, []).append(
            {
                "id": letter_id,
                "reference": letter_id.hex[:12],
                "sender_id": sender,
                "recipient_id": recipient,
                "request_id": letter_id.hex,
                "state": LetterState.ACCEPTED,
                "deposit_time": deposit,
                "notification_time": notified,
                "acceptance_deadline": window_closes,
                "decision_time": decided,
                "legal_hold": False,
            }
        )
        batch.setdefault(models.LetterPart, []).append(
            {
                "letter_id": letter_id,
                "part_index": 0,
                "filename": part.filename,
                "media_type": part.media_type,
                "size_bytes": part.size_bytes,
                "sha256": bytes.fromhex(digest),
            }
        )
        for (event, state), at in zip(
            LIFE, (deposit, notified, decided, decided + dt.timedelta(minutes=5)), strict=True
        ):
            evidence_id = uuid.uuid4()
            document = EvidenceDocument(
                str(evidence_id), event, at, "2.999.319522.1", issuer, SENDER, RECIPIENT,
                f"letters/{letter_id}", deposit, (part,),
            ).to_json()  # fmt: skip
            seal, _ = sealer.seal(document)
            leaf = log.LogRecord(
                str(letter_id), state, at, event, f"letters/{letter_id}/evidence/{evidence_id}",
                log.sha256_hex(document), log.sha256_hex(seal),
            ).leaf()  # fmt: skip
            batch.setdefault(models.Evidence, []).append(
                {
                    "id": evidence_id,
                    "letter_id": letter_id,
                    "event": event,
                    "event_time": at,
                    "document": document,
                    "seal": seal,
                }
            )
            batch.setdefault(models.LogEntry, []).append(
                {
                    "id": uuid.uuid4(),
                    "seq": tree.size,
                    "letter_id": letter_id,
                    "evidence_id": evidence_id,
                    "state": state,
                    "event": event,
                    "event_time": at,
                    "leaf": leaf,
                    "create_time": at,
                }
            )
            tree.append(log.leaf_hash(leaf))
            if tree.size % head_every == 0:
                heads += 1
                root = tree.root()
                head_document = log.tree_head_document(
                    tree.size, root, at, "Bench provider", heads, previous
                )
                batch.setdefault(models.TreeHead, []).append(
                    {
                        "tree_size": tree.size,
                        "number": heads,
                        "root_hash": root,
                        "timestamp": at,
                        "document": head_document,
                        "seal": sealer.seal(head_document)[0],
                    }
                )
                previous = (tree.size, root)
        if len(batch[models.LogEntry]) >= 20_000:
            _flush(engine, batch)
            print(f"  {tree.size} entries written, {time.perf_counter() - began:.0f} s", flush=True)
    _flush(engine, batch)
    engine.dispose()


def _flush(engine: object, batch: dict[type[models.Base], list[dict[str, object]]]) -> None:
    with engine.begin() as connection:  # type: ignore[attr-defined]
        for table in (models.Letter, models.LetterPart, models.Evidence, models.LogEntry):
            if batch.get(table):
                connection.execute(insert(table), batch[table])
        if batch.get(models.TreeHead):
            connection.execute(insert(models.TreeHead), batch[models.TreeHead])
    batch.clear()


def verify(url: str, anchors: Path, entries: int) -> int:
    env = {
        **os.environ,
        "LRE_SERVER_DATABASE_URL": url,
        "LRE_SERVER_SEAL_TRUST_ANCHORS_FILE": str(anchors),
    }
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "lre.server", "verify-log"], env=env, check=False
    )
    elapsed = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"verify-log: exit {result.returncode}, {elapsed:.0f} s wall, "
        f"{usage.ru_utime + usage.ru_stime:.0f} s CPU ({entries / elapsed:,.0f} entries/s), "
        f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB"
    )
    return result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--head-every", type=int, default=10_000)
    parser.add_argument(
        "--keep", type=Path, help="keep the database; write its URL and CA here (a directory)"
    )
    parser.add_argument("--reuse", type=Path, help="verify a database kept with --keep DIR")
    args = parser.parse_args()
    if args.reuse:
        url = (args.reuse / "url").read_text()
        return verify(url, args.reuse / "root-ca.pem", int((args.reuse / "entries").read_text()))
    name = f"lre_bench_verify_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = args.keep or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            began = time.perf_counter()
            build(url, args.entries, args.head_every, workdir / "root-ca.pem")
            print(f"built {args.entries} entries in {time.perf_counter() - began:.0f} s")
            (workdir / "url").write_text(url)
            (workdir / "entries").write_text(str(args.entries))
            return verify(url, workdir / "root-ca.pem", args.entries)
    finally:
        if not args.keep:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
