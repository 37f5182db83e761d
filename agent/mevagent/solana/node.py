"""A Solana chain in the running agent: its node (calls, slot, readiness) and its collector (the pool book
kept from account subscriptions, announced to the engine as `Head`s per slot and `PoolUpdate`s per pool).

The collector is mevagent.solana.collector.AccountCollector (subscribe, then re-read everything on each
(re)connect); this module only adapts it to the engine's `Collector` interface. The book is the chain's
state, updated here before the engine hears of a change, as the EVM syncer updates its pool store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from solders.pubkey import Pubkey

from mevagent.api.readiness import CheckFn, StateFreshness
from mevagent.core import Emit, Head, PoolUpdate

from .book import PoolBook
from .collector import AccountCollector
from .config import SolanaChainConfig
from .layouts import AccountData
from .rpc import SolanaRpc

log = logging.getLogger(__name__)


class SolanaNode:
    """The chain's Solana JSON-RPC node, on a session made on first use (inside the running loop)."""

    evm = False  # the bus asks no fee market or peer count of it (mevagent.bus.link)

    def __init__(self, chain: str, url: str, ws_url: str, max_slot_lag: int, timeout_s: float = 10.0) -> None:
        self.chain, self.url, self.ws_url = chain, url, ws_url
        self.head_tolerance = max_slot_lag  # mevagent.app.ChainRouter: slots an opportunity may lag the node
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._rpc: SolanaRpc | None = None
        self._slot: int | None = None
        self._slot_at = 0.0  # monotonic time the slot was last seen to advance

    def rpc(self) -> SolanaRpc:
        if self._rpc is None:
            self._session = aiohttp.ClientSession()
            self._rpc = SolanaRpc(self._session, self.url, self.timeout_s)
        return self._rpc

    async def call(self, method: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return await self.rpc().call(method, *(params if not isinstance(params, dict) else [params]))

    async def head(self) -> int:
        slot = int(await self.call("getSlot", [{"commitment": "confirmed"}]))
        if slot != self._slot:
            self._slot, self._slot_at = slot, time.monotonic()
        return slot

    async def head_lag_s(self) -> float:
        """How long the node's slot has not moved (Solana RPC has no block time we could trust here)."""
        await self.head()
        return time.monotonic() - self._slot_at

    def synced(self, max_head_age_s: float) -> CheckFn:
        async def check() -> tuple[bool, str]:
            health = await self.call("getHealth")
            if health != "ok":
                return False, f"node health: {health}"
            slot, lag = await self.head(), await self.head_lag_s()
            if lag > max_head_age_s:
                return False, f"slot {slot} has not moved for {lag:.1f} s (limit {max_head_age_s:g} s)"
            return True, f"slot {slot}"

        return check

    def identity(self, chain_id: int) -> CheckFn:
        """Solana has no chain id: the node's version is reported instead (the simulator says so in it)."""

        async def check() -> tuple[bool, str]:
            version = await self.call("getVersion")
            return True, f"solana-core {version.get('solana-core', '?')}"

        return check

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session, self._rpc = None, None


class SolanaCollector:
    """Account and slot subscriptions for the chain's pools, into its book, announced to the engine."""

    def __init__(
        self, chain: str, config: SolanaChainConfig, node: SolanaNode, book: PoolBook, freshness: StateFreshness
    ) -> None:
        self.name = f"solana:{chain}"
        self.chain, self.node, self.book, self.freshness = chain, node, book, freshness
        for pool in config.pools:
            book.add(pool.kind, Pubkey.from_string(pool.address))
        self.slot = 0
        self.accounts: AccountCollector | None = None
        self._emit: Emit | None = None
        self.tap: Callable[[object], None] | None = None  # analytics: after the engine has the event

    async def run(self, emit: Emit) -> None:
        async def forward(event: object) -> None:
            await emit(event)
            if self.tap is not None:
                self.tap(event)

        self._emit = forward
        try:  # the slot the first read is of, before any slot notification (an opportunity's block)
            self.slot = await self.node.head()
        except Exception as exc:  # the node is away: the collector's reconnect loop waits for it
            log.warning("%s: no slot from the node yet: %s", self.chain, exc)
        await self._refresh_epoch()
        rpc = self.node.rpc()
        self.accounts = AccountCollector(
            rpc.session, rpc, self.node.ws_url, self.book.accounts(), self._on_accounts, self._on_slot
        )
        await self.accounts.run()

    async def _on_accounts(self, items: Sequence[tuple[Pubkey, AccountData | None]]) -> Sequence[Pubkey]:
        assert self._emit is not None
        now = time.perf_counter_ns()
        for pool in self.book.apply_many(items):
            await self._emit(PoolUpdate(self.chain, str(pool.address), self.slot, now))
        return self.book.accounts()

    async def _refresh_epoch(self) -> None:
        """Ask the node its epoch (Token-2022 transfer fees are chosen by it); the pools whose fee changed are
        announced. Asked at start and once a slot reaches the next epoch's first slot (PoolBook.refresh_epoch)."""
        assert self._emit is not None
        changed = await self.book.refresh_epoch(self.node.rpc(), self.slot)
        now = time.perf_counter_ns()
        for pool in changed:
            await self._emit(PoolUpdate(self.chain, str(pool.address), self.slot, now))

    async def _on_slot(self, slot: int) -> None:
        assert self._emit is not None and self.accounts is not None
        self.slot = slot
        if self.book.epoch_due(slot):
            await self._refresh_epoch()
        if self.accounts.ready.is_set():  # subscribed and re-read since the last (re)connect: the book is current
            self.freshness.mark(slot)
        await self._emit(Head(self.chain, slot, "", "", int(time.time()), 0))
