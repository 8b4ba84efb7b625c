"""An outbox message with nothing more due has no ``next_attempt_time``: a
recipient's notice once its evidence is sealed. The notice sealer then finds
the notices left unsealed (the signer was down) through an index on kind,
state and that time, instead of reading every notice ever sent; and the
backlog gauge counts the messages due through an index on state and
creation, instead of reading every reminder waiting for its day.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Notices sent or given up whose letter no longer waits for their evidence.
SEALED = (
    "UPDATE outbox_messages SET next_attempt_time = NULL"
    " WHERE kind = 'letter_waiting' AND state IN ('sent', 'failed')"
    " AND NOT EXISTS (SELECT 1 FROM letters"
    " WHERE letters.id = outbox_messages.letter_id AND letters.state = 'deposited')"
)


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch_op:
        batch_op.alter_column(
            "next_attempt_time", existing_type=sa.DateTime(timezone=True), nullable=True
        )
    op.execute(SEALED)
    op.create_index(
        "ix_outbox_messages_kind_state_next_attempt",
        "outbox_messages",
        ["kind", "state", "next_attempt_time"],
    )
    op.create_index("ix_outbox_messages_state_create", "outbox_messages", ["state", "create_time"])


def downgrade() -> None:
    op.drop_index("ix_outbox_messages_state_create", table_name="outbox_messages")
    op.drop_index("ix_outbox_messages_kind_state_next_attempt", table_name="outbox_messages")
    # Nothing due: as the sealer's query would have found it before.
    op.execute(
        "UPDATE outbox_messages SET next_attempt_time = coalesce(sent_time, create_time)"
        " WHERE next_attempt_time IS NULL"
    )
    with op.batch_alter_table("outbox_messages") as batch_op:
        batch_op.alter_column(
            "next_attempt_time", existing_type=sa.DateTime(timezone=True), nullable=False
        )
