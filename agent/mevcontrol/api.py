"""The operators' URLs, as written: :8908 (risk manager), :8080 (dashboard API), :8900 (relays), :8903
(flashloans: mevcontrol.flashloans).

Every route needs a bearer token of a configured operator except GET /health and GET /openapi.json;
POSTs need the `operator` role (a `viewer` reads only). Requests are rate limited per token (per
address before authentication). A bad body or query is a 400 naming the field, refused before anything
changes; an unexpected error is a 500 without a traceback (logged). TLS when the listen section names a
certificate. `ROUTES` is the one table the routers and the OpenAPI document are built from.
"""

from __future__ import annotations

import asyncio
import bisect
import csv
import datetime as dt
import functools
import hashlib
import hmac
import io
import itertools
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

# One reading of request bodies for the agent's API and the control plane's: the same 400s naming the fields.
from mevagent.api.app import Refused, refused_by, single_query
from mevagent.api.app import read_body as body_of
from mevagent.api.models import GasPatch, ProfitPatch
from mevcontrol import flashloans
from mevcontrol.competition import SharedReports
from mevcontrol.config import ControlConfig, OperatorConfig
from mevcontrol.crosschain import CrossChainService
from mevcontrol.inflight import InFlight
from mevcontrol.models import (
    AgentLimits,
    CompetitionQuery,
    DailyQuery,
    EnableBody,
    FleetLimitsPatch,
    NoBody,
    SandwichesQuery,
    StopBody,
    StuckActionBody,
    UnwindBody,
    WindowQuery,
)
from mevcontrol.operations import Conflict, Forbidden, Operations, audit
from mevcontrol.sandwiches import sandwiches
from mevcontrol.service import Control
from mevcontrol.stuck import SharedStuck
from mevcontrol.stuck import act as stuck_act

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
MAX_BODY = 64 * 1024
OPS: web.AppKey[Operations] = web.AppKey("ops", Operations)
LISTENER: web.AppKey[str] = web.AppKey("listener", str)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, default=str), status=status, content_type="application/json")


def _error(status: int, message: str, fields: list[str] | None = None) -> web.Response:
    return _json({"error": message, "fields": fields or []}, status)


