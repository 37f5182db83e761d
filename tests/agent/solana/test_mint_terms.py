"""Which mint accounts a pool reads, and what a mint account's write changes.

The mints a pool reads (`fee_mints`) are derived from its mints and the token program its own data records
for each: AMM v4 records SPL Token for both (none read), CPMM records each mint's program (its Token-2022
ones read), a CLMM pool, a Whirlpool and a DLMM pair record none (both read, each one's owner is its
program).
"""

from __future__ import annotations

import itertools
import os

import pytest
from solders.pubkey import Pubkey

from mevagent.solana.clmm import RAYDIUM_CLMM, ClmmPool
from mevagent.solana.dlmm import METEORA_DLMM, DlmmPool
from mevagent.solana.layouts import AMM_V4_SIZE, RAYDIUM_AMM_V4, RAYDIUM_CPMM, TOKEN_2022, TOKEN_PROGRAM, AccountData
from mevagent.solana.raydium import AmmV4Pool, CpmmPool, Pool, QuoteError
from mevagent.solana.whirlpool import WHIRLPOOL_PROGRAM, WhirlpoolPool

from .world import clmm_pool_data, cpmm_pool_data, dlmm_accounts, mint_data, spl_owned, t22_owned, whirlpool_data


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
