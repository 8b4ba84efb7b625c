"""Tree heads numbered from 1, so that a deleted head leaves a gap; the
Merkle tree's perfect subtrees stored, so that heads and proofs read O(log n)
rows (filled from the leaves at the next sealed head).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tree_heads") as batch_op:
        batch_op.add_column(sa.Column("number", sa.BigInteger(), nullable=True))
    # Heads sealed before numbering get their rank by size; their documents
    # carry no number, which verify-log accepts for the lre-tree-head/1 format.
    op.execute(
        "UPDATE tree_heads SET number = ranked.n FROM "
        "(SELECT tree_size, ROW_NUMBER() OVER (ORDER BY tree_size) AS n FROM tree_heads) AS ranked "
        "WHERE ranked.tree_size = tree_heads.tree_size"
    )
    with op.batch_alter_table("tree_heads") as batch_op:
        batch_op.alter_column("number", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_unique_constraint(op.f("uq_tree_heads_number"), ["number"])
    op.create_table(
        "tree_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "position", name=op.f("pk_tree_nodes")),
    )


def downgrade() -> None:
    op.drop_table("tree_nodes")
    with op.batch_alter_table("tree_heads") as batch_op:
        batch_op.drop_constraint(op.f("uq_tree_heads_number"), type_="unique")
        batch_op.drop_column("number")
