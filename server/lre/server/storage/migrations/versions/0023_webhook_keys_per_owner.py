"""A webhook's idempotency key is its owner's: unique per owner, not across
every party (another party's reuse of a key told it the key was taken).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhooks") as batch_op:
        batch_op.drop_constraint("uq_webhooks_request_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_webhooks_owner_id_request_id", ["owner_id", "request_id"]
        )


def downgrade() -> None:
    # Keys two owners share cannot be made unique again: the later ones get
    # their webhook's id appended.
    op.execute(
        "UPDATE webhooks"
        " SET request_id = substr(request_id, 1, 90) || '-' || CAST(id AS VARCHAR(36))"
        " WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.request_id = webhooks.request_id"
        " AND w.owner_id <> webhooks.owner_id AND w.create_time < webhooks.create_time)"
    )
    with op.batch_alter_table("webhooks") as batch_op:
        batch_op.drop_constraint("uq_webhooks_owner_id_request_id", type_="unique")
        batch_op.create_unique_constraint("uq_webhooks_request_id", ["request_id"])
