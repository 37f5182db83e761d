"""Victims' losses on concentrated-liquidity pools (Orca Whirlpool, Raydium CLMM, Meteora DLMM), on sandwiches
built in LiteSVM.

As in test_sandwich_detection: the pool's accounts in their published layouts, its vaults real SPL token
accounts, each swap the pool's exact quote (the agent's own quote code) settled as two SPL transfers in a
real transaction, recorded as `getBlock` reports it. No CL program runs here, so after each swap the test
writes the pool's new state itself (Whirlpool and CLMM: the sqrt price and tick the swap ends at, no tick
crossed; DLMM: the walked bins' new reserves and the active bin). The block does not carry that state, so
the detector's pre-front-run state is its pool book's copy from before the slot (`snapshot`), accepted only
when it re-quotes the front-run exactly. The victim's loss is checked against a second LiteSVM where the
front-run never happened.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from typing import Any

import pytest
from solders.account import Account
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey

from mevagent.solana.book import PROGRAMS, PoolBook
from mevagent.solana.clmm import ClmmPool, compute_swap_step, sqrt_price_at_tick, tick_at_sqrt_price
from mevagent.solana.clmm import tick_array_address as clmm_tick_array_address
from mevagent.solana.dlmm import DlmmPool, swap_at_bin, total_fee_rate
from mevagent.solana.dlmm import bin_array_address as dlmm_bin_array_address
from mevagent.solana.layouts import TOKEN_PROGRAM
from mevagent.solana.raydium import Pool
from mevagent.solana.sandwich import SlotBlock, SlotClassifier, classify_slot, snapshot
from mevagent.solana.whirlpool import WhirlpoolPool, tick_array_address, tick_array_start
from testbed.solana.world import (
    RENT,
    SOL,
    clmm_config_data,
    clmm_pool_data,
    clmm_tick_array_data,
    dlmm_bin_array_data,
    dlmm_lb_pair_data,
    mint_data,
    svm_account,
    tick_array_data,
    token_account_data,
    transfer_swap,
    whirlpool_data,
)

Q, B = Keypair().pubkey(), Keypair().pubkey()  # the quote mint (token A / X of every pool) and the base mint
AUTHORITY = Keypair()  # owns the vaults: co-signs the pool side of each settlement
LIQUIDITY = 10**13
DLMM_ACTIVE, DLMM_STEP, PER_BIN = 35, 10, 5 * SOL
BLOCK_TIME = 1_700_000_000


@dataclass
class Chain:
    kind: str
    svm: LiteSVM = field(default_factory=LiteSVM)
    book: PoolBook = field(default_factory=PoolBook)
    traders: dict[Pubkey, dict[Pubkey, Pubkey]] = field(default_factory=dict)
    txs: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.address, self.vault_q, self.vault_b, config = (Keypair().pubkey() for _ in range(4))
        self.svm.airdrop(AUTHORITY.pubkey(), SOL)
        for mint in (Q, B):
            self.put(mint, mint_data(), TOKEN_PROGRAM)
        self.put(self.vault_q, token_account_data(Q, AUTHORITY.pubkey(), 10_000 * SOL), TOKEN_PROGRAM)
        self.put(self.vault_b, token_account_data(B, AUTHORITY.pubkey(), 10_000 * SOL), TOKEN_PROGRAM)
        program = PROGRAMS[self.kind]
        if self.kind == "orca_whirlpool":  # price 1, no initialized tick in the five arrays
            self.put(self.address, whirlpool_data(Q, self.vault_q, B, self.vault_b, 0, LIQUIDITY), program)
            start = tick_array_start(0, 64)
            self.put(tick_array_address(self.address, start), tick_array_data(self.address, start, 64, {}), program)
        elif self.kind == "raydium_clmm":  # tick 300, LIQUIDITY over its array's ticks 0..590
            data = bytearray(clmm_pool_data(config, Q, B, 300, LIQUIDITY, 10))
            data[137:169], data[169:201] = bytes(self.vault_q), bytes(self.vault_b)
            self.put(self.address, bytes(data), program)
            self.put(config, clmm_config_data(2_500), program)
            array = clmm_tick_array_data(self.address, 0, 10, {0: LIQUIDITY, 590: -LIQUIDITY})
            self.put(clmm_tick_array_address(self.address, 0), array, program)
        else:  # DLMM: PER_BIN of X in bins 35..69, of Y in bins 1..35, static fee 0.1 %
            self.bins = {
                i: (PER_BIN if i >= DLMM_ACTIVE else 0, PER_BIN if 0 < i <= DLMM_ACTIVE else 0) for i in range(70)
            }
            fields = {
                "base_factor": 10_000, "filter_period": 30, "decay_period": 600, "reduction_factor": 5_000,
                "variable_fee_control": 0, "max_va": 350_000, "protocol_share": 500, "power": 0,
                "function_type": 1, "mode": 0, "va": 0, "vr": 0, "ir": DLMM_ACTIVE, "last_update": 0,
                "active_id": DLMM_ACTIVE, "bin_step": DLMM_STEP, "mint_x": Q, "mint_y": B,
                "reserve_x": self.vault_q, "reserve_y": self.vault_b, "bitmap": 1 << 512,
            }  # fmt: skip
            self.put(self.address, dlmm_lb_pair_data(fields), program)
            self.write_bins()
        self.book.add(self.kind, self.address)

    def put(self, key: Pubkey, data: bytes, owner: Pubkey) -> None:
        self.svm.set_account(key, Account(RENT, data, owner, False, 0))

    def write_bins(self) -> None:
        bins = [(x, y, int((1 + DLMM_STEP / 10_000) ** i * 2**64)) for i, (x, y) in sorted(self.bins.items())]
        key = dlmm_bin_array_address(self.address, 0)
        self.put(key, dlmm_bin_array_data(self.address, 0, bins), PROGRAMS[self.kind])

    def patch(self, offset: int, value: bytes) -> None:
        """The pool account with `value` written at `offset` (its new state after a swap)."""
        data = bytearray(self.svm.get_account(self.address).data)
        data[offset : offset + len(value)] = value
        self.put(self.address, bytes(data), PROGRAMS[self.kind])

    def trader(self, keypair: Keypair, q: int = 500 * SOL) -> Keypair:
        self.svm.airdrop(keypair.pubkey(), SOL)
        accounts = {Q: Keypair().pubkey(), B: Keypair().pubkey()}
        for mint, amount in ((Q, q), (B, 0)):
            self.put(accounts[mint], token_account_data(mint, keypair.pubkey(), amount), TOKEN_PROGRAM)
        self.traders[keypair.pubkey()] = accounts
        return keypair

    def amount(self, account: Pubkey) -> int:
        return struct.unpack_from("<Q", bytes(self.svm.get_account(account).data), 64)[0]

    def pool(self) -> Pool:
        """The pool as the agent's book decodes it from the accounts as they are now."""
        for _ in range(3):  # the pool first, then the accounts it names
            self.book.apply_many([(key, svm_account(self.svm, key)) for key in self.book.accounts()])
        pool = self.book.pools[self.address]
        assert pool.ready()
        return pool

    def settle(self, pool: Pool, amount_in: int, a_to_b: bool) -> int:
        """The pool's exact quote; the pool's state after it written back as its program would leave it."""
        if isinstance(pool, WhirlpoolPool):
            result = pool.swap(amount_in, a_to_b)
            assert result.ticks_crossed == 0
            self.patch(65, result.sqrt_price.to_bytes(16, "little") + struct.pack("<i", result.tick_current_index))
            return result.amount_out
        if isinstance(pool, ClmmPool):
            s = pool.state
            assert s is not None and pool.trade_fee_rate is not None
            edge = sqrt_price_at_tick(0 if a_to_b else 590)
            step = compute_swap_step(s.sqrt_price, edge, s.liquidity, amount_in, pool.trade_fee_rate, a_to_b, True)
            assert step.next_sqrt_price != edge and step.amount_out == pool.quote(amount_in, a_to_b)
            self.patch(253, step.next_sqrt_price.to_bytes(16, "little"))
            self.patch(269, struct.pack("<i", tick_at_sqrt_price(step.next_sqrt_price)))
            return step.amount_out
        assert isinstance(pool, DlmmPool) and pool.state is not None
        s, out, left = pool.state, 0, amount_in
        active, rate = s.active_id, total_fee_rate(s, 0)  # no variable fee: the accumulator does not count
        array = pool.bin_arrays[0]
        while left:  # the quote's walk (dlmm.swap_exact_in), each bin's reserves moved by its part
            x, y = self.bins[active]
            if (y if a_to_b else x) > 0:
                step = swap_at_bin(array.bins[active], rate, left, a_to_b, True, s.protocol_share)
                added = step.amount_in - step.protocol_fee
                self.bins[active] = (x + added, y - step.amount_out) if a_to_b else (x - step.amount_out, y + added)
                left, out = left - step.amount_in, out + step.amount_out
            if left:
                active += -1 if a_to_b else 1
        assert out == pool.quote(amount_in, a_to_b)
        self.write_bins()
        self.patch(76, struct.pack("<i", active))
        return out

    def swap(self, trader: Keypair, mint_in: Pubkey, amount_in: int) -> str:
        out = self.settle(self.pool(), amount_in, mint_in == Q)
        mine = self.traders[trader.pubkey()]
        vault_in, vault_out, mint_out = (
            (self.vault_q, self.vault_b, B) if mint_in == Q else (self.vault_b, self.vault_q, Q)
        )
        signature, entry = transfer_swap(
            self.svm,
            trader,
            AUTHORITY,
            (mine[mint_in], vault_in, amount_in),
            (vault_out, mine[mint_out], out),
            self.token_balances,
        )
        self.txs.append(entry)
        return signature

    def token_balances(self, keys: list[Pubkey]) -> list[dict[str, Any]]:
        out = []
        for index, key in enumerate(keys):
            acc = self.svm.get_account(key)
            if acc is not None and acc.owner == TOKEN_PROGRAM and len(acc.data) == 165:
                data = bytes(acc.data)
                ui = {"amount": str(struct.unpack_from("<Q", data, 64)[0]), "decimals": 9}
                out.append({"accountIndex": index, "mint": str(Pubkey(data[0:32])), "uiTokenAmount": ui})
        return out

    def block(self) -> SlotBlock:
        return SlotBlock.model_validate(
            {"blockhash": str(Keypair().pubkey()), "parentSlot": 41, "blockTime": BLOCK_TIME, "transactions": self.txs}
        )


