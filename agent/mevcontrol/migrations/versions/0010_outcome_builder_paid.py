"""What each execution paid the builder (coinbase transfer, Jito tip), apart from gas: part of `gas_paid_wei`
and `gas_cost_usd` as before, so the net is unchanged; 0 for the outcomes stored before (a constant
default: no rewrite of the table).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.execute(
        """ALTER TABLE outcomes ADD COLUMN builder_paid_wei numeric(78,0) NOT NULL DEFAULT 0,
           ADD COLUMN builder_paid_usd numeric NOT NULL DEFAULT 0"""
    )


def downgrade() -> None:
    op.execute("ALTER TABLE outcomes DROP COLUMN builder_paid_usd, DROP COLUMN builder_paid_wei")
