"""The position owner of each liquidation opportunity, matched against the liquidations others landed.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.execute("ALTER TABLE opportunities ADD COLUMN liquidated_user text NOT NULL DEFAULT ''")
    op.execute("CREATE INDEX mev_liquidations_user ON mev_liquidations (chain, liquidated_user, block)")


def downgrade() -> None:
    op.execute("DROP INDEX mev_liquidations_user")
    op.execute("ALTER TABLE opportunities DROP COLUMN liquidated_user")
