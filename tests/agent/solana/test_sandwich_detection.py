"""Solana sandwich detection (analytics only) on a sandwich built in LiteSVM.

A Raydium CPMM pool in its published layout, its vaults real SPL token accounts; each swap is the pool's
exact quote settled as two SPL transfers (no DEX program runs here), in real transactions. What the
detector reads is what a node's `getBlock` reports for them: the account keys and every token account's
balance before and after each transaction, read from LiteSVM around it. The numbers are checked against
LiteSVM itself: the attacker's profit is its measured balance change, and the victim's shortfall is the
output the same swap got in a second LiteSVM where the front-run never happened.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from solders.account import Account
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey

from mevagent.analytics.publish import lean
from mevagent.bus.events import BlockClassified, decode_event, encode
from mevagent.solana.book import PoolBook
from mevagent.solana.layouts import RAYDIUM_CPMM, TOKEN_PROGRAM
from mevagent.solana.raydium import CpmmPool
from mevagent.solana.sandwich import SlotBlock, classify_slot
from testbed.solana.world import (
    RENT,
    SOL,
    cpmm_config_data,
    cpmm_pool_data,
    mint_data,
    svm_account,
    token_account_data,
    transfer_swap,
)

Q, B = Keypair().pubkey(), Keypair().pubkey()  # the quote mint (SOL-like) and the base mint
AUTHORITY = Keypair()  # owns the vaults: co-signs the pool side of each settlement


@dataclass
class Chain:
    """One LiteSVM with the pool; `block` collects what getBlock would report for the swaps sent."""

    svm: LiteSVM = field(default_factory=LiteSVM)
    book: PoolBook = field(default_factory=PoolBook)
    traders: dict[Pubkey, dict[Pubkey, Pubkey]] = field(default_factory=dict)  # trader -> mint -> account
    txs: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Each chain's pool has addresses of its own.
        self.address, config, self.vault_q, self.vault_b = (Keypair().pubkey() for _ in range(4))
        self.svm.airdrop(AUTHORITY.pubkey(), SOL)
        for mint in (Q, B):
            self.put(mint, mint_data(), TOKEN_PROGRAM)
        self.put(config, cpmm_config_data(2_500), RAYDIUM_CPMM)
        self.put(self.vault_q, token_account_data(Q, AUTHORITY.pubkey(), 1_000 * SOL), TOKEN_PROGRAM)
        self.put(self.vault_b, token_account_data(B, AUTHORITY.pubkey(), 150_000 * SOL), TOKEN_PROGRAM)
        self.put(self.address, cpmm_pool_data(config, self.vault_q, self.vault_b, Q, B), RAYDIUM_CPMM)
        self.book.add("raydium_cpmm", self.address)

    def put(self, key: Pubkey, data: bytes, owner: Pubkey) -> None:
        self.svm.set_account(key, Account(RENT, data, owner, False, 0))

    def trader(self, keypair: Keypair, q: int = 500 * SOL, b: int = 0) -> Keypair:
        self.svm.airdrop(keypair.pubkey(), SOL)
        accounts = {Q: Keypair().pubkey(), B: Keypair().pubkey()}
        for mint, amount in ((Q, q), (B, b)):
            self.put(accounts[mint], token_account_data(mint, keypair.pubkey(), amount), TOKEN_PROGRAM)
        self.traders[keypair.pubkey()] = accounts
        return keypair

    def amount(self, account: Pubkey) -> int:
        return struct.unpack_from("<Q", bytes(self.svm.get_account(account).data), 64)[0]

    def pool(self) -> CpmmPool:
        """The pool as the agent's book decodes it from the accounts as they are now."""
        for _ in range(2):  # the pool first, then the config and vaults it names
            self.book.apply_many([(k, svm_account(self.svm, k)) for k in self.book.accounts()])
        pool = self.book.pools[self.address]
        assert isinstance(pool, CpmmPool) and pool.ready()
        return pool

    def token_balances(self, keys: list[Pubkey]) -> list[dict[str, Any]]:
        out = []
        for index, key in enumerate(keys):
            acc = self.svm.get_account(key)
            if acc is not None and acc.owner == TOKEN_PROGRAM and len(acc.data) == 165:
                data = bytes(acc.data)
                mint, owner = Pubkey(data[0:32]), Pubkey(data[32:64])
                amount = struct.unpack_from("<Q", data, 64)[0]
                ui = {"amount": str(amount), "decimals": 9}
                out.append({"accountIndex": index, "mint": str(mint), "owner": str(owner), "uiTokenAmount": ui})
        return out

    def swap(self, trader: Keypair, mint_in: Pubkey, amount_in: int) -> str:
        """The pool's exact quote for `amount_in`, settled in one transaction; recorded as getBlock shows it."""
        pool = self.pool()
        out = pool.quote(amount_in, mint_in == pool.mints[0])
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

    def block(self, start: int = 0, end: int | None = None, parent: int = 41) -> SlotBlock:
        """The recorded transactions [start:end] as one slot's getBlock."""
        txs = self.txs[start:end]
        return SlotBlock.model_validate(
            {"blockhash": str(Keypair().pubkey()), "parentSlot": parent, "transactions": txs}
        )