@pytest.mark.parametrize("kind", ["orca_whirlpool", "raydium_clmm", "meteora_dlmm"])
def test_a_concentrated_liquidity_sandwich_and_its_victims_loss(kind: str) -> None:
    attacker, victim = Keypair(), Keypair()
    chain = Chain(kind)
    chain.trader(attacker)
    chain.trader(victim)
    chain.pool()
    before_slot = snapshot(chain.book)  # what the book held before the slot
    assert set(before_slot) == {str(chain.address)}
    front = chain.swap(attacker, Q, 50 * SOL)
    chain.pool()
    after_front = snapshot(chain.book)  # the state after the front-run
    bought = chain.amount(chain.traders[attacker.pubkey()][B])
    victim_tx = chain.swap(victim, Q, 20 * SOL)
    got = chain.amount(chain.traders[victim.pubkey()][B])
    back = chain.swap(attacker, B, bought)
    chain.pool()  # the book now holds the state after the back-run

    result = classify_slot(42, chain.block(), chain.book, snapshots=[before_slot])
    (sandwich,) = result.sandwiches
    assert (sandwich.frontrun_tx, sandwich.victim_txs, sandwich.backrun_tx) == (front, [victim_tx], back)

    alone = Chain(kind)  # the victim's swap alone, on the pool as it was before the front-run
    alone.trader(victim)
    alone.swap(victim, Q, 20 * SOL)
    would_get = alone.amount(alone.traders[victim.pubkey()][B])

    (loss,) = result.victim_losses
    assert (loss.tx, loss.frontrun_tx, loss.pool, loss.token, loss.token_out) == (
        victim_tx, front, str(chain.address), str(Q), str(B)
    )  # fmt: skip
    assert loss.shortfall == would_get - got > 0
    least = 20 * SOL - loss.amount  # the least input that would have bought `got` before the front-run
    pre = before_slot[str(chain.address)]
    assert pre.quote(least, True) >= got > pre.quote(least - 1, True)
    assert 0 < loss.amount < 20 * SOL

    # A state that does not re-quote the front-run exactly is not taken for the one before it.
    assert classify_slot(42, chain.block(), chain.book).victim_losses == []
    assert (
        classify_slot(42, chain.block(), chain.book, snapshots=[after_front, snapshot(chain.book)]).victim_losses == []
    )
    # Of several, the newest that does is used.
    again = classify_slot(42, chain.block(), chain.book, snapshots=[before_slot, after_front])
    assert again.victim_losses == [loss]


