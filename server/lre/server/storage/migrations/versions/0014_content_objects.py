"""Letter content in an object store: the object a letter's or a mailing's
content is in, its SHA-256 and the retain-until date set on it (for the
audit of the store), and the objects no row
refers to, waiting to be deleted.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for name in ("letters", "mailings"):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column("content_object", sa.String(length=64), nullable=True))
            batch_op.add_column(
                sa.Column("content_retain_until", sa.DateTime(timezone=True), nullable=True)
            )
            batch_op.add_column(sa.Column("content_digest", sa.LargeBinary(32), nullable=True))
    op.create_table(
        "loose_objects",
        sa.Column("object_key", sa.String(length=64), nullable=False),
        sa.Column("due_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("object_key", name=op.f("pk_loose_objects")),
    )
    with op.batch_alter_table("loose_objects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loose_objects_due_time"), ["due_time"], unique=False)


def downgrade() -> None:
    # Refused while content is in the object store: the rows are the only
    # record of where it is (move it back first: `lre-server content-store move`).
    bind = op.get_bind()
    for name in ("letters", "mailings"):
        count = bind.execute(
            sa.text(f"SELECT count(*) FROM {name} WHERE content_object IS NOT NULL")  # noqa: S608
        ).scalar()
        if count:
            raise RuntimeError(f"{count} {name} have their content in the object store")
    with op.batch_alter_table("loose_objects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loose_objects_due_time"))
    op.drop_table("loose_objects")
    for name in ("mailings", "letters"):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column("content_digest")
            batch_op.drop_column("content_retain_until")
            batch_op.drop_column("content_object")
