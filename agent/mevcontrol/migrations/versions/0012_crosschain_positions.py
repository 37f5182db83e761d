"""Cross-chain positions (mevcontrol.positions): each position's record as it stands (its legs, the unwind
policy's steps, realized P&L), and every leg result the agents reported (`crosschain_leg` events).

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.execute(
        """CREATE TABLE crosschain_legs (
               event_id text PRIMARY KEY,
               at timestamptz NOT NULL,
               agent text NOT NULL,
               command_id text NOT NULL,
               position_id text NOT NULL,
               leg text NOT NULL CHECK (leg IN ('buy', 'sell', 'unwind')),
               chain text NOT NULL,
               status text NOT NULL CHECK (status IN ('dry_run', 'landed', 'reverted', 'failed', 'rejected')),
               token_in text NOT NULL,
               token_out text NOT NULL,
               amount_in numeric(78, 0) NOT NULL,
               amount_out numeric(78, 0) NOT NULL,
               gas_paid_wei numeric(78, 0) NOT NULL,
               tx_hash text,
               reason text NOT NULL
           )"""
    )
    op.execute("CREATE INDEX crosschain_legs_position ON crosschain_legs (position_id)")
    op.execute(
        """CREATE TABLE crosschain_positions (
               id text PRIMARY KEY,
               opened_at timestamptz NOT NULL,
               updated_at timestamptz NOT NULL,
               state text NOT NULL,
               record jsonb NOT NULL
           )"""
    )


def downgrade() -> None:
    op.execute("DROP TABLE crosschain_positions")
    op.execute("DROP TABLE crosschain_legs")
