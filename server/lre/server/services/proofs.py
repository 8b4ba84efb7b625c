"""Each evidence's signed PDF proof, made once and stored.

Rendering and signing a proof takes milliseconds of CPU and a signer call, so
it is done the first time the proof is needed (in practice by the outbox,
composing the proof e-mail right after the event) and the stored bytes are
served ever after: an e-mail retried, GetEvidenceProof and the evidence
bundle give the very same PDF.

The caller brings the evidence read with its stored proof
(``EvidenceRepository.get``), and a new PDF is stored by a writer thread
rather than in the caller's: the caller (an e-mail being composed, a
GetEvidenceProof or bundle answer) has its PDF without waiting for the write
of some 60 KB and its commit, and a write that fails costs a new rendering on
the next use, never the caller's request. No caller holds a transaction while
it asks (the outbox composes its e-mails after its read has ended). Until it
is stored, this process serves it from memory, and for a little while after
(the last ``KEPT``): a caller that read the evidence just before the write
committed is served the stored bytes too, not a second rendering.
Two processes that need the same new proof at the same instant may each make
one (both valid); the first stored is the one served afterwards.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable

from prometheus_client import Counter

from lre.server.domain.errors import WriteConflict
from lre.server.domain.records import EvidenceWithProof
from lre.server.proofs import ProofRenderer
from lre.server.storage.store import Stores

logger = logging.getLogger(__name__)
MADE = Counter("lre_proof_pdfs_made", "PDF proofs rendered and signed (then stored).")
# Pending writes beyond this are dropped (the PDF is made again on its next use).
MAX_PENDING = 1000
# Proofs this process stored, kept in memory for callers whose read came
# just before the write (a few hundred KB).
KEPT = 8


class StoredProofs:
    def __init__(
        self, stores: Stores, render: ProofRenderer, clock: Callable[[], dt.datetime]
    ) -> None:
        self._stores = stores
        self._render = render
        self._clock = clock
        self._pending: dict[uuid.UUID, bytes] = {}
        self._stored: OrderedDict[uuid.UUID, bytes] = OrderedDict()
        self._queue: queue.Queue[uuid.UUID] = queue.Queue()
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None

    def pdf(self, evidence: EvidenceWithProof) -> bytes:
        """The evidence's signed PDF proof: as stored, or made now (and stored
        by the writer thread). Raises DependencyUnavailable while the signer
        cannot sign, ProofInputError if the seal is not over the evidence."""
        if evidence.proof_pdf is not None:
            return evidence.proof_pdf
        with self._lock:
            pending = self._pending.get(evidence.id) or self._stored.get(evidence.id)
        if pending is not None:
            return pending
        pdf = self._render(evidence.document, evidence.seal)
        MADE.inc()
        with self._lock:
            if len(self._pending) < MAX_PENDING:
                self._pending.setdefault(evidence.id, pdf)
                self._queue.put(evidence.id)
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write_forever, name="proof-writer", daemon=True
                    )
                    self._writer.start()
            return self._pending.get(evidence.id, pdf)

    def flush(self) -> None:
        """Until every PDF made so far is stored (tests, orderly shutdown)."""
        self._queue.join()

    def _write_forever(self) -> None:
        while True:
            evidence_id = self._queue.get()
            try:
                self._write(evidence_id)
            except Exception:
                # Not stored: it is made again on its next use.
                logger.exception("storing a proof PDF failed")
            finally:
                with self._lock:
                    self._pending.pop(evidence_id, None)
                self._queue.task_done()

    def _write(self, evidence_id: uuid.UUID) -> None:
        with self._lock:
            pdf = self._pending.get(evidence_id)
        if pdf is None:
            return
        try:
            with self._stores.begin() as store:
                # Made by another process meanwhile: that one is served from now on.
                if store.evidence.has_proof(evidence_id):
                    return
                store.evidence.add_proof(evidence_id, pdf, self._clock())
        except WriteConflict:
            return  # stored by another process between the check and the insert
        with self._lock:
            self._stored[evidence_id] = pdf
            while len(self._stored) > KEPT:
                self._stored.popitem(last=False)
