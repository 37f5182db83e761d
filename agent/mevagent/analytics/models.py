"""What a block classification holds, as written to `<block number>.json` by `mevagent classify`.

Addresses are lower-case hex; amounts are exact integers in base units, serialized as decimal
strings (JSON numbers lose precision above 2^53 in most readers).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer

Amount = Annotated[int, PlainSerializer(str, return_type=str)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SwapRecord(_Model):
    tx: str
    pool: str
    protocol: str  # uniswap_v2 (and forks), uniswap_v3 (and forks), curve, balancer_v1, balancer_v2, 0x
    sender: str
    recipient: str
    token_in: str
    amount_in: Amount
    token_out: str
    amount_out: Amount


class TransferRecord(_Model):
    tx: str
    token: str  # 0xeeee...eeee for the native coin (from traces only)
    sender: str
    recipient: str
    amount: Amount


class Arbitrage(_Model):
    tx: str
    account: str  # who received the last leg's output: the searcher's contract or account
    profit_token: str
    profit_amount: Amount  # negative only for a reverted attempt
    path: list[str]  # tokens, starting and ending with profit_token
    reverted: bool


class Sandwich(_Model):
    frontrun_tx: str
    backrun_tx: str
    victim_txs: list[str]
    sandwicher: str
    profit_token: str
    profit_amount: Amount


class VictimLoss(_Model):
    """What one sandwiched victim lost, measured against the same swap on the pool as it stood right before
    the front-run (where the classifier knows that state: Solana constant-product pools from the block, concentrated-
    liquidity pools from the pool book's copy that re-quotes the front-run exactly)."""

    tx: str
    frontrun_tx: str
    pool: str
    token: str  # the sandwich's profit token: the victim's input
    amount: Amount  # input the victim paid above what its output would have cost without the front-run
    token_out: str
    shortfall: Amount  # output the same input would have got without the front-run, less what it got


class LiquidationRecord(_Model):
    tx: str
    liquidator: str
    liquidated_user: str
    protocol: str  # aave (V2/V3 share one event), aave_v1, compound_v2 (and forks), compound_v3
    # Compound markets are named by their cToken/Comet: the logs do not name the underlying.
    debt_token: str
    debt_amount: Amount
    collateral_token: str
    collateral_amount: Amount


class JitLiquidity(_Model):
    mint_tx: str
    burn_tx: str
    victim_txs: list[str]
    provider: str  # the account that sent both the mint and the burn
    pool: str
    tick_lower: int
    tick_upper: int
    liquidity: Amount
    mint_amounts: tuple[Amount, Amount]  # token0, token1 put in
    burn_amounts: tuple[Amount, Amount]  # token0, token1 taken out (fees excluded)


class BuilderPayment(_Model):
    tx: str
    sender: str
    coinbase: str
    priority_fee: Amount  # (effective gas price - base fee) * gas used; needs receipts
    coinbase_transfer: Amount  # native value sent to the coinbase; needs traces


class SearcherTx(_Model):
    """Who sent one MEV transaction (an arbitrage, a sandwich leg, a liquidation, a JIT mint or burn) and
    what it paid: the competition analytics name the taker of an opportunity and its price from these."""

    tx: str
    index: int  # position in the block
    eoa: str  # the transaction's sender
    to: str  # the contract it called ("" for a creation)
    gas_used: Amount | None  # None without receipts
    effective_gas_price: Amount | None
    priority_fee: Amount  # (effective gas price - base fee) * gas used, 0 without receipts
    coinbase_transfer: Amount  # native value sent to the coinbase (needs traces)


class BlockClassification(_Model):
    block_number: int
    block_hash: str
    coinbase: str = ""  # the block's fee recipient: the builder (or its proposer) on most chains
    sources: list[str]  # which of "logs", "traces" were read
    sandwiches: list[Sandwich]
    arbitrages: list[Arbitrage]
    liquidations: list[LiquidationRecord]
    jit: list[JitLiquidity]
    swaps: list[SwapRecord]
    transfers: list[TransferRecord]
    payments: list[BuilderPayment]
    unresolved_swaps: int  # swap events whose tokens the transfers did not tell
    searcher_txs: list[SearcherTx] = []  # every transaction of the MEV above, in block order
    # USD per base unit of the tokens the MEV above is denominated in, where the classifier had a price
    # (the live classifier: the agent's pricing of the chain), as decimal strings; amounts stay exact.
    prices: dict[str, str] = {}
    victim_losses: list[VictimLoss] = []  # per sandwiched victim, where it could be measured (Solana)
