"""Classify one block: decode every transaction once, then run the inspectors over the actions.

Which source is read per transaction: a successful transaction's receipt logs when the block has
any (complete, and cheaper than frames), else its frames; a reverted transaction's frames (it has
no logs; its frames show what it attempted); native transfers and coinbase payments from frames.
The inspectors follow the published rules of flashbots/mev-inspect-py (arbitrage: a closed token
cycle of swaps in one transaction; sandwich: a front-run and a back-run on one pool by the same
searcher around other senders' swaps in the front-run's direction) plus JIT liquidity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mevagent.analytics.abi import ETH
from mevagent.analytics.actions import Swap, Transfer, TxActions
from mevagent.analytics.decode_logs import decode_logs
from mevagent.analytics.decode_traces import decode_frames
from mevagent.analytics.models import (
    Arbitrage,
    BlockClassification,
    BuilderPayment,
    JitLiquidity,
    LiquidationRecord,
    Sandwich,
    SearcherTx,
    SwapRecord,
    TransferRecord,
)
from mevagent.analytics.source import BlockInput, Tx, frames_of, load_block, native_moves

# A sandwich search stops this many transactions after its front-run: bounds a block's work.
MAX_SANDWICH_SPAN = 64


def decode_block(block: BlockInput, sources: frozenset[str] = frozenset({"logs", "traces"})) -> list[TxActions]:
    """Every transaction's actions, from `sources` where the block carries them."""
    use_logs = "logs" in sources and block.has_logs
    use_traces = "traces" in sources and block.has_traces
    decoded = []
    for tx in block.txs:
        reverted = tx.status == 0
        acts = TxActions(tx.index, tx.hash, tx.sender, tx.to, reverted)
        if use_logs and not reverted and tx.logs is not None:
            decode_logs(acts, tx.logs)
            if use_traces:
                _native(acts, native_moves(tx), block.miner)
        elif use_traces:
            frames = frames_of(tx)
            if frames:
                decode_frames(acts, frames, block.miner)
        decoded.append(acts)
    return decoded


def _native(acts: TxActions, moves: list[tuple[str, str, int]], coinbase: str) -> None:
    """Native value moves (no log records them) for a transaction decoded from its logs."""
    for sender, recipient, value in moves:
        acts.transfers.append(Transfer(ETH, sender, recipient, value))
        if recipient == coinbase:
            acts.coinbase_transfer += value


def find_arbitrages(txs: list[TxActions]) -> list[Arbitrage]:
    """Closed cycles of consecutive swaps within one transaction (A -> ... -> A)."""
    found = []
    for acts in txs:
        swaps = acts.swaps
        start = 0
        while start < len(swaps) - 1:
            end = _cycle_end(swaps, start)
            if end is None:
                start += 1
                continue
            first, last = swaps[start], swaps[end]
            profit = last.amount_out - first.amount_in
            if profit > 0 or acts.reverted:
                found.append(
                    Arbitrage(
                        tx=acts.hash,
                        account=last.recipient,
                        profit_token=first.token_in,
                        profit_amount=profit,
                        path=[first.token_in, *(s.token_out for s in swaps[start : end + 1])],
                        reverted=acts.reverted,
                    )
                )
            start = end + 1
    return found


def _cycle_end(swaps: list[Swap], start: int) -> int | None:
    """The index of the swap that brings the chain starting at `start` back to its first token."""
    origin = swaps[start].token_in
    for index in range(start + 1, len(swaps)):
        if swaps[index].token_in != swaps[index - 1].token_out:
            return None
        if swaps[index].token_out == origin:
            return index
    return None


def find_sandwiches(txs: list[TxActions]) -> list[Sandwich]:
    """A front-run, one or more victims' swaps in its direction on its pool, and its back-run.

    The back-run must come from the front-run's searcher (same sender account, or the front-run's
    recipient calling the pool) and sell back between half and 110% of what the front-run bought:
    a trader who simply buys and later sells a different amount on a busy pool is not a sandwich.
    Victims' swaps may be in any transaction; the legs may not be in a cyclic (arbitrage) one.
    """
    by_pool: dict[str, list[tuple[TxActions, Swap]]] = {}
    for acts in txs:
        # A transaction that trades in a cycle is an arbitrage (won or lost), not a sandwich's leg:
        # a bot's consecutive cycles through a busy pool would otherwise pair up around its traders.
        if not acts.reverted and not any(_cycle_end(acts.swaps, i) is not None for i in range(len(acts.swaps) - 1)):
            for swap in acts.swaps:
                by_pool.setdefault(swap.pool, []).append((acts, swap))
    found = []
    for swaps in by_pool.values():
        if len(swaps) >= 3:
            found.extend(_pool_sandwiches(swaps))
    found.sort(key=lambda s: s[0])
    return [sandwich for _, sandwich in found]


def _pool_sandwiches(ordered: list[tuple[TxActions, Swap]]) -> list[tuple[int, Sandwich]]:
    used: set[int] = set()
    found = []
    for i, (front_tx, front) in enumerate(ordered):
        if i in used:
            continue
        sandwicher = front.recipient
        victims: list[str] = []
        for j in range(i + 1, len(ordered)):
            acts, swap = ordered[j]
            if acts.index == front_tx.index or j in used:
                continue
            if acts.index - front_tx.index > MAX_SANDWICH_SPAN:
                break
            same_searcher = swap.sender == sandwicher or acts.sender == front_tx.sender
            if swap.token_in == front.token_out and swap.token_out == front.token_in and same_searcher:
                if victims and front.amount_out // 2 <= swap.amount_in <= front.amount_out * 11 // 10:
                    used.update((i, j))
                    found.append(
                        (
                            front_tx.index,
                            Sandwich(
                                frontrun_tx=front_tx.hash,
                                backrun_tx=acts.hash,
                                victim_txs=victims,
                                sandwicher=sandwicher,
                                profit_token=front.token_in,
                                profit_amount=swap.amount_out - front.amount_in,
                            ),
                        )
                    )
                break
            if swap.token_in == front.token_in and not same_searcher and acts.hash not in victims:
                victims.append(acts.hash)
    return found


