"""Sandwich detection on Solana, for analytics only: nothing here builds, signs or sends a transaction.

A slot's transactions, as the node's `getBlock` returns them (full details, `base64` or `json` encoding), are read
for what each did to the pools the agent tracks: a pool's two vaults are token accounts, so a swap is
one vault's balance going up (what the trader paid in) and the other's going down (what it took out),
from the transaction's own `preTokenBalances`/`postTokenBalances`. The trader is the fee payer (the first
signer). Those swaps become the same `TxActions` the EVM classifier builds, and the same inspectors run
over them (mevagent.analytics.classify: a front-run and a back-run on one pool by one signer around
other signers' swaps in the front-run's direction, the back-run selling back 50-110 % of what the
front-run bought), into the same `BlockClassification` (block = slot): the attacker's profit is what the
back-run returned above what the front-run paid, in the token the front-run paid (the quote token).

Each victim's loss is measured by re-quoting its swap, with the pool's own exact quote code, on the pool as it
stood right before the front-run. The loss is in the quote token (input the victim paid above what its
output would have cost) and in its output token (output it did not get).

Raydium AMM v4 and CPMM price from their vaults, so that state is rebuilt from the block alone: the victim's
swap is re-quoted on the front-run's pre-balances (the pool's accrued-fee counters are those the book holds
now). Concentrated-liquidity pools (Orca Whirlpool, Raydium CLMM, Meteora DLMM) cannot be rebuilt from the
block: `getBlock` carries each transaction's token balances but no account data, and a CL pool's price is
in its pool account (sqrt price, liquidity in range and current tick; the active bin and the volatility
state for DLMM) and in its tick or bin arrays (each tick's liquidity net, each bin's reserves), none of
which the vault balances determine (a vault holds every position's tokens, in range or not), and no RPC
serves an account as it was between two transactions of a slot. For those the state is the one the
detector has: copies of the pool as the agent's book held it at earlier moments (`snapshot`, taken by
`SlotClassifier` at each slot it classifies, the last few kept). A copy is taken as the pool before the
front-run only if the pool's exact quote of the front-run's input on it gives exactly the output the
front-run got (DLMM quoted at the front-run slot's `blockTime`); the newest copy that does is used, and
where none does (the book's copy is of a later state, or another swap or a liquidity change on the pool
came between the copy and the front-run) the sandwich is reported without its victims' losses.
"""

from __future__ import annotations

import base64
import dataclasses
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from solders.transaction import VersionedTransaction

from mevagent.analytics.actions import Swap, TxActions
from mevagent.analytics.classify import find_arbitrages, find_sandwiches
from mevagent.analytics.live import LiveClassifier
from mevagent.analytics.models import BlockClassification, Sandwich, SearcherTx, SwapRecord, VictimLoss

from .book import PoolBook, kind_of
from .clmm import ClmmPool
from .cycles import LAMPORTS_PER_SIGNATURE
from .dlmm import DlmmPool
from .raydium import AmmV4Pool, CpmmPool, Pool, QuoteError
from .whirlpool import WhirlpoolPool

SOURCE = "token_balances"


# ---- what the node's getBlock returns (the fields read; the rest is ignored) ------------------------------