def test_a_sandwich_in_litesvm_its_profit_and_its_victims_loss() -> None:
    attacker, victim, bystander = Keypair(), Keypair(), Keypair()
    chain = Chain()
    for k in (attacker, victim):
        chain.trader(k)
    chain.trader(bystander, q=0, b=10_000 * SOL)
    chain.swap(bystander, B, 3_000 * SOL)  # the other way, before: not part of it
    attacker_q = chain.amount(chain.traders[attacker.pubkey()][Q])
    front = chain.swap(attacker, Q, 50 * SOL)
    bought = chain.amount(chain.traders[attacker.pubkey()][B])
    victim_tx = chain.swap(victim, Q, 20 * SOL)
    got = chain.amount(chain.traders[victim.pubkey()][B])
    back = chain.swap(attacker, B, bought)  # sells back all it bought
    profit = chain.amount(chain.traders[attacker.pubkey()][Q]) - attacker_q

    result = classify_slot(42, chain.block(), chain.book)

    assert len(result.sandwiches) == 1
    sandwich = result.sandwiches[0]
    assert (sandwich.frontrun_tx, sandwich.victim_txs, sandwich.backrun_tx) == (front, [victim_tx], back)
    assert sandwich.sandwicher == str(attacker.pubkey()) and sandwich.profit_token == str(Q)
    assert sandwich.profit_amount == profit > 0  # the attacker's measured balance change, in the quote token
    assert [t.tx for t in result.searcher_txs] == [front, back] and result.searcher_txs[0].priority_fee == 5_000
    assert len(result.swaps) == 4 and result.arbitrages == []

    # The victim's swap alone, on the pool as it was before the front-run, in a second LiteSVM.
    alone = Chain()
    alone.trader(victim)
    alone.trader(bystander, q=0, b=10_000 * SOL)
    alone.swap(bystander, B, 3_000 * SOL)
    before_front = alone.pool()
    alone.swap(victim, Q, 20 * SOL)
    would_get = alone.amount(alone.traders[victim.pubkey()][B])

    (loss,) = result.victim_losses
    assert (loss.tx, loss.frontrun_tx, loss.pool, loss.token, loss.token_out) == (
        victim_tx, front, str(chain.address), str(Q), str(B)
    )  # fmt: skip
    assert loss.shortfall == would_get - got > 0
    # In the quote token: the least input that would have bought `got` before the front-run.
    least = 20 * SOL - loss.amount
    assert before_front.quote(least, True) >= got > before_front.quote(least - 1, True)
    assert 0 < loss.amount < 20 * SOL

    # Exposed as the EVM classifications are: a BlockClassified event, lean, through the bus codec.
    event = BlockClassified(agent="sol1", chain="solana", classification=lean(result))
    again = decode_event(encode(event))
    assert isinstance(again, BlockClassified)
    assert again.classification.victim_losses == [loss] and again.classification.sandwiches == [sandwich]


def test_a_sandwich_across_two_slots() -> None:
    """The front-run closes one slot; the victim and the back-run open the next."""
    attacker, victim = Keypair(), Keypair()
    chain = Chain()
    chain.trader(attacker)
    chain.trader(victim)
    attacker_q = chain.amount(chain.traders[attacker.pubkey()][Q])
    front = chain.swap(attacker, Q, 30 * SOL)
    bought = chain.amount(chain.traders[attacker.pubkey()][B])
    victim_tx = chain.swap(victim, Q, 10 * SOL)
    back = chain.swap(attacker, B, bought)
    profit = chain.amount(chain.traders[attacker.pubkey()][Q]) - attacker_q
    first, second = chain.block(0, 1, parent=99), chain.block(1, None, parent=100)

    assert classify_slot(100, first, chain.book).sandwiches == []
    assert classify_slot(101, second, chain.book).sandwiches == []  # without the slot before, no front-run
    result = classify_slot(101, second, chain.book, previous=first)
    (sandwich,) = result.sandwiches
    assert (sandwich.frontrun_tx, sandwich.victim_txs, sandwich.backrun_tx) == (front, [victim_tx], back)
    assert sandwich.profit_amount == profit > 0
    assert [(t.tx, t.index) for t in result.searcher_txs] == [(front, 0), (back, 1)]  # each in its own slot
    (loss,) = result.victim_losses
    assert loss.tx == victim_tx and loss.shortfall > 0 and loss.amount > 0
    assert {s.tx for s in result.swaps} == {victim_tx, back}  # this slot's swaps only
    # A sandwich wholly in the previous slot was reported with it, not again.
    assert classify_slot(101, chain.block(3, 3, parent=100), chain.book, previous=chain.block(0, None)).sandwiches == []


def test_no_sandwich_when_the_back_run_does_not_close_it_or_the_other_trade_goes_the_other_way() -> None:
    attacker, victim = Keypair(), Keypair()
    chain = Chain()
    chain.trader(attacker, b=1_000 * SOL)
    chain.trader(victim, b=1_000 * SOL)
    chain.swap(attacker, Q, 50 * SOL)
    chain.swap(victim, B, 500 * SOL)  # the victim sells: not in the front-run's direction
    chain.swap(attacker, B, 2_000 * SOL)
    chain.swap(attacker, Q, 40 * SOL)
    chain.swap(victim, Q, 10 * SOL)
    chain.swap(attacker, B, 100 * SOL)  # sells back far less than half of what it bought

    result = classify_slot(7, chain.block(), chain.book)
    assert result.sandwiches == [] and result.victim_losses == [] and len(result.swaps) == 6


def test_getblock_entries_of_failed_and_untracked_transactions_are_not_swaps() -> None:
    chain = Chain()
    trader = chain.trader(Keypair())
    chain.swap(trader, Q, SOL)
    failed = {**chain.txs[0], "meta": {**chain.txs[0]["meta"], "err": {"InstructionError": [0, "Custom"]}}}
    untracked = Chain()  # another pool (its vaults are not in this book)
    other = untracked.trader(Keypair())
    untracked.swap(other, Q, SOL)
    block = SlotBlock.model_validate(
        {"blockhash": "11111111111111111111111111111111", "parentSlot": 1, "transactions": [failed, *untracked.txs]}
    )
    result = classify_slot(2, block, chain.book)
    assert result.swaps == []
