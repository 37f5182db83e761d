"""The streams → PostgreSQL: a consumer group, batched writes, ack after commit, idempotent by event id.

One consumer (the control plane is one process per fleet) reads both streams with XREADGROUP, writes
a batch in one transaction (INSERT ... ON CONFLICT DO NOTHING on the event id), and only after the
commit XACKs the entries (and XDELs the durable ones, so the durable stream holds only what is not yet
in PostgreSQL). A crash between commit and ack re-delivers entries that are already written: the
conflict clause skips them. On start, the consumer first re-reads its own pending entries (the ones a
killed predecessor had read but not acked). When Redis lost the group (restarted without its data),
the group is made again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from mevagent.bus.events import (
    BEST_EFFORT_STREAM,
    DURABLE_STREAM,
    FIELD,
    BlockClassified,
    CommandAck,
    CrossChainLegResult,
    Event,
    ExecutionOutcome,
    ExecutionSent,
    ExposureSnapshot,
    GasPrices,
    Heartbeat,
    Latency,
    OpportunityFound,
    OpportunitySkipped,
    ProvidersStatus,
    SandwichRiskSeen,
    TransactionReplaced,
    decode_event,
)
from mevagent.bus.publisher import reraise_if_cancelled
from mevcontrol.classifications import write_events as write_classifications
from mevcontrol.db import ensure_partitions

log = logging.getLogger(__name__)

GROUP = "control"
STREAMS = (DURABLE_STREAM, BEST_EFFORT_STREAM)


def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


# The opportunities of a batch in one statement (unnest of one array per column): its AFTER INSERT statement
# trigger (opportunity_hours, revision 0013) then runs once per batch, not once per opportunity as under
# executemany. A cycle's pools (text[] of any length) travel as JSON, arrays of arrays being rectangular.
OPPORTUNITIES_SQL = """INSERT INTO opportunities (event_id, found_at, agent, chain, strategy, opportunity_id, block,
       token, amount_in, amount_out, gas_limit, gas_price_wei, builder_payment_wei, token_usd_per_unit, notional_usd,
       profit_usd, gas_cost_usd, hops, pools, liquidated_user)
    SELECT e, f, a, c, s, o, b, t, ai, ao, gl, gp, bp, tu, nu, pu, gc, h, ARRAY(SELECT jsonb_array_elements_text(p)), l
    FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                $8::text[], $9::numeric[], $10::numeric[], $11::numeric[], $12::numeric[], $13::numeric[],
                $14::numeric[], $15::numeric[], $16::numeric[], $17::numeric[], $18::smallint[], $19::jsonb[],
                $20::text[]) AS r(e, f, a, c, s, o, b, t, ai, ao, gl, gp, bp, tu, nu, pu, gc, h, p, l)
    ON CONFLICT DO NOTHING"""


def _opportunity_columns(batch: list[Any]) -> list[list[Any]]:
    rows = [INSERTS[OpportunityFound][1](e) for e in batch]
    columns = [list(column) for column in zip(*rows, strict=True)]
    columns[18] = [_json(pools) for pools in columns[18]]
    return columns


def _unnest_insert(table: str, columns: tuple[tuple[str, str], ...]) -> str:
    """A batch's INSERT into `table` as one statement, one array per column (of its PostgreSQL type; a text[]
    column's arrays travel as JSON, arrays of arrays being rectangular), so a statement trigger runs once per
    batch: the execution timing's histograms (revision 0016) and the funnel's hours (0017) on executions, outcomes
    and skips."""
    names = ", ".join(name for name, _ in columns)
    aliases = [f"c{k}" for k in range(len(columns))]
    arrays = ", ".join(f"${k}::{'jsonb' if kind == 'text[]' else kind}[]" for k, (_, kind) in enumerate(columns, 1))
    values = ", ".join(
        f"ARRAY(SELECT jsonb_array_elements_text({alias}))" if kind == "text[]" else alias
        for alias, (_, kind) in zip(aliases, columns, strict=True)
    )
    return (f"INSERT INTO {table} ({names}) SELECT {values} FROM unnest({arrays}) AS r({', '.join(aliases)}) "
            "ON CONFLICT DO NOTHING")  # fmt: skip


T, TS, N = "text", "timestamptz", "numeric"
BATCHED: dict[type[Event], tuple[str, tuple[tuple[str, str], ...]]] = {
    ExecutionSent: ("executions", (
        ("event_id", "uuid"), ("at", TS), ("agent", T), ("chain", T), ("strategy", T), ("opportunity_id", T),
        ("block", "bigint"), ("tx_hashes", "text[]"), ("found_at", TS),
    )),
    ExecutionOutcome: ("outcomes", (
        ("event_id", "uuid"), ("at", TS), ("agent", T), ("chain", T), ("strategy", T), ("opportunity_id", T),
        ("block", "bigint"), ("status", T), ("token", T), ("amount_in", N), ("realized_profit", N),
        ("gas_paid_wei", N), ("token_usd_per_unit", N), ("native_usd_per_wei", N), ("realized_profit_usd", N),
        ("gas_cost_usd", N), ("tx_hashes", "text[]"), ("included_block", "bigint"), ("reason", T),
        ("found_at", TS), ("settled_at", TS), ("sandwich_exposure", N), ("sandwich_exposure_usd", N),
        ("builder_paid_wei", N), ("builder_paid_usd", N),
    )),
    OpportunitySkipped: ("skips", (
        ("event_id", "uuid"), ("at", TS), ("agent", T), ("chain", T), ("strategy", T), ("opportunity_id", T),
        ("block", "bigint"), ("limit_name", T), ("reason", T),
    )),
}  # fmt: skip
BATCHED_SQL = {kind: _unnest_insert(table, columns) for kind, (table, columns) in BATCHED.items()}


def _batched_columns(kind: type[Event], batch: list[Any]) -> list[list[Any]]:
    """The rows of `batch` (INSERTS' row of each event) as one list per column, text[] columns as JSON."""
    arrays = [k for k, (_, column) in enumerate(BATCHED[kind][1]) if column == "text[]"]
    columns = [list(column) for column in zip(*(INSERTS[kind][1](e) for e in batch), strict=True)]
    for k in arrays:
        columns[k] = [_json(value) for value in columns[k]]
    return columns


# Per event kind: the INSERT and the row of one event. Upserts (agents) keep the newest report.
INSERTS: dict[type[Event], tuple[str, Callable[[Any], tuple[Any, ...]]]] = {
    OpportunityFound: (
        """INSERT INTO opportunities (event_id, found_at, agent, chain, strategy, opportunity_id, block, token,
           amount_in, amount_out, gas_limit, gas_price_wei, builder_payment_wei, token_usd_per_unit, notional_usd,
           profit_usd, gas_cost_usd, hops, pools, liquidated_user)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20) ON CONFLICT DO NOTHING""",
        lambda e: (
            e.id, _ts(e.at), e.agent, e.chain, e.strategy, e.opportunity_id, e.block, e.token, e.amount_in,
            e.amount_out, e.gas_limit, e.gas_price_wei, e.builder_payment_wei, e.token_usd_per_unit,
            e.notional_usd, e.profit_usd, e.gas_cost_usd, e.hops, list(e.pools), e.liquidated_user,
        ),
    ),
    OpportunitySkipped: (
        """INSERT INTO skips (event_id, at, agent, chain, strategy, opportunity_id, block, limit_name, reason)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING""",
        lambda e: (e.id, _ts(e.at), e.agent, e.chain, e.strategy, e.opportunity_id, e.block, e.limit, e.reason),
    ),
    ExecutionSent: (
        """INSERT INTO executions (event_id, at, agent, chain, strategy, opportunity_id, block, tx_hashes, found_at)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING""",
        lambda e: (
            e.id, _ts(e.at), e.agent, e.chain, e.strategy, e.opportunity_id, e.block, list(e.tx_hashes),
            _ts(e.found_at),
        ),
    ),
    ExecutionOutcome: (
        """INSERT INTO outcomes (event_id, at, agent, chain, strategy, opportunity_id, block, status, token,
           amount_in, realized_profit, gas_paid_wei, token_usd_per_unit, native_usd_per_wei, realized_profit_usd,
           gas_cost_usd, tx_hashes, included_block, reason, found_at, settled_at, sandwich_exposure,
           sandwich_exposure_usd, builder_paid_wei, builder_paid_usd)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25)
           ON CONFLICT DO NOTHING""",
        lambda e: (
            e.id, _ts(e.at), e.agent, e.chain, e.strategy, e.opportunity_id, e.block, e.status, e.token,
            e.amount_in, e.realized_profit, e.gas_paid_wei, e.token_usd_per_unit, e.native_usd_per_wei,
            e.realized_profit_usd, e.gas_cost_usd, list(e.tx_hashes), e.included_block, e.reason,
            _ts(e.found_at), _ts(e.settled_at), e.sandwich_exposure, e.sandwich_exposure_usd, e.builder_paid_wei,
            e.builder_paid_usd,
        ),
    ),
    GasPrices: (
        """INSERT INTO gas_prices (event_id, at, agent, chain, block, base_fee_wei, priority_fee_p50_wei,
           priority_fee_p90_wei, priority_fee_p99_wei) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING""",
        lambda e: (
            e.id, _ts(e.at), e.agent, e.chain, e.block, e.base_fee_wei, e.priority_fee_p50_wei,
            e.priority_fee_p90_wei, e.priority_fee_p99_wei,
        ),
    ),
    Latency: (
        """INSERT INTO latency (event_id, at, agent, chain, rpc_round_trip_s, stages)
           VALUES ($1,$2,$3,$4,$5,$6::jsonb) ON CONFLICT DO NOTHING""",
        lambda e: (e.id, _ts(e.at), e.agent, e.chain, e.rpc_round_trip_s, _json(e.stages)),
    ),
    TransactionReplaced: (
        """INSERT INTO transaction_actions (event_id, at, agent, command_id, chain, tx_hash, action, ok, nonce,
           replacement_hash, max_fee_per_gas_wei, max_priority_fee_per_gas_wei, detail, receipt, included_block)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) ON CONFLICT DO NOTHING""",
        lambda e: (
            e.id, _ts(e.at), e.agent, e.command_id, e.chain, e.tx_hash, e.action, e.ok, e.nonce,
            e.replacement_hash, e.max_fee_per_gas_wei, e.max_priority_fee_per_gas_wei, e.detail, e.receipt,
            e.included_block,
        ),
    ),
    SandwichRiskSeen: (
        """INSERT INTO sandwich_risks (event_id, seen_at, agent, chain, tx_hash, sender, router, pool, token_in,
           token_out, amount_in, amount_out, amount_limit, price_impact_bps, slippage_bps, profit_token, max_profit,
           frontrun_amount_in, profit_usd_per_unit)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19) ON CONFLICT DO NOTHING""",
        lambda e: (
            e.id, _ts(e.at), e.agent, e.chain, e.tx_hash, e.sender, e.router, e.pool, e.token_in, e.token_out,
            e.amount_in, e.amount_out, e.limit, e.price_impact_bps, e.slippage_bps, e.profit_token, e.max_profit,
            e.frontrun_amount_in, e.profit_usd_per_unit,
        ),
    ),
    CommandAck: (
        """INSERT INTO command_acks (event_id, at, agent, command_id, command, ok, detail)
           VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING""",
        lambda e: (e.id, _ts(e.at), e.agent, e.command_id, e.command, e.ok, e.detail),
    ),
    Heartbeat: (
        """INSERT INTO agents AS a (name, api_url, chains, live_chains, heartbeat_at, lease_fresh, lease_expires_in_s,
           emergency_stop, spool_pending, dropped, peers, beacon_peers)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11::jsonb,$12::jsonb)
           ON CONFLICT (name) DO UPDATE SET api_url = EXCLUDED.api_url, chains = EXCLUDED.chains,
           live_chains = EXCLUDED.live_chains, heartbeat_at = EXCLUDED.heartbeat_at,
           lease_fresh = EXCLUDED.lease_fresh, lease_expires_in_s = EXCLUDED.lease_expires_in_s,
           emergency_stop = EXCLUDED.emergency_stop, spool_pending = EXCLUDED.spool_pending,
           dropped = EXCLUDED.dropped, peers = EXCLUDED.peers, beacon_peers = EXCLUDED.beacon_peers
           WHERE a.heartbeat_at IS NULL OR a.heartbeat_at <= EXCLUDED.heartbeat_at""",
        lambda e: (
            e.agent, e.api_url, list(e.chains), list(e.live_chains), _ts(e.at), e.lease_fresh,
            e.lease_expires_in_s, e.emergency_stop, e.spool_pending, e.dropped, _json(e.peers), _json(e.beacon_peers),
        ),
    ),
    CrossChainLegResult: (
        """INSERT INTO crosschain_legs (event_id, at, agent, command_id, position_id, leg, chain, status, token_in,
           token_out, amount_in, amount_out, gas_paid_wei, tx_hash, reason)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) ON CONFLICT DO NOTHING""",
        lambda e: (
            e.id, _ts(e.at), e.agent, e.command_id, e.position_id, e.leg, e.chain, e.status, e.token_in,
            e.token_out, e.amount_in, e.amount_out, e.gas_paid_wei, e.tx_hash, e.reason,
        ),
    ),
    ExposureSnapshot: (
        """INSERT INTO agents AS a (name, exposure_at, exposure_total_usd, exposure_by_chain, exposure_by_token,
           daily_pnl_usd, in_flight, paused_strategies) VALUES ($1,$2,$3,$4::jsonb,$5::jsonb,$6::jsonb,$7,$8)
           ON CONFLICT (name) DO UPDATE SET exposure_at = EXCLUDED.exposure_at,
           exposure_total_usd = EXCLUDED.exposure_total_usd, exposure_by_chain = EXCLUDED.exposure_by_chain,
           exposure_by_token = EXCLUDED.exposure_by_token, daily_pnl_usd = EXCLUDED.daily_pnl_usd,
           in_flight = EXCLUDED.in_flight, paused_strategies = EXCLUDED.paused_strategies
           WHERE a.exposure_at IS NULL OR a.exposure_at <= EXCLUDED.exposure_at""",
        lambda e: (
            e.agent, _ts(e.at), e.total_usd, _json(e.by_chain), _json(e.by_token), _json(e.daily_pnl_usd),
            e.in_flight, list(e.paused_strategies),
        ),
    ),
}  # fmt: skip


@dataclass
class IngestStats:
    committed: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # events by kind
    batches: int = 0
    invalid: int = 0  # entries that did not validate (acked and counted: retrying cannot fix them)
    last_commit_s: float = 0.0
    lag_s: float = 0.0  # now - the newest committed event's `at`, at the last commit
    # bus → committed delays (seconds) of the events of the last batches, for the bench and /api/health/latency
    delays: list[float] = field(default_factory=list)


RECENT_IDS = 20_000  # event ids remembered after their commit (seconds of the busiest bus)


class Ingest:
    def __init__(
        self,
        redis: Redis,
        pool: asyncpg.Pool,
        *,
        consumer: str = "control-1",
        batch: int = 2000,
        block_ms: int = 100,
        on_commit: Callable[[list[Event]], None] | None = None,
        on_read: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.redis = redis
        self.pool = pool
        self.consumer = consumer
        self.batch = batch
        self.block_ms = block_ms
        self.on_commit = on_commit
        self.on_read = on_read  # each batch as decoded, before it is written (what may not wait for the commit)
        # Ids committed lately: an event that reaches the stream twice (an agent's urgent ack, sent early and
        # again from its spool) is handed to on_read/on_commit once. The table's ON CONFLICT keeps it once.
        self._recent: set[str] = set()
        self._recent_order: deque[str] = deque()
        self.stats = IngestStats()
        self.connected = False
        self._days: set[dt.date] = set()
        self._keep_delays = 0
        self._stopping = False

    def stop(self) -> None:
        """End `run` after the batch in hand (a cancellation inside redis-py can be lost; this cannot)."""
        self._stopping = True

    def keep_delays(self, count: int) -> None:
        """Record bus → committed delays of the next `count` events (bench)."""
        self._keep_delays = count

    async def ensure_groups(self) -> None:
        for stream in STREAMS:
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def run(self) -> None:
        failures = 0
        backlog = True  # first our own pending entries (read by a predecessor, never acked)
        grouped = False  # the groups are made here, not before: Redis may be down when the control plane starts
        while not self._stopping:
            try:
                if not grouped or failures:
                    await self.ensure_groups()
                    grouped = True
                entries = await self._read("0" if backlog else ">")
                self.connected = True
                failures = 0
                if backlog and not entries:
                    backlog = False
                    continue
                if entries:
                    await self._commit(entries)
            except (RedisError, OSError) as exc:
                reraise_if_cancelled()
                if "NOGROUP" in str(exc):
                    log.warning("ingest: the consumer group is gone (Redis lost its data?); making it again")
                elif failures == 0:
                    log.warning("ingest: Redis: %s; retrying", exc)
                self.connected = False
                failures += 1
                backlog = True
                await asyncio.sleep(min(1.0, 0.05 * 2**failures))
            except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError) as exc:
                # Not acked: the same entries come again from our pending list.
                log.warning("ingest: PostgreSQL: %s; retrying the batch", exc)
                failures += 1
                backlog = True
                await asyncio.sleep(min(2.0, 0.1 * 2**failures))

    async def _read(self, start: str) -> list[tuple[str, str, bytes]]:
        answer = await self.redis.xreadgroup(
            GROUP,
            self.consumer,
            dict.fromkeys(STREAMS, start),
            count=self.batch,
            block=None if start == "0" else self.block_ms,
        )
        out: list[tuple[str, str, bytes]] = []
        for stream, entries in answer or ():
            name = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in entries:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                raw = (fields or {}).get(FIELD.encode()) or (fields or {}).get(FIELD) or b""
                out.append((name, eid, raw))
        return out

    async def _commit(self, entries: list[tuple[str, str, bytes]]) -> None:
        events: list[Event] = []
        for _stream, _eid, raw in entries:
            try:
                events.append(decode_event(raw))
            except (ValueError, ValidationError):
                self.stats.invalid += 1
        events = self._unseen(events)
        if self.on_read is not None and events:
            self.on_read(events)
        await self.write(events)
        self._remember(events)  # after the commit: a batch retried after a failed one is written again
        by_stream: dict[str, list[str]] = defaultdict(list)
        for stream, eid, _raw in entries:
            by_stream[stream].append(eid)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xack(stream, GROUP, *ids)
                if stream == DURABLE_STREAM:
                    pipe.xdel(stream, *ids)
            await pipe.execute()
        if self.on_commit is not None and events:
            self.on_commit(events)

    def _unseen(self, events: list[Event]) -> list[Event]:
        """`events` without those committed lately or repeated in this batch."""
        seen: set[str] = set()
        out = []
        for e in events:
            if e.id not in self._recent and e.id not in seen:
                seen.add(e.id)
                out.append(e)
        return out

    def _remember(self, events: list[Event]) -> None:
        for e in events:
            self._recent.add(e.id)
            self._recent_order.append(e.id)
        while len(self._recent_order) > RECENT_IDS:
            self._recent.discard(self._recent_order.popleft())

    async def write(self, events: Iterable[Event]) -> None:
        """Write `events` in one transaction (each id at most once, whatever was written before)."""
        groups: dict[type[Event], list[Event]] = defaultdict(list)
        for event in events:
            groups[type(event)].append(event)
        partitioned = (OpportunityFound, OpportunitySkipped, SandwichRiskSeen)  # mevcontrol.db.PARTITIONED
        days = {_ts(e.at).date() for kind in partitioned for e in groups.get(kind, ())}
        started = time.perf_counter()
        async with self.pool.acquire() as conn:
            if days - self._days:
                await ensure_partitions(conn, days - self._days)
                self._days |= days
            async with conn.transaction():
                if ExecutionSent in groups or ExecutionOutcome in groups:
                    # The history's one writer (revision 0019: its tables' triggers take the same lock), taken
                    # before any insert so that two batches redelivering the same event ids cannot wait for each
                    # other: a second writer waits here for this one's commit, then pairs with its rows.
                    await conn.execute("SELECT lock_history_writer()")
                for kind, batch in groups.items():
                    if kind is BlockClassified:  # several tables per event (mevcontrol.classifications)
                        await write_classifications(conn, batch)  # type: ignore[arg-type]
                        continue
                    if kind is ProvidersStatus:  # a snapshot kept in memory (mevcontrol.flashloans), no table
                        continue
                    if kind is OpportunityFound:
                        await conn.execute(OPPORTUNITIES_SQL, *_opportunity_columns(batch))
                        continue
                    if kind in BATCHED:
                        await conn.execute(BATCHED_SQL[kind], *_batched_columns(kind, batch))
                        continue
                    sql, row = INSERTS[kind]
                    if kind in (Heartbeat, ExposureSnapshot):
                        batch = _newest_per_agent(batch)
                    await conn.executemany(sql, [row(e) for e in batch])
        now = time.time()
        self.stats.batches += 1
        self.stats.last_commit_s = time.perf_counter() - started
        newest = max((e.at for g in groups.values() for e in g), default=None)
        if newest is not None:
            self.stats.lag_s = max(0.0, now - newest)
        for kind, batch in groups.items():
            self.stats.committed[kind.model_fields["kind"].default] += len(batch)
            if self._keep_delays > 0:
                take = batch[: self._keep_delays]
                self.stats.delays.extend(now - e.at for e in take)
                self._keep_delays -= len(take)


def _newest_per_agent(events: list[Event]) -> list[Event]:
    newest: dict[str, Event] = {}
    for event in events:
        if event.agent not in newest or newest[event.agent].at <= event.at:
            newest[event.agent] = event
    return list(newest.values())
