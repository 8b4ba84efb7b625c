"""An index on the content objects whose retention is not set yet, so that
the content objects worker finds them without reading every letter kept.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNRETAINED = (
    "content_object IS NOT NULL AND content_retain_until IS NULL AND content_purge_time IS NULL"
)


def upgrade() -> None:
    for table in ("letters", "mailings"):
        where = sa.text(UNRETAINED)
        op.create_index(
            f"ix_{table}_unretained",
            table,
            ["deposit_time"],
            postgresql_where=where,
            sqlite_where=where,
        )


def downgrade() -> None:
    for table in ("letters", "mailings"):
        op.drop_index(f"ix_{table}_unretained", table_name=table)
