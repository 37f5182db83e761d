"""The funnel's counts per UTC hour (`funnel_hours`) and the executions still without an outcome
(`unsettled_executions`), kept by statement triggers on `executions`, `outcomes` and `skips`.

GET /api/analytics/opportunities counted the window's skips by limit, outcomes by status and executions (up to
140,000 rows each at 1,000,000 executions; bench/control_api.py): it now reads the window's whole hours from
`funnel_hours` and counts only its partial first hour from the rows, as the opportunities' `opportunity_hours`
(revision 0013). A row: `stage` 'sent' (executions by their `at`, key ''), 'outcome' (outcomes by `settled_at`,
key the status) or 'skip' (skips by `at`, key the limit), and how many. Retention deletes the skips' hours with
their partitions (mevcontrol.db.drop_partitions_before).

GET /api/transactions/stuck compared the window's executions with its outcomes (an anti-join over both):
`unsettled_executions` holds the executions no outcome of the same (agent, opportunity_id) was stored for yet,
added by the executions' trigger and removed by the outcomes' (whichever statement writes the second half of the
pair sees the first), so the list reads only them. The control plane's one ingest writes them (two transactions
writing the two halves at the same moment would each miss the other: not done). The migration fills both tables
from what is stored.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"

HOUR = "date_trunc('hour', {0} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
UPSERT = """INSERT INTO funnel_hours (hour, stage, key, n) {rows}
    ON CONFLICT (hour, stage, key) DO UPDATE SET n = funnel_hours.n + EXCLUDED.n"""
SENT = f"SELECT {HOUR.format('at')}, 'sent', '', count(*) FROM {{0}} GROUP BY 1"
SETTLED = f"SELECT {HOUR.format('settled_at')}, 'outcome', status, count(*) FROM {{0}} GROUP BY 1, 3"
SKIPPED = f"SELECT {HOUR.format('at')}, 'skip', limit_name, count(*) FROM {{0}} GROUP BY 1, 3"
UNSETTLED = """INSERT INTO unsettled_executions (event_id, at)
    SELECT e.event_id, e.at FROM {0} e
    WHERE NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.agent = e.agent AND o.opportunity_id = e.opportunity_id)"""


def _function(name: str, *statements: str) -> None:
    body = "".join(f"{statement};\n" for statement in statements)
    op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$")


def _trigger(name: str, table: str) -> None:
    op.execute(
        f"""CREATE TRIGGER {name} AFTER INSERT ON {table}
            REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION {name}()"""
    )


def upgrade() -> None:
    op.execute(
        """CREATE TABLE funnel_hours (
               hour timestamptz NOT NULL, stage text NOT NULL, key text NOT NULL, n bigint NOT NULL,
               PRIMARY KEY (hour, stage, key)
           )"""
    )
    op.execute("CREATE TABLE unsettled_executions (event_id uuid PRIMARY KEY, at timestamptz NOT NULL)")
    op.execute("CREATE INDEX unsettled_executions_at ON unsettled_executions (at)")
    _function("funnel_hours_sent", UPSERT.format(rows=SENT.format("added")), UNSETTLED.format("added"))
    _function(
        "funnel_hours_settled",
        UPSERT.format(rows=SETTLED.format("added")),
        """DELETE FROM unsettled_executions u USING added o, executions e
           WHERE e.agent = o.agent AND e.opportunity_id = o.opportunity_id AND u.event_id = e.event_id""",
    )
    _function("funnel_hours_skipped", UPSERT.format(rows=SKIPPED.format("added")))
    _trigger("funnel_hours_sent", "executions")
    _trigger("funnel_hours_settled", "outcomes")
    _trigger("funnel_hours_skipped", "skips")
    for rows, table in ((SENT, "executions"), (SETTLED, "outcomes"), (SKIPPED, "skips")):
        op.execute(UPSERT.format(rows=rows.format(table)))
    op.execute(UNSETTLED.format("executions"))


def downgrade() -> None:
    for name, table in (
        ("funnel_hours_sent", "executions"),
        ("funnel_hours_settled", "outcomes"),
        ("funnel_hours_skipped", "skips"),
    ):
        op.execute(f"DROP TRIGGER {name} ON {table}")
        op.execute(f"DROP FUNCTION {name}()")
    op.execute("DROP TABLE unsettled_executions")
    op.execute("DROP TABLE funnel_hours")
