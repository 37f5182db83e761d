"""Opportunities counted per UTC hour and profit bucket (`opportunity_hours`), kept by a statement trigger on
`opportunities`: GET /api/analytics/opportunities reads the window's whole hours from it and only the
partial first hour from the opportunities themselves. At 10,000,000 opportunities over 30 days a day is
~333,000 rows: counting and bucketing them on every request took ~0.2-0.8 s (bench/control_api.py).

The trigger sees exactly the rows an INSERT or COPY added (a transition table: `ON CONFLICT DO NOTHING`
duplicates are not in it), so the counts follow the ingest's idempotence. Retention deletes the hours it
drops the partitions of (mevcontrol.db.drop_partitions_before).

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"

# The profit distribution's bucket: net USD in 10 USD steps from 0 to 100 (0: a loss, 11: 100 or more).
BUCKET = "width_bucket(profit_usd - gas_cost_usd, 0, 100, 10)"


def upgrade() -> None:
    op.execute(
        """CREATE TABLE opportunity_hours (
               hour timestamptz NOT NULL, bucket integer NOT NULL, n bigint NOT NULL,
               PRIMARY KEY (hour, bucket)
           )"""
    )
    op.execute(
        f"""CREATE FUNCTION opportunity_hours_count() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO opportunity_hours (hour, bucket, n)
                SELECT date_trunc('hour', found_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', {BUCKET}, count(*)
                FROM added GROUP BY 1, 2
                ON CONFLICT (hour, bucket) DO UPDATE SET n = opportunity_hours.n + EXCLUDED.n;
                RETURN NULL;
            END $$"""
    )
    op.execute(
        """CREATE TRIGGER opportunity_hours_count AFTER INSERT ON opportunities
           REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION opportunity_hours_count()"""
    )
    op.execute(
        f"""INSERT INTO opportunity_hours (hour, bucket, n)
            SELECT date_trunc('hour', found_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', {BUCKET}, count(*)
            FROM opportunities GROUP BY 1, 2"""
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER opportunity_hours_count ON opportunities")
    op.execute("DROP FUNCTION opportunity_hours_count()")
    op.execute("DROP TABLE opportunity_hours")
