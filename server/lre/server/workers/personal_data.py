"""The personal data eraser: parties past their retention schedule lose their
names, e-mail, address, identity records' details, credentials and sessions
(domain.retention), a bounded batch per step, each erasure journaled; ended
sessions are deleted once the schedule stops keeping them. The letters'
sealed evidence and the log stay: verify-log reports such parties as erased."""

from __future__ import annotations

from prometheus_client import Counter

from lre.server.domain.retention import PersonalDataKind
from lre.server.services.identity.erasure import ErasureService

ERASED = Counter(
    "lre_personal_data_erased",
    "Rows of personal data erased or deleted at the end of their retention, by kind.",
    ["kind"],
)
for _kind in PersonalDataKind:
    ERASED.labels(_kind.value)


class PersonalDataEraser:
    name = "personal_data"

    def __init__(self, erasure: ErasureService, batch: int = 100) -> None:
        self._erasure = erasure
        self._batch = batch

    def step(self) -> bool:
        erased = self._erasure.erase_due(self._batch)
        for kind, count in erased.items():
            ERASED.labels(kind.value).inc(count)
        sessions = self._erasure.delete_old_sessions(self._batch)
        ERASED.labels(PersonalDataKind.SESSION.value).inc(sessions)
        return bool(erased.get(PersonalDataKind.PARTY)) or sessions > 0
