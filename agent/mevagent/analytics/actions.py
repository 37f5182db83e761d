"""What one transaction did, decoded from its logs or from its call frames (same shapes either way)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Transfer:
    token: str  # abi.ETH for native value
    sender: str
    recipient: str
    amount: int
    # Already matched as a swap's input / output: in a multi-hop route one transfer is both, the
    # output of one pool paid straight into the next.
    used_in: bool = False
    used_out: bool = False


@dataclass(slots=True)
class Swap:
    pool: str
    protocol: str
    sender: str  # who called the pool (a router, a bot contract)
    recipient: str  # who received token_out
    token_in: str
    amount_in: int
    token_out: str
    amount_out: int


@dataclass(slots=True)
class Liquidation:
    protocol: str
    liquidator: str
    user: str
    debt_token: str
    debt_amount: int
    collateral_token: str
    collateral_amount: int


@dataclass(slots=True)
class Liquidity:
    """A concentrated-liquidity Mint or Burn (amounts exclude fees)."""

    kind: str  # "mint" | "burn"
    pool: str
    owner: str
    tick_lower: int
    tick_upper: int
    liquidity: int
    amount0: int
    amount1: int


@dataclass(slots=True)
class TxActions:
    index: int
    hash: str
    sender: str
    to: str | None
    reverted: bool
    swaps: list[Swap] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    liquidations: list[Liquidation] = field(default_factory=list)
    liquidity: list[Liquidity] = field(default_factory=list)
    coinbase_transfer: int = 0  # native value sent to the block's coinbase (from traces)
    unresolved_swaps: int = 0  # swap events whose tokens could not be told from the transfers


def match_transfer(
    transfers: list[Transfer], token: str | None, sender: str | None, recipient: str | None, amount: int | None
) -> Transfer | None:
    """The latest transfer with these fields (None = any) not yet used in this role; marked used.

    The role is the pool's side: `sender` given means a pool's output, else a pool's input.
    """
    as_out = sender is not None
    for transfer in reversed(transfers):
        if transfer.used_out if as_out else transfer.used_in:
            continue
        if token is not None and transfer.token != token:
            continue
        if sender is not None and transfer.sender != sender:
            continue
        if recipient is not None and transfer.recipient != recipient:
            continue
        if amount is not None and transfer.amount != amount:
            continue
        if as_out:
            transfer.used_out = True
        else:
            transfer.used_in = True
        return transfer
    return None


def resolve_legs(
    transfers: list[Transfer], pool: str, amount_in: int, amount_out: int, exclude_token: str | None = None
) -> tuple[Transfer | None, Transfer | None]:
    """The transfers that paid a pool `amount_in` and that it paid out `amount_out`.

    Exact amounts first (several swaps in one transaction), then any transfer to/from the pool (a
    fee-on-transfer token delivers less than was sent).
    """
    out = match_transfer(transfers, None, pool, None, amount_out) or match_transfer(transfers, None, pool, None, None)
    token_out = out.token if out else exclude_token
    leg_in = match_transfer(transfers, None, None, pool, amount_in)
    if leg_in is not None and leg_in.token == token_out:
        leg_in.used_in = False
        leg_in = None
    if leg_in is None:
        for transfer in reversed(transfers):
            if not transfer.used_in and transfer.recipient == pool and transfer.token != token_out:
                transfer.used_in = True
                leg_in = transfer
                break
    return leg_in, out
