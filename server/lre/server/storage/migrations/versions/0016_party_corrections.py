"""Corrections of a party's names, each sealed and logged (the row changes
with it; the history is here).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "party_corrections",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("party_id", sa.Uuid(), nullable=False),
        sa.Column("correct_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("basis", sa.String(length=500), nullable=False),
        sa.Column("operator_id", sa.String(length=100), nullable=False),
        sa.Column("operator_certificate", sa.String(length=300), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("seal", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name=op.f("fk_party_corrections_party_id_parties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_party_corrections")),
    )
    op.create_index(
        op.f("ix_party_corrections_party_id"), "party_corrections", ["party_id"], unique=False
    )


def downgrade() -> None:
    # The sealed corrections go; their journal entries stay in the log, and
    # verify-log of this schema no longer reads the earlier names.
    op.drop_index(op.f("ix_party_corrections_party_id"), table_name="party_corrections")
    op.drop_table("party_corrections")
