"""Which mint accounts a pool reads, and what a mint account's write changes.

The mints a pool reads (`fee_mints`) are derived from its mints and the token program its own data records
for each: AMM v4 records SPL Token for both (none read), CPMM records each mint's program (its Token-2022
ones read), a CLMM pool, a Whirlpool and a DLMM pair record none (both read, each one's owner is its
program). A mint account is written by every mint, burn and fee harvest; only a change of what a swap
takes of it (its fee in force, program, hook, or its refusal) re-sizes the cycles through its pools.
"""

from __future__ import annotations

import asyncio
import itertools
import os

import pytest
from solders.pubkey import Pubkey

from mevagent.solana.book import PoolBook
from mevagent.solana.clmm import RAYDIUM_CLMM, ClmmPool
from mevagent.solana.cycles import Cycle, CycleFinder, CycleSettings, Sized
from mevagent.solana.dlmm import METEORA_DLMM, DlmmPool
from mevagent.solana.layouts import AMM_V4_SIZE, RAYDIUM_AMM_V4, RAYDIUM_CPMM, TOKEN_2022, TOKEN_PROGRAM, AccountData
from mevagent.solana.raydium import AmmV4Pool, CpmmPool, Pool, QuoteError
from mevagent.solana.searcher import SolanaSearcher
from mevagent.solana.token2022 import EpochInfo, TransferFee
from mevagent.solana.whirlpool import WHIRLPOOL_PROGRAM, WhirlpoolPool
from testbed.solana.world import (
    clmm_pool_data,
    cpmm_config_data,
    cpmm_pool_data,
    dlmm_accounts,
    mint_data,
    spl_owned,
    t22_owned,
    token_account_data,
    whirlpool_data,
)

from .token2022_world import fee_mint_data


def key() -> Pubkey:
    return Pubkey.from_bytes(os.urandom(32))


def amm_v4_data(base_mint: Pubkey, quote_mint: Pubkey) -> bytes:
    data = bytearray(AMM_V4_SIZE)
    for offset, k in ((336, key()), (368, key()), (400, base_mint), (432, quote_mint)):
        data[offset : offset + 32] = bytes(k)
    return bytes(data)


def read_pool(pool: Pool, data: bytes) -> Pool:
    assert pool.fee_mints() == ()  # nothing known before the pool's own account
    pool.update(pool.address, AccountData(data, pool.program))
    assert set(pool.fee_mints()) <= set(pool.accounts())  # the book subscribes what the pool reads
    return pool


def test_the_mints_a_pool_reads_follow_from_the_programs_its_data_records() -> None:
    a, b = key(), key()
    amm = read_pool(AmmV4Pool(address=key(), program=RAYDIUM_AMM_V4), amm_v4_data(a, b))
    assert amm.fee_mints() == ()
    assert amm.token_program(a) == amm.token_program(b) == TOKEN_PROGRAM
    with pytest.raises(QuoteError):
        amm.token_program(key())  # not its mint

    for programs in itertools.product((TOKEN_PROGRAM, TOKEN_2022), repeat=2):
        data = bytearray(cpmm_pool_data(key(), key(), key(), a, b))
        data[232:264], data[264:296] = bytes(programs[0]), bytes(programs[1])
        cpmm = read_pool(CpmmPool(address=key(), program=RAYDIUM_CPMM), bytes(data))
        assert cpmm.fee_mints() == tuple(m for m, p in zip((a, b), programs, strict=True) if p == TOKEN_2022)
        for mint, program in zip((a, b), programs, strict=True):
            if program == TOKEN_PROGRAM:  # from the pool's record, no mint read
                assert cpmm.token_program(mint) == TOKEN_PROGRAM
            else:  # from the mint's owner, once read
                with pytest.raises(QuoteError, match="not read"):
                    cpmm.token_program(mint)
                cpmm.update(mint, t22_owned(mint_data()))
                assert cpmm.token_program(mint) == TOKEN_2022

    pair, reserve_x, reserve_y = key(), key(), key()
    unrecorded = [
        read_pool(ClmmPool(address=key(), program=RAYDIUM_CLMM), clmm_pool_data(key(), a, b, 0, 10**9, 10)),
        read_pool(WhirlpoolPool(address=key(), program=WHIRLPOOL_PROGRAM), whirlpool_data(a, key(), b, key(), 0, 1)),
        read_pool(
            DlmmPool(address=pair, program=METEORA_DLMM), dlmm_accounts(pair, a, reserve_x, b, reserve_y, 0)[0][1]
        ),
    ]
    for pool in unrecorded:
        assert pool.fee_mints() == (a, b)
        with pytest.raises(QuoteError, match="not read"):
            pool.token_program(a)
        pool.update(a, spl_owned(mint_data()))  # an SPL Token mint is one only its owner tells apart
        pool.update(b, t22_owned(mint_data()))
        assert (pool.token_program(a), pool.token_program(b)) == (TOKEN_PROGRAM, TOKEN_2022)


# --- a mint's writes -------------------------------------------------------------------------------------

EPOCH = 10
U64 = 2**64 - 1


class CountingFinder(CycleFinder):
    """The cycle finder, counting the cycles it sizes (every evaluation of a cycle)."""

    def __init__(self, settings: CycleSettings) -> None:
        super().__init__(settings)
        self.sized = 0

    def size(self, cycle: Cycle, slot: int) -> Sized | None:
        self.sized += 1
        return super().size(cycle, slot)


