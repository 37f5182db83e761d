"""The execution timing's histograms per UTC hour and chain (`execution_hours`), kept by statement triggers on
`executions` and `outcomes`: GET /api/execution/timing merges the window's whole hours from it and buckets only
the partial first hour's executions (at most an hour of rows instead of the window's: up to 140,000 executions
joined with their outcomes and sorted for eight percentiles, ~100 ms a request at 1,000,000 executions).

A row counts the executions sent in `hour` on `chain` whose `metric` fell in `bucket`:
  1 detection -> send (the execution's at - found_at, seconds), one per execution;
  2 send -> settled (the outcome's settled_at - the execution's at, seconds),
  3 detection -> settled (the outcome's settled_at - found_at, seconds),
  4 blocks to inclusion (the outcome's included_block - block, where it has one), one per execution and outcome.
The seconds' bucket (`timing_bucket`): 0 for |v| < 2^-20 s (~1 µs), else sign(v) * (ceil(16 log2 |v|) + 321), a
log scale of 16 buckets per doubling: a bucket's values are within 2^(1/32) - 1 = 2.2 % of its geometric middle,
which the API answers, so a percentile is within 2.2 % of the exact one (or 1 µs). Blocks are integers: their
bucket is the value itself (exact). Counts merge by adding, so any window's histogram is the sum of its hours'.

An execution and its outcome are paired by (agent, opportunity_id) by whichever of the two statements writes the
second of them: each trigger adds, besides what its own rows bring, the pairs its rows make with rows already
stored (the other table's statement, earlier in the transaction or committed before). The control plane's one
ingest writes them; two transactions writing the two halves of one pair at the same moment would each miss the
other's (not done: one consumer). Transition tables see exactly the rows an INSERT or COPY added (ON CONFLICT DO
NOTHING duplicates are not in them). The migration fills the table from what is stored.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"

HOUR = "date_trunc('hour', {0} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
# The pairs' metrics 2-4 for executions `e` joined with their outcomes `o`.
PAIRS = f"""SELECT {HOUR.format("e.at")} AS hour, e.chain, m.metric, m.bucket
    FROM {{executions}} e JOIN {{outcomes}} o ON o.agent = e.agent AND o.opportunity_id = e.opportunity_id
    CROSS JOIN LATERAL (VALUES (2::smallint, timing_bucket(extract(epoch FROM o.settled_at - e.at))),
                               (3::smallint, timing_bucket(extract(epoch FROM o.settled_at - o.found_at))),
                               (4::smallint, o.included_block - o.block)) m(metric, bucket)
    WHERE m.bucket IS NOT NULL"""
SENT = f"""SELECT {HOUR.format("e.at")} AS hour, e.chain, 1::smallint AS metric,
    timing_bucket(extract(epoch FROM e.at - e.found_at)) AS bucket FROM {{executions}} e"""
UPSERT = """INSERT INTO execution_hours (hour, chain, metric, bucket, n)
    SELECT hour, chain, metric, bucket, count(*) FROM ({rows}) r GROUP BY 1, 2, 3, 4
    ON CONFLICT (hour, chain, metric, bucket) DO UPDATE SET n = execution_hours.n + EXCLUDED.n"""


def upgrade() -> None:
    op.execute(
        """CREATE FUNCTION timing_bucket(seconds double precision) RETURNS bigint LANGUAGE sql IMMUTABLE
           PARALLEL SAFE AS $$
               SELECT CASE WHEN abs(seconds) < 2 ^ -20 THEN 0
                           ELSE sign(seconds)::bigint * (ceil(16 * ln(abs(seconds)) / ln(2))::bigint + 321) END
           $$"""
    )
    op.execute(
        """CREATE TABLE execution_hours (
               hour timestamptz NOT NULL, chain text NOT NULL, metric smallint NOT NULL, bucket bigint NOT NULL,
               n bigint NOT NULL, PRIMARY KEY (hour, chain, metric, bucket)
           )"""
    )
    # The outcome trigger's probe for its executions (outcomes have theirs since revision 0006).
    op.execute("CREATE INDEX executions_agent_opportunity ON executions (agent, opportunity_id)")
    sent = SENT.format(executions="added")
    paired_by_execution = PAIRS.format(executions="added", outcomes="outcomes")
    paired_by_outcome = PAIRS.format(executions="executions", outcomes="added")
    op.execute(
        f"""CREATE FUNCTION execution_hours_sent() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {UPSERT.format(rows=f"{sent} UNION ALL {paired_by_execution}")};
                RETURN NULL;
            END $$"""
    )
    op.execute(
        f"""CREATE FUNCTION execution_hours_settled() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {UPSERT.format(rows=paired_by_outcome)};
                RETURN NULL;
            END $$"""
    )
    op.execute(
        """CREATE TRIGGER execution_hours_sent AFTER INSERT ON executions
           REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION execution_hours_sent()"""
    )
    op.execute(
        """CREATE TRIGGER execution_hours_settled AFTER INSERT ON outcomes
           REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION execution_hours_settled()"""
    )
    stored = PAIRS.format(executions="executions", outcomes="outcomes")
    op.execute(UPSERT.format(rows=f"{SENT.format(executions='executions')} UNION ALL {stored}"))


def downgrade() -> None:
    op.execute("DROP TRIGGER execution_hours_settled ON outcomes")
    op.execute("DROP TRIGGER execution_hours_sent ON executions")
    op.execute("DROP FUNCTION execution_hours_settled()")
    op.execute("DROP FUNCTION execution_hours_sent()")
    op.execute("DROP INDEX executions_agent_opportunity")
    op.execute("DROP TABLE execution_hours")
    op.execute("DROP FUNCTION timing_bucket(double precision)")
