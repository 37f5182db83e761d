"""Whirlpool, Raydium CLMM and Meteora DLMM pools in the book and in cycles next to Raydium CPMM pools.

In process: account bytes in the published layouts go through PoolBook (a missing tick-array account
counts as an empty array, one not read yet keeps the pool out), a CPMM + Whirlpool and a CPMM + CLMM cycle
are found and sized, each hop equal to that pool's own exact quote, the Whirlpool leg crossing an
initialized tick; an adaptive-fee Whirlpool refuses to quote; the executor's Whirlpool and CLMM venues
build their swap_v2 over the arrays the quote walked; an executor without a venue for a kind refuses its
cycle before the gate. Over the network: the agent, unmodified, finds each mixed cycle (CPMM with
Whirlpool, CLMM or DLMM) from the
simulator's WebSocket updates and lands it (the swaps settle as SPL transfers of the exact quoted amounts,
world.settle_by_transfers: no DEX program can run here).
"""

from __future__ import annotations

import asyncio
import math

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from mevagent.core import Status
from mevagent.solana.book import PoolBook
from mevagent.solana.clmm import RAYDIUM_CLMM, ClmmPool
from mevagent.solana.clmm import array_start as clmm_array_start
from mevagent.solana.clmm import tick_array_address as clmm_tick_array_address
from mevagent.solana.cycles import CycleFinder, CycleSettings, run_cycle
from mevagent.solana.executor import ExecutorSettings, SolanaExecutor, clmm_venue, raydium_venue, whirlpool_venue
from mevagent.solana.layouts import RAYDIUM_CPMM, AccountData
from mevagent.solana.raydium import CpmmPool, QuoteError
from mevagent.solana.token2022 import TransferFee
from mevagent.solana.whirlpool import WHIRLPOOL_PROGRAM, WhirlpoolPool, tick_array_address, tick_array_start
from testbed.solana.standin import RunningStandIn
from testbed.solana.world import (
    SOL,
    build_world,
    clmm_config_data,
    clmm_pool_data,
    clmm_tick_array_data,
    cpmm_config_data,
    cpmm_pool_data,
    mint_data,
    spl_owned,
    t22_owned,
    tick_array_data,
    token_account_data,
    whirlpool_data,
)

from .test_agent_solana_e2e import Agent
from .token2022_world import fee_mint_data

TICK_140 = round(math.log(140) / math.log(1.0001))  # 140 other per base (token B per token A)


def keys(n: int) -> list[Pubkey]:
    return [Keypair().pubkey() for _ in range(n)]


