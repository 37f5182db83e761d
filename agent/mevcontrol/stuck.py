"""Stuck transactions: the list (API and dashboard) and the replace/cancel an operator asks of the owner.

Stuck: an execution sent within the window (`hours`) that has no outcome, on a chain whose latest
reported head is more than `stuck_after_blocks` past the block it was found in. The list reads the window's
`unsettled_executions` (revision 0017: the executions no outcome was stored for yet, kept by the ingest's
triggers), not the window's executions against its outcomes (an anti-join over up to 140,000 of each: p99 4.9 s
at 100 clients each asking its own window over 1,000,000 executions, 0.47 s now; bench/control_api.py), and one
head per row from `gas_prices_chain_at`. One transaction's row (for a replace/cancel) is found through the GIN
index on `executions.tx_hashes`. Each row carries
the latest replace/cancel of its transactions (`transaction_actions`, from the agents' `transaction_replaced` events),
and, once the agent saw its replacement's receipt, what became of it (`replaced-landed`, `cancelled-landed`,
`...-reverted`, or `...-superseded` when another transaction took the nonce).

The action goes to exactly the agent that sent the execution, on its own command stream (an agent
reads only its own), and the answer waits for that agent's acknowledgement. The agent re-checks
everything against its node (mevagent.executor.replace); the control plane only names the hash.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Literal

import asyncpg

from mevagent.bus.events import CommandAck, ReplaceTransactionCommand
from mevcontrol.inflight import InFlight
from mevcontrol.operations import Operations, audit

SQL = """
WITH pending AS MATERIALIZED (  -- the unsettled first: the heads and actions are read for its rows only
    {pending}
)
SELECT p.agent, p.chain, p.strategy, p.opportunity_id, p.block, p.tx_hashes, p.at AS sent_at,
       g.block AS chain_block, a.action, a.ok AS action_ok, a.replacement_hash, a.at AS action_at,
       a.detail AS action_detail, a.receipt, a.included_block AS replacement_block
FROM pending p
JOIN LATERAL (SELECT block FROM gas_prices WHERE chain = p.chain ORDER BY at DESC LIMIT 1) g ON true
LEFT JOIN LATERAL (SELECT action, ok, replacement_hash, at, detail, receipt, included_block FROM transaction_actions t
                   WHERE t.tx_hash = ANY(p.tx_hashes) ORDER BY at DESC LIMIT 1) a ON true
