"""Authentication failures counted per source (the caller certificate and
the end user's address a portal forwards), not per party: a lockout stops
the source that earned it, never the party's own portal.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_throttles",
        sa.Column("party_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name=op.f("fk_auth_throttles_party_id_parties")
        ),
        sa.PrimaryKeyConstraint("party_id", "source", name=op.f("pk_auth_throttles")),
    )


def downgrade() -> None:
    # Counters only: dropping them forgets who failed lately, nothing else.
    op.drop_table("auth_throttles")
