"""Tables. Alembic migrations in ``migrations/`` must produce exactly this
schema on PostgreSQL and SQLite (tests/integration/storage checks it).
The tables by concern: ``custody`` and ``identity``, over ``base``."""

from lre.server.storage.models.base import Base, UtcDateTime, column_length, db_enum
from lre.server.storage.models.custody import (
    Charge,
    ContentChunk,
    Evidence,
    EvidenceProof,
    Letter,
    LetterPart,
    LogEntry,
    LooseObject,
    Mailing,
    MailingChunk,
    MailingRecipient,
    OutboxMessage,
    TreeHead,
    TreeNode,
    Webhook,
)
from lre.server.storage.models.identity import (
    AuthSession,
    AuthThrottle,
    Consent,
    Credential,
    IdentityRecord,
    Party,
    ProofingChallenge,
    UsedNonce,
)

__all__ = [
    "AuthSession",
    "AuthThrottle",
    "Base",
    "Charge",
    "Consent",
    "ContentChunk",
    "Credential",
    "Evidence",
    "EvidenceProof",
    "IdentityRecord",
    "Letter",
    "LetterPart",
    "LogEntry",
    "LooseObject",
    "Mailing",
    "MailingChunk",
    "MailingRecipient",
    "OutboxMessage",
    "Party",
    "ProofingChallenge",
    "TreeHead",
    "TreeNode",
    "UsedNonce",
    "UtcDateTime",
    "Webhook",
    "column_length",
    "db_enum",
]
