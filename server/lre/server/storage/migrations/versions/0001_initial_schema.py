"""Initial schema: parties, letters and their content, evidence, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "parties",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("natural_person", "legal_person", name="party_kind", create_constraint=True),
            nullable=False,
        ),
        sa.Column("professional", sa.Boolean(), nullable=False),
        sa.Column("given_name", sa.String(length=200), nullable=True),
        sa.Column("family_name", sa.String(length=200), nullable=True),
        sa.Column("company_name", sa.String(length=300), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("postal_address", sa.JSON(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parties")),
    )
    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_parties_email"), ["email"], unique=False)

    op.create_table(
        "letters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("sender_id", sa.Uuid(), nullable=False),
        sa.Column("recipient_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "rejected",
                "deposited",
                "notified",
                "notification_failed",
                "accepted",
                "refused",
                "expired",
                name="letter_state",
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("deposit_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notification_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acceptance_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("content_purge_time", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["parties.id"], name=op.f("fk_letters_recipient_id_parties")
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["parties.id"], name=op.f("fk_letters_sender_id_parties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letters")),
        sa.UniqueConstraint("reference", name=op.f("uq_letters_reference")),
        sa.UniqueConstraint(
            "sender_id", "request_id", name=op.f("uq_letters_sender_id_request_id")
        ),
    )
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_letters_recipient_id"), ["recipient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_letters_sender_id"), ["sender_id"], unique=False)
        batch_op.create_index(
            "ix_letters_state_deadline", ["state", "acceptance_deadline"], unique=False
        )

    op.create_table(
        "content_chunks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("letter_id", sa.Uuid(), nullable=False),
        sa.Column("part_index", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["letter_id"],
            ["letters.id"],
            name=op.f("fk_content_chunks_letter_id_letters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_chunks")),
        sa.UniqueConstraint(
            "letter_id",
            "part_index",
            "sequence",
            name=op.f("uq_content_chunks_letter_id_part_index_sequence"),
        ),
    )
    op.create_table(
        "evidence",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("letter_id", sa.Uuid(), nullable=False),
        sa.Column(
            "event",
            sa.Enum(
                "SubmissionAcceptance",
                "SubmissionRejection",
                "NotificationForAcceptance",
                "NotificationForAcceptanceFailure",
                "ConsignmentAcceptance",
                "ContentHandover",
                "ConsignmentRejection",
                "AcceptanceRejectionExpiry",
                name="evidence_event",
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("seal", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["letter_id"], ["letters.id"], name=op.f("fk_evidence_letter_id_letters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence")),
        sa.UniqueConstraint("letter_id", "event", name=op.f("uq_evidence_letter_id_event")),
    )
    op.create_table(
        "letter_parts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("letter_id", sa.Uuid(), nullable=False),
        sa.Column("part_index", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("media_type", sa.String(length=127), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["letter_id"],
            ["letters.id"],
            name=op.f("fk_letter_parts_letter_id_letters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter_parts")),
        sa.UniqueConstraint(
            "letter_id", "part_index", name=op.f("uq_letter_parts_letter_id_part_index")
        ),
    )
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("letter_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column(
            "state",
            sa.Enum("pending", "sent", "failed", name="outbox_state", create_constraint=True),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["letter_id"], ["letters.id"], name=op.f("fk_outbox_messages_letter_id_letters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
    )
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_messages_letter_id"), ["letter_id"], unique=False
        )
        batch_op.create_index(
            "ix_outbox_messages_state_next_attempt", ["state", "next_attempt_time"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_messages_state_next_attempt")
        batch_op.drop_index(batch_op.f("ix_outbox_messages_letter_id"))

    op.drop_table("outbox_messages")
    op.drop_table("letter_parts")
    op.drop_table("evidence")
    op.drop_table("content_chunks")
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.drop_index("ix_letters_state_deadline")
        batch_op.drop_index(batch_op.f("ix_letters_sender_id"))
        batch_op.drop_index(batch_op.f("ix_letters_recipient_id"))

    op.drop_table("letters")
    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_parties_email"))

    op.drop_table("parties")
    for enum_name in ("outbox_state", "evidence_event", "letter_state", "party_kind"):
        sa.Enum(name=enum_name).drop(op.get_bind(), checkfirst=True)
