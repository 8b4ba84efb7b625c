"""A legal person's registration identifier, and who put a party's
professional status in force: the creating gateway's word becomes a claim.
Sessions say whether the party's proofing was current when they opened (one
that expired still reads its own proofs, R53-2 and R53-3).

Parties a gateway declared professional before keep that word as their
claim and lose the status until an operator (or the party itself) confirms
it: a false exemption from consent makes a letter void, a refused deposit
only delays it (docs/api.md, "Professional recipients").

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BASES = ("operator", "party")


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        postgresql.ENUM(*BASES, name="professional_basis").create(op.get_bind())
        basis: sa.types.TypeEngine[str] = postgresql.ENUM(
            *BASES, name="professional_basis", create_type=False
        )
    else:
        basis = sa.Enum(*BASES, name="professional_basis", create_constraint=True)
    with op.batch_alter_table("parties") as batch_op:
        batch_op.add_column(sa.Column("registration_id", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column(
                "professional_claimed", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
        batch_op.add_column(sa.Column("professional_basis", basis, nullable=True))
        batch_op.create_index(
            batch_op.f("ix_parties_registration_id"), ["registration_id"], unique=False
        )
    parties = sa.table(
        "parties",
        sa.column("professional", sa.Boolean()),
        sa.column("professional_claimed", sa.Boolean()),
    )
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.add_column(
            sa.Column("proofing_current", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    op.execute(
        parties.update().values(
            professional_claimed=parties.c.professional, professional=sa.false()
        )
    )


def downgrade() -> None:
    # Sessions opened on an expired proofing would send and decide under the
    # schema before: they end here.
    op.execute("UPDATE sessions SET revoke_time = expire_time WHERE NOT proofing_current")
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_column("proofing_current")
    # The claims become declarations again, as the schema before had them.
    op.execute("UPDATE parties SET professional = (professional OR professional_claimed)")
    with op.batch_alter_table("parties") as batch_op:
        batch_op.drop_index(batch_op.f("ix_parties_registration_id"))
        batch_op.drop_column("professional_basis")
        batch_op.drop_column("professional_claimed")
        batch_op.drop_column("registration_id")
    if op.get_context().dialect.name == "postgresql":
        sa.Enum(name="professional_basis").drop(op.get_bind(), checkfirst=True)
