"""The control plane process: ingest, fleet risk and the lease loop, commands to agents, the listeners."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mevagent.bus.events import (
    BEST_EFFORT_STREAM,
    COMMAND_STREAM_MAXLEN,
    DURABLE_STREAM,
    FIELD,
    Command,
    CommandAck,
    CrossChainLegCommand,
    Event,
    LeaseGrant,
    command_stream,
    encode,
)
from mevagent.bus.publisher import reraise_if_cancelled
from mevagent.config import read_secret
from mevcontrol.config import ControlConfig, FleetLimits
from mevcontrol.crosschain import CrossChainEngine, CrossChainService
from mevcontrol.db import connect_pool, drop_partitions_before, migrate, wait_for_postgres
from mevcontrol.flashloans import FleetProviders
from mevcontrol.ingest import GROUP, Ingest
from mevcontrol.metrics import ControlMetrics
from mevcontrol.positions import OPEN_POSITIONS, NotRecorded, PositionBook
from mevcontrol.risk import FleetRisk, fleet_risk

log = logging.getLogger("mevcontrol")

RETENTION_EVERY_S = 3600.0
KNOWN_AGENT_S = 600.0  # an agent that heartbeated this recently gets leases even if not configured


def redis_from_config(config: ControlConfig) -> Redis:
    password = read_secret(config.redis_password_file).decode() if config.redis_password_file else None
    kwargs: dict[str, Any] = {"password": password, "socket_timeout": 10.0}
    if config.redis_url.startswith("rediss://") and config.redis_tls_ca_file is not None:
        kwargs["ssl_ca_certs"] = str(config.redis_tls_ca_file)
        kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        # The certificate must name the address dialled (redis-py 5 did not check it by default).
        kwargs["ssl_check_hostname"] = True
        kwargs["ssl_min_version"] = ssl.TLSVersion.TLSv1_2
    return Redis.from_url(config.redis_url, **kwargs)


# A position's record (Position.as_json), replaced only by a later-numbered one (PositionBook._changed).
POSITION_UPSERT = """INSERT INTO crosschain_positions (id, opened_at, updated_at, state, record, version)
    VALUES ($1, $2, now(), $3, $4::jsonb, $5) ON CONFLICT (id) DO UPDATE SET updated_at = now(),
    state = EXCLUDED.state, record = EXCLUDED.record, version = EXCLUDED.version
    WHERE crosschain_positions.version < EXCLUDED.version"""


def _position_row(record: dict[str, Any], version: int) -> tuple[Any, ...]:
    """POSITION_UPSERT's $1-$5."""
    opened = dt.datetime.fromtimestamp(record["opened_at"], dt.UTC)
    return record["id"], opened, record["state"], orjson.dumps(record).decode(), version