def test_the_live_classifier_measures_it_on_the_book_copy_from_before_the_slot() -> None:
    """SlotClassifier copies the book at each slot it classifies; the slot after holds the sandwich, and by
    the time it is read the book has moved past the back-run."""
    attacker, victim = Keypair(), Keypair()
    chain = Chain("orca_whirlpool")
    chain.trader(attacker)
    chain.trader(victim)
    chain.pool()
    blocks = {40: {"blockhash": str(Keypair().pubkey()), "parentSlot": 39, "transactions": []}}
    written: list[Any] = []

    class Sink:
        async def write(self, results: list[Any]) -> None:
            written.extend(results)

    async def call(method: str, params: list[Any]) -> Any:
        assert method == "getBlock"
        return blocks[params[0]]

    classifier = SlotClassifier("solana", call, Sink(), book=chain.book)  # type: ignore[arg-type]
    asyncio.run(classifier.classify(41))  # slot 40: nothing in it; the book copied before slot 41
    front = chain.swap(attacker, Q, 50 * SOL)
    chain.pool()
    bought = chain.amount(chain.traders[attacker.pubkey()][B])
    chain.swap(victim, Q, 20 * SOL)
    chain.swap(attacker, B, bought)
    chain.pool()
    blocks[41] = {"blockhash": str(Keypair().pubkey()), "parentSlot": 40, "transactions": chain.txs}
    result = asyncio.run(classifier.classify(42))

    (loss,) = result.victim_losses
    assert loss.frontrun_tx == front and loss.shortfall > 0
    assert classify_slot(41, chain.block(), chain.book, snapshots=[snapshot(chain.book)]).victim_losses == []
    assert [r.block_number for r in written] == [40, 41]
