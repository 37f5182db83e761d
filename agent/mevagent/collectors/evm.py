"""The EVM collector: follows the co-located node and keeps the chain's pool store exact.

One connection (IPC first, WebSocket as fallback) carries the newHeads subscription (and, where the
chain has a public mempool and the config asks for it, newPendingTransactions). For every head the
state syncer brings the store to that block, then the collector emits the `Head` and one `PoolUpdate`
per pool that changed, then reconciles with the node and writes the checkpoint when due.

A head's logs are fetched by its hash (eth_getLogs {blockHash}) rather than taken from a `logs`
subscription: nodes give no ordering between two subscriptions, so a logs stream cannot tell when a
block's logs are complete, and an incomplete block would be applied as if it were whole. One round
trip on the local socket buys exactness.

When the connection drops, the collector reconnects with exponential backoff and jitter, subscribes
again and then asks for the node's latest head: the syncer fills the gap from the last processed
block with eth_getLogs, rolling back first whatever the node no longer has (a restarted node that
lost blocks looks exactly like a reorg).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mevagent.core import Emit, Head, PoolUpdate
from mevagent.rpc import Backoff, ConnectionLost, RpcClient, RpcError, Subscription, connect_first
from mevagent.state.config import SyncConfig
from mevagent.state.pools import PoolStore
from mevagent.state.sync import Reorged, StateSyncer, parse_head

log = logging.getLogger(__name__)


class EvmCollectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    ipc_path: Path | None = None
    ws_url: Annotated[str, Field(pattern=r"^wss?://\S+$")] | None = None
    http_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None  # no push: heads are polled
    sync: SyncConfig
    # Only where the chain has a public mempool: an L2 sequencer has none to show.
    pending_transactions: bool = False
    request_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    connect_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    backoff_base_s: Annotated[float, Field(gt=0, le=60)] = 0.05
    backoff_cap_s: Annotated[float, Field(gt=0, le=600)] = 5.0

    @model_validator(mode="after")
    def _has_endpoint(self) -> Self:
        if self.ipc_path is None and self.ws_url is None and self.http_url is None:
            raise ValueError(
                "set ipc_path or ws_url (or http_url, for a node without subscriptions): the collector needs its node"
            )
        if self.backoff_base_s > self.backoff_cap_s:
            raise ValueError("backoff_base_s is above backoff_cap_s")
        return self

    @property
    def endpoints(self) -> list[str]:
        return [str(e) for e in (self.ipc_path, self.ws_url, self.http_url) if e is not None]


@dataclass(frozen=True, slots=True)
class PendingTransaction:
    """A transaction hash the node saw enter its mempool (newPendingTransactions).

    Never coalesced (each is a different transaction); the engine keeps a bounded number pending.
    """

    kind: ClassVar[str] = "pending_transactions"

    chain: str
    hash: str
    seen_ns: int

    @property
    def key(self) -> None:
        return None


@dataclass(slots=True)
class CollectorStats:
    connects: int = 0
    connection_failures: int = 0  # attempts that did not get a working connection
    disconnects: int = 0  # working connections that were lost
    heads: int = 0  # heads the store was brought to and emitted
    pool_updates: int = 0
    pending_transactions: int = 0
    heads_dropped: int = 0  # notifications dropped because processing fell behind (then gap-filled)
    last_error: str = ""


class EvmCollector:
    """Implements mevagent.core.Collector for one EVM chain."""

    def __init__(self, config: EvmCollectorConfig, store: PoolStore | None = None) -> None:
        self.config = config
        self.name = f"evm:{config.chain}"
        self.store = store if store is not None else PoolStore(config.chain)
        if self.store.chain != config.chain:
            raise ValueError(f"the store is for chain {self.store.chain!r}, the collector for {config.chain!r}")
        self.syncer = StateSyncer(self.store, config.sync)
        self.stats = CollectorStats()
        self.client: RpcClient | None = None
        # Set while subscribed and caught up to the node's head: what /ready reports.
        self.synced = asyncio.Event()
        self._last_emitted = ""

    async def run(self, emit: Emit) -> None:
        backoff = Backoff(self.config.backoff_base_s, self.config.backoff_cap_s)
        try:
            while True:
                client = await connect_first(
                    self.config.endpoints,
                    backoff,
                    timeout=self.config.connect_timeout_s,
                    request_timeout=self.config.request_timeout_s,
                    on_failure=self._connect_failed,
                )
                self.client = client
                self.stats.connects += 1
                # One journal line per change of the node's state, so an operator sees when the agent lost
                # its node and when it had it back (every failed attempt in between is at INFO).
                if self.stats.connects == 1:
                    log.info("%s: connected to the node at %s", self.name, client.endpoint)
                else:
                    log.warning("%s: node back at %s: resyncing", self.name, client.endpoint)
                try:
                    await self._follow(client, emit, backoff)
                except (ConnectionLost, RpcError, Reorged) as exc:
                    self.stats.disconnects += 1
                    self.stats.last_error = str(exc)
                    log.warning("%s: lost the node (%s); reconnecting", self.name, exc)
                finally:
                    self.synced.clear()
                    self.client = None
                    await client.close()
                await asyncio.sleep(backoff.next())
        finally:
            if self.syncer.ready:
                self.syncer.write_checkpoint()

    def _connect_failed(self, endpoint: str, exc: Exception) -> None:
        self.stats.connection_failures += 1
        self.stats.last_error = str(exc)
        log.info("%s: %s", self.name, exc)

    async def _follow(self, client: RpcClient, emit: Emit, backoff: Backoff) -> None:
        # Subscribe before asking for the latest head: a block mined in between then arrives as a
        # notification instead of falling between the two.
        heads = await client.subscribe("newHeads")
        mempool = None
        if self.config.pending_transactions:
            mempool = asyncio.create_task(self._forward_pending(await client.subscribe("newPendingTransactions"), emit))
        try:
            if not self.syncer.ready:
                await self.syncer.start(client)
            latest = await client.call("eth_getBlockByNumber", ["latest", False])
            await self._on_head(client, parse_head(self.config.chain, latest), time.perf_counter_ns(), emit)
            backoff.reset()
            self.synced.set()
            async for notification in heads:
                self.stats.heads_dropped = heads.dropped
                head = parse_head(self.config.chain, notification.result)
                await self._on_head(client, head, notification.received_ns, emit)
        finally:
            if mempool is not None:
                mempool.cancel()
                # wait(), not `await mempool`: awaiting it would re-raise its CancelledError, and
                # suppressing that would also swallow a cancellation of this task.
                await asyncio.wait([mempool])
                if not mempool.cancelled():
                    mempool.exception()  # ConnectionLost, like the heads: handled by the caller

    async def _on_head(self, client: RpcClient, head: Head, seen_ns: int, emit: Emit) -> None:
        changed = await self.syncer.sync_to(client, head)
        tip = self.syncer.tip
        if tip.hash == head.hash and head.hash != self._last_emitted:
            self._last_emitted = head.hash
            self.stats.heads += 1
            await emit(head)
        await self._emit_updates(changed, seen_ns, emit)
        await self.syncer.block_done()
        fixed = await self.syncer.reconcile(client)
        await self._emit_updates({d.pool: d.block for d in fixed}, seen_ns, emit)

    async def _emit_updates(self, changed: dict[str, int], seen_ns: int, emit: Emit) -> None:
        pools = self.store.pools
        for pool, block in changed.items():
            if pool in pools:  # a pool created on a branch that was rolled back is gone again
                self.stats.pool_updates += 1
                await emit(PoolUpdate(self.config.chain, pool, block, seen_ns))

    async def _forward_pending(self, subscription: Subscription, emit: Emit) -> None:
        async for notification in subscription:
            self.stats.pending_transactions += 1
            await emit(PendingTransaction(self.config.chain, str(notification.result), notification.received_ns))
