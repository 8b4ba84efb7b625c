"""One-time codes sent by e-mail, one outstanding per credential.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("email_code_id", "email_code_hmac", "email_code_sent_time", "email_code_expire_time")


def upgrade() -> None:
    with op.batch_alter_table("credentials") as batch_op:
        batch_op.add_column(sa.Column("email_code_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("email_code_hmac", sa.LargeBinary(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("email_code_sent_time", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("email_code_expire_time", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("credentials") as batch_op:
        for column in reversed(COLUMNS):
            batch_op.drop_column(column)
