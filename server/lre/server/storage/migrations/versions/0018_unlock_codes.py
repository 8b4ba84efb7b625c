"""Unlock codes: a party locked out lifts one source's lockout with a code
e-mailed to it at that source's request, kept on that source's row so that
no other source's request replaces it.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("unlock_code_hmac", "unlock_code_sent_time", "unlock_code_expire_time")


def upgrade() -> None:
    with op.batch_alter_table("auth_throttles") as batch_op:
        batch_op.add_column(sa.Column("unlock_code_hmac", sa.LargeBinary(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("unlock_code_sent_time", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("unlock_code_expire_time", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    # Outstanding unlock codes are forgotten: the lockouts they would lift stay.
    with op.batch_alter_table("auth_throttles") as batch_op:
        for column in COLUMNS:
            batch_op.drop_column(column)