class Node:
    async def epoch_info(self) -> EpochInfo:
        return EpochInfo.model_validate({"epoch": EPOCH, "slotIndex": 0, "slotsInEpoch": 432, "absoluteSlot": 4_000})


def test_a_mint_write_re_evaluates_cycles_only_when_what_a_swap_takes_of_it_changes() -> None:
    """Two CPMM pools over (base, X), X a Token-2022 mint with a transfer fee, and two over (base, Z), Z an
    extension-free Token-2022 mint: 4 cycles. Writes to X or Z that leave the fee in force as it was (supply,
    withheld fees, authorities, a newer fee for a later epoch; Z's supply) size no cycle; a change of X's fee
    in force, or Z refused, sizes the 2 cycles through the pools holding it."""
    base, x, z, owner = key(), key(), key(), key()
    older, newer = TransferFee(0, U64, 100), TransferFee(0, U64, 100)
    world: dict[Pubkey, AccountData] = {x: t22_owned(fee_mint_data(older, newer)), z: t22_owned(mint_data())}
    pools: dict[Pubkey, list[Pubkey]] = {x: [], z: []}
    vaults: dict[Pubkey, Pubkey] = {}
    for mint, reserves in ((x, (10**12, 150 * 10**12)), (x, (10**12, 140 * 10**12)), (z, (10**12, 3 * 10**12)),
                           (z, (10**12, 2 * 10**12))):  # fmt: skip
        pool, config, va, vb = key(), key(), key(), key()
        data = bytearray(cpmm_pool_data(config, va, vb, base, mint))
        data[264:296] = bytes(TOKEN_2022)
        world[pool] = AccountData(bytes(data), RAYDIUM_CPMM)
        world[config] = AccountData(cpmm_config_data(2_500), RAYDIUM_CPMM)
        world[va] = spl_owned(token_account_data(base, owner, reserves[0]))
        world[vb] = t22_owned(token_account_data(mint, owner, reserves[1]))
        pools[mint].append(pool)
        vaults[pool] = va

    book = PoolBook()
    for pool in (*pools[x], *pools[z]):
        book.add("raydium_cpmm", pool)
    finder = CountingFinder(CycleSettings(base_mint=str(base), max_input=10**11))
    searcher = SolanaSearcher(book, finder, None, Node())  # type: ignore[arg-type]

    async def write(*items: tuple[Pubkey, AccountData]) -> int:
        """Apply the writes as the account stream delivers them; the cycles sized for them."""
        before = finder.sized
        await searcher.on_accounts(list(items))
        return finder.sized - before

    async def go() -> None:
        seen: set[Pubkey] = set()
        while todo := [k for k in book.accounts() if k not in seen]:
            seen |= set(todo)
            await write(*((k, world[k]) for k in todo))
        assert book.epoch == EPOCH and all(p.ready() for p in book.pools.values())
        assert len(finder.cycles) == 4
        through_x, through_z = (len(finder.affected([book.pools[p] for p in pools[m]])) for m in (x, z))
        assert through_x == through_z == 2
        versions = {p: pool.version for p, pool in book.pools.items()}

        # Minted, burnt, fees harvested to the mint, authorities set: no fee in force changes.
        assert await write((x, t22_owned(fee_mint_data(older, newer, supply=7 * 10**15)))) == 0
        assert await write((x, t22_owned(fee_mint_data(older, newer, withheld_amount=12_345)))) == 0
        assert await write((x, t22_owned(fee_mint_data(older, newer, config_authority=owner)))) == 0
        assert await write((z, t22_owned(mint_data(supply=5)))) == 0
        # SetTransferFee: 3% from two epochs on; until then the older fee stays in force.
        later = TransferFee(EPOCH + 2, U64, 300)
        assert await write((x, t22_owned(fee_mint_data(older, later)))) == 0
        assert {p: pool.version for p, pool in book.pools.items()} == versions  # no cycle sized on them is stale
        assert book.pools[pools[x][0]].transfer_fee(x) == older
        # The epoch comes: the pools holding X are re-sized at the newer fee.
        assert {p.address for p in book.set_epoch(EPOCH + 2)} == set(pools[x])
        assert book.pools[pools[x][0]].transfer_fee(x) == later

        # The fee in force changes (0.5% at once): the 2 cycles through X's pools are sized again, at it.
        now = TransferFee(EPOCH + 2, U64, 50)
        assert await write((x, t22_owned(fee_mint_data(older, now)))) == through_x
        pool = book.pools[pools[x][0]]
        swap = pool.transfer_quote(10**9, True)
        assert pool.transfer_fee(x) == now and swap.fee_out == now.fee(swap.pool_out) > 0
        # Z re-owned by another program is refused: that changes every quote through it.
        assert await write((z, AccountData(mint_data(), key()))) == through_z
        with pytest.raises(QuoteError, match="refused"):
            book.pools[pools[z][0]].quote(10**6, True)
        # A vault's write sizes the cycles through its pool, as before.
        vault = spl_owned(token_account_data(base, owner, 2 * 10**12))
        assert await write((vaults[pools[x][0]], vault)) == len(finder.affected([pool])) == 2  # both ways

    asyncio.run(go())
