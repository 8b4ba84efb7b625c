"""A session is bound to the caller certificate that opened it: its token
authenticates through that caller only.

Sessions opened before this revision have no known caller. They get a hash no
caller has (SHA-256 never gives 32 zero bytes), so they authenticate nobody
from now on and their parties sign in again; their rows stay until erasure's
usual clean-up of old sessions.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.add_column(sa.Column("caller_hash", sa.LargeBinary(32), nullable=True))
    op.get_bind().execute(sa.text("UPDATE sessions SET caller_hash = :none"), {"none": bytes(32)})
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.alter_column("caller_hash", existing_type=sa.LargeBinary(32), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_column("caller_hash")
