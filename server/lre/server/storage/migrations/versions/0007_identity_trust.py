"""Identity trust boundaries: enrolment codes (e-mailed to a party after
proofing, they let it set its first means of authentication, or replace them),
and idempotency keys scoped to the caller with a fingerprint of the request.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPED = ("parties", "consents")


def upgrade() -> None:
    with op.batch_alter_table("credentials") as batch_op:
        batch_op.add_column(
            sa.Column("enrolment_code_hmac", sa.LargeBinary(length=32), nullable=True)
        )
        batch_op.add_column(
            sa.Column("enrolment_code_expire_time", sa.DateTime(timezone=True), nullable=True)
        )
    for table in SCOPED:
        with op.batch_alter_table(table) as batch_op:
            # Keys used before were global: they keep the empty scope.
            batch_op.add_column(
                sa.Column("request_scope", sa.String(length=300), nullable=False, server_default="")
            )
            batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
            batch_op.drop_constraint(f"uq_{table}_request_id", type_="unique")
            batch_op.create_unique_constraint(
                f"uq_{table}_request_scope_request_id", ["request_scope", "request_id"]
            )


def downgrade() -> None:
    for table in SCOPED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(f"uq_{table}_request_scope_request_id", type_="unique")
            batch_op.create_unique_constraint(f"uq_{table}_request_id", ["request_id"])
            batch_op.drop_column("request_hash")
            batch_op.drop_column("request_scope")
    with op.batch_alter_table("credentials") as batch_op:
        batch_op.drop_column("enrolment_code_expire_time")
        batch_op.drop_column("enrolment_code_hmac")
