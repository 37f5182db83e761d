"""PostgreSQL: the schema (Alembic migrations), connection pools and the opportunity partitions."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config

HERE = Path(__file__).parent
PARTITIONED = ("opportunities", "skips", "sandwich_risks")  # range-partitioned by day on their time column


def alembic_config(dsn: str) -> Config:
    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE / "migrations"))
    # SQLAlchemy's URL for asyncpg; '%' is Alembic's interpolation character.
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    return config


# PostgreSQL still starting (a host's boot, a restart beside the control plane): these mean "not yet".
NOT_YET = (OSError, TimeoutError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


async def wait_for_postgres(dsn: str, on_wait: Callable[[BaseException], None]) -> None:
    """Return once PostgreSQL takes a login; while it does not answer yet, wait (0.5 s, doubling up to 5 s) and
    call `on_wait` once. A refused login (wrong password, no such database) is raised: waiting would not mend it."""
    delay, told = 0.5, False
    while True:
        try:
            return await login(dsn)
        except NOT_YET as exc:
            if not told:
                on_wait(exc)
                told = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def login(dsn: str) -> None:
    """One login and out: a refused one raises asyncpg's own error (named), not a wrapping of it."""
    conn = await asyncpg.connect(dsn, timeout=5)
    await conn.close()


async def migrate(dsn: str, revision: str = "head") -> None:
    """Bring the schema to `revision` (Alembic's env runs its own event loop: a worker thread)."""
    await asyncio.to_thread(command.upgrade, alembic_config(dsn), revision)


async def connect_pool(dsn: str, *, size: int = 4) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=1, max_size=size, command_timeout=30)


def partition_name(table: str, day: dt.date) -> str:
    return f"{table}_{day:%Y%m%d}"


async def ensure_partitions(conn: asyncpg.Connection, days: set[dt.date]) -> None:
    """The daily partitions of every partitioned table for `days` (idempotent)."""
    for day in sorted(days):
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        end = start + dt.timedelta(days=1)
        for table in PARTITIONED:
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {partition_name(table, day)} PARTITION OF {table} "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )


async def drop_partitions_before(conn: asyncpg.Connection, day: dt.date) -> list[str]:
    """Retention: drop the daily partitions that end on or before `day` (a DROP, not a slow DELETE)."""
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY($1::text[])""",
        list(PARTITIONED),
    )
    dropped = []
    for row in rows:
        name = row["relname"]
        stamp = name.rsplit("_", 1)[-1]
        if stamp.isdigit() and dt.datetime.strptime(stamp, "%Y%m%d").date() < day:
            await conn.execute(f"DROP TABLE {name}")
            dropped.append(name)
    # The hourly counts of the opportunities (revision 0013) and skips (0017) dropped go with them.
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    await conn.execute("DELETE FROM opportunity_hours WHERE hour < $1", start)
    await conn.execute("DELETE FROM funnel_hours WHERE stage = 'skip' AND hour < $1", start)
    return sorted(dropped)