WHERE g.block - p.block > $1
ORDER BY p.at
LIMIT $3
"""
ALL = SQL.format(
    pending="""SELECT e.agent, e.chain, e.strategy, e.opportunity_id, e.block, e.tx_hashes, e.at
    FROM unsettled_executions u JOIN executions e ON e.event_id = u.event_id WHERE u.at >= $2"""
)
ONE = SQL.format(  # the GIN index executions_tx_hashes finds its execution, whose outcome is looked for
    pending="""SELECT e.agent, e.chain, e.strategy, e.opportunity_id, e.block, e.tx_hashes, e.at
    FROM executions e WHERE e.at >= $2 AND e.tx_hashes @> ARRAY[$4::text]
      -- An outcome settles after its send (the same agent's clock): only the window's outcomes can match.
      AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.agent = e.agent AND o.opportunity_id = e.opportunity_id
                      AND o.settled_at >= $2)"""
)


def _row(r: asyncpg.Record) -> dict[str, Any]:
    row = dict(r)
    row["tx_hashes"] = list(r["tx_hashes"])
    row["blocks_behind"] = r["chain_block"] - r["block"]
    if r["action"] is None:
        row["state"] = "stuck"
    elif r["action_ok"]:
        row["state"] = "replaced" if r["action"] == "replace" else "cancelled"
        if r["receipt"] is not None:  # followed to its receipt: replaced-landed, cancelled-superseded, ...
            row["state"] += f"-{r['receipt']}"
    else:
        row["state"] = f"{r['action']} refused"
    return row


async def stuck_rows(
    conn: asyncpg.Connection, after_blocks: int, hours: int, tx_hash: str | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    if tx_hash is None:
        return [_row(r) for r in await conn.fetch(ALL, after_blocks, since, limit)]
    return [_row(r) for r in await conn.fetch(ONE, after_blocks, since, limit, tx_hash)]


# The widest window the API takes (WindowQuery): what a shared read of the list reads.
WIDEST_HOURS = 24 * 31


class SharedStuck:
    """The stuck list's reads in flight, shared by windows: a read of the widest window (`unsettled_executions`
    holds only the executions not settled yet, so its cost does not grow with the window) answers every window as
    its rows sent at or after the window's start, unless it found `limit` rows (the oldest first: a narrower
    window's may lie after them), and then the window is read on its own. 100 clients each asking its own window
    cost one read at a time instead of 100 (bench/control_api.py). As with `mevcontrol.api.coalesced`, an answer
    may have been read at most one read's duration before the request arrived."""

    def __init__(self) -> None:
        self._inflight: InFlight[tuple[int, int], list[dict[str, Any]]] = InFlight()
        self.reads = 0

    async def rows(self, pool: asyncpg.Pool, after_blocks: int, hours: int, limit: int = 500) -> list[dict[str, Any]]:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
        widest = await self._inflight.share(
            (after_blocks, limit), lambda: self._read(pool, after_blocks, WIDEST_HOURS, limit)
        )
        if len(widest) < limit:
            return [row for row in widest if row["sent_at"] >= since]
        return await self._read(pool, after_blocks, hours, limit)

    async def _read(self, pool: asyncpg.Pool, after_blocks: int, hours: int, limit: int) -> list[dict[str, Any]]:
        self.reads += 1
        async with pool.acquire() as conn:
            return await stuck_rows(conn, after_blocks, hours, limit=limit)


async def act(
    ops: Operations, tx_hash: str, action: Literal["replace", "cancel"], bump_percent: float, hours: int, operator: str
) -> tuple[int, dict[str, Any]] | None:
    """(status, answer) of sending `action` to the owning agent; None when `tx_hash` is not stuck now."""
    control = ops.control
    async with control.pool.acquire() as conn:
        rows = await stuck_rows(conn, ops.config.stuck_after_blocks, hours, tx_hash, 1)
    if not rows:
        return None
    row = rows[0]
    agent = row["agent"]
    command = ReplaceTransactionCommand(
        agent=agent, chain=row["chain"], tx_hash=tx_hash, action=action, bump_percent=bump_percent,
        issued_by=operator,
    )  # fmt: skip
    futures = control.expect_ack(command.id, [agent])
    try:
        try:
            await control.send(agent, command)
        except Exception as exc:  # Redis away: nothing was sent, say so
            result, detail, status = "not sent", f"{type(exc).__name__}: the bus did not take it", 503
        else:
            # The agent reads its node (and sends) before it answers: more than a direct call's timeout.
            done = await _ack(futures[agent], ops.config.agent_timeout_s * 5)
            if done is None:
                result, detail, status = "no ack", "sent; the agent has not answered yet (see the stuck list)", 202
            else:
                result = "acked" if done.ok else "refused"
                detail, status = done.detail, 200 if done.ok else 409
    finally:
        control.forget_ack(command.id)
    async with control.pool.acquire() as conn:
        target = f"{agent}:{row['chain']}:{tx_hash}"
        after = {"command_id": command.id, "bump_percent": bump_percent, "detail": detail}
        await audit(conn, operator, f"transaction_{action}", target, {"state": row["state"]}, after, result)
    return status, {"command_id": command.id, "agent": agent, "chain": row["chain"], "tx_hash": tx_hash,
                    "action": action, "result": result, "detail": detail}  # fmt: skip


async def _ack(future: asyncio.Future[CommandAck], timeout_s: float) -> CommandAck | None:
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout_s)
    except TimeoutError:
        return None
