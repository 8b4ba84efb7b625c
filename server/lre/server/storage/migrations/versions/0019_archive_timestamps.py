"""Archive timestamps: each renewal of an evidence's seal and PDF proof as a
new version, and until when each evidence's timestamps prove it.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evidence_archive_versions",
        sa.Column("evidence_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("seal", sa.LargeBinary(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["evidence_id"],
            ["evidence.id"],
            name=op.f("fk_evidence_archive_versions_evidence_id_evidence"),
        ),
        sa.PrimaryKeyConstraint(
            "evidence_id", "version", name=op.f("pk_evidence_archive_versions")
        ),
    )
    op.create_table(
        "evidence_archive_coverage",
        sa.Column("evidence_id", sa.Uuid(), nullable=False),
        sa.Column("covered_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archive_timestamps", sa.Integer(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["evidence_id"],
            ["evidence.id"],
            name=op.f("fk_evidence_archive_coverage_evidence_id_evidence"),
        ),
        sa.PrimaryKeyConstraint("evidence_id", name=op.f("pk_evidence_archive_coverage")),
    )
    with op.batch_alter_table("evidence_archive_coverage", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evidence_archive_coverage_covered_until"),
            ["covered_until"],
            unique=False,
        )


def downgrade() -> None:
    # The renewed seals and PDFs go: the evidence falls back to B-LT, and the
    # worker renews it again (from the backfill) once upgraded.
    with op.batch_alter_table("evidence_archive_coverage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evidence_archive_coverage_covered_until"))
    op.drop_table("evidence_archive_coverage")
    op.drop_table("evidence_archive_versions")
