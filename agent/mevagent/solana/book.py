"""The pools the agent tracks, keyed by every account they read, updated from account data and owners, and
the node's epoch (which transfer fee a Token-2022 mint charges)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from solders.pubkey import Pubkey

from .clmm import RAYDIUM_CLMM, ClmmPool
from .dlmm import METEORA_DLMM, DlmmPool
from .layouts import RAYDIUM_AMM_V4, RAYDIUM_CPMM, AccountData, LayoutError
from .raydium import AmmV4Pool, CpmmPool, Pool
from .token2022 import EpochInfo
from .whirlpool import WHIRLPOOL_PROGRAM, WhirlpoolPool

log = logging.getLogger(__name__)
# A node that does not answer getEpochInfo is asked again this many slots later (~10 s), not at every slot:
# the ask is awaited on the account stream's loop.
EPOCH_RETRY_SLOTS = 25

KINDS: dict[str, type[Pool]] = {
    "raydium_amm_v4": AmmV4Pool,
    "raydium_cpmm": CpmmPool,
    "raydium_clmm": ClmmPool,
    "orca_whirlpool": WhirlpoolPool,
    "meteora_dlmm": DlmmPool,
}
PROGRAMS = {
    "raydium_amm_v4": RAYDIUM_AMM_V4,
    "raydium_cpmm": RAYDIUM_CPMM,
    "raydium_clmm": RAYDIUM_CLMM,
    "orca_whirlpool": WHIRLPOOL_PROGRAM,
    "meteora_dlmm": METEORA_DLMM,
}


def kind_of(pool: Pool) -> str:
    return next(k for k, cls in KINDS.items() if isinstance(pool, cls))


class PoolBook:
    def __init__(self) -> None:
        self.pools: dict[Pubkey, Pool] = {}
        self.by_account: dict[Pubkey, list[Pool]] = {}
        self.errors = 0  # account data that did not decode (counted, never raised into the hot path)
        # What each pool last got for each account: the same data again (a re-read after a reconnect, a
        # dependency read once more) changes nothing, so it bumps no version and re-evaluates nothing.
        self._applied: dict[tuple[Pubkey, Pubkey], AccountData | None] = {}
        self.epoch: int | None = None  # the node's, once known: which transfer fee a Token-2022 mint charges
        self.next_epoch_slot: int | None = None  # the slot from which the epoch is to be asked again

    def add(self, kind: str, address: Pubkey) -> Pool:
        pool = KINDS[kind](address=address, program=PROGRAMS[kind])
        pool.epoch = self.epoch
        self.pools[address] = pool
        self._index(pool)
        return pool

    def _index(self, pool: Pool) -> None:
        for key in pool.accounts():
            owners = self.by_account.setdefault(key, [])
            if pool not in owners:
                owners.append(pool)

    def accounts(self) -> list[Pubkey]:
        return list(self.by_account)

    def set_epoch(self, epoch: int) -> list[Pool]:
        """The node's epoch moved (or is first known): the pools whose transfer fees changed with it."""
        self.epoch = epoch
        return [pool for pool in self.pools.values() if pool.set_epoch(epoch)]

    def epoch_due(self, slot: int) -> bool:
        """Whether the node is to be asked its epoch at `slot`: never answered yet, or the next epoch began."""
        return self.next_epoch_slot is None or slot >= self.next_epoch_slot

    async def refresh_epoch(self, rpc: Any, slot: int) -> list[Pool]:
        """Ask the node its epoch (`rpc.epoch_info()`); the pools whose transfer fee changed with it. When it does
        not answer, none, and it is asked again EPOCH_RETRY_SLOTS after `slot`."""
        try:
            info = await rpc.epoch_info()
        except Exception as exc:
            log.warning("solana: no epoch from the node (asked again in %d slots): %s", EPOCH_RETRY_SLOTS, exc)
            self.next_epoch_slot = slot + EPOCH_RETRY_SLOTS
            return []
        return self.set_epoch_info(info)

    def set_epoch_info(self, info: EpochInfo) -> list[Pool]:
        """getEpochInfo's answer: the epoch (the pools whose fee changed with it) and when to ask again."""
        self.next_epoch_slot = info.next_epoch_slot
        return self.set_epoch(info.epoch)

    def _seen(self, pool: Pool, key: Pubkey, account: AccountData | None) -> bool:
        """Whether `pool` already has exactly this for `key`; records it as what the pool has now."""
        known = (pool.address, key)
        if known in self._applied and self._applied[known] == account:
            return True
        self._applied[known] = account
        return False

    def apply(self, key: Pubkey, account: AccountData) -> list[Pool]:
        """Apply one account's new data and owner; returns the pools it changed (their version moved: a mint's
        write that leaves its terms as they were changes none). New dependencies get indexed, so the caller
        learns them from `accounts()` (a pool's vaults are known once its state decoded)."""
        changed = []
        for pool in self.by_account.get(key, ()):
            if self._seen(pool, key, account):
                continue
            version = pool.version
            try:
                pool.update(key, account)
            except LayoutError:
                self.errors += 1
                continue
            self._index(pool)
            if pool.version != version:
                changed.append(pool)
        return changed

    def apply_many(self, items: Iterable[tuple[Pubkey, AccountData | None]]) -> list[Pool]:
        changed: dict[Pubkey, Pool] = {}
        for key, account in items:
            if account is not None:
                for pool in self.apply(key, account):
                    changed[pool.address] = pool
            else:  # the account does not exist (yet): only some pools read that as state
                for pool in self.by_account.get(key, ()):
                    if not self._seen(pool, key, None) and pool.absent(key):
                        changed[pool.address] = pool
        return list(changed.values())
