"""What became of a replace/cancel on chain: the agent follows its replacement to the receipt and reports
it again (`transaction_replaced` with `receipt`: landed, reverted, superseded) with the block.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.execute(
        """ALTER TABLE transaction_actions ADD COLUMN receipt text
               CHECK (receipt IN ('landed', 'reverted', 'superseded')),
           ADD COLUMN included_block bigint"""
    )


def downgrade() -> None:
    op.execute("ALTER TABLE transaction_actions DROP COLUMN included_block, DROP COLUMN receipt")
