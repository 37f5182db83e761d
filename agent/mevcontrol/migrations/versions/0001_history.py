"""The control plane's history: events by kind, fleet state, commands, approvals and the audit log.

Money columns are exact: numeric(78,0) holds any uint256 (base units, wei); USD valuations are
numeric and always stored beside the price (USD per base unit) they used. Opportunities and skips
arrive at 10,000+ an hour: they are range-partitioned by day (mevcontrol.db.ensure_partitions makes
the partitions, mevcontrol.db.drop_partitions_before applies the retention).

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None

UNITS = "numeric(78,0)"

STATEMENTS = [
    # -- events ------------------------------------------------------------------------------------------
    f"""CREATE TABLE opportunities (
        event_id uuid NOT NULL, found_at timestamptz NOT NULL, agent text NOT NULL, chain text NOT NULL,
        strategy text NOT NULL, opportunity_id text NOT NULL, block bigint NOT NULL, token text NOT NULL,
        amount_in {UNITS} NOT NULL, amount_out {UNITS} NOT NULL, gas_limit {UNITS} NOT NULL,
        gas_price_wei {UNITS} NOT NULL, builder_payment_wei {UNITS} NOT NULL, token_usd_per_unit numeric NOT NULL,
        notional_usd numeric NOT NULL, profit_usd numeric NOT NULL, gas_cost_usd numeric NOT NULL,
        hops smallint NOT NULL,
        PRIMARY KEY (found_at, event_id)
    ) PARTITION BY RANGE (found_at)""",
    "CREATE INDEX opportunities_chain_at ON opportunities (chain, found_at)",
    """CREATE TABLE skips (
        event_id uuid NOT NULL, at timestamptz NOT NULL, agent text NOT NULL, chain text NOT NULL,
        strategy text NOT NULL, opportunity_id text NOT NULL, block bigint NOT NULL, limit_name text NOT NULL,
        reason text NOT NULL,
        PRIMARY KEY (at, event_id)
    ) PARTITION BY RANGE (at)""",
    """CREATE TABLE executions (
        event_id uuid PRIMARY KEY, at timestamptz NOT NULL, agent text NOT NULL, chain text NOT NULL,
        strategy text NOT NULL, opportunity_id text NOT NULL, block bigint NOT NULL, tx_hashes text[] NOT NULL,
        found_at timestamptz NOT NULL
    )""",
    "CREATE INDEX executions_at ON executions (at)",
    f"""CREATE TABLE outcomes (
        event_id uuid PRIMARY KEY, at timestamptz NOT NULL, agent text NOT NULL, chain text NOT NULL,
        strategy text NOT NULL, opportunity_id text NOT NULL, block bigint NOT NULL,
        status text NOT NULL CHECK (status IN ('dry_run', 'landed', 'reverted', 'failed', 'rejected')),
        token text NOT NULL, amount_in {UNITS} NOT NULL, realized_profit numeric(78,0) NOT NULL,
        gas_paid_wei {UNITS} NOT NULL, token_usd_per_unit numeric NOT NULL, native_usd_per_wei numeric NOT NULL,
        realized_profit_usd numeric NOT NULL, gas_cost_usd numeric NOT NULL, tx_hashes text[] NOT NULL,
        included_block bigint, reason text NOT NULL, found_at timestamptz NOT NULL, settled_at timestamptz NOT NULL
    )""",
    "CREATE INDEX outcomes_settled_at ON outcomes (settled_at)",
    """CREATE TABLE gas_prices (
        event_id uuid PRIMARY KEY, at timestamptz NOT NULL, agent text NOT NULL, chain text NOT NULL,
        block bigint NOT NULL, base_fee_wei numeric(78,0) NOT NULL, priority_fee_p50_wei numeric(78,0) NOT NULL,
        priority_fee_p90_wei numeric(78,0) NOT NULL, priority_fee_p99_wei numeric(78,0) NOT NULL
    )""",
    "CREATE INDEX gas_prices_chain_at ON gas_prices (chain, at)",
    """CREATE TABLE latency (
        event_id uuid PRIMARY KEY, at timestamptz NOT NULL, agent text NOT NULL, chain text NOT NULL,
        rpc_round_trip_s double precision NOT NULL, stages jsonb NOT NULL
    )""",
    "CREATE INDEX latency_agent_at ON latency (agent, chain, at)",
    """CREATE TABLE command_acks (
        event_id uuid PRIMARY KEY, at timestamptz NOT NULL, agent text NOT NULL, command_id uuid NOT NULL,
        command text NOT NULL, ok boolean NOT NULL, detail text NOT NULL
    )""",
    "CREATE INDEX command_acks_command ON command_acks (command_id)",
    # -- the fleet as last reported (one row per agent, upserted) ----------------------------------------------
    """CREATE TABLE agents (
        name text PRIMARY KEY, api_url text NOT NULL DEFAULT '', chains text[] NOT NULL DEFAULT '{}',
        live_chains text[] NOT NULL DEFAULT '{}', heartbeat_at timestamptz, lease_fresh boolean NOT NULL DEFAULT false,
        lease_expires_in_s double precision NOT NULL DEFAULT 0, emergency_stop boolean NOT NULL DEFAULT false,
        spool_pending integer NOT NULL DEFAULT 0, dropped bigint NOT NULL DEFAULT 0,
        exposure_at timestamptz, exposure_total_usd numeric NOT NULL DEFAULT 0,
        exposure_by_chain jsonb NOT NULL DEFAULT '{}', exposure_by_token jsonb NOT NULL DEFAULT '{}',
        daily_pnl_usd jsonb NOT NULL DEFAULT '{}', in_flight integer NOT NULL DEFAULT 0,
        paused_strategies text[] NOT NULL DEFAULT '{}'
    )""",
    # -- operators' decisions -------------------------------------------------------------------------------
    """CREATE TABLE control_state (
        key text PRIMARY KEY, value jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
        updated_by text NOT NULL
    )""",
    """CREATE TABLE commands (
        id uuid PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), kind text NOT NULL, target text NOT NULL,
        payload jsonb NOT NULL, issued_by text NOT NULL
    )""",
    """CREATE TABLE approvals (
        id uuid PRIMARY KEY, action text NOT NULL, payload jsonb NOT NULL, requested_by text NOT NULL,
        requested_at timestamptz NOT NULL DEFAULT now(), approved_by text, approved_at timestamptz,
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'expired')),
        CHECK (approved_by IS NULL OR approved_by <> requested_by)
    )""",
    """CREATE TABLE audit_log (
        id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), operator text NOT NULL,
        action text NOT NULL, target text NOT NULL, before jsonb, after jsonb, approved_by text,
        result text NOT NULL
    )""",
    "CREATE INDEX audit_log_at ON audit_log (at)",
]

TABLES = [
    "audit_log", "approvals", "commands", "control_state", "agents", "command_acks", "latency", "gas_prices",
    "outcomes", "executions", "skips", "opportunities",
]  # fmt: skip


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE {table} CASCADE")
