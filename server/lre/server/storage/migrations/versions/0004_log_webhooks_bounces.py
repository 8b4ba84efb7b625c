"""The append-only log of state changes and evidence; webhooks; bounced
outbox messages.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LETTER_STATES = (
    "rejected",
    "deposited",
    "notified",
    "notification_failed",
    "accepted",
    "refused",
    "expired",
)
EVIDENCE_EVENTS = (
    "SubmissionAcceptance",
    "SubmissionRejection",
    "NotificationForAcceptance",
    "NotificationForAcceptanceFailure",
    "ConsignmentAcceptance",
    "ContentHandover",
    "ConsignmentRejection",
    "AcceptanceRejectionExpiry",
)
OUTBOX_BEFORE = ("pending", "sent", "failed")
OUTBOX_AFTER = (*OUTBOX_BEFORE, "bounced")


def _existing_enum(values: Sequence[str], name: str) -> sa.types.TypeEngine[str]:
    """An enum type that exists already on PostgreSQL; a CHECK constraint elsewhere."""
    return sa.Enum(*values, name=name, create_constraint=True).with_variant(
        postgresql.ENUM(*values, name=name, create_type=False), "postgresql"
    )


def _outbox_states(values: Sequence[str]) -> None:
    if op.get_context().dialect.name == "postgresql":
        if "bounced" in values:
            op.execute("ALTER TYPE outbox_state ADD VALUE IF NOT EXISTS 'bounced'")
        else:
            op.execute("UPDATE outbox_messages SET state = 'failed' WHERE state = 'bounced'")
            op.execute("ALTER TYPE outbox_state RENAME TO outbox_state_old")
            postgresql.ENUM(*values, name="outbox_state").create(op.get_bind())
            op.execute(
                "ALTER TABLE outbox_messages ALTER COLUMN state TYPE outbox_state"
                " USING state::text::outbox_state"
            )
            op.execute("DROP TYPE outbox_state_old")
        return
    old = OUTBOX_BEFORE if "bounced" in values else OUTBOX_AFTER
    if "bounced" not in values:
        op.execute("UPDATE outbox_messages SET state = 'failed' WHERE state = 'bounced'")
    with op.batch_alter_table("outbox_messages", recreate="always") as batch_op:
        batch_op.alter_column(
            "state",
            existing_type=sa.Enum(*old, name="outbox_state", create_constraint=True),
            type_=sa.Enum(*values, name="outbox_state", create_constraint=True),
            existing_nullable=False,
        )


def upgrade() -> None:
    _outbox_states(OUTBOX_AFTER)
    op.create_table(
        "log_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("letter_id", sa.Uuid(), nullable=False),
        sa.Column("evidence_id", sa.Uuid(), nullable=True),
        sa.Column("state", _existing_enum(LETTER_STATES, "letter_state"), nullable=False),
        sa.Column("event", _existing_enum(EVIDENCE_EVENTS, "evidence_event"), nullable=True),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["evidence_id"], ["evidence.id"], name=op.f("fk_log_entries_evidence_id_evidence")
        ),
        sa.ForeignKeyConstraint(
            ["letter_id"], ["letters.id"], name=op.f("fk_log_entries_letter_id_letters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_entries")),
        sa.UniqueConstraint("evidence_id", name=op.f("uq_log_entries_evidence_id")),
        sa.UniqueConstraint("seq", name=op.f("uq_log_entries_seq")),
    )
    with op.batch_alter_table("log_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_log_entries_letter_id"), ["letter_id"], unique=False)
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delete_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["parties.id"], name=op.f("fk_webhooks_owner_id_parties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
        sa.UniqueConstraint("request_id", name=op.f("uq_webhooks_request_id")),
    )
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhooks_owner_id"), ["owner_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhooks_owner_id"))
    op.drop_table("webhooks")
    with op.batch_alter_table("log_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_log_entries_letter_id"))
    op.drop_table("log_entries")
    _outbox_states(OUTBOX_BEFORE)