class Control:
    """Everything the control plane keeps; `run` until `stop` is set."""

    def __init__(self, config: ControlConfig, redis: Redis, pool: asyncpg.Pool) -> None:
        self.config = config
        self.redis = redis
        self.pool = pool
        self.metrics = ControlMetrics()
        self.ingest = Ingest(redis, pool, on_commit=self._committed, on_read=self._acked)
        self.limits: FleetLimits = config.limits
        self.live_chains: tuple[str, ...] = config.live_chains
        self.emergency: dict[str, Any] = {"engaged": False, "reason": "", "by": "", "at": 0.0}
        self.risk = FleetRisk()
        self.breached: list[str] = []
        self.granting = False
        self.started = time.monotonic()
        self._acks: dict[str, dict[str, asyncio.Future[CommandAck]]] = {}
        self.on_events: list[Callable[[list[Event]], None]] = []  # after each commit (the dashboard's live push)
        self.providers = FleetProviders()  # each agent's latest flashloan providers, for :8903
        self.on_events.append(self.providers.seen)
        self._tasks: list[asyncio.Task[None]] = []
        self.crosschain: CrossChainService | None = None
        if config.crosschain is not None:
            self.crosschain = CrossChainService(CrossChainEngine(config.crosschain), redis)
            self.on_events.append(self.crosschain.on_events)  # gas prices, leg results
            if config.crosschain.execution is not None:
                self.crosschain.book = PositionBook(config.crosschain.execution, self.crosschain.engine, self)

    @classmethod
    async def open(cls, config: ControlConfig) -> Control:
        dsn = read_secret(config.postgres_dsn_file).decode()
        await wait_for_postgres(dsn, lambda exc: log.warning("PostgreSQL does not answer yet (%s); waiting", exc))
        await migrate(dsn)
        pool = await connect_pool(dsn)
        control = cls(config, redis_from_config(config), pool)
        await control.load_state()
        return control

    async def close(self) -> None:
        self.ingest.stop()
        if self.crosschain is not None:
            self.crosschain.stop()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        try:
            await asyncio.wait_for(self.pool.close(), 3.0)
        except TimeoutError:
            self.pool.terminate()

    # ---- persisted decisions --------------------------------------------------------------------------

    async def load_state(self) -> None:
        async with self.pool.acquire() as conn:
            rows = {
                r["key"]: orjson.loads(r["value"]) for r in await conn.fetch("SELECT key, value FROM control_state")
            }
        if "emergency" in rows:
            self.emergency = rows["emergency"]
        if "limits" in rows:
            self.limits = FleetLimits.model_validate(rows["limits"])
        if "live_chains" in rows:
            self.live_chains = tuple(rows["live_chains"])
        self.metrics.emergency.set(1 if self.emergency["engaged"] else 0)
        book = self.crosschain.book if self.crosschain is not None else None
        if book is not None:
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(
                    """SELECT record, version FROM crosschain_positions WHERE state = ANY($1::text[])
                       ORDER BY opened_at""",
                    list(OPEN_POSITIONS),
                )
            for row in rows:
                book.restore(orjson.loads(row["record"]), row["version"])

    async def save_state(self, conn: asyncpg.Connection, key: str, value: Any, by: str) -> None:
        await conn.execute(
            """INSERT INTO control_state (key, value, updated_at, updated_by) VALUES ($1, $2::jsonb, now(), $3)
               ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(),
               updated_by = EXCLUDED.updated_by""",
            key,
            orjson.dumps(value).decode(),
            by,
        )

    # ---- commands to agents -------------------------------------------------------------------------------

    async def agents(self) -> list[str]:
        """Every agent that gets commands and leases: the configured ones and those heartbeating lately."""
        names = {a.name for a in self.config.agents}
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=KNOWN_AGENT_S)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT name FROM agents WHERE heartbeat_at >= $1", since)
        return sorted(names | {r["name"] for r in rows})

    async def send(self, agent: str, command: Command, *, record: bool = True) -> None:
        """Put `command` on `agent`'s command stream (recorded first, so the history has all that was sent)."""
        if record:
            async with self.pool.acquire() as conn:
                await self.record(conn, command, [agent])
        await self.redis.xadd(
            command_stream(agent), {FIELD: encode(command)}, maxlen=COMMAND_STREAM_MAXLEN, approximate=True
        )

    async def send_all(self, agents: list[str], command: Command, *, recorded: bool = False) -> dict[str, str]:
        """`command` to each of `agents` at once: one row per agent in one statement (unless the caller
        `recorded` it in a transaction of its own), then every stream in one pipeline: "sent", or why not,
        per agent."""
        if not agents:
            return {}
        if not recorded:
            async with self.pool.acquire() as conn:
                await self.record(conn, command, agents)
        body = {FIELD: encode(command)}
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent in agents:
                pipe.xadd(command_stream(agent), body, maxlen=COMMAND_STREAM_MAXLEN, approximate=True)
            answers = await pipe.execute(raise_on_error=False)
        return {
            a: "sent" if not isinstance(r, Exception) else f"not sent: {type(r).__name__}"
            for a, r in zip(agents, answers, strict=True)
        }

    @staticmethod
    async def record(conn: Any, command: Command, agents: list[str]) -> None:
        """The history's rows of `command`, one per agent it goes to (on `conn`: in the caller's transaction)."""
        await conn.execute(
            """INSERT INTO commands (id, kind, target, payload, issued_by)
               SELECT $1, $2, target, $4::jsonb, $5 FROM unnest($3::text[]) AS target
               ON CONFLICT DO NOTHING""",
            command.id, command.kind, agents, encode(command).decode(), command.issued_by,
        )  # fmt: skip

    def expect_ack(self, command_id: str, agents: list[str]) -> dict[str, asyncio.Future[CommandAck]]:
        loop = asyncio.get_running_loop()
        futures = {agent: loop.create_future() for agent in agents}
        self._acks[command_id] = futures
        return futures

    def forget_ack(self, command_id: str) -> None:
        self._acks.pop(command_id, None)

    def _acked(self, events: list[Event]) -> None:
        """Acks answer whoever waits for them as soon as the bus delivers them, before the batch they came in
        is committed (up to its whole transaction sooner, under load): the ack is on the durable stream and
        reaches the history with its batch (or again from the pending list after a crash)."""
        for event in events:
            if isinstance(event, CommandAck):
                waiting = self._acks.get(event.command_id, {}).get(event.agent)
                if waiting is not None and not waiting.done():
                    waiting.set_result(event)

    def _committed(self, events: list[Event]) -> None:
        for listener in self.on_events:
            try:
                listener(events)
            except Exception:  # a watcher's bug (the dashboard's push) never stops the ingest
                log.exception("an on_events listener failed")
        stats = self.ingest.stats
        self.metrics.bus_lag.set(stats.lag_s)
        self.metrics.commit_seconds.observe(stats.last_commit_s)

    # ---- cross-chain positions (mevcontrol.positions.Fleet) -------------------------------------------------

    def refusal(self, adding_usd: Decimal) -> str:
        """Why `adding_usd` more exposure does not fit now ("" if it does): the stop, a breached limit, or the
        fleet's total (the agents' last snapshots and every open position, fresh) going over its limit."""
        if self.emergency["engaged"]:
            return f"emergency_stop: engaged ({self.emergency['reason']})"
        others = [b for b in self.breached if not b.startswith("max_total_exposure")]
        if others:
            return "; ".join(others)
        book = self.crosschain.book if self.crosschain is not None else None
        agents = self.risk.total_usd - self.risk.crosschain_usd
        positions = book.exposure_total() if book is not None else Decimal(0)
        total = agents + positions + adding_usd
        limit = Decimal(repr(self.limits.max_total_exposure_usd))
        if total > limit:
            return (
                f"max_total_exposure: agents {agents} + open positions {positions} + {adding_usd} = {total} > "
                f"{limit} USD"
            )
        return ""

    async def record_position(self, record: dict[str, Any], version: int) -> None:
        """One write of a position's record (Position.as_json), numbered by the book in step order: it replaces
        the stored one only if that is older, so writes committing out of order never put an earlier state back."""
        async with self.pool.acquire() as conn:
            await conn.execute(POSITION_UPSERT, *_position_row(record, version))

    async def open_position(self, record: dict[str, Any], version: int, commands: list[CrossChainLegCommand]) -> None:
        """A position's first record and its legs' command rows in one statement (one commit), then every leg
        on its agent's command stream in one pipeline (one fsync of Redis's log). No leg reaches an agent before
        the position and its commands are in the history, so a control plane lost in between leaves no leg
        that its successor does not know; and the legs share one commit and one fsync instead of queueing
        behind each other's and the record's. NotRecorded: the history did not take them, nothing was sent."""
        bodies = [encode(c) for c in commands]  # one encoding each, for the row and the stream
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(
                    f"""WITH kept AS ({POSITION_UPSERT})
                        INSERT INTO commands (id, kind, target, payload, issued_by)
                        SELECT id, kind, target, payload::jsonb, issued_by
                        FROM unnest($6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[])
                             AS c (id, kind, target, payload, issued_by)
                        ON CONFLICT DO NOTHING""",
                    *_position_row(record, version),
                    [c.id for c in commands], [c.kind for c in commands], [c.agent for c in commands],
                    [b.decode() for b in bodies], [c.issued_by for c in commands],
                )  # fmt: skip
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise NotRecorded(f"{type(exc).__name__}: {exc}") from exc
        async with self.redis.pipeline(transaction=False) as pipe:
            for command, body in zip(commands, bodies, strict=True):
                pipe.xadd(command_stream(command.agent), {FIELD: body}, maxlen=COMMAND_STREAM_MAXLEN, approximate=True)
            await pipe.execute()

    # ---- the loops ----------------------------------------------------------------------------------------

    async def evaluate(self) -> FleetRisk:
        async with self.pool.acquire() as conn:
            self.risk = await fleet_risk(conn, self.limits.consecutive_losses)
        if self.crosschain is not None and self.crosschain.book is not None:
            self.risk.add_positions(self.crosschain.book.exposure())
        self.breached = self.risk.breaches(self.limits)
        for name in FleetLimits.model_fields:
            short = name.removesuffix("_usd").removeprefix("max_")
            self.metrics.breaches.labels(short).set(
                1 if any(b.split(":")[0].endswith(short) for b in self.breached) else 0
            )
        self.metrics.exposure.set(float(self.risk.total_usd))
        if self.crosschain is not None and self.crosschain.book is not None:
            for chain in self.config.crosschain.execution.agents:  # type: ignore[union-attr]
                self.metrics.crosschain_exposure.labels(chain).set(float(self.risk.crosschain_by_chain.get(chain, 0)))
            for state, count in self.crosschain.book.counts().items():
                self.metrics.crosschain_positions.labels(state).set(count)
        if self.crosschain is not None:
            self.metrics.crosschain_bridges(self.crosschain.engine, time.time())
        self.metrics.daily_pnl.set(float(self.risk.daily_net_usd))
        return self.risk

    async def grant_leases(self) -> bool:
        """One round: leases to every agent if no stop is engaged and every limit holds; True if granted."""
        await self.evaluate()
        self.granting = not self.emergency["engaged"] and not self.breached
        self.metrics.granting.set(1 if self.granting else 0)
        if not self.granting:
            return False
        for agent in await self.agents():
            grant = LeaseGrant(agent=agent, ttl_s=self.config.lease_ttl_s, chains=self.live_chains)
            await self.send(agent, grant, record=False)
        return True

    async def _lease_loop(self) -> None:
        interval = self.config.lease_ttl_s / 3
        while True:
            try:
                await self.grant_leases()
            except (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                reraise_if_cancelled()
                self.granting = False
                self.metrics.granting.set(0)
                log.warning("lease loop: %s (no leases granted this round)", exc)
            await asyncio.sleep(interval)

    async def _observe_loop(self) -> None:
        while True:
            try:
                await self._observe()
            except Exception:  # metrics only: never worth stopping for
                reraise_if_cancelled()
            await asyncio.sleep(1.0)

    async def _observe(self) -> None:
        self.metrics.bus_up.set(1 if self.ingest.connected else 0)
        for stream in (DURABLE_STREAM, BEST_EFFORT_STREAM):
            info = await self.redis.xinfo_groups(stream)
            for group in info:
                if group.get("name") in (GROUP, GROUP.encode()):
                    lag = group.get("lag") or 0
                    self.metrics.bus_pending.labels(stream).set(int(lag) + int(group.get("pending") or 0))
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT name, heartbeat_at, lease_expires_in_s FROM agents")
        now = dt.datetime.now(dt.UTC)
        for row in rows:
            if row["heartbeat_at"] is not None:
                age = (now - row["heartbeat_at"]).total_seconds()
                self.metrics.heartbeat_age.labels(row["name"]).set(age)
                self.metrics.lease_expires.labels(row["name"]).set(row["lease_expires_in_s"] - age)
        for kind, count in self.ingest.stats.committed.items():
            counter = self.metrics.committed.labels(kind)
            counter.inc(count - counter._value.get())

    async def _retention_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                cutoff = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=self.config.retention_days)
                async with self.pool.acquire() as conn:
                    dropped = await drop_partitions_before(conn, cutoff)
                    for table in ("gas_prices", "latency"):
                        await conn.execute(f"DELETE FROM {table} WHERE at < $1", cutoff)
                if dropped:
                    log.info("retention: dropped %s", ", ".join(dropped))
            await asyncio.sleep(RETENTION_EVERY_S)

    async def start(self) -> None:
        # No Redis call here: the ingest makes its groups and retries until Redis answers (a restart of Redis
        # beside the control plane's is a wait, never an exit).
        for name, loop in (
            ("ingest", self.ingest.run),
            ("lease", self._lease_loop),
            ("observe", self._observe_loop),
            ("retention", self._retention_loop),
            *([("crosschain", self.crosschain.run)] if self.crosschain is not None else []),
        ):
            self._tasks.append(asyncio.create_task(loop(), name=name))
