"""Identity: proofing records and challenges, credentials, sessions, consents,
eID nonces; idempotent parties.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "used_nonces",
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("nonce", sa.String(length=255), nullable=False),
        sa.Column("use_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "nonce", name=op.f("pk_used_nonces")),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recipient_id", sa.Uuid(), nullable=False),
        sa.Column("sender_id", sa.Uuid(), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("grant_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdraw_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["parties.id"], name=op.f("fk_consents_recipient_id_parties")
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["parties.id"], name=op.f("fk_consents_sender_id_parties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        sa.UniqueConstraint("request_id", name=op.f("uq_consents_request_id")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consents_recipient_sender", ["recipient_id", "sender_id"], unique=False
        )

    op.create_table(
        "credentials",
        sa.Column("party_id", sa.Uuid(), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("totp_secret", sa.LargeBinary(), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name=op.f("fk_credentials_party_id_parties")
        ),
        sa.PrimaryKeyConstraint("party_id", name=op.f("pk_credentials")),
    )
    op.create_table(
        "identity_records",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("party_id", sa.Uuid(), nullable=False),
        sa.Column(
            "method",
            sa.Enum(
                "certificate",
                "eid_assertion",
                "document_check",
                name="proofing_method",
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "level",
            sa.Enum("low", "substantial", "high", name="assurance_level", create_constraint=True),
            nullable=False,
        ),
        sa.Column("proof_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("evidence_summary", sa.String(length=500), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name=op.f("fk_identity_records_party_id_parties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_records")),
    )
    with op.batch_alter_table("identity_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_records_party_id"), ["party_id"], unique=False
        )

    op.create_table(
        "proofing_challenges",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("party_id", sa.Uuid(), nullable=False),
        sa.Column("challenge", sa.LargeBinary(length=32), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("use_time", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name=op.f("fk_proofing_challenges_party_id_parties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proofing_challenges")),
    )
    with op.batch_alter_table("proofing_challenges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_proofing_challenges_party_id"), ["party_id"], unique=False
        )

    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("party_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column(
            "level",
            sa.Enum("low", "substantial", "high", name="assurance_level", create_constraint=True),
            nullable=False,
        ),
        sa.Column("factors", sa.JSON(), nullable=False),
        sa.Column("one_time_element", sa.Boolean(), nullable=False),
        sa.Column("authenticated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoke_time", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name=op.f("fk_sessions_party_id_parties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sessions_token_hash")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_party_id"), ["party_id"], unique=False)

    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=128), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_parties_request_id"), ["request_id"])


def downgrade() -> None:
    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_parties_request_id"), type_="unique")
        batch_op.drop_column("request_id")

    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_party_id"))

    op.drop_table("sessions")
    with op.batch_alter_table("proofing_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proofing_challenges_party_id"))

    op.drop_table("proofing_challenges")
    with op.batch_alter_table("identity_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_records_party_id"))

    op.drop_table("identity_records")
    op.drop_table("credentials")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index("ix_consents_recipient_sender")

    op.drop_table("consents")
    op.drop_table("used_nonces")
    for enum_name in ("assurance_level", "proofing_method"):
        sa.Enum(name=enum_name).drop(op.get_bind(), checkfirst=True)
