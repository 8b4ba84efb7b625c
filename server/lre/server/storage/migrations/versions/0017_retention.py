"""Personal data's retention: when a party's and an identity record's data
was erased, the salt of a record's lre-log/2 digest, and who recorded a
consent on which form.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("parties") as batch_op:
        batch_op.add_column(sa.Column("erase_time", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("identity_records") as batch_op:
        batch_op.add_column(sa.Column("digest_salt", sa.LargeBinary(length=16), nullable=True))
        batch_op.add_column(sa.Column("erase_time", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("consents") as batch_op:
        batch_op.add_column(sa.Column("actor", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("form_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consents") as batch_op:
        batch_op.drop_column("form_sha256")
        batch_op.drop_column("actor")
    with op.batch_alter_table("identity_records") as batch_op:
        batch_op.drop_column("erase_time")
        batch_op.drop_column("digest_salt")
    with op.batch_alter_table("parties") as batch_op:
        batch_op.drop_column("erase_time")
