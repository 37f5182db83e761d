"""Live classifications from the bus and the competition analytics.

The pools of each opportunity (what an arbitrage another searcher landed is matched on); per classified
block its coinbase, the agent that classified it and the USD prices it had; who sent each MEV
transaction and what it paid (`mev_searcher_txs`); the pools of each arbitrage; USD valuations beside
the exact amounts, each with the price (USD per base unit) it used, NULL where no price was known.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"

UNITS = "numeric(78,0)"

STATEMENTS = [
    "ALTER TABLE opportunities ADD COLUMN pools text[] NOT NULL DEFAULT '{}'",
    """ALTER TABLE block_classifications ADD COLUMN coinbase text NOT NULL DEFAULT '',
        ADD COLUMN agent text NOT NULL DEFAULT '', ADD COLUMN prices jsonb NOT NULL DEFAULT '{}'""",
    """ALTER TABLE mev_arbitrages ADD COLUMN pools text[] NOT NULL DEFAULT '{}',
        ADD COLUMN profit_usd numeric, ADD COLUMN profit_usd_per_unit numeric""",
    "CREATE INDEX mev_arbitrages_pools ON mev_arbitrages USING gin (pools)",
    "ALTER TABLE mev_sandwiches ADD COLUMN profit_usd numeric, ADD COLUMN profit_usd_per_unit numeric",
    """ALTER TABLE mev_liquidations ADD COLUMN debt_usd numeric, ADD COLUMN debt_usd_per_unit numeric,
        ADD COLUMN collateral_usd numeric, ADD COLUMN collateral_usd_per_unit numeric""",
    f"""CREATE TABLE mev_searcher_txs (
        chain text NOT NULL, block bigint NOT NULL, tx text NOT NULL, tx_index integer NOT NULL,
        eoa text NOT NULL, to_address text NOT NULL, gas_used {UNITS}, effective_gas_price {UNITS},
        priority_fee {UNITS} NOT NULL, coinbase_transfer {UNITS} NOT NULL,
        PRIMARY KEY (chain, block, tx)
    )""",
    "CREATE INDEX mev_searcher_txs_eoa ON mev_searcher_txs (eoa)",
]

DOWN = [
    "DROP TABLE mev_searcher_txs",
    """ALTER TABLE mev_liquidations DROP COLUMN debt_usd, DROP COLUMN debt_usd_per_unit, DROP COLUMN collateral_usd,
        DROP COLUMN collateral_usd_per_unit""",
    "ALTER TABLE mev_sandwiches DROP COLUMN profit_usd, DROP COLUMN profit_usd_per_unit",
    "ALTER TABLE mev_arbitrages DROP COLUMN pools, DROP COLUMN profit_usd, DROP COLUMN profit_usd_per_unit",
    "ALTER TABLE block_classifications DROP COLUMN coinbase, DROP COLUMN agent, DROP COLUMN prices",
    "ALTER TABLE opportunities DROP COLUMN pools",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
