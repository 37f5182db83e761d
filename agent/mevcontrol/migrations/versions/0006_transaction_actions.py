"""Replace/cancel of stuck transactions (`transaction_replaced` events), and the indexes the stuck list
needs: outcomes by (agent, opportunity_id) for its anti-join, executions by transaction hash (GIN) to
find one stuck transaction.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.execute(
        """CREATE TABLE transaction_actions (
            event_id uuid PRIMARY KEY, at timestamptz NOT NULL, agent text NOT NULL, command_id uuid NOT NULL,
            chain text NOT NULL, tx_hash text NOT NULL, action text NOT NULL, ok boolean NOT NULL,
            nonce bigint, replacement_hash text, max_fee_per_gas_wei numeric(78,0),
            max_priority_fee_per_gas_wei numeric(78,0), detail text NOT NULL)"""
    )
    op.execute("CREATE INDEX transaction_actions_tx ON transaction_actions (tx_hash, at DESC)")
    op.execute("CREATE INDEX outcomes_agent_opportunity ON outcomes (agent, opportunity_id)")
    op.execute("CREATE INDEX executions_tx_hashes ON executions USING gin (tx_hashes)")


def downgrade() -> None:
    op.execute("DROP INDEX executions_tx_hashes")
    op.execute("DROP INDEX outcomes_agent_opportunity")
    op.execute("DROP TABLE transaction_actions")