def test_mixed_cycle_raydium_and_whirlpool_in_process() -> None:
    base, other, config, cpmm, cva, cvb, whirl, wva, wvb, owner = keys(10)
    book = PoolBook()
    book.add("raydium_cpmm", cpmm)
    wp = book.add("orca_whirlpool", whirl)
    assert isinstance(wp, WhirlpoolPool)
    spacing, inner = 64, 10**12
    lower, upper = (TICK_140 // spacing - 2) * spacing, (TICK_140 // spacing + 2) * spacing
    book.apply_many(
        [
            (cpmm, AccountData(cpmm_pool_data(config, cva, cvb, base, other), RAYDIUM_CPMM)),
            (whirl, AccountData(whirlpool_data(base, wva, other, wvb, TICK_140, 10**12 + inner), WHIRLPOOL_PROGRAM)),
        ]
    )
    here = tick_array_start(TICK_140, spacing)
    current = tick_array_address(whirl, here)
    # The pool, its five tick arrays and its two mints (read for Token-2022 transfer fees).
    assert len(wp.accounts()) == 8 and current in wp.accounts() and current in book.accounts()
    assert wp.accounts()[-2:] == (base, other)
    book.apply_many(
        [
            (base, spl_owned(mint_data())),
            (other, spl_owned(mint_data())),
            (config, AccountData(cpmm_config_data(2_500), RAYDIUM_CPMM)),
            (cva, spl_owned(token_account_data(base, owner, 100 * SOL))),
            (cvb, spl_owned(token_account_data(other, owner, 15_000 * SOL))),
            (
                current,
                AccountData(tick_array_data(whirl, here, spacing, {lower: inner, upper: -inner}), WHIRLPOOL_PROGRAM),
            ),
        ]
    )
    assert not wp.ready()  # four tick arrays not read yet
    with pytest.raises(QuoteError):
        wp.quote(SOL, True)
    others = [k for k in wp.accounts()[1:-2] if k != current]
    changed = book.apply_many([(k, None) for k in others])  # they do not exist: empty arrays
    assert changed == [wp] and wp.ready()

    finder = CycleFinder(CycleSettings(base_mint=str(base), max_input=50 * SOL, compute_unit_price_micro_lamports=1))
    finder.rebuild(book.pools.values())
    assert len(finder.cycles) == 2  # base -> other on one pool, back on the other, both ways round
    found = finder.evaluate([wp], slot=1)
    assert len(found) == 1 and found[0].net > 0
    best = found[0]
    first, second = best.cycle.legs
    # Buy the other token where it is cheap in base (CPMM at 150), sell it on the Whirlpool (140).
    assert isinstance(first.pool, CpmmPool) and first.zero_for_one
    assert second.pool is wp and not second.zero_for_one
    assert best.amounts == run_cycle(best.cycle, best.amount_in)
    assert best.amounts[0] == first.pool.quote(best.amount_in, True)
    swap = wp.swap(best.amounts[0], False)
    assert swap.amount_out == best.amounts[1] and swap.ticks_crossed >= 1
    assert best.amount_out - best.amount_in == best.gross > best.tip + best.priority_fee + best.base_fee

    # The executor's Whirlpool venue: one swap_v2 from our token accounts, the arrays in the swap's direction.
    ours_base, ours_other = keys(2)
    ixs, signers = whirlpool_venue(second, best.amounts[0], best.amount_in, owner, {base: ours_base, other: ours_other})
    assert signers == [] and len(ixs) == 1 and ixs[0].program_id == wp.program
    metas = [m.pubkey for m in ixs[0].accounts]
    assert metas[7:11] == [ours_base, wva, ours_other, wvb] and metas[11] == current
    assert ixs[0].data[8:24] == best.amounts[0].to_bytes(8, "little") + best.amount_in.to_bytes(8, "little")
    assert ixs[0].data[-2:] == b"\x00\x00"  # b -> a, no remaining accounts

    # The price leaves the current array: the new arrays are tracked and the pool waits for them.
    moved = TICK_140 + 3 * 88 * spacing
    book.apply_many([(whirl, AccountData(whirlpool_data(base, wva, other, wvb, moved, 10**12), WHIRLPOOL_PROGRAM))])
    new = tick_array_address(whirl, tick_array_start(moved, spacing) + 2 * 88 * spacing)
    assert new in book.accounts() and not wp.ready()

    # A Whirlpool with an adaptive fee (fee tier index != tick spacing) is not quoted: its oracle is not modelled.
    adaptive = bytearray(whirlpool_data(base, wva, other, wvb, TICK_140, 10**12))
    adaptive[43:45] = (1025).to_bytes(2, "little")
    book.apply_many([(whirl, AccountData(bytes(adaptive), WHIRLPOOL_PROGRAM))])
    book.apply_many([(k, None) for k in wp.accounts()[1:-2]])
    assert wp.ready()
    with pytest.raises(QuoteError, match="adaptive"):
        wp.quote(SOL, True)
    through = finder.affected([wp])
    assert len(through) == 2 and all(run_cycle(c, SOL) is None for c in through)
    assert finder.evaluate([wp], slot=2) == []


@pytest.mark.parametrize("venue", ["orca_whirlpool", "raydium_clmm", "meteora_dlmm"])
def test_agent_lands_a_cpmm_and_concentrated_liquidity_cycle(standin: RunningStandIn, tmp_path, venue: str) -> None:
    world = build_world(standin)
    world.add_pool(100 * SOL, 15_000 * SOL)  # CPMM: 150 other per base
    if venue == "orca_whirlpool":  # 140 other per base
        world.add_whirlpool(TICK_140, liquidity=10**12, inner=10**12)
    elif venue == "raydium_clmm":
        world.add_clmm(clmm_array_start(TICK_140, 10) + 300, liquidity=2 * 10**12)
    else:
        world.add_dlmm(round(math.log(140) / math.log(1.001)))

    async def go():
        base_before = world.balance(world.ours[world.base])
        async with Agent(standin, world, tmp_path) as agent:
            outcome = await agent.outcome()
            best = agent.searcher.stats.found[0]
        assert outcome.status == Status.LANDED, outcome.reason
        kinds = [type(leg.pool).__name__ for leg in best.cycle.legs]
        names = {"orca_whirlpool": "WhirlpoolPool", "raydium_clmm": "ClmmPool", "meteora_dlmm": "DlmmPool"}
        assert kinds == ["CpmmPool", names[venue]] and best.net > 0
        # Exactly the quoted amounts moved, in one transaction of one bundle.
        assert world.balance(world.ours[world.base]) == base_before - best.amount_in + best.amount_out
        assert world.balance(world.ours[world.other]) == 0
        status = standin.call("getSignatureStatuses", [outcome.tx_hashes[0]])["value"][0]
        assert status is not None and status["err"] is None

    asyncio.run(go())


def test_clmm_in_a_cycle_and_its_venue() -> None:
    base, other, config, cpmm, cva, cvb, clmm, clmm_config = keys(8)
    spacing, inner = 10, 2 * 10**12
    start = clmm_array_start(TICK_140, spacing)
    tick = start + 300  # mid-array: the whole position's range is in this one array
    book = PoolBook()
    book.add("raydium_cpmm", cpmm)
    pool = book.add("raydium_clmm", clmm)
    assert isinstance(pool, ClmmPool)
    array = clmm_tick_array_address(clmm, start)
    book.apply_many(
        [
            (cpmm, AccountData(cpmm_pool_data(config, cva, cvb, base, other), RAYDIUM_CPMM)),
            (clmm, AccountData(clmm_pool_data(clmm_config, base, other, tick, inner, spacing), RAYDIUM_CLMM)),
        ]
    )
    assert set(pool.accounts()) == {clmm, clmm_config, array, base, other} and not pool.ready()
    owner = Keypair().pubkey()
    book.apply_many(
        [
            (base, spl_owned(mint_data())),
            (other, spl_owned(mint_data())),
            (config, AccountData(cpmm_config_data(2_500), RAYDIUM_CPMM)),
            (cva, spl_owned(token_account_data(base, owner, 100 * SOL))),
            (cvb, spl_owned(token_account_data(other, owner, 15_000 * SOL))),
            (clmm_config, AccountData(clmm_config_data(2_500), RAYDIUM_CLMM)),
            (
                array,
                AccountData(
                    clmm_tick_array_data(clmm, start, spacing, {start: inner, start + 590: -inner}), RAYDIUM_CLMM
                ),
            ),
        ]
    )
    assert pool.ready()
    # A mint charging a Token-2022 transfer fee (1%): the output arrives net of it (test_token2022.py checks
    # CLMM transfer fees against the SDK).
    plain = pool.quote(SOL, True)
    fee = TransferFee(0, 10**9, 100)
    book.apply_many([(other, t22_owned(fee_mint_data(fee, fee)))])
    swap = pool.transfer_quote(SOL, True)
    assert (swap.pool_out, swap.fee_out) == (plain, fee.fee(plain)) and pool.quote(SOL, True) == plain - fee.fee(plain)
    book.apply_many([(other, spl_owned(mint_data()))])
    finder = CycleFinder(CycleSettings(base_mint=str(base), max_input=50 * SOL, compute_unit_price_micro_lamports=1))
    finder.rebuild(book.pools.values())
    found = finder.evaluate([pool], slot=1)
    assert len(found) == 1 and found[0].net > 0
    best = found[0]
    first, second = best.cycle.legs
    assert isinstance(first.pool, CpmmPool) and second.pool is pool and not second.zero_for_one
    assert best.amounts == run_cycle(best.cycle, best.amount_in)
    assert best.amounts[1] == pool.swap(best.amounts[0], False).amount_out

    # The executor's CLMM venue: one swap_v2 from our token accounts over the arrays the quote walked.
    ours_base, ours_other = keys(2)
    ixs, _ = clmm_venue(second, best.amounts[0], best.amount_in, owner, {base: ours_base, other: ours_other})
    metas = [m.pubkey for m in ixs[0].accounts]
    assert metas[3:5] == [ours_other, ours_base] and metas[-1] == array and ixs[0].program_id == pool.program

    # A kind the executor has no instruction for is refused before the gate: nothing is signed or sent.
    async def refused():
        executor = SolanaExecutor(
            None,  # type: ignore[arg-type]
            [],
            Keypair(),
            {},
            None,  # type: ignore[arg-type]
            ExecutorSettings(sol_usd=1.0),
            [],
            venues={"raydium_cpmm": raydium_venue},
        )
        return await executor.execute(best, 400_000, 1), executor.sent

    outcome, sent = asyncio.run(refused())
    assert outcome.status == Status.REJECTED and outcome.reason == "no swap instruction for raydium_clmm"
    assert sent == []
