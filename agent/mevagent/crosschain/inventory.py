"""What an inventory account holds on this chain, for the control plane's rebalancing planner.

`InventoryReporter.observe(block)` reads the account's ERC-20 balance of every token of the chain's tracked
pairs (`balanceOf`, one `eth_call` each at that block, concurrently) and publishes an `InventoryBalances`
event when any balance differs from the last one published, or `refresh_blocks` after it (the price stream is
trimmed, and a control plane that restarts rebuilds its view from the stream's tail). The account is the one
the cross-chain legs trade from: configured per chain (`strategies.pair_prices.inventory_accounts`), so a
watch-only address works as well as the signing key's. A read that fails is skipped and counted; the next
observation tries again. Never on the hot path: the strategy schedules it after the engine's batch, one
observation in flight at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from mevagent.bus.events import Event, InventoryBalances
from mevagent.executor.rpc import JsonRpc
from mevagent.lending.aave_reader import address_arg, call_words
from mevagent.rpc.client import ConnectionLost, RpcError
from mevagent.state.abi import selector

log = logging.getLogger(__name__)

BALANCE_OF = selector("balanceOf(address)")


class InventoryReporter:
    def __init__(
        self,
        agent: str,
        chain: str,
        node: JsonRpc,
        account: str,
        tokens: Callable[[], Iterable[str]],
        publish: Callable[[Event], None],
        *,
        refresh_blocks: int,
    ) -> None:
        self.agent = agent
        self.chain = chain
        self.node = node
        self.account = account.lower()
        self.tokens = tokens  # the tracked pairs' tokens, read from the pool store at each observation
        self.publish = publish
        self.refresh_blocks = refresh_blocks
        self._last: dict[str, int] | None = None
        self._last_block = -1
        self.published = 0
        self.failed_reads = 0

    async def observe(self, block: int) -> bool:
        """Read the balances at `block`; publish them if they changed or are due again. Whether it published."""
        tokens = sorted({t.lower() for t in self.tokens()})
        if not tokens:
            return False
        try:
            raw = await asyncio.gather(*(self._balance(token, block) for token in tokens))
        except (ConnectionLost, RpcError, ValueError) as exc:
            # A node that cannot answer now (gone, pruned the block, a token that is not ERC-20): next time.
            self.failed_reads += 1
            log.info("%s: inventory of %s at block %d not read: %s", self.chain, self.account, block, exc)
            return False
        balances = dict(zip(tokens, raw, strict=True))
        if balances == self._last and block - self._last_block < self.refresh_blocks:
            return False
        event = InventoryBalances(agent=self.agent, chain=self.chain, block=block, account=self.account,
                                  balances=balances)  # fmt: skip
        self.publish(event)
        self._last, self._last_block = balances, block
        self.published += 1
        return True

    async def _balance(self, token: str, block: int) -> int:
        answer = await call_words(self.node, token, BALANCE_OF + address_arg(self.account), hex(block))
        if not answer:
            raise ValueError(f"balanceOf on {token} answered nothing (not a token contract)")
        return answer[0]
