"""Block classifications from the agents' live classifier and `mevagent backfill` (mevagent.analytics).

One row per (chain, block) with the whole classification as JSON, and the MEV it found in typed rows
(sandwiches, arbitrages, liquidations, JIT liquidity) for the competition queries. Amounts are exact
base units (numeric(78,0); an arbitrage that reverted may carry a negative would-be profit). A block
classified again (a reorg, a backfill over a live range) replaces its rows: mevcontrol.classifications
deletes and inserts in one transaction.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"

UNITS = "numeric(78,0)"

STATEMENTS = [
    """CREATE TABLE block_classifications (
        chain text NOT NULL, block bigint NOT NULL, block_hash text NOT NULL, classified_at timestamptz NOT NULL,
        sources text[] NOT NULL, swaps integer NOT NULL, unresolved_swaps integer NOT NULL, document jsonb NOT NULL,
        PRIMARY KEY (chain, block)
    )""",
    f"""CREATE TABLE mev_sandwiches (
        chain text NOT NULL, block bigint NOT NULL, frontrun_tx text NOT NULL, backrun_tx text NOT NULL,
        victim_txs text[] NOT NULL, sandwicher text NOT NULL, profit_token text NOT NULL,
        profit_amount {UNITS} NOT NULL
    )""",
    "CREATE INDEX mev_sandwiches_block ON mev_sandwiches (chain, block)",
    "CREATE INDEX mev_sandwiches_sandwicher ON mev_sandwiches (sandwicher)",
    f"""CREATE TABLE mev_arbitrages (
        chain text NOT NULL, block bigint NOT NULL, tx text NOT NULL, account text NOT NULL,
        profit_token text NOT NULL, profit_amount {UNITS} NOT NULL, path text[] NOT NULL, reverted boolean NOT NULL
    )""",
    "CREATE INDEX mev_arbitrages_block ON mev_arbitrages (chain, block)",
    "CREATE INDEX mev_arbitrages_account ON mev_arbitrages (account)",
    f"""CREATE TABLE mev_liquidations (
        chain text NOT NULL, block bigint NOT NULL, tx text NOT NULL, liquidator text NOT NULL,
        liquidated_user text NOT NULL, protocol text NOT NULL, debt_token text NOT NULL, debt_amount {UNITS} NOT NULL,
        collateral_token text NOT NULL, collateral_amount {UNITS} NOT NULL
    )""",
    "CREATE INDEX mev_liquidations_block ON mev_liquidations (chain, block)",
    f"""CREATE TABLE mev_jit (
        chain text NOT NULL, block bigint NOT NULL, mint_tx text NOT NULL, burn_tx text NOT NULL,
        victim_txs text[] NOT NULL, provider text NOT NULL, pool text NOT NULL, liquidity {UNITS} NOT NULL
    )""",
    "CREATE INDEX mev_jit_block ON mev_jit (chain, block)",
]

TABLES = ["mev_jit", "mev_liquidations", "mev_arbitrages", "mev_sandwiches", "block_classifications"]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE {table}")
