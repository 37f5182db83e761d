"""The daily report's sums per UTC day (`outcome_days`), and a change count per hour of the hourly rollups
(`rollup_changes`), both kept by statement triggers.

GET /api/reports/daily summed the day's outcomes (~33,000 rows a day at 1,000,000 executions over 30 days: p99
0.77 s at 100 clients each asking its own day; bench/control_api.py). `outcome_days` holds, per UTC day of
`settled_at`, chain, strategy and token, what the report answers for the live statuses (landed, reverted,
failed): the count, the count per status, and the sums of realized profit (base units and USD), gas (wei and
USD) and net USD. A sum of `numeric`s is exact and its scale is the largest of its terms', so the sum of a day's
partial sums is the day's sum to the digit and in the same form (every term is NOT NULL). Written by an
`AFTER INSERT ... FOR EACH STATEMENT` trigger on `outcomes` from the statement's transition table (the ingest
writes a batch in one statement); an outcome of a closed day stored late is added in its own transaction.

`rollup_changes`: per UTC hour, how many statements changed that hour's rows of `execution_hours`,
`funnel_hours` or `opportunity_hours` (inserted, updated or deleted: triggers on the three tables, so the
triggers that write them, the migrations' fills and retention's deletes are all counted). The counts only grow,
so the sum over a range of hours read in one snapshot equals the sum read in another only if no hour of the range
changed in between: the API keeps the merged histograms of a window's closed hours with that sum and reuses
them while it is unchanged (mevcontrol.api.ClosedHours). A TRUNCATE of a rollup counts one more for every
hour. The migration counts one for every hour the rollups hold.

Revision ID: 0018
Revises: 0017
"""

from alembic import op

revision = "0018"
down_revision = "0017"

DAY = "(settled_at AT TIME ZONE 'UTC')::date"
SUMS = f"""SELECT {DAY}, chain, strategy, token, count(*),
           count(*) FILTER (WHERE status = 'landed'), count(*) FILTER (WHERE status = 'reverted'),
           count(*) FILTER (WHERE status = 'failed'), sum(realized_profit), sum(gas_paid_wei),
           sum(realized_profit_usd), sum(gas_cost_usd), sum(realized_profit_usd - gas_cost_usd)
    FROM {{0}} WHERE status IN ('landed', 'reverted', 'failed') GROUP BY 1, 2, 3, 4"""
SUMMED = ("profit_units", "gas_wei", "profit_usd", "gas_usd", "net_usd")
PLUS = ", ".join(f"{c} = outcome_days.{c} + EXCLUDED.{c}" for c in SUMMED)
UPSERT = f"""INSERT INTO outcome_days (day, chain, strategy, token, executions, landed, reverted, failed,
                                       profit_units, gas_wei, profit_usd, gas_usd, net_usd) {SUMS}
    ON CONFLICT (day, chain, strategy, token) DO UPDATE SET
        executions = outcome_days.executions + EXCLUDED.executions,
        landed = outcome_days.landed + EXCLUDED.landed, reverted = outcome_days.reverted + EXCLUDED.reverted,
        failed = outcome_days.failed + EXCLUDED.failed, {PLUS}"""
ROLLUPS = ("execution_hours", "funnel_hours", "opportunity_hours")


def upgrade() -> None:
    op.execute(
        """CREATE TABLE outcome_days (
               day date NOT NULL, chain text NOT NULL, strategy text NOT NULL, token text NOT NULL,
               executions bigint NOT NULL, landed bigint NOT NULL, reverted bigint NOT NULL, failed bigint NOT NULL,
               profit_units numeric NOT NULL, gas_wei numeric NOT NULL, profit_usd numeric NOT NULL,
               gas_usd numeric NOT NULL, net_usd numeric NOT NULL,
               PRIMARY KEY (day, chain, strategy, token)
           )"""
    )
    op.execute(
        f"""CREATE FUNCTION outcome_days_settled() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN {UPSERT.format("added")}; RETURN NULL; END $$"""
    )
    op.execute(
        """CREATE TRIGGER outcome_days_settled AFTER INSERT ON outcomes
           REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION outcome_days_settled()"""
    )
    op.execute(UPSERT.format("outcomes"))
    op.execute("CREATE TABLE rollup_changes (hour timestamptz PRIMARY KEY, n bigint NOT NULL)")
    op.execute(
        """CREATE FUNCTION rollup_changed() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               INSERT INTO rollup_changes (hour, n) SELECT DISTINCT hour, 1 FROM changed
               ON CONFLICT (hour) DO UPDATE SET n = rollup_changes.n + 1;
               RETURN NULL;
           END $$"""
    )
    op.execute(
        """CREATE FUNCTION rollup_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN UPDATE rollup_changes SET n = n + 1; RETURN NULL; END $$"""
    )
    for table in ROLLUPS:
        op.execute(
            f"""CREATE TRIGGER {table}_changed_truncate AFTER TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION rollup_truncated()"""
        )
        for event, transition in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            op.execute(
                f"""CREATE TRIGGER {table}_changed_{event.lower()} AFTER {event} ON {table}
                    REFERENCING {transition} TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION rollup_changed()"""
            )
    hours = " UNION ".join(f"SELECT hour FROM {table}" for table in ROLLUPS)
    op.execute(f"INSERT INTO rollup_changes (hour, n) SELECT hour, 1 FROM ({hours}) h")


def downgrade() -> None:
    for table in ROLLUPS:
        for event in ("insert", "update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER {table}_changed_{event} ON {table}")
    op.execute("DROP FUNCTION rollup_truncated()")
    op.execute("DROP FUNCTION rollup_changed()")
    op.execute("DROP TABLE rollup_changes")
    op.execute("DROP TRIGGER outcome_days_settled ON outcomes")
    op.execute("DROP FUNCTION outcome_days_settled()")
    op.execute("DROP TABLE outcome_days")
