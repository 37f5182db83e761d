"""A mint's token program is its account's owner, and the self-contained searcher knows the epoch.

In LiteSVM: a cycle through a Whirlpool and a Meteora DLMM pair over an extension-free Token-2022 mint (82
bytes, as an SPL Token mint) is built by the agent's executor and executes; the DEX programs cannot run
here, so each leg settles as its program would move the tokens: TransferChecked through the token
programs the agent's own swap instruction names for the mints (naming SPL Token for that mint fails the
transfer, as it fails the program's CPI). The same mint owned by another program is refused, with the
reason, and no cycle goes through it. Over the simulator: `SolanaSearcher` (collector -> book -> cycles)
asks the node its epoch, so pools whose mint has two different transfer fees are quoted, at the fee in
force, and re-quoted when the epoch turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
from collections.abc import Mapping, Sequence

import aiohttp
import pytest
from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.transaction_metadata import TransactionMetadata

from mevagent.solana.book import PoolBook
from mevagent.solana.collector import AccountCollector
from mevagent.solana.cycles import CycleFinder, CycleSettings, Leg, run_cycle
from mevagent.solana.dlmm import METEORA_DLMM
from mevagent.solana.executor import ExecutorSettings, SolanaExecutor, Venue, dlmm_venue, whirlpool_venue
from mevagent.solana.layouts import RAYDIUM_CPMM, TOKEN_2022, TOKEN_PROGRAM, LayoutError
from mevagent.solana.raydium import QuoteError
from mevagent.solana.rpc import SolanaRpc
from mevagent.solana.searcher import SolanaSearcher
from mevagent.solana.token2022 import EpochInfo, TransferFee, decode_mint
from mevagent.solana.whirlpool import WHIRLPOOL_PROGRAM, tick_array_address, tick_array_start
from testbed.solana.standin import RunningStandIn
from testbed.solana.world import (
    SOL,
    cpmm_config_data,
    cpmm_pool_data,
    dlmm_accounts,
    mint_data,
    put,
    svm_account,
    tick_array_data,
    token_account_data,
    whirlpool_data,
)

from .token2022_world import amount, create_mint, create_token_account, fee_mint_data, mint_to, transfer_checked

U64 = 2**64 - 1
TICK_140 = round(math.log(140) / math.log(1.0001))  # Whirlpool: 140 X per base
ACTIVE_150 = round(math.log(150) / math.log(1.001))  # DLMM (bin step 10): 150 X per base


Vaults = Mapping[tuple[Pubkey, Pubkey], Pubkey]  # (pool, mint) -> the pool's vault


def program_standin(agent_venue: Venue, authority: Keypair, vaults: Vaults, mint_program_at: dict[int, int]) -> Venue:
    """The DEX program's token movements for the agent's own swap instruction: `mint_program_at` maps the
    index of each mint in that instruction to the index of the token program it names for it."""

    def venue(
        leg: Leg, amount_in: int, min_out: int, owner: Pubkey, accounts: Mapping[Pubkey, Pubkey]
    ) -> tuple[list[Instruction], list[Keypair]]:
        ixs, _ = agent_venue(leg, amount_in, min_out, owner, accounts)
        metas = ixs[0].accounts
        named = {metas[m].pubkey: metas[p].pubkey for m, p in mint_program_at.items()}
        pool, (mint_in, mint_out) = leg.pool, (leg.mint_in, leg.mint_out)
        swap = pool.transfer_quote(amount_in, leg.zero_for_one)
        paid = swap.pool_out if swap.received >= min_out else U64  # the program refuses below min_out
        decimals = {m: pool.mint_info[m].decimals for m in (mint_in, mint_out)}
        return [
            transfer_checked(named[mint_in], accounts[mint_in], mint_in, vaults[(pool.address, mint_in)], owner,
                             amount_in, decimals[mint_in]),
            transfer_checked(named[mint_out], vaults[(pool.address, mint_out)], mint_out, accounts[mint_out],
                             authority.pubkey(), paid, decimals[mint_out]),
        ], [authority]  # fmt: skip

    return venue


def test_a_cycle_over_an_extension_free_token_2022_mint_executes_and_a_foreign_mint_is_refused() -> None:
    svm, payer, authority = LiteSVM(), Keypair(), Keypair()
    svm.airdrop(payer.pubkey(), 100 * SOL)
    svm.airdrop(authority.pubkey(), SOL)
    base = create_mint(svm, payer, authority, TOKEN_PROGRAM, 9)
    x = create_mint(svm, payer, authority, TOKEN_2022, 6)  # no extension: 82 bytes, as an SPL Token mint
    assert len(svm.get_account(x).data) == len(svm.get_account(base).data) == 82
    programs = {base: TOKEN_PROGRAM, x: TOKEN_2022}
    ours = {m: create_token_account(svm, payer, m, payer.pubkey(), p, fee=False) for m, p in programs.items()}
    mint_to(svm, payer, authority, base, ours[base], 1_000 * SOL, TOKEN_PROGRAM)

    whirl, pair = Keypair().pubkey(), Keypair().pubkey()
    vaults: dict[tuple[Pubkey, Pubkey], Pubkey] = {}
    for pool in (whirl, pair):
        for mint, program in programs.items():
            vaults[(pool, mint)] = create_token_account(svm, payer, mint, authority.pubkey(), program, fee=False)
            mint_to(svm, payer, authority, mint, vaults[(pool, mint)], 10_000 * SOL, program)

    def put_svm(address: Pubkey, data: bytes, owner: Pubkey) -> None:
        svm.set_account(address, Account(SOL // 10, data, owner, False, 0))

    spacing, inner = 64, 10**12
    lower, upper = (TICK_140 // spacing - 2) * spacing, (TICK_140 // spacing + 2) * spacing
    put_svm(whirl, whirlpool_data(base, vaults[(whirl, base)], x, vaults[(whirl, x)], TICK_140, 2 * inner),
            WHIRLPOOL_PROGRAM)  # fmt: skip
    start = tick_array_start(TICK_140, spacing)
    put_svm(tick_array_address(whirl, start), tick_array_data(whirl, start, spacing, {lower: inner, upper: -inner}),
            WHIRLPOOL_PROGRAM)  # fmt: skip
    for key, data in dlmm_accounts(pair, base, vaults[(pair, base)], x, vaults[(pair, x)], ACTIVE_150):
        put_svm(key, data, METEORA_DLMM)

    book = PoolBook()
    book.add("orca_whirlpool", whirl)
    book.add("meteora_dlmm", pair)

    def read_all() -> None:
        for _ in range(3):  # the pools, then the arrays and mints they name
            book.apply_many([(k, svm_account(svm, k)) for k in book.accounts()])

    read_all()
    assert all(p.ready() for p in book.pools.values())
    for pool in book.pools.values():  # the owner, not the data (82 bytes either way), tells the program
        assert pool.mint_info[x].program == pool.token_program(x) == TOKEN_2022
        assert pool.mint_info[base].program == pool.token_program(base) == TOKEN_PROGRAM

    finder = CycleFinder(CycleSettings(base_mint=str(base), max_input=20 * SOL, compute_unit_price_micro_lamports=1))
    finder.rebuild(book.pools.values())
    found = finder.evaluate(list(book.pools.values()), slot=1)
    assert found, "no profitable cycle"
    best = found[0]
    assert [leg.pool.address for leg in best.cycle.legs] == [pair, whirl]  # X is cheap on the DLMM pair
    tip = Keypair().pubkey()
    svm.airdrop(tip, SOL)
    executor = SolanaExecutor(
        None,  # type: ignore[arg-type]
        [],
        payer,
        ours,
        None,  # type: ignore[arg-type]
        ExecutorSettings(sol_usd=1.0),
        [tip],
        venues={
            # swap_v2: mints at 5 and 6, their token programs at 0 and 1; swap2: mints 6, 7, programs 11, 12.
            "orca_whirlpool": program_standin(whirlpool_venue, authority, vaults, {5: 0, 6: 1}),
            "meteora_dlmm": program_standin(dlmm_venue, authority, vaults, {6: 11, 7: 12}),
        },
    )
    before = {m: amount(svm, a) for m, a in ours.items()}
    built = executor.build(best, svm.latest_blockhash(), 400_000, 1)
    result = svm.send_transaction(built.tx)
    assert isinstance(result, TransactionMetadata), result  # SPL Token named for X fails: IncorrectProgramId
    assert amount(svm, ours[base]) - before[base] == best.amount_out - best.amount_in > 0
    assert amount(svm, ours[x]) == before[x]  # what the first leg brought, the second took on

    # A mint owned by another program: refused with the reason, not quoted, no cycle through it.
    stranger = Keypair().pubkey()
    mint = svm.get_account(x)
    svm.set_account(x, Account(mint.lamports, bytes(mint.data), stranger, False, 0))
    read_all()
    for pool in book.pools.values():
        assert pool.ready()  # read: the refusal is what it knows of the mint
        with pytest.raises(QuoteError, match=f"mint {x} refused: owned by {stranger}, not by a token program"):
            pool.quote(SOL, True)
        with pytest.raises(QuoteError, match="no token program"):
            pool.token_program(x)
    assert finder.evaluate(list(book.pools.values()), slot=2) == []
    # Extension bytes under SPL Token are no mint either.
    with pytest.raises(LayoutError, match="owned by SPL Token"):
        decode_mint(fee_mint_data(TransferFee(0, 0, 0), TransferFee(0, 0, 0)), TOKEN_PROGRAM)


def t22_vault_data(mint: Pubkey, owner: Pubkey, balance: int) -> bytes:
    """A Token-2022 account of a fee mint: the SPL layout, AccountType 2, then TransferFeeAmount (withheld)."""
    return token_account_data(mint, owner, balance) + b"\x02" + struct.pack("<HHQ", 2, 8, 0)


def test_the_searcher_asks_the_node_its_epoch_and_quotes_two_fee_mints(standin: RunningStandIn) -> None:
    """Two CPMM pools (base, X) at 150 and 140 X per base, X charging 0.5% now and 1.5% from the next epoch:
    the searcher's own loop (AccountCollector -> on_accounts / on_slot) asks the node its epoch, finds the
    cycle at the older fee, and at the next epoch's first slot asks again and re-sizes it at the newer."""
    start = standin.call("standin_pauseTicker")
    info = EpochInfo.model_validate(standin.call("getEpochInfo"))
    assert info.absolute_slot == start
    older, newer = TransferFee(0, U64, 50), TransferFee(info.epoch + 1, U64, 150)
    owner = Keypair().pubkey()
    base, x, config = (Keypair().pubkey() for _ in range(3))
    put(standin, base, mint_data(), TOKEN_PROGRAM)
    put(standin, x, fee_mint_data(older, newer), TOKEN_2022)
    put(standin, config, cpmm_config_data(2_500), RAYDIUM_CPMM)
    book = PoolBook()
    for reserve_x in (15_000 * SOL, 14_000 * SOL):
        cpmm, va, vb = (Keypair().pubkey() for _ in range(3))
        put(standin, va, token_account_data(base, owner, 100 * SOL), TOKEN_PROGRAM)
        put(standin, vb, t22_vault_data(x, owner, reserve_x), TOKEN_2022)
        data = bytearray(cpmm_pool_data(config, va, vb, base, x))
        data[264:296], data[332] = bytes(TOKEN_2022), 6
        put(standin, cpmm, bytes(data), RAYDIUM_CPMM)
        book.add("raydium_cpmm", cpmm)
    settings = CycleSettings(base_mint=str(base), max_input=20 * SOL, compute_unit_price_micro_lamports=1)

    async def until(predicate, what: str) -> None:
        async def wait() -> None:
            while not predicate():
                await asyncio.sleep(0.01)

        try:
            await asyncio.wait_for(wait(), 5)
        except TimeoutError:
            pytest.fail(f"not within 5 s: {what}")

    def fee_of(found: Sequence) -> TransferFee:
        """The fee the best cycle's X legs pay: the first leg's output fee, at its exact quote."""
        best = found[-1]
        assert best.amounts == run_cycle(best.cycle, best.amount_in)
        leg = best.cycle.legs[0]
        swap = leg.pool.transfer_quote(best.amount_in, leg.zero_for_one)
        for fee in (older, newer):
            if swap.fee_out == fee.fee(swap.pool_out):
                return fee
        raise AssertionError(swap)

    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            rpc = SolanaRpc(session, standin.http)
            searcher = SolanaSearcher(book, CycleFinder(settings), None, rpc)
            collector = AccountCollector(
                session, rpc, standin.ws, book.accounts(), searcher.on_accounts, searcher.on_slot
            )
            task = asyncio.create_task(collector.run())
            try:
                await until(lambda: searcher.stats.found, "a cycle found (the epoch asked)")
                assert (book.epoch, book.next_epoch_slot) == (info.epoch, info.next_epoch_slot)
                assert fee_of(searcher.stats.found) == older
                seen = len(searcher.stats.found)
                standin.call("standin_warpSlot", info.next_epoch_slot - 1)  # still this epoch: nothing changes
                await until(lambda: searcher.slot == info.next_epoch_slot - 1, "the slot notification")
                assert book.epoch == info.epoch and len(searcher.stats.found) == seen
                standin.call("standin_warpSlot", info.next_epoch_slot)
                await until(lambda: len(searcher.stats.found) > seen, "the cycle re-sized at the new epoch")
                assert book.epoch == info.epoch + 1 and fee_of(searcher.stats.found) == newer
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    try:
        asyncio.run(go())
    finally:
        standin.call("standin_resumeTicker")
