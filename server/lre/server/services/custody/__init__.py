"""Custody use cases, by concern: ``intake`` (what every deposit checks and
every accepted letter writes), ``deposit`` (a single letter: one
transaction, replays), ``mailing`` (one document to many recipients, the
content stored once), ``content`` (AES-GCM chunks in and out), ``evidence``
(documents, seals, and the log and outbox rows written with them),
``decisions`` (what changes a letter after its deposit) and ``queries``
(what callers may read). The workers that sweep letters live in
lre.server.workers."""

from lre.server.services.custody.decisions import DecisionService
from lre.server.services.custody.deposit import DepositService
from lre.server.services.custody.evidence import EvidenceRecorder
from lre.server.services.custody.intake import DeclaredPart
from lre.server.services.custody.mailing import MailingService, MailingView
from lre.server.services.custody.policy import CustodyPolicy
from lre.server.services.custody.queries import CustodyQueries, StaffReader

__all__ = [
    "CustodyPolicy",
    "CustodyQueries",
    "DecisionService",
    "DeclaredPart",
    "DepositService",
    "EvidenceRecorder",
    "MailingService",
    "MailingView",
    "StaffReader",
]