def find_jit(txs: list[TxActions]) -> list[JitLiquidity]:
    """Liquidity minted just before other senders' swaps in its pool and burnt just after, by one account."""
    found = []
    for i, mint_tx in enumerate(txs):
        for mint in (m for m in mint_tx.liquidity if m.kind == "mint"):
            victims: list[str] = []
            for later in txs[i + 1 :]:
                if later.reverted:
                    continue
                burn = next(
                    (
                        b
                        for b in later.liquidity
                        if b.kind == "burn"
                        and (b.pool, b.owner, b.tick_lower, b.tick_upper)
                        == (mint.pool, mint.owner, mint.tick_lower, mint.tick_upper)
                        and b.liquidity == mint.liquidity
                    ),
                    None,
                )
                if burn is not None and later.sender == mint_tx.sender:
                    if victims:
                        found.append(
                            JitLiquidity(
                                mint_tx=mint_tx.hash,
                                burn_tx=later.hash,
                                victim_txs=victims,
                                provider=mint_tx.sender,
                                pool=mint.pool,
                                tick_lower=mint.tick_lower,
                                tick_upper=mint.tick_upper,
                                liquidity=mint.liquidity,
                                mint_amounts=(mint.amount0, mint.amount1),
                                burn_amounts=(burn.amount0, burn.amount1),
                            )
                        )
                    break
                if later.sender != mint_tx.sender and any(s.pool == mint.pool for s in later.swaps):
                    victims.append(later.hash)
    return found


def classify_decoded(block: BlockInput, txs: list[TxActions], sources: list[str]) -> BlockClassification:
    effective = [acts for acts in txs if not acts.reverted]
    payments = []
    for tx, acts in zip(block.txs, txs, strict=True):
        priority = _priority_fee(block, tx)
        if priority or acts.coinbase_transfer:
            payments.append(
                BuilderPayment(
                    tx=tx.hash,
                    sender=tx.sender,
                    coinbase=block.miner,
                    priority_fee=priority,
                    coinbase_transfer=acts.coinbase_transfer,
                )
            )
    sandwiches, arbitrages, jit = find_sandwiches(txs), find_arbitrages(txs), find_jit(txs)
    liquidations = [
        LiquidationRecord(
            tx=acts.hash,
            liquidator=l.liquidator,
            liquidated_user=l.user,
            protocol=l.protocol,
            debt_token=l.debt_token,
            debt_amount=l.debt_amount,
            collateral_token=l.collateral_token,
            collateral_amount=l.collateral_amount,
        )
        for acts in effective
        for l in acts.liquidations  # noqa: E741 - read as "liquidation"
    ]
    mev = {a.tx for a in arbitrages} | {x.tx for x in liquidations}
    mev.update(h for s in sandwiches for h in (s.frontrun_tx, s.backrun_tx))
    mev.update(h for j in jit for h in (j.mint_tx, j.burn_tx))
    return BlockClassification(
        block_number=block.number,
        block_hash=block.hash,
        coinbase=block.miner,
        sources=sources,
        sandwiches=sandwiches,
        arbitrages=arbitrages,
        liquidations=liquidations,
        jit=jit,
        swaps=[
            SwapRecord(
                tx=acts.hash,
                pool=s.pool,
                protocol=s.protocol,
                sender=s.sender,
                recipient=s.recipient,
                token_in=s.token_in,
                amount_in=s.amount_in,
                token_out=s.token_out,
                amount_out=s.amount_out,
            )
            for acts in effective
            for s in acts.swaps
        ],
        transfers=[
            TransferRecord(tx=acts.hash, token=t.token, sender=t.sender, recipient=t.recipient, amount=t.amount)
            for acts in effective
            for t in acts.transfers
        ],
        payments=payments,
        unresolved_swaps=sum(acts.unresolved_swaps for acts in effective),
        searcher_txs=[_searcher_tx(block, tx, acts) for tx, acts in zip(block.txs, txs, strict=True) if tx.hash in mev],
    )


def _priority_fee(block: BlockInput, tx: Tx) -> int:
    """What the coinbase earned from the transaction's gas: (effective gas price - base fee) * gas used."""
    if tx.gas_used is None or tx.effective_gas_price is None:
        return 0
    return max(0, tx.effective_gas_price - block.base_fee) * tx.gas_used


def _searcher_tx(block: BlockInput, tx: Tx, acts: TxActions) -> SearcherTx:
    return SearcherTx(
        tx=tx.hash,
        index=tx.index,
        eoa=tx.sender,
        to=tx.to or "",
        gas_used=tx.gas_used,
        effective_gas_price=tx.effective_gas_price,
        priority_fee=_priority_fee(block, tx),
        coinbase_transfer=acts.coinbase_transfer,
    )


def classify_block(
    raw: Mapping[str, Any], sources: frozenset[str] = frozenset({"logs", "traces"})
) -> BlockClassification:
    """Classify one block file's JSON ({"block", "receipts", "traces"}); `sources` restricts what is read."""
    block = load_block(raw)
    txs = decode_block(block, sources)
    used = [s for s in ("logs", "traces") if s in sources and (block.has_logs if s == "logs" else block.has_traces)]
    return classify_decoded(block, txs, used)