def query_of(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(single_query(request))
    except ValidationError as exc:
        raise refused_by(exc) from None


def operator_of(request: web.Request) -> OperatorConfig:
    return request["operator"]


# ---- :8908 risk manager -------------------------------------------------------------------------------


async def config_risk(request: web.Request) -> web.Response:
    changes = (await body_of(request, FleetLimitsPatch)).model_dump(exclude_unset=True, exclude_none=True)
    if not changes:
        raise Refused(400, "body: name at least one limit", ["body"])
    try:
        status, answer = await request.app[OPS].set_fleet_limits(changes, operator_of(request).name)
    except ValidationError as exc:
        raise refused_by(exc) from None
    return _json(answer, status)


async def config_gas(request: web.Request) -> web.Response:
    body = (await body_of(request, GasPatch)).model_dump(exclude_unset=True)
    return _json(await request.app[OPS].forward("/config/gas", body, operator_of(request).name))


async def config_profit(request: web.Request) -> web.Response:
    body = (await body_of(request, ProfitPatch)).model_dump(exclude_unset=True)
    return _json(await request.app[OPS].forward("/config/profit", body, operator_of(request).name))


async def limits_set(request: web.Request) -> web.Response:
    changes = (await body_of(request, AgentLimits)).changes.model_dump(exclude_unset=True, exclude_none=True)
    if not changes:
        raise Refused(400, "changes: name at least one limit", ["changes"])
    return _json(await request.app[OPS].agent_limits(changes, operator_of(request).name))


# What each path parameter may be: the handlers check these, and the OpenAPI documents declare them.
PATH_PATTERNS = {
    # ASCII only, as the bus's Name (str.isalnum() also takes "Å", which the command then refused: a 500).
    "name": r"^[A-Za-z][A-Za-z0-9_-]{0,31}$",
    "id": r"^[0-9a-f]{32}$",
    "tx": r"^0x[0-9a-fA-F]{64}$",
}


def _path_param(request: web.Request, name: str, what: str) -> str:
    value = request.match_info[name]
    if not re.fullmatch(PATH_PATTERNS[name], value):
        raise Refused(400, f"{name}: not {what}", [name])
    return value


def _strategy_name(request: web.Request) -> str:
    return _path_param(request, "name", "a strategy name").lower()


async def strategy_pause(request: web.Request) -> web.Response:
    await body_of(request, NoBody)
    return _json(await request.app[OPS].pause(_strategy_name(request), operator_of(request).name, resume=False))


async def strategy_resume(request: web.Request) -> web.Response:
    await body_of(request, NoBody)
    return _json(await request.app[OPS].pause(_strategy_name(request), operator_of(request).name, resume=True))


async def emergency_stop(request: web.Request) -> web.Response:
    body = await body_of(request, StopBody)
    return _json(await request.app[OPS].emergency_stop(body.reason, operator_of(request).name))


async def emergency_resume(request: web.Request) -> web.Response:
    await body_of(request, NoBody)
    status, answer = await request.app[OPS].request_resume(operator_of(request).name)
    return _json(answer, status)


async def approvals(request: web.Request) -> web.Response:
    return _json({"pending": await request.app[OPS].pending()})


async def approve(request: web.Request) -> web.Response:
    await body_of(request, NoBody)
    approval = _path_param(request, "id", "an approval id")
    try:
        return _json(await request.app[OPS].approve(approval, operator_of(request).name))
    except KeyError:
        raise Refused(404, f"id: no approval {approval}", ["id"]) from None
    except Forbidden as exc:
        raise Refused(403, str(exc)) from None
    except Conflict as exc:
        raise Refused(409, str(exc), ["id"]) from None


async def exposure(request: web.Request) -> web.Response:
    control = request.app[OPS].control
    risk = await control.evaluate()
    return _json(
        {
            **risk.as_json(),
            "limits": control.limits.model_dump(),
            "breached": control.breached,
            "leases_granted": control.granting,
            "emergency_stop": control.emergency,
            "live_chains": list(control.live_chains),
        }
    )


# ---- :8080 dashboard API ----------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    control = request.app[OPS].control
    db = True
    try:
        async with control.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
    except Exception:
        db = False
    ok = db and control.ingest.connected
    return _json(
        {"status": "ok" if ok else "degraded", "bus": control.ingest.connected, "database": db,
         "uptime_s": time.monotonic() - control.started},
        200 if ok else 503,
    )  # fmt: skip


async def strategies_enable(request: web.Request) -> web.Response:
    body = await body_of(request, EnableBody)
    status, answer = await request.app[OPS].set_live(body.chain, body.live, operator_of(request).name)
    return _json(answer, status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def coalesced(handler: Callable[[web.Request], Awaitable[web.Response]]) -> Handler:
    """Identical reads in flight at once (same listener, path and query string) share one computation: the
    first starts it, those arriving before it ends get its answer (a history read from a snapshot at most one
    query older than they are). 100 dashboards polling the same report cost one query, not 100 queued on the
    pool (bench/control_api.py). For the history routes only: their answer does not depend on who asks."""
    inflight: InFlight[tuple[int, str, str], tuple[bytes, int, str]] = InFlight()

    async def render(request: web.Request) -> tuple[bytes, int, str]:
        response = await handler(request)
        assert isinstance(response, web.Response) and isinstance(response.body, bytes)
        return response.body, response.status, response.content_type

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        key = (id(request.app), request.path, request.query_string)
        body, status, content_type = await inflight.share(key, lambda: render(request))
        return web.Response(body=body, status=status, content_type=content_type)

    return wrapper


async def _fetch(request: web.Request, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with request.app[OPS].control.pool.acquire() as conn:
        return [dict(r) for r in await conn.fetch(sql, *args)]


# The day's sums per chain, strategy and token from outcome_days (revision 0018: kept by the outcomes' trigger, the
# same sums as summing the day's settled outcomes; that took 0.5-0.8 s a request at 1,000,000 executions with
# every client its own day, bench/control_api.py).
DAILY_SQL = """SELECT chain, strategy, token, executions, landed, reverted, failed, profit_units, gas_wei, profit_usd,
          gas_usd, net_usd FROM outcome_days WHERE day = $1 ORDER BY chain, strategy, token"""


@coalesced
async def reports_daily(request: web.Request) -> web.Response:
    query = query_of(request, DailyQuery)
    day = query.day or dt.datetime.now(dt.UTC).date()
    rows = await _fetch(request, DAILY_SQL, day)
    for row in rows:
        for key in ("profit_units", "gas_wei", "profit_usd", "gas_usd", "net_usd"):
            row[key] = str(row[key])
    if query.format == "csv":
        out = io.StringIO()
        columns = ["chain", "strategy", "token", "executions", "landed", "reverted", "failed", "profit_units",
                   "gas_wei", "profit_usd", "gas_usd", "net_usd"]  # fmt: skip
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        return web.Response(text=out.getvalue(), content_type="text/csv")
    fleet = sum((float(r["net_usd"]) for r in rows), 0.0)
    return _json({"day": day.isoformat(), "rows": rows, "fleet_net_usd_approx": fleet})


@coalesced
async def transactions_stuck(request: web.Request) -> web.Response:
    query = query_of(request, WindowQuery)
    after = request.app[OPS].config.stuck_after_blocks
    rows = await request.app[STUCK].rows(request.app[OPS].control.pool, after, query.hours)
    return _json({"after_blocks": after, "hours": query.hours, "stuck": rows})


# A replace/cancel looks for the transaction among the stuck of the last week.
ACTION_WINDOW_HOURS = 24 * 7


def _tx_hash(request: web.Request) -> str:
    return _path_param(request, "tx", "a transaction hash (0x and 64 hex digits)").lower()


async def _stuck_action(request: web.Request, action: Literal["replace", "cancel"]) -> web.Response:
    body = await body_of(request, StuckActionBody)
    tx = _tx_hash(request)
    answer = await stuck_act(
        request.app[OPS], tx, action, body.bump_percent, ACTION_WINDOW_HOURS, operator_of(request).name
    )
    if answer is None:
        raise Refused(404, f"tx: {tx} is not a stuck transaction (unknown, settled, or not behind yet)", ["tx"])
    status, result = answer
    return _json(result, status)


async def transaction_replace(request: web.Request) -> web.Response:
    return await _stuck_action(request, "replace")


async def transaction_cancel(request: web.Request) -> web.Response:
    return await _stuck_action(request, "cancel")


# The newest row per chain (gas prices) or per agent and chain (latency), one index probe per key: the keys
# are walked with a recursive skip scan over the (chain, at) / (agent, chain, at) index. DISTINCT ON sorted
# the whole table (30 days of a report per chain and minute: 0.5-1.2 s a request; bench/control_api.py).
GAS_PRICES_SQL = """WITH RECURSIVE chains AS (
        (SELECT chain FROM gas_prices ORDER BY chain LIMIT 1)
        UNION ALL
        SELECT (SELECT g.chain FROM gas_prices g WHERE g.chain > c.chain ORDER BY g.chain LIMIT 1)
        FROM chains c WHERE c.chain IS NOT NULL
    )
    SELECT g.* FROM chains c CROSS JOIN LATERAL (
        SELECT chain, agent, block, at, base_fee_wei, priority_fee_p50_wei, priority_fee_p90_wei, priority_fee_p99_wei
        FROM gas_prices WHERE chain = c.chain ORDER BY at DESC LIMIT 1
    ) g WHERE c.chain IS NOT NULL ORDER BY g.chain"""
LATENCY_SQL = """WITH RECURSIVE keys AS (
        (SELECT agent, chain FROM latency ORDER BY agent, chain LIMIT 1)
        UNION ALL
        SELECT n.agent, n.chain FROM keys k CROSS JOIN LATERAL (
            SELECT l.agent, l.chain FROM latency l WHERE (l.agent, l.chain) > (k.agent, k.chain)
            ORDER BY l.agent, l.chain LIMIT 1
        ) n
    )
    SELECT l.* FROM keys k CROSS JOIN LATERAL (
        SELECT agent, chain, at, rpc_round_trip_s, stages FROM latency WHERE agent = k.agent AND chain = k.chain
        ORDER BY at DESC LIMIT 1
    ) l ORDER BY l.agent, l.chain"""


@coalesced
async def gas_prices(request: web.Request) -> web.Response:
    rows = await _fetch(request, GAS_PRICES_SQL)
    for row in rows:
        for key in ("base_fee_wei", "priority_fee_p50_wei", "priority_fee_p90_wei", "priority_fee_p99_wei"):
            row[key] = str(row[key])
    return _json({"chains": rows})


# At most this many keys in ClosedHours' merged windows (~150 bytes each; a 100-hour timing window holds ~1,400).
MERGED_KEYS = 250_000


Counts = dict[tuple[Any, ...], int]


def _add(counts: Counts, rows: Iterable[Sequence[Any]]) -> Counts:
    """`counts` plus `rows` (each: its key's columns, then n)."""
    for row in rows:
        key = tuple(row[:-1])
        counts[key] = counts.get(key, 0) + row[-1]
    return counts


class ClosedHours:
    """What a query answered for [start, end), kept with the change count of the hours it reads (rollup_changes,
    revision 0018: every statement that changes a rollup's rows of an hour adds one to it, in its own
    transaction). The counts only grow, so while their sum over those hours is the same, no row of them changed
    and the kept answer is the answer; a late execution, outcome, skip or opportunity, or retention, changes it
    and the query is read again. A query of the tables' rows of those hours may be kept too: the rows are only
    ever inserted (each insert changes its hour's rollup rows: an execution, a skip, an opportunity, an outcome
    by its settled_at and with its execution's pair) or dropped by retention with their hours'. The window routes
    read through it their closed hours (the merge of up to 744 hours of histograms, ~35,000 rows for 100 hours,
    was most of a request: bench/control_api.py) and their partial first hour from its next whole minute; only
    the open hours and the window's first minute from the tables. `rows` must run in a REPEATABLE READ
    transaction, so that the count and the rows it reads, and the caller's other reads, are of one snapshot."""

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._kept: dict[tuple[str, dt.datetime, dt.datetime], tuple[int, list[tuple[Any, ...]]]] = {}
        # The pieces the warmer keeps (mevcontrol.warm): held apart from `capacity`, so that warming never evicts
        # what requests read (their first hours, new every minute, would otherwise push the shared hours out, and
        # the warm set outgrows 512 pieces); bounded by the warm set itself, which the warmer replaces every hour.
        self._warm: set[tuple[str, dt.datetime, dt.datetime]] = set()
        self._pinned: dict[tuple[str, dt.datetime, dt.datetime], tuple[int, list[tuple[Any, ...]]]] = {}
        # Reads in flight, by key and change count: a request that needs the same rows at the same count waits for
        # them (100 windows started at once share their days' and last day's hours instead of each reading them).
        # Not an InFlight: the read runs on the asking request's own connection (inside its snapshot), so it
        # cannot outlive that request; a waiter whose reader was cancelled reads again itself.
        self._reading: dict[tuple[str, dt.datetime, dt.datetime, int], asyncio.Future[list[tuple[Any, ...]]]] = {}
        # The merged counts of a window's pieces at their change counts (each piece kept at its own).
        self._merged: dict[
            tuple[tuple[str, dt.datetime, dt.datetime, dt.datetime], ...], tuple[tuple[int, ...], Counts]
        ] = {}
        self._merged_keys = 0
        self.hits = 0
        self.reads = 0

    def kept(self, sql: str, start: dt.datetime, end: dt.datetime, changes: int) -> list[tuple[Any, ...]] | None:
        """`sql`'s rows for (start, end) if they are kept at `changes` (the sum of their hours' counts), else None."""
        key = (sql, start, end)
        pinned = self._pinned.get(key)
        kept = pinned if pinned is not None else self._kept.get(key)
        if kept is None or kept[0] != changes:
            return None
        self.hits += 1
        if pinned is None:
            self._kept[key] = self._kept.pop(key)  # last: the least recently used go first
        return kept[1]

    def kept_at(self, sql: str, start: dt.datetime, end: dt.datetime) -> int | None:
        """The change count `sql`'s rows for (start, end) are kept at, if they are (not a hit: the warmer asks)."""
        kept = self._pinned.get((sql, start, end)) or self._kept.get((sql, start, end))
        return None if kept is None else kept[0]

    def warm(self, keys: Iterable[tuple[str, dt.datetime, dt.datetime]]) -> None:
        """Keep `keys` (query, start, end) apart from `capacity` from now on, instead of the warm set before: the
        pieces of it already kept move over, those of the old set that are not in the new one are forgotten (no
        window of the warmed range reads them any more: the hour moved on)."""
        self._warm = set(keys)
        for key in [key for key in self._pinned if key not in self._warm]:
            del self._pinned[key]
        for key in [key for key in self._kept if key in self._warm]:
            self._pinned[key] = self._kept.pop(key)

    @property
    def warmed(self) -> int:
        """How many pieces of the warm set are kept."""
        return len(self._pinned)

    def holds(self, pieces: list[tuple[str, dt.datetime, dt.datetime, dt.datetime]]) -> bool:
        """Whether each piece is kept (at some change count)."""
        return all(
            (sql, start, end) in self._kept or (sql, start, end) in self._pinned for sql, start, end, _ in pieces
        )

    def merged(
        self, pieces: list[tuple[str, dt.datetime, dt.datetime, dt.datetime]], changes: tuple[int, ...]
    ) -> Counts | None:
        """The pieces' counts added up, if each piece is kept at its change count in `changes` (else None)."""
        key = tuple(pieces)
        merged = self._merged.get(key)
        if merged is not None and merged[0] == changes:
            self._merged[key] = self._merged.pop(key)
            return merged[1]
        counts: Counts = {}
        for (sql, start, end, _), n in zip(pieces, changes, strict=True):
            kept = self.kept(sql, start, end, n)
            if kept is None:
                return None
            _add(counts, kept)
        if key in self._merged:
            self._merged_keys -= len(self._merged.pop(key)[1])
        self._merged[key] = (changes, counts)
        self._merged_keys += len(counts)
        while self._merged_keys > MERGED_KEYS:
            self._merged_keys -= len(self._merged.pop(next(iter(self._merged)))[1])
        return counts

    async def rows(
        self, conn: Any, sql: str, start: dt.datetime, end: dt.datetime, changes: int
    ) -> list[tuple[Any, ...]]:
        """`sql`'s rows for ($1 start, $2 end), whose hours' change count is `changes` in the caller's snapshot:
        kept, or read (and kept) when one of those hours changed since."""
        kept = self.kept(sql, start, end, changes)
        if kept is not None:
            return kept
        key = (sql, start, end)
        flight = (*key, changes)
        reading = self._reading.get(flight)
        if reading is not None:  # the same rows at the same count: as good as kept
            try:
                rows = await asyncio.shield(reading)
            except asyncio.CancelledError:
                if not reading.cancelled():
                    raise  # this request was cancelled
                return await self.rows(conn, sql, start, end, changes)  # the one reading them was: read them here
            self.hits += 1
            return rows
        reading = self._reading[flight] = asyncio.get_running_loop().create_future()
        try:
            rows = [tuple(r) for r in await conn.fetch(sql, start, end)]
        except asyncio.CancelledError:
            reading.cancel()
            raise
        except Exception as exc:
            reading.set_exception(exc)
            reading.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._reading[flight]
        reading.set_result(rows)
        self.reads += 1
        if key in self._warm:
            self._pinned[key] = (changes, rows)
            return rows
        self._kept.pop(key, None)
        self._kept[key] = (changes, rows)
        while len(self._kept) > self.capacity:
            del self._kept[next(iter(self._kept))]
        return rows


CLOSED: web.AppKey[ClosedHours] = web.AppKey("closed_hours", ClosedHours)
# The stuck list's reads in flight, shared by windows (SharedStuck).
STUCK: web.AppKey[SharedStuck] = web.AppKey("stuck", SharedStuck)
# The competition reports' reads in flight, shared by windows (SharedReports; `coalesced` shares one query string's
# answer, rendered once).
COMPETITION: web.AppKey[SharedReports] = web.AppKey("competition", SharedReports)


@dataclass(frozen=True)
class Window:
    """A window from `since`: its rows from `since` to `minute` (its first whole minute) are read from the tables,
    from `minute` to `whole` (its first whole hour) kept, its hours from `whole` to `live` (the current hour, or
    the first whole one when that is later) kept from the rollups, and the rollups' hours from `live` on read."""

    since: dt.datetime
    minute: dt.datetime
    whole: dt.datetime
    live: dt.datetime

    @classmethod
    def of(cls, since: dt.datetime, now: dt.datetime | None = None) -> Window:
        """The window from `since` as of `now` (the clock's: a request's; the warmer names its own hour)."""
        hour = since.replace(minute=0, second=0, microsecond=0)
        whole = hour + dt.timedelta(hours=1)
        minute = since.replace(second=0, microsecond=0)
        minute = minute if minute == since else minute + dt.timedelta(minutes=1)
        current = (now or dt.datetime.now(dt.UTC)).replace(minute=0, second=0, microsecond=0)
        return cls(since, min(minute, whole), whole, max(whole, current))

    def pieces(self, rows_sql: str, hours_sql: str) -> list[tuple[str, dt.datetime, dt.datetime, dt.datetime]]:
        """The kept pieces, (query, start, end, the first hour whose change count it depends on): `rows_sql` from
        `minute` to `whole`, and `hours_sql` from `whole` to `live` in pieces that other windows share: up to the
        next quarter of a UTC day, each quarter up to the next midnight, each whole UTC day, and the last day's
        hours. When nothing is kept, a window of its own reads at most its first 5 hours' histograms (100 windows
        of 1-100 hours started at once: ~35,000 hours' rows each at 100 hours before; the days and quarters they
        share are read once, ClosedHours.rows)."""
        first = self.whole - dt.timedelta(hours=1)
        out = [(rows_sql, self.minute, self.whole, first)] if self.minute < self.whole else []
        start = self.whole
        for end in self._bounds():
            out.append((hours_sql, start, end, start))
            start = end
        return out

    def _bounds(self) -> list[dt.datetime]:
        """The ends of the pieces from `whole` to `live` (the last is `live`)."""
        bounds, at, quarter = [], self.whole, dt.timedelta(hours=6)
        while at < self.live:  # on the hour
            since_midnight = at - dt.datetime.combine(at.date(), dt.time(), dt.UTC)
            at = min(at + (quarter - since_midnight % quarter if since_midnight else dt.timedelta(days=1)), self.live)
            bounds.append(at)
        return bounds


async def opportunity_buckets(conn: Any, since: dt.datetime, closed: ClosedHours | None = None) -> list[Any]:
    """(bucket, n) of the opportunities found since `since`: net USD in 10 USD buckets from 0 to 100 (0: a
    loss, 11: 100 or more). The window's whole hours from opportunity_hours (revision 0013; its closed ones
    through `closed`), its partial first hour counted from the opportunities (at most an hour of rows instead of
    the window's)."""
    counts = await window_counts(
        conn, since, closed, OPPORTUNITY_ROWS_SQL, OPPORTUNITY_HOURS_SQL, OPPORTUNITY_BUCKETS_SQL
    )
    return [(bucket, n) for (bucket,), n in sorted(counts.items())]


async def window_counts(
    conn: Any, since: dt.datetime, closed: ClosedHours | None, rows_sql: str, hours_sql: str, open_sql: str
) -> Counts:
    """The counts since `since` by key, of one snapshot: the kept part (Window.pieces through `closed`) and the
    open part (`open_sql`: $1 since, $2 its first whole minute, $3 the live hours). One statement reads the open
    part and the change counts of the kept hours: when every piece is kept at its count, that is the whole request,
    and the pieces' merged counts are kept too (a REPEATABLE READ transaction with a count per piece was ~10 round
    trips, and merging a 100-hour window's pieces ~2,000 rows, per request); when a piece is not kept, or changed,
    the same statement and the pieces not kept at their counts are read in a REPEATABLE READ transaction."""
    window = Window.of(since)
    closed = closed or ClosedHours(0)
    pieces = window.pieces(rows_sql, hours_sql)
    first = pieces[0][3] if pieces else window.live

    async def read() -> tuple[tuple[int, ...], list[tuple[Any, ...]]]:
        """The pieces' change counts and the open part's rows."""
        records = await conn.fetch(_with_changes(open_sql), since, window.minute, window.live, first)
        changed = [(r[0], r[-1]) for r in records if r[0] is not None]
        changes = tuple(sum(n for hour, n in changed if since_hour <= hour < end) for *_, end, since_hour in pieces)
        return changes, [tuple(r)[1:] for r in records if r[0] is None]

    if closed.holds(pieces):  # else the transaction reads them at once
        changes, open_rows = await read()
        kept = closed.merged(pieces, changes)
        if kept is not None:
            return _add(dict(kept), open_rows)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        changes, open_rows = await read()
        counts: Counts = {}
        for (sql, start, end, _), n in zip(pieces, changes, strict=True):
            _add(counts, await closed.rows(conn, sql, start, end, n))
        return _add(counts, open_rows)


@functools.cache
def _with_changes(open_sql: str) -> str:
    """`open_sql`'s rows after a NULL, and the change counts (revision 0018's rollup_changes) of the hours from $4
    to $3 as (hour, NULLs..., n)."""
    keys = {OPPORTUNITY_BUCKETS_SQL: 1, FUNNEL_SQL: 2, EXECUTION_TIMING_SQL: 3}[open_sql]
    nulls = "NULL, " * keys
    return f"""SELECT NULL::timestamptz AS changed, o.* FROM ({open_sql}) o
        UNION ALL SELECT hour, {nulls}n FROM rollup_changes WHERE hour >= $4 AND hour < $3"""


OPPORTUNITY_HOURS_SQL = """SELECT bucket, sum(n)::bigint FROM opportunity_hours WHERE hour >= $1 AND hour < $2
    GROUP BY bucket"""
OPPORTUNITY_ROWS_SQL = """SELECT width_bucket(profit_usd - gas_cost_usd, 0, 100, 10) AS bucket, count(*) AS n
    FROM opportunities WHERE found_at >= $1 AND found_at < $2 GROUP BY 1"""
OPPORTUNITY_BUCKETS_SQL = f"""SELECT bucket, sum(n)::bigint AS n FROM (
        SELECT bucket, n FROM opportunity_hours WHERE hour >= $3 UNION ALL {OPPORTUNITY_ROWS_SQL}
    ) counted GROUP BY bucket"""


# The funnel's counts by stage and key (revision 0017): the window's whole hours from funnel_hours, its partial
# first hour counted from the rows. Counting the window's skips, outcomes and executions (up to 140,000 each at
# 1,000,000 executions) made the funnel's p99 4.5 s at 100 clients each asking its own window (bench/control_api.py).
# The hours' sums from $1 to $2.
FUNNEL_HOURS_SQL = """SELECT stage, key, sum(n)::bigint FROM funnel_hours WHERE hour >= $1 AND hour < $2
    GROUP BY stage, key"""
# The rows' counts from $1 to $2 (a part of an hour).
FUNNEL_ROWS_SQL = """SELECT 'sent' AS stage, '' AS key, count(*) AS n FROM executions WHERE at >= $1 AND at < $2
        UNION ALL
        SELECT 'outcome', status, count(*) FROM outcomes WHERE settled_at >= $1 AND settled_at < $2 GROUP BY status
        UNION ALL
        SELECT 'skip', limit_name, count(*) FROM skips WHERE at >= $1 AND at < $2 GROUP BY limit_name"""
# ... and with the open hours (from $3).
FUNNEL_SQL = f"""SELECT stage, key, sum(n)::bigint AS n FROM (
        SELECT stage, key, n FROM funnel_hours WHERE hour >= $3 UNION ALL {FUNNEL_ROWS_SQL}
    ) counted GROUP BY stage, key"""


async def funnel_counts(conn: Any, since: dt.datetime, closed: ClosedHours | None = None) -> dict[str, dict[str, int]]:
    """{stage: {key: n}} since `since`: 'sent' {'': executions}, 'outcome' {status: n}, 'skip' {limit: n}, keys in
    order; what counts none is left out. The closed hours through `closed`."""
    merged = await window_counts(conn, since, closed, FUNNEL_ROWS_SQL, FUNNEL_HOURS_SQL, FUNNEL_SQL)
    counts: dict[str, dict[str, int]] = {}
    for (stage, key), n in sorted(merged.items()):
        if n:
            counts.setdefault(stage, {})[key] = n
    return counts


@coalesced
async def analytics_opportunities(request: web.Request) -> web.Response:
    query = query_of(request, WindowQuery)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=query.hours)
    closed = request.app[CLOSED]
    async with request.app[OPS].control.pool.acquire() as conn:
        buckets = await opportunity_buckets(conn, since, closed)
        counts = await funnel_counts(conn, since, closed)
    found = sum(n for _, n in buckets)
    skipped = sorted(counts.get("skip", {}).items(), key=lambda item: (-item[1], item[0]))
    sent = counts.get("sent", {}).get("", 0)
    by_status = counts.get("outcome", {})
    skipped_total = sum(n for _, n in skipped)
    return _json(
        {
            "hours": query.hours,
            "funnel": {
                "found": found,
                "passed_filters": found - skipped_total,
                "sized_and_executed": sum(by_status.values()),
                "sent": sent,
                "landed": by_status.get("landed", 0),
            },
            "skipped_by_limit": dict(skipped),
            "outcomes": by_status,
            # net USD of what was found, in 10 USD buckets from 0 to 100 (0: a loss, 11: above 100)
            "profit_distribution": {str(bucket): n for bucket, n in buckets},
        }
    )


@coalesced
async def analytics_competition(request: web.Request) -> web.Response:
    query = query_of(request, CompetitionQuery)
    return _json(await request.app[COMPETITION].answer(request.app[OPS].control.pool, query))


@coalesced
async def analytics_sandwiches(request: web.Request) -> web.Response:
    query = query_of(request, SandwichesQuery)
    async with request.app[OPS].control.pool.acquire() as conn:
        return _json(await sandwiches(conn, query))


@coalesced
async def health_latency(request: web.Request) -> web.Response:
    rows = await _fetch(request, LATENCY_SQL)
    for row in rows:
        row["stages"] = orjson.loads(row["stages"]) if isinstance(row["stages"], str) else row["stages"]
    stats = request.app[OPS].control.ingest.stats
    return _json({"agents": rows, "bus_lag_s": stats.lag_s, "last_batch_commit_s": stats.last_commit_s})


# The timing histograms (revision 0016): per chain and metric, the executions in each bucket. The window's closed
# hours from execution_hours and its partial first hour from its first whole minute through ClosedHours (revision
# 0018), its open hours from execution_hours and its first minute from the rows (the window's up to 140,000
# executions, joined and sorted for eight percentiles, took ~100 ms a request; bench/control_api.py).
TIMING_METRICS = ((1, "found_to_sent", "_s"), (2, "sent_to_settled", "_s"), (3, "found_to_settled", "_s"),
                  (4, "blocks_to_inclusion", ""))  # fmt: skip
EXECUTION_HOURS_SQL = """SELECT chain, metric, bucket, sum(n)::bigint FROM execution_hours
    WHERE hour >= $1 AND hour < $2 GROUP BY chain, metric, bucket"""
# The executions sent from $1 to $2 (a part of an hour) and their outcomes' metrics, per bucket. Each execution's
# outcomes by the (agent, opportunity_id) index (OFFSET 0 keeps the probe): hashing the outcomes settled since the
# window's start instead read all of the window's (33,000 at 24 hours of 1,000,000 executions over 30 days) for
# the ~650 executions of an hour.
EXECUTION_ROWS_SQL = """WITH pairs AS MATERIALIZED (
        SELECT e.chain, timing_bucket(extract(epoch FROM o.settled_at - e.at)) AS sent_to_settled,
               timing_bucket(extract(epoch FROM o.settled_at - o.found_at)) AS found_to_settled,
               o.included_block - o.block AS blocks
        FROM executions e CROSS JOIN LATERAL (
            SELECT settled_at, found_at, included_block, block FROM outcomes o
            WHERE o.agent = e.agent AND o.opportunity_id = e.opportunity_id OFFSET 0
        ) o
        WHERE e.at >= $1 AND e.at < $2
    )
    SELECT chain, metric, bucket, count(*) AS n FROM (
        SELECT e.chain, 1::smallint AS metric, timing_bucket(extract(epoch FROM e.at - e.found_at)) AS bucket
        FROM executions e WHERE e.at >= $1 AND e.at < $2
        UNION ALL
        SELECT chain, 2::smallint, sent_to_settled FROM pairs
        UNION ALL
        SELECT chain, 3::smallint, found_to_settled FROM pairs
        UNION ALL
        SELECT chain, 4::smallint, blocks FROM pairs WHERE blocks IS NOT NULL
    ) merged GROUP BY chain, metric, bucket"""
# ... and the open hours (from $3).
EXECUTION_TIMING_SQL = f"""SELECT chain, metric, bucket, n FROM execution_hours WHERE hour >= $3
    UNION ALL ({EXECUTION_ROWS_SQL})"""
# Each window route's (partial first hour, closed hours) queries, as it passes them to window_counts: the warmer
# (mevcontrol.warm) keeps the closed hours' pieces of these.
WINDOW_QUERIES = (
    (OPPORTUNITY_ROWS_SQL, OPPORTUNITY_HOURS_SQL),
    (FUNNEL_ROWS_SQL, FUNNEL_HOURS_SQL),
    (EXECUTION_ROWS_SQL, EXECUTION_HOURS_SQL),
)
# A seconds bucket's values are within this of its geometric middle (16 buckets per doubling): so is a percentile.
TIMING_RELATIVE_ERROR = 2 ** (1 / 32) - 1


def timing_value(metric: int, bucket: int) -> float:
    """What a bucket stands for: blocks are their own bucket; seconds the geometric middle of (2^((b-322)/16),
    2^((b-321)/16)] (revision 0016's timing_bucket), signed; 0 below ~1 µs."""
    if metric == 4 or bucket == 0:
        return float(bucket)
    middle = 2 ** ((abs(bucket) - 321.5) / 16)
    return middle if bucket > 0 else -middle


def percentiles(histogram: list[tuple[int, int]], metric: int, qs: Sequence[float]) -> list[float | None]:
    """PostgreSQL's percentile_cont at each of `qs` over what `histogram` counts ((bucket, count), ascending: a
    bucket's value grows with it): the value at rank q * (n - 1), interpolated between its neighbours. None without
    a sample. Only the buckets at those ranks are valued (a 100-hour window's histograms hold ~1,400 buckets)."""
    seen = list(itertools.accumulate(count for _, count in histogram))
    n = seen[-1] if seen else 0
    if n == 0:
        return [None for _ in qs]

    def at(k: int) -> float:
        return timing_value(metric, histogram[bisect.bisect_right(seen, k)][0])

    out: list[float | None] = []
    for q in qs:
        rank = q * (n - 1)
        first, second = int(rank), min(n - 1, int(rank) + (rank > int(rank)))
        low = at(first)
        out.append(low if second == first else low + (rank - first) * (at(second) - low))
    return out


async def execution_timing_rows(
    conn: Any, since: dt.datetime, closed: ClosedHours | None = None
) -> list[dict[str, Any]]:
    """Per chain, the executions sent since `since`: how many, how many settled, and p50/p99 of each metric
    (seconds within TIMING_RELATIVE_ERROR or 1 µs of the exact percentile, blocks exact). The closed hours
    through `closed`."""
    merged = await window_counts(conn, since, closed, EXECUTION_ROWS_SQL, EXECUTION_HOURS_SQL, EXECUTION_TIMING_SQL)
    histograms: dict[str, dict[int, list[tuple[int, int]]]] = {}
    for (chain, metric, bucket), n in merged.items():
        histograms.setdefault(chain, {}).setdefault(metric, []).append((bucket, n))
    rows = []
    for chain in sorted(histograms):
        metrics = histograms[chain]
        row: dict[str, Any] = {
            "chain": chain,
            "executions": sum(n for _, n in metrics.get(1, [])),
            "settled": sum(n for _, n in metrics.get(2, [])),
        }
        for metric, name, unit in TIMING_METRICS:
            p50, p99 = percentiles(sorted(metrics.get(metric, [])), metric, (0.5, 0.99))
            row[f"{name}_p50{unit}"], row[f"{name}_p99{unit}"] = p50, p99
        rows.append(row)
    return rows


@coalesced
async def execution_timing(request: web.Request) -> web.Response:
    """Per chain, the executions sent in the window: detection -> send (the `execution_sent`, published
    when a builder or the sequencer took the transactions), send -> settled and detection -> settled
    (from the outcome, when there is one yet), and blocks from detection to inclusion. The seconds' percentiles
    are read from log-scale histograms: within 2.2 % (or 1 µs) of the exact ones."""
    query = query_of(request, WindowQuery)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=query.hours)
    async with request.app[OPS].control.pool.acquire() as conn:
        rows = await execution_timing_rows(conn, since, request.app[CLOSED])
    return _json({"hours": query.hours, "chains": rows})


# ---- :8900 relays -------------------------------------------------------------------------------------


async def relays_status(request: web.Request) -> web.Response:
    """Each agent's own /relays/status as it answered (or why it did not): its builder/relay endpoints and
    `mev_boost`, the status of the mev-boost beside it where one runs (null elsewhere)."""
    answers = await request.app[OPS].each_agent("GET", "/relays/status")
    return _json({"agents": answers})


# ---- :8903 flashloans ---------------------------------------------------------------------------------


async def providers_status(request: web.Request) -> web.Response:
    query = query_of(request, flashloans.ProvidersQuery)
    return _json(request.app[OPS].control.providers.status(query))


async def fleet_opportunities(request: web.Request) -> web.Response:
    query = query_of(request, flashloans.OpportunitiesQuery)
    return _json(await flashloans.opportunities(request.app[OPS].control.pool, query))


# ---- :8906 cross-chain engine and bridge monitor (mevcontrol.crosschain) -------------------------------


POSITIONS_SHOWN = 100


def _crosschain(request: web.Request) -> CrossChainService:
    service = request.app[OPS].control.crosschain
    if service is None:
        raise Refused(404, "the cross-chain engine is not configured (control.yml crosschain:)")
    return service


async def crosschain_opportunities(request: web.Request) -> web.Response:
    return _json(_crosschain(request).opportunities())


async def rebalance_plan(request: web.Request) -> web.Response:
    """The rebalancing planner's advice now (mevcontrol.rebalance): moves, holdings against targets, and why a
    short token gets nothing."""
    engine = _crosschain(request).engine
    if engine.rebalancer is None:
        raise Refused(404, "rebalancing is not configured (control.yml crosschain.rebalance:)")
    return _json(engine.rebalance_plan().as_json() | {"accounts_reporting": engine.rebalancer.book.accounts()})


async def crosschain_positions(request: web.Request) -> web.Response:
    """The position book (mevcontrol.positions): newest first, with the open positions' exposure per chain."""
    book = _crosschain(request).book
    if book is None:
        raise Refused(404, "cross-chain execution is not configured (control.yml crosschain.execution:)")
    newest = list(book.positions.values())[::-1][:POSITIONS_SHOWN]
    exposure = {chain: str(usd) for chain, usd in sorted(book.exposure().items())}
    return _json({"positions": [p.as_json() for p in newest], "exposure_by_chain": exposure})


async def crosschain_unwind(request: web.Request) -> web.Response:
    """A stuck position's open legs sold back again (mevcontrol.positions.PositionBook.retry_unwind), audited
    twice: the intent before anything is sent (a crash while sending leaves it), then what the bus did."""
    body = await body_of(request, UnwindBody)
    position_id = _path_param(request, "id", "a position id")
    book = _crosschain(request).book
    if book is None:
        raise Refused(404, "cross-chain execution is not configured (control.yml crosschain.execution:)")
    try:
        book.stuck(position_id)
    except KeyError:
        raise Refused(404, f"id: no position {position_id}", ["id"]) from None
    except ValueError as exc:
        raise Refused(409, str(exc), ["id"]) from None
    operator, pool, asked = operator_of(request).name, request.app[OPS].control.pool, body.model_dump()
    async with pool.acquire() as conn:
        await audit(conn, operator, "crosschain_unwind", position_id, None, asked, "requested")
    answer: web.Response | None = None
    try:
        commands = await book.retry_unwind(position_id, body.max_slippage_bps)
        result, after = "sent", asked | {"command_ids": [c.id for c in commands]}
    except ValueError as exc:  # a leg's late result changed the position while the intent was written
        result, after, answer = "refused", asked | {"detail": str(exc)}, _error(409, str(exc), ["id"])
    except Exception as exc:  # the bus did not take a command: its leg times out as any unanswered one
        detail = f"{type(exc).__name__}: the bus did not take the unwind"
        result, after, answer = "not sent", asked | {"detail": detail}, _error(503, detail)
    async with pool.acquire() as conn:
        await audit(conn, operator, "crosschain_unwind", position_id, None, after, result)
    if answer is not None:
        return answer
    return _json(book.positions[position_id].as_json())


async def bridges_status(request: web.Request) -> web.Response:
    return _json(_crosschain(request).engine.bridges_status())


async def bridges_performance(request: web.Request) -> web.Response:
    return _json({"routes": _crosschain(request).engine.monitor.performance()})


# ---- the table, the middlewares, the listeners ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    listener: str  # "risk" :8908, "dashboard" :8080, "relays" :8900, "flashloans" :8903, "bridges" :8906
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    four_eyes: bool = False

    @property
    def mutating(self) -> bool:
        return self.method == "POST"


R, D, X, F, B = "risk", "dashboard", "relays", "flashloans", "bridges"
ROUTES: tuple[Route, ...] = (
    Route(R, "POST", "/config/risk", config_risk, "Fleet limits; above the ceiling needs a second operator.",
          FleetLimitsPatch, four_eyes=True),
    Route(R, "POST", "/config/gas", config_gas, "Gas settings, sent to every agent's API.", GasPatch),
    Route(R, "POST", "/config/profit", config_profit, "Profit settings, sent to every agent's API.", ProfitPatch),
    Route(R, "POST", "/limits/set", limits_set, "Every agent's own risk limits, through the bus.", AgentLimits),
    Route(R, "POST", "/strategies/{name}/pause", strategy_pause, "Pause a strategy on every agent.", NoBody),
    Route(R, "POST", "/strategies/{name}/resume", strategy_resume, "Resume a strategy on every agent.", NoBody),
    Route(R, "POST", "/emergency/stop", emergency_stop, "Stop the fleet: persisted, bus and direct; names who "
          "did not answer.", StopBody),
    Route(R, "POST", "/emergency/resume", emergency_resume, "Request resuming (a second operator approves).",
          NoBody, four_eyes=True),
    Route(R, "GET", "/approvals", approvals, "Pending four-eyes approvals."),
    Route(R, "POST", "/approvals/{id}/approve", approve, "Approve another operator's request.", NoBody),
    Route(R, "GET", "/exposure/current", exposure, "Fleet exposure per chain, token, agent; daily P&L; limits."),
    Route(D, "GET", "/health", health, "Liveness: the bus and the database answer (no token needed)."),
    Route(D, "POST", "/api/strategies/enable", strategies_enable, "Live trading on a chain (enabling: four-eyes).",
          EnableBody, four_eyes=True),
    Route(D, "GET", "/api/reports/daily", reports_daily, "The UTC day's P&L per chain, strategy and token.",
          query=DailyQuery),
    Route(D, "GET", "/api/transactions/stuck", transactions_stuck, "Sent, not settled after N blocks; the last "
          "replace/cancel of each.", query=WindowQuery),
    Route(D, "POST", "/api/transactions/stuck/{tx}/replace", transaction_replace, "The owning agent re-signs the "
          "stuck transaction at its nonce with fees bumped (refused under an emergency stop).", StuckActionBody),
    Route(D, "POST", "/api/transactions/stuck/{tx}/cancel", transaction_cancel, "The owning agent sends 0 to "
          "itself at the stuck transaction's nonce with fees bumped (allowed under an emergency stop).",
          StuckActionBody),
    Route(D, "GET", "/api/gas/prices", gas_prices, "Per chain base fee and priority-fee percentiles."),
    Route(D, "GET", "/api/analytics/opportunities", analytics_opportunities, "Funnel and profit distribution.",
          query=WindowQuery),
    Route(D, "GET", "/api/analytics/competition", analytics_competition, "Who took the opportunities we did not "
          "land (searcher, contract, builder) and at what price.", query=CompetitionQuery),
    Route(D, "GET", "/api/analytics/sandwiches", analytics_sandwiches, "Sandwichable pending swaps the detectors "
          "saw, who sandwiched or JIT'd them, the attackers' profit and the victims' loss, per chain, pool and "
          "sandwicher.", query=SandwichesQuery),
    Route(D, "GET", "/api/health/latency", health_latency, "Node round trip per agent, stage p50/p99, bus lag."),
    Route(D, "GET", "/api/execution/timing", execution_timing, "Detection to send to inclusion.", query=WindowQuery),
    Route(X, "GET", "/relays/status", relays_status, "Every builder/relay endpoint as each agent saw it, and the "
          "mev-boost beside it (its builder API status: ok, no_relays, error, timeout) where one runs."),
    Route(F, "GET", "/providers/status", providers_status, "Every agent's flashloan providers: liquidity, fee, "
          "health, last update (as each last reported on the bus).", query=flashloans.ProvidersQuery),
    Route(F, "GET", "/opportunities", fleet_opportunities, "The fleet's recent opportunities and their outcomes.",
          query=flashloans.OpportunitiesQuery),
    Route(B, "GET", "/opportunities", crosschain_opportunities, "Cross-chain gaps that pay after both legs' gas, "
          "price impact, builder payments and restoring the inventory by the cheapest bridge route; with "
          "crosschain.cex, gaps between a pool and an exchange's book too (kind cex_dex, reported only)."),
    Route(B, "GET", "/positions", crosschain_positions, "Cross-chain positions, newest first: both legs, the "
          "unwind policy's steps, realized P&L per token; the open positions' exposure per chain."),
    Route(B, "POST", "/positions/{id}/unwind", crosschain_unwind, "Sell a stuck position's open legs back again "
          "at the pool's price now (optionally at another max_slippage_bps); audited.", UnwindBody),
    Route(B, "GET", "/bridges/status", bridges_status, "Each bridge: used or why not, routes within "
          "max_bridge_time, health, pending and stuck transfers."),
    Route(B, "GET", "/api/bridges/performance", bridges_performance, "Fill time distribution per bridge route."),
    Route(B, "GET", "/rebalance/plan", rebalance_plan, "Inventory rebalancing advice: per asset, the bridge moves "
          "that bring short chains to their targets from long ones, cheapest healthy route first; nothing is sent."),
)  # fmt: skip
PUBLIC = {("GET", "/health"), ("GET", "/openapi.json")}


class RateLimiter:
    """A token bucket per key: `rate` per second, bursts of twice that."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, 2 * rate)
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > 10_000:
            self._buckets.clear()  # bounded memory under a flood of addresses
        return True


class Operators:
    def __init__(self, operators: tuple[OperatorConfig, ...]) -> None:
        self._by_hash = {o.token_sha256: o for o in operators}

    def who(self, token: str) -> OperatorConfig | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        for known, operator in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return operator
        return None


def _middlewares(config: ControlConfig, listener: str, metrics: Any) -> list[Any]:
    operators = Operators(config.operators)
    limiter = RateLimiter(config.rate_limit_per_s)

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        response = await _guarded(request, handler)
        metrics.requests.labels(listener, str(response.status)).inc()
        return response

    async def _guarded(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        route = request.match_info.route.resource
        path = route.canonical if route is not None else request.path
        if (request.method, path) not in PUBLIC and not request.get("dashboard_public"):
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            operator = operators.who(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
            # Or the dashboard's session cookie (mevcontrol.dashboard.sessions: CSRF already checked for POSTs).
            operator = operator or request.get("operator")
            key = operator.name if operator is not None else f"addr:{request.remote}"
            if not limiter.allow(key):
                return _error(429, "rate limited: slow down")
            if operator is None:
                response = _error(401, "a valid operator bearer token is required", ["Authorization"])
                response.headers["WWW-Authenticate"] = 'Bearer realm="mevcontrol"'
                return response
            if request.method not in ("GET", "HEAD") and operator.role != "operator":
                return _error(403, f"{operator.name} is a viewer: read-only")
            request["operator"] = operator
        elif not limiter.allow(f"addr:{request.remote}"):
            return _error(429, "rate limited: slow down")
        try:
            return await handler(request)
        except Refused as exc:
            return _error(exc.status, str(exc), exc.fields)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"body: larger than {MAX_BODY} bytes", ["body"])
        except web.HTTPException as exc:
            return _error(exc.status, exc.reason or "error")
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return _error(500, "internal error (logged on the control host)")

    return [guard]


async def openapi(request: web.Request) -> web.Response:
    from mevcontrol.openapi import document

    return _json(document(request.app[LISTENER]))


def make_app(ops: Operations, listener: str) -> web.Application:
    app = web.Application(middlewares=_middlewares(ops.config, listener, ops.control.metrics), client_max_size=MAX_BODY)
    app[OPS] = ops
    app[LISTENER] = listener
    app[CLOSED] = ClosedHours()
    app[COMPETITION] = SharedReports()
    app[STUCK] = SharedStuck()
    for route in ROUTES:
        if route.listener == listener:
            app.router.add_route(route.method, route.path, route.handler)
    app.router.add_get("/openapi.json", openapi)
    if listener == D:
        from mevcontrol.dashboard import attach

        attach(app, ops)  # the operators' web page on the same listener (docs/dashboard.md)
        if ops.config.history_warm.enabled:
            from mevcontrol.warm import warming

            app.cleanup_ctx.append(warming)  # its window routes' kept hours, read before they are asked for
    return app


def make_metrics_app(control: Control) -> web.Application:
    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=control.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"})

    app = web.Application()
    app.router.add_get("/metrics", serve)
    return app


def tls_context(config: ControlConfig) -> ssl.SSLContext | None:
    listen = config.listen
    if listen.tls_cert_file is None or listen.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(listen.tls_cert_file, listen.tls_key_file)
    return context


async def start_listeners(ops: Operations) -> list[web.AppRunner]:
    listen = ops.config.listen
    context = tls_context(ops.config)
    runners: list[web.AppRunner] = []
    plan = [
        (make_app(ops, R), listen.risk_port, context),
        (make_app(ops, D), listen.dashboard_port, context),
        (make_app(ops, X), listen.relays_port, context),
        (make_app(ops, F), listen.flashloans_port, context),
        (make_metrics_app(ops.control), listen.metrics_port, None),
    ]
    if ops.control.crosschain is not None:
        plan.append((make_app(ops, B), listen.bridges_port, context))
    try:
        for app, port, ssl_context in plan:
            runner = web.AppRunner(app, access_log_format='%a "%r" %s %b %Tfs')
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, listen.bind, port, ssl_context=ssl_context).start()
    except BaseException:
        for runner in runners:
            await runner.cleanup()
        raise
    return runners
