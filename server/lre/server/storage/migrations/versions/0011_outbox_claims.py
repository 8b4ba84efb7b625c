"""The outbox claims a message before sending it: a `sending` state, the
lease the claim holds (``claimed_until``) and how many times a message was
sent again after a dispatcher died holding it (``resends``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTBOX_BEFORE = ("pending", "sent", "failed", "bounced")
OUTBOX_AFTER = (*OUTBOX_BEFORE, "sending")


def _states(old: Sequence[str], new: Sequence[str]) -> None:
    if op.get_context().dialect.name == "postgresql":
        if "sending" in new:
            # Since PostgreSQL 12 this may run in the migration's transaction.
            op.execute("ALTER TYPE outbox_state ADD VALUE IF NOT EXISTS 'sending'")
        else:
            op.execute("ALTER TYPE outbox_state RENAME TO outbox_state_old")
            postgresql.ENUM(*new, name="outbox_state").create(op.get_bind())
            op.execute(
                "ALTER TABLE outbox_messages ALTER COLUMN state TYPE outbox_state"
                " USING state::text::outbox_state"
            )
            op.execute("DROP TYPE outbox_state_old")
        return
    with op.batch_alter_table("outbox_messages", recreate="always") as batch_op:
        batch_op.alter_column(
            "state",
            existing_type=sa.Enum(*old, name="outbox_state", create_constraint=True),
            type_=sa.Enum(*new, name="outbox_state", create_constraint=True),
            existing_nullable=False,
        )


def upgrade() -> None:
    _states(OUTBOX_BEFORE, OUTBOX_AFTER)
    with op.batch_alter_table("outbox_messages") as batch_op:
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resends", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    # A message being sent goes back to the queue: at worst sent once more.
    op.execute("UPDATE outbox_messages SET state = 'pending' WHERE state = 'sending'")
    with op.batch_alter_table("outbox_messages") as batch_op:
        batch_op.drop_column("resends")
        batch_op.drop_column("claimed_until")
    _states(OUTBOX_AFTER, OUTBOX_BEFORE)
