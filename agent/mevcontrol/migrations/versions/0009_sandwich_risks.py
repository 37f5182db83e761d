"""The sandwich detector's risk signals (pending swaps found sandwichable, never acted on), matched with the
sandwiches and JIT liquidity the classifiers found around them; the JIT positions' amounts put in and taken out.

`sandwich_risks` is range-partitioned by day on `seen_at` like the opportunities (mevcontrol.db.PARTITIONED:
the ingest makes the partitions, retention drops them). GIN indexes on the victims of sandwiches and JIT
liquidity find the MEV taken around one transaction.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"

UNITS = "numeric(78,0)"


def upgrade() -> None:
    op.execute(
        f"""CREATE TABLE sandwich_risks (
            event_id uuid NOT NULL, seen_at timestamptz NOT NULL, agent text NOT NULL, chain text NOT NULL,
            tx_hash text NOT NULL, sender text NOT NULL, router text NOT NULL, pool text NOT NULL,
            token_in text NOT NULL, token_out text NOT NULL, amount_in {UNITS} NOT NULL, amount_out {UNITS} NOT NULL,
            amount_limit {UNITS} NOT NULL, price_impact_bps double precision NOT NULL,
            slippage_bps double precision NOT NULL, profit_token text NOT NULL, max_profit {UNITS} NOT NULL,
            frontrun_amount_in {UNITS} NOT NULL, profit_usd_per_unit numeric,
            PRIMARY KEY (seen_at, event_id)
        ) PARTITION BY RANGE (seen_at)"""
    )
    op.execute("CREATE INDEX sandwich_risks_chain_at ON sandwich_risks (chain, seen_at)")
    op.execute("CREATE INDEX mev_sandwiches_victims ON mev_sandwiches USING gin (victim_txs)")
    op.execute("CREATE INDEX mev_jit_victims ON mev_jit USING gin (victim_txs)")
    op.execute(
        f"""ALTER TABLE mev_jit ADD COLUMN mint_amount0 {UNITS}, ADD COLUMN mint_amount1 {UNITS},
            ADD COLUMN burn_amount0 {UNITS}, ADD COLUMN burn_amount1 {UNITS}"""
    )


def downgrade() -> None:
    op.execute("ALTER TABLE mev_jit DROP COLUMN mint_amount0, DROP COLUMN mint_amount1, DROP COLUMN burn_amount0, "
               "DROP COLUMN burn_amount1")  # fmt: skip
    op.execute("DROP INDEX mev_jit_victims")
    op.execute("DROP INDEX mev_sandwiches_victims")
    op.execute("DROP TABLE sandwich_risks")