class _Rpc(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class UiTokenAmount(_Rpc):
    amount: str = Field(pattern=r"^[0-9]{1,20}$")


class TokenBalance(_Rpc):
    account_index: int = Field(alias="accountIndex", ge=0)
    mint: str
    owner: str | None = None
    ui_token_amount: UiTokenAmount = Field(alias="uiTokenAmount")


class LoadedAddresses(_Rpc):
    writable: list[str] = []
    readonly: list[str] = []


class TxMeta(_Rpc):
    err: Any = None
    fee: int = Field(default=0, ge=0)
    pre_token_balances: list[TokenBalance] = Field(default=[], alias="preTokenBalances")
    post_token_balances: list[TokenBalance] = Field(default=[], alias="postTokenBalances")
    loaded_addresses: LoadedAddresses | None = Field(default=None, alias="loadedAddresses")


class TxMessage(_Rpc):
    account_keys: list[str] = Field(alias="accountKeys", min_length=1)


class TxBody(_Rpc):
    signatures: list[str] = Field(min_length=1)
    message: TxMessage


class BlockTransaction(_Rpc):
    transaction: TxBody
    meta: TxMeta | None = None

    @field_validator("transaction", mode="before")
    @classmethod
    def _decoded(cls, value: Any) -> Any:
        """`base64` encoding: [data, "base64"], the serialized transaction; its signatures and static keys."""
        if isinstance(value, list) and len(value) == 2 and value[1] == "base64":
            tx = VersionedTransaction.from_bytes(base64.b64decode(value[0]))
            keys = [str(k) for k in tx.message.account_keys]
            return {"signatures": [str(s) for s in tx.signatures], "message": {"accountKeys": keys}}
        return value

    def keys(self) -> list[str]:
        """Account indexes of the token balances: the message's keys, then the lookup tables' loaded ones."""
        keys = list(self.transaction.message.account_keys)
        loaded = self.meta.loaded_addresses if self.meta is not None else None
        if loaded is not None:
            keys += [*loaded.writable, *loaded.readonly]
        return keys


class SlotBlock(_Rpc):
    blockhash: str
    block_time: int | None = Field(default=None, alias="blockTime")
    parent_slot: int = Field(alias="parentSlot", ge=0)
    transactions: list[BlockTransaction] = []


# ---- the tracked pools' vaults ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vault:
    pool: Pool
    kind: str


def vaults(book: PoolBook) -> dict[str, Vault]:
    """Every decoded pool's two vaults (token accounts) -> the pool."""
    out: dict[str, Vault] = {}
    for pool in book.pools.values():
        pair = _vault_pair(pool)
        if pair is not None:
            for vault in pair:
                out[str(vault)] = Vault(pool, kind_of(pool))
    return out


def _vault_pair(pool: Pool) -> tuple[Any, Any] | None:
    s = getattr(pool, "state", None)
    if s is None:
        return None
    if isinstance(pool, CpmmPool | ClmmPool):
        return s.vault_a, s.vault_b
    if isinstance(pool, AmmV4Pool):
        return s.base_vault, s.quote_vault
    if isinstance(pool, WhirlpoolPool):
        return s.token_vault_a, s.token_vault_b
    if isinstance(pool, DlmmPool):
        return s.reserve_x, s.reserve_y
    return None


# ---- transactions -> actions --------------------------------------------------------------------------------


def _balances(entries: Sequence[TokenBalance], keys: Sequence[str]) -> dict[str, tuple[str, int]]:
    known = [b for b in entries if b.account_index < len(keys)]
    return {keys[b.account_index]: (b.mint, int(b.ui_token_amount.amount)) for b in known}


def pre_vault_balances(tx: BlockTransaction) -> dict[str, int]:
    """Token account -> its balance before `tx` ran."""
    if tx.meta is None:
        return {}
    return {k: amount for k, (_, amount) in _balances(tx.meta.pre_token_balances, tx.keys()).items()}


def swaps_of(tx: BlockTransaction, by_vault: Mapping[str, Vault]) -> list[Swap]:
    """What `tx` did to each tracked pool: one swap per pool whose one vault gained and the other lost."""
    if tx.meta is None:
        return []
    keys = tx.keys()
    pre, post = _balances(tx.meta.pre_token_balances, keys), _balances(tx.meta.post_token_balances, keys)
    moved: dict[str, tuple[str, list[tuple[str, int]]]] = {}  # pool -> (kind, [(mint, vault delta)])
    for account in sorted(pre.keys() | post.keys()):
        vault = by_vault.get(account)
        if vault is None:
            continue
        mint = (post.get(account) or pre[account])[0]
        delta = post.get(account, (mint, 0))[1] - pre.get(account, (mint, 0))[1]
        if delta:
            moved.setdefault(str(vault.pool.address), (vault.kind, []))[1].append((mint, delta))
    signer = keys[0]
    swaps = []
    for pool, (kind, deltas) in moved.items():
        paid = [(m, d) for m, d in deltas if d > 0]
        taken = [(m, -d) for m, d in deltas if d < 0]
        if len(paid) == 1 and len(taken) == 1:  # liquidity added or removed moves both vaults one way
            swaps.append(Swap(pool, kind, signer, signer, paid[0][0], paid[0][1], taken[0][0], taken[0][1]))
    return swaps


def slot_actions(block: SlotBlock, by_vault: Mapping[str, Vault]) -> list[TxActions]:
    out = []
    for index, tx in enumerate(block.transactions):
        reverted = tx.meta is None or tx.meta.err is not None
        acts = TxActions(index, tx.transaction.signatures[0], tx.keys()[0], None, reverted)
        if not reverted:  # a failed transaction moved no tokens (only its fee)
            acts.swaps = swaps_of(tx, by_vault)
        out.append(acts)
    return out


# ---- victims' losses ----------------------------------------------------------------------------------------


Snapshot = Mapping[str, Pool]  # pool address -> a copy of the pool as the book held it at one moment


def snapshot(book: PoolBook) -> dict[str, Pool]:
    """Copies of the book's ready concentrated-liquidity pools: their decoded states are immutable, the dicts
    the book updates in place (tick or bin arrays, the window, the mints read and refused) are copied."""
    out: dict[str, Pool] = {}
    for pool in book.pools.values():
        copy: Pool
        mints = {"mint_info": dict(pool.mint_info), "mint_refused": dict(pool.mint_refused)}
        if isinstance(pool, WhirlpoolPool | ClmmPool):
            copy = dataclasses.replace(pool, tick_arrays=dict(pool.tick_arrays), window=dict(pool.window), **mints)
        elif isinstance(pool, DlmmPool):
            copy = dataclasses.replace(pool, bin_arrays=dict(pool.bin_arrays), window=dict(pool.window), **mints)
        else:
            continue
        if copy.ready():
            out[str(pool.address)] = copy
    return out


def _quoter(pool: Pool, zero_for_one: bool) -> Any:
    def quote(amount: int) -> int:
        try:
            return pool.quote(amount, zero_for_one)
        except QuoteError:
            return 0

    return quote


def _requote(
    pool: Pool, pre: Mapping[str, int], front: Swap, snapshots: Sequence[Snapshot], block_time: int | None
) -> Any:
    """The pool's exact quote (amount in -> out in the front-run's direction) on the pool before the front-run,
    or None where that state is not known: AMM v4 and CPMM on the vault balances `pre` (the front-run's own),
    a concentrated-liquidity pool on the newest snapshot on which the front-run re-quotes to the lamport."""
    zero_for_one = front.token_in == str(pool.mints[0])
    if isinstance(pool, CpmmPool | AmmV4Pool):
        pair = _vault_pair(pool)
        if pair is None or not all(str(v) in pre for v in pair):
            return None
        return _quoter(dataclasses.replace(pool, vaults={v: pre[str(v)] for v in pair}), zero_for_one)
    for snap in reversed(snapshots):
        before = snap.get(front.pool)
        if before is None:
            continue
        if isinstance(before, DlmmPool) and block_time is not None:
            before = dataclasses.replace(before, clock=lambda t=block_time: t)
        quote = _quoter(before, zero_for_one)
        if quote(front.amount_in) == front.amount_out:
            return quote
    return None


def victim_losses(
    sandwich: Sandwich,
    txs: Sequence[BlockTransaction],
    actions: Sequence[TxActions],
    by_vault: Mapping[str, Vault],
    snapshots: Sequence[Snapshot] = (),
    times: Sequence[int | None] = (),
) -> list[VictimLoss]:
    """`txs[i]` is the transaction of the action with index i, `times[i]` its slot's block time."""
    by_hash = {a.hash: a for a in actions}
    front_acts = by_hash[sandwich.frontrun_tx]
    front = next(s for s in front_acts.swaps if s.token_in == sandwich.profit_token)
    pool = {str(v.pool.address): v.pool for v in by_vault.values()}[front.pool]
    time = times[front_acts.index] if front_acts.index < len(times) else None
    quote = _requote(pool, pre_vault_balances(txs[front_acts.index]), front, snapshots, time)
    if quote is None:
        return []
    losses = []
    for tx in sandwich.victim_txs:
        victim = next(s for s in by_hash[tx].swaps if s.pool == front.pool and s.token_in == front.token_in)
        would_get = quote(victim.amount_in)
        lo, hi = 1, victim.amount_in  # the least input that would have bought what the victim got
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if quote(mid) >= victim.amount_out else (mid + 1, hi)
        losses.append(
            VictimLoss(
                tx=tx,
                frontrun_tx=sandwich.frontrun_tx,
                pool=front.pool,
                token=front.token_in,
                amount=victim.amount_in - lo,
                token_out=victim.token_out,
                shortfall=would_get - victim.amount_out,
            )
        )
    return losses


# ---- one slot -----------------------------------------------------------------------------------------------


def _record(tx: str, s: Swap) -> SwapRecord:
    fields = ("pool", "protocol", "sender", "recipient", "token_in", "amount_in", "token_out", "amount_out")
    return SwapRecord(tx=tx, **{f: getattr(s, f) for f in fields})


def classify_slot(
    slot: int,
    block: SlotBlock,
    book: PoolBook,
    previous: SlotBlock | None = None,
    snapshots: Sequence[Snapshot] = (),
) -> BlockClassification:
    """The slot's sandwiches and arbitrages on the tracked pools, with the victims' measured losses.

    With `previous` (the slot before, its parent) the sandwich search runs over both slots' transactions
    in order, so a front-run at the end of the previous slot pairs with a back-run in this one
    (cross-slot); a sandwich is reported with the slot of its back-run (one wholly in the previous slot
    was reported with that one). Arbitrages and swaps are this slot's. `snapshots` (oldest first) are the
    candidate states of the concentrated-liquidity pools before the front-run (see the module's doc)."""
    by_vault = vaults(book)
    earlier = slot_actions(previous, by_vault) if previous is not None else []
    actions = slot_actions(block, by_vault)
    offset = len(earlier)
    txs = [*(previous.transactions if previous is not None else []), *block.transactions]
    times = [*([previous.block_time] * offset if previous is not None else []), *[block.block_time] * len(actions)]
    spanned = earlier + [dataclasses.replace(a, index=a.index + offset) for a in actions]
    backs = {a.hash for a in actions}
    sandwiches = [s for s in find_sandwiches(spanned) if s.backrun_tx in backs]
    arbitrages = find_arbitrages(actions)
    mev = {t for s in sandwiches for t in (s.frontrun_tx, s.backrun_tx)} | {a.tx for a in arbitrages}
    searcher = []
    for acts in spanned:
        if acts.hash in mev:
            tx = txs[acts.index]
            base = LAMPORTS_PER_SIGNATURE * len(tx.transaction.signatures)
            fee = tx.meta.fee if tx.meta is not None else 0
            own = acts.index - offset if acts.index >= offset else acts.index  # its position in its own slot
            searcher.append(SearcherTx(tx=acts.hash, index=own, eoa=acts.sender, to="", gas_used=None,
                                       effective_gas_price=None, priority_fee=max(0, fee - base),
                                       coinbase_transfer=0))  # fmt: skip
    return BlockClassification(
        block_number=slot,
        block_hash=block.blockhash,
        sources=[SOURCE],
        sandwiches=sandwiches,
        arbitrages=arbitrages,
        liquidations=[],
        jit=[],
        swaps=[_record(a.hash, s) for a in actions for s in a.swaps],
        transfers=[],
        payments=[],
        unresolved_swaps=0,
        searcher_txs=searcher,
        victim_losses=[loss for s in sandwiches for loss in victim_losses(s, txs, spanned, by_vault, snapshots, times)],
    )


# ---- live: each slot classified after the hot path -------------------------------------------------------

SNAPSHOTS = 4  # the book's copies kept: the previous slots' (a slot is ~400 ms)

GET_BLOCK = {
    "encoding": "base64",
    "transactionDetails": "full",
    "maxSupportedTransactionVersion": 0,
    "rewards": False,
    "commitment": "confirmed",
}


@dataclass
class SlotClassifier(LiveClassifier):
    """The EVM live classifier's loop (mevagent.analytics.live: heads recorded by the collector's tap, the newest
    classified in the background, counted and handed to the sink) over Solana slots: at a new slot the one
    before it is complete, so that one is read with getBlock and classified on the chain's pool book. Each
    classification first copies the book's concentrated-liquidity pools (`snapshot`); the last SNAPSHOTS
    copies and that one are the candidate pre-front-run states of those pools' sandwiches."""

    book: PoolBook = dataclasses.field(default_factory=PoolBook)
    _previous: tuple[int, SlotBlock] | None = None  # the last slot read: cross-slot sandwiches span it and the next
    _snapshots: deque[Snapshot] = dataclasses.field(default_factory=lambda: deque(maxlen=SNAPSHOTS))

    async def classify(self, number: int) -> BlockClassification:
        slot = number - 1
        now = snapshot(self.book)  # before the await: the book moves on while the block is read
        block = SlotBlock.model_validate(await self.call("getBlock", [slot, GET_BLOCK]))
        previous = self._previous[1] if self._previous is not None and self._previous[0] == block.parent_slot else None
        # On the loop, not in a thread: the book is the collector's and changes between awaits.
        result = classify_slot(slot, block, self.book, previous, [*self._snapshots, now])
        self._previous = (slot, block)
        self._snapshots.append(now)
        self._count(result)
        await self.sink.write([result])
        self.classified += 1
        return result
