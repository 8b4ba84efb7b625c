"""The log records what a recipient said about receiving letters (a consent,
its withdrawal, a professional declaration): entries without a letter.

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LETTER_STATES = (
    "rejected",
    "deposited",
    "notified",
    "accepted",
    "refused",
    "expired",
    "notification_failed",
)


def _state() -> sa.types.TypeEngine[str]:
    return sa.Enum(*LETTER_STATES, name="letter_state", create_constraint=True).with_variant(
        postgresql.ENUM(*LETTER_STATES, name="letter_state", create_type=False), "postgresql"
    )


def upgrade() -> None:
    with op.batch_alter_table("log_entries") as batch_op:
        batch_op.alter_column("letter_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.alter_column("state", existing_type=_state(), nullable=True)


def downgrade() -> None:
    # Entries about parties have no letter to keep them under.
    op.execute("DELETE FROM log_entries WHERE letter_id IS NULL")
    with op.batch_alter_table("log_entries") as batch_op:
        batch_op.alter_column("state", existing_type=_state(), nullable=False)
        batch_op.alter_column("letter_id", existing_type=sa.Uuid(), nullable=False)
