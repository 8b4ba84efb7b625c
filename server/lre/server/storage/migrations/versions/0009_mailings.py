"""Mailings: one document to many recipients, the content stored once.

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mailings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sender_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("deposit_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("parts", sa.JSON(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("content_purge_time", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["parties.id"], name=op.f("fk_mailings_sender_id_parties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailings")),
        sa.UniqueConstraint(
            "sender_id", "request_id", name=op.f("uq_mailings_sender_id_request_id")
        ),
    )
    with op.batch_alter_table("mailings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mailings_sender_id"), ["sender_id"], unique=False)
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mailing_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_letters_mailing_id_mailings"), "mailings", ["mailing_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_letters_mailing_id"), ["mailing_id"], unique=False)
    op.create_table(
        "mailing_recipients",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mailing_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=200), nullable=False),
        sa.Column("letter_reference", sa.String(length=200), nullable=False),
        sa.Column("letter_id", sa.Uuid(), nullable=True),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("evidence_id", sa.Uuid(), nullable=True),
        sa.Column("evidence_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("evidence_document", sa.LargeBinary(), nullable=True),
        sa.Column("evidence_seal", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["letter_id"], ["letters.id"], name=op.f("fk_mailing_recipients_letter_id_letters")
        ),
        sa.ForeignKeyConstraint(
            ["mailing_id"], ["mailings.id"], name=op.f("fk_mailing_recipients_mailing_id_mailings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailing_recipients")),
        sa.UniqueConstraint("letter_id", name=op.f("uq_mailing_recipients_letter_id")),
        sa.UniqueConstraint(
            "mailing_id", "position", name=op.f("uq_mailing_recipients_mailing_id_position")
        ),
    )
    op.create_table(
        "mailing_chunks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mailing_id", sa.Uuid(), nullable=False),
        sa.Column("part_index", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailing_id"],
            ["mailings.id"],
            name=op.f("fk_mailing_chunks_mailing_id_mailings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailing_chunks")),
        sa.UniqueConstraint(
            "mailing_id",
            "part_index",
            "sequence",
            name=op.f("uq_mailing_chunks_mailing_id_part_index_sequence"),
        ),
    )


def downgrade() -> None:
    op.drop_table("mailing_chunks")
    op.drop_table("mailing_recipients")
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_letters_mailing_id"))
        batch_op.drop_constraint(batch_op.f("fk_letters_mailing_id_mailings"), type_="foreignkey")
        batch_op.drop_column("mailing_id")
    with op.batch_alter_table("mailings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mailings_sender_id"))
    op.drop_table("mailings")
