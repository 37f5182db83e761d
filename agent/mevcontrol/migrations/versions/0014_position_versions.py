"""Cross-chain position records numbered in step order (`crosschain_positions.version`): the position book
numbers each write of a position's record as it takes the snapshot, and a write is kept only when its number
is above the stored one, so two writes of one position that commit out of order (each on its own pool
connection) never put an earlier state back over a later one. Existing rows start at 0 (a constant default:
no table rewrite).

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    op.execute("ALTER TABLE crosschain_positions ADD COLUMN version bigint NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE crosschain_positions DROP COLUMN version")
