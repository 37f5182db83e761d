"""One writer of executions and outcomes at a time, enforced by PostgreSQL: every statement that inserts into
either table first takes a transaction-level advisory lock (`lock_history_writer()`, the key defined here once),
held until its transaction ends.

The pairing triggers (revisions 0016 and 0017: `execution_hours`, `funnel_hours`' sends and outcomes,
`unsettled_executions`) pair an execution with its outcome in whichever statement writes the second half, by
reading the other table. Under READ COMMITTED two transactions writing the two halves at the same moment do not
see each other's uncommitted rows, so each missed the pair: its send -> settled metrics were never counted and
the execution stayed "unsettled" forever. With the lock the second writer waits for the first one's commit; the
triggers' statements (a volatile function takes a new snapshot for each) then see its rows.

Why a BEFORE statement trigger rather than a lock in the Python writer alone: PostgreSQL enforces it for every
writer (a second control plane, a consumer restarted while the old one still runs, a COPY, psql), not only for
the code paths that remember to take it; and before the statement, so a writer that waits has not inserted (nor
locked an event id) yet. Why one key rather than a lock per (agent, opportunity_id): a batch's 2,000 locks would
be a third of PostgreSQL's shared lock table at its defaults (64 x 100 connections) and could deadlock unless
taken in order; the control plane has one writer, so the lock is only waited for when that is broken, and it
costs the one writer one lock a statement. The ingest (mevcontrol.ingest) also takes it at the start of a batch
that writes either table, so its transaction holds it before any of its inserts: two batches that both carry the
same (redelivered) event ids of other tables cannot then each wait for the other.

REPEATABLE READ takes a transaction's snapshot at its first statement, before the lock is waited for, so a
writer at that level would still miss a pair committed meanwhile: it is refused. (SERIALIZABLE is not: its
conflict detection aborts one of two such writers.)

Revision ID: 0019
Revises: 0018
"""

from alembic import op

revision = "0019"
down_revision = "0018"

KEY = 30792331693749108  # b"mevhist" as an integer: one advisory lock key of the control plane's database
TABLES = ("executions", "outcomes")


def upgrade() -> None:
    op.execute(
        f"""CREATE FUNCTION lock_history_writer() RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                IF current_setting('transaction_isolation') = 'repeatable read' THEN
                    RAISE EXCEPTION 'executions and outcomes are written under READ COMMITTED or SERIALIZABLE'
                        USING HINT = 'the pairing triggers must see the rows committed while they waited';
                END IF;
                PERFORM pg_advisory_xact_lock({KEY});
            END $$"""
    )
    op.execute(
        """CREATE FUNCTION history_writer_locked() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN PERFORM lock_history_writer(); RETURN NULL; END $$"""
    )
    for table in TABLES:
        op.execute(
            f"""CREATE TRIGGER history_writer_lock BEFORE INSERT ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION history_writer_locked()"""
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER history_writer_lock ON {table}")
    op.execute("DROP FUNCTION history_writer_locked()")
    op.execute("DROP FUNCTION lock_history_writer()")
