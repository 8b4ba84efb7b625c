"""Corrections of a party's names (domain.corrections): decided by an
operator on what the person presented, sealed by the signer, logged, and the
party's row changed with it, in one transaction."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

from lre.server.clock import utcnow
from lre.server.domain import corrections
from lre.server.domain.corrections import NameCorrection, Names
from lre.server.domain.errors import FailedPrecondition, NotFound
from lre.server.domain.letters import PartyKind
from lre.server.domain.log import LogKind, sha256_hex
from lre.server.services.identity.parties import journaled
from lre.server.services.identity.settings import Clock
from lre.server.storage.store import Stores

# Seals a document (the signer's CAdES seal, as for evidence).
Sealer = Callable[[bytes], bytes]


class CorrectionService:
    def __init__(
        self, stores: Stores, seal: Sealer, provider_name: str, clock: Clock = utcnow
    ) -> None:
        self._stores = stores
        self._seal = seal
        self._provider_name = provider_name
        self._clock = clock

    def correct(
        self,
        party_id: uuid.UUID,
        wanted: Names,
        basis: str,
        operator_id: str,
        operator_certificate: str,
        sender: uuid.UUID | None = None,
    ) -> NameCorrection:
        """The party's names corrected to ``wanted``, on ``basis`` (what the
        operator decided on), sealed and journaled; proofs made after it name
        the new spelling and this correction. ``sender``: a sender correcting
        its own addressee (``operator_id`` is then its party name), which it
        may only while nobody else wrote to the party, nothing was notified
        to it and it was never proofed (domain.corrections.check_senders)."""
        corrections.check_basis(basis, operator_id)
        with self._stores.begin() as store:
            party = store.parties.lock(party_id)
            if party is None:
                raise NotFound("no such party")
            if party.erase_time is not None:
                # Erased is erased (GDPR art. 17): a correction would write names back.
                raise FailedPrecondition("the party's personal data is erased")
            if sender is not None:
                senders, notified = store.letters.addressed_to(party_id)
                corrections.check_sender_correction(
                    sender, senders, notified, store.proofing.highest_ever(party_id) is not None
                )
            current = Names(party.given_name, party.family_name, party.company_name)
            names = corrections.corrected(party.kind is PartyKind.NATURAL_PERSON, current, wanted)
            correction = NameCorrection(
                id=uuid.uuid4(),
                party_id=party_id,
                correct_time=self._clock(),
                before=current.to_dict(),
                after=names.to_dict(),
                basis=basis.strip(),
                operator_id=operator_id.strip(),
                operator_certificate=operator_certificate,
            )
            document = corrections.document(correction, self._provider_name)
            correction = dataclasses.replace(
                correction, document=document, seal=self._seal(document)
            )
            store.parties.correct(correction, names)
            # The names stay in their row and the sealed document (personal
            # data, erasable); the journal binds them by digest.
            journaled(
                store,
                LogKind.PARTY_CORRECTED,
                party_id,
                correction.correct_time,
                correction=correction.name,
                documentSha256=sha256_hex(correction.document),
                sealSha256=sha256_hex(correction.seal),
                operatorId=correction.operator_id,
                operatorCertificate=correction.operator_certificate or None,
            )
            return correction

    def list(self, party_id: uuid.UUID) -> list[NameCorrection]:
        with self._stores.read() as store:
            if not store.parties.exists(party_id):
                raise NotFound("no such party")
            return store.parties.corrections(party_id)
