"""Actions from a successful transaction's receipt logs.

Pools do not name their tokens in their Swap events (Uniswap V2/V3 and forks, Curve): the tokens are
the ERC-20 Transfer events into and out of the pool earlier in the same transaction, matched by
amount. Balancer and 0x name them. Events are read in log order, so a swap only sees the transfers
that preceded it, as on chain.
"""

from __future__ import annotations

from collections.abc import Callable

from mevagent.analytics.abi import address_word, signed_word, topic, topic_address, topic_int, word, words
from mevagent.analytics.actions import Liquidation, Liquidity, Swap, Transfer, TxActions, resolve_legs
from mevagent.analytics.source import Log

TRANSFER = topic("Transfer(address,address,uint256)")
V2_SWAP = topic("Swap(address,uint256,uint256,uint256,uint256,address)")
V3_SWAP = topic("Swap(address,address,int256,int256,uint160,uint128,int24)")
# PancakeSwap V3 adds the protocol fees to its Swap event; the leading fields are the same.
PANCAKE_V3_SWAP = topic("Swap(address,address,int256,int256,uint160,uint128,int24,uint128,uint128)")
V3_MINT = topic("Mint(address,address,int24,int24,uint128,uint256,uint256)")
V3_BURN = topic("Burn(address,int24,int24,uint128,uint256,uint256)")
BALANCER_V2_SWAP = topic("Swap(bytes32,address,address,uint256,uint256)")
BALANCER_V1_SWAP = topic("LOG_SWAP(address,address,address,uint256,uint256)")
CURVE_EXCHANGE = topic("TokenExchange(address,int128,uint256,int128,uint256)")
CURVE_EXCHANGE_V2 = topic("TokenExchange(address,uint256,uint256,uint256,uint256)")
CURVE_EXCHANGE_UNDERLYING = topic("TokenExchangeUnderlying(address,int128,uint256,int128,uint256)")
ZEROX_LIMIT = topic(
    "LimitOrderFilled(bytes32,address,address,address,address,address,uint128,uint128,uint128,uint256,bytes32)"
)
ZEROX_RFQ = topic("RfqOrderFilled(bytes32,address,address,address,address,uint128,uint128,bytes32)")
ZEROX_OTC = topic("OtcOrderFilled(bytes32,address,address,address,address,uint128,uint128)")
AAVE_LIQUIDATION = topic("LiquidationCall(address,address,address,uint256,uint256,address,bool)")
AAVE_V1_LIQUIDATION = topic("LiquidationCall(address,address,address,uint256,uint256,uint256,address,bool,uint256)")
COMPOUND_LIQUIDATION = topic("LiquidateBorrow(address,address,uint256,address,uint256)")
COMET_ABSORB_DEBT = topic("AbsorbDebt(address,address,uint256,uint256)")
COMET_ABSORB_COLLATERAL = topic("AbsorbCollateral(address,address,address,uint256,uint256)")


def _transfer(acts: TxActions, log: Log, data: str) -> None:
    if len(log.topics) == 3 and len(data) == 64:  # ERC-721 Transfer has a fourth topic, no data
        acts.transfers.append(
            Transfer(log.address, topic_address(log.topics[1]), topic_address(log.topics[2]), word(data, 0))
        )


def _pool_swap(
    acts: TxActions, pool: str, protocol: str, sender: str, recipient: str | None, amount_in: int, amount_out: int
) -> None:
    leg_in, leg_out = resolve_legs(acts.transfers, pool, amount_in, amount_out)
    if leg_in is None or leg_out is None:
        acts.unresolved_swaps += 1
        return
    acts.swaps.append(
        Swap(pool, protocol, sender, recipient or leg_out.recipient, leg_in.token, amount_in, leg_out.token, amount_out)
    )


def _v2_swap(acts: TxActions, log: Log, data: str) -> None:
    in0, in1, out0, out1 = word(data, 0), word(data, 1), word(data, 2), word(data, 3)
    # A swap in one direction has one input and the other output; a flash swap that repays in the
    # same token it borrowed nets to its difference.
    amount_in, amount_out = (in0, out1) if in0 and out1 else (in1, out0)
    if not amount_in or not amount_out:
        amount_in, amount_out = (in0 or in1), (out0 or out1)
    _pool_swap(
        acts,
        log.address,
        "uniswap_v2",
        topic_address(log.topics[1]),
        topic_address(log.topics[2]),
        amount_in,
        amount_out,
    )


def _v3_swap(acts: TxActions, log: Log, data: str) -> None:
    amount0, amount1 = signed_word(data, 0), signed_word(data, 1)
    amount_in, amount_out = (amount0, -amount1) if amount0 > 0 else (amount1, -amount0)
    _pool_swap(
        acts,
        log.address,
        "uniswap_v3",
        topic_address(log.topics[1]),
        topic_address(log.topics[2]),
        amount_in,
        amount_out,
    )


def _curve_swap(acts: TxActions, log: Log, data: str) -> None:
    _pool_swap(acts, log.address, "curve", topic_address(log.topics[1]), None, word(data, 1), word(data, 3))


def _balancer_v2_swap(acts: TxActions, log: Log, data: str) -> None:
    # The Vault names the tokens; it moves them after this event (and internal balances move no
    # ERC-20 at all), so the trader is taken to be the transaction's sender.
    pool = "0x" + log.topics[1][2:42]  # a Balancer V2 poolId starts with the pool's address
    token_in, token_out = topic_address(log.topics[2]), topic_address(log.topics[3])
    acts.swaps.append(
        Swap(pool, "balancer_v2", acts.sender, acts.sender, token_in, word(data, 0), token_out, word(data, 1))
    )


def _balancer_v1_swap(acts: TxActions, log: Log, data: str) -> None:
    caller = topic_address(log.topics[1])
    token_in, token_out = topic_address(log.topics[2]), topic_address(log.topics[3])
    acts.swaps.append(
        Swap(log.address, "balancer_v1", caller, caller, token_in, word(data, 0), token_out, word(data, 1))
    )


def _zerox(
    maker_i: int, taker_i: int, maker_token_i: int, taker_token_i: int, taker_amount_i: int, maker_amount_i: int
):
    def decode(acts: TxActions, log: Log, data: str) -> None:
        taker = address_word(data, taker_i)
        acts.swaps.append(
            Swap(
                address_word(data, maker_i),  # the counterparty stands where a pool would
                "0x",
                taker,
                taker,
                address_word(data, taker_token_i),
                word(data, taker_amount_i),
                address_word(data, maker_token_i),
                word(data, maker_amount_i),
            )
        )

    return decode


def _aave(acts: TxActions, log: Log, data: str) -> None:
    acts.liquidations.append(
        Liquidation(
            "aave",
            address_word(data, 2),
            topic_address(log.topics[3]),
            topic_address(log.topics[2]),
            word(data, 0),
            topic_address(log.topics[1]),
            word(data, 1),
        )
    )


def _aave_v1(acts: TxActions, log: Log, data: str) -> None:
    acts.liquidations.append(
        Liquidation(
            "aave_v1",
            address_word(data, 3),
            topic_address(log.topics[3]),
            topic_address(log.topics[2]),
            word(data, 0),
            topic_address(log.topics[1]),
            word(data, 1),
        )
    )


def _compound(acts: TxActions, log: Log, data: str) -> None:
    # Emitted by the borrowed market's cToken; amounts: underlying repaid, collateral cTokens seized.
    acts.liquidations.append(
        Liquidation(
            "compound_v2",
            address_word(data, 0),
            address_word(data, 1),
            log.address,
            word(data, 2),
            address_word(data, 3),
            word(data, 4),
        )
    )


def _comet_entry(acts: TxActions, comet: str, absorber: str, borrower: str, missing_debt: bool) -> Liquidation:
    """The absorption this event completes: Comet emits AbsorbCollateral per asset, then AbsorbDebt."""
    for liquidation in acts.liquidations:
        if (liquidation.protocol, liquidation.debt_token, liquidation.liquidator, liquidation.user) == (
            "compound_v3",
            comet,
            absorber,
            borrower,
        ) and (liquidation.debt_amount == 0 if missing_debt else not liquidation.collateral_token):
            return liquidation
    # Debt is in the Comet's base token: the market (the Comet) stands for it.
    liquidation = Liquidation("compound_v3", absorber, borrower, comet, 0, "", 0)
    acts.liquidations.append(liquidation)
    return liquidation


def _comet_debt(acts: TxActions, log: Log, data: str) -> None:
    entry = _comet_entry(acts, log.address, topic_address(log.topics[1]), topic_address(log.topics[2]), True)
    entry.debt_amount = word(data, 0)


def _comet_collateral(acts: TxActions, log: Log, data: str) -> None:
    entry = _comet_entry(acts, log.address, topic_address(log.topics[1]), topic_address(log.topics[2]), False)
    entry.collateral_token, entry.collateral_amount = topic_address(log.topics[3]), word(data, 0)


def _v3_mint(acts: TxActions, log: Log, data: str) -> None:
    acts.liquidity.append(
        Liquidity(
            "mint",
            log.address,
            topic_address(log.topics[1]),
            topic_int(log.topics[2]),
            topic_int(log.topics[3]),
            word(data, 1),
            word(data, 2),
            word(data, 3),
        )
    )


def _v3_burn(acts: TxActions, log: Log, data: str) -> None:
    if word(data, 0):  # a zero burn only updates the position's fees (before collect)
        acts.liquidity.append(
            Liquidity(
                "burn",
                log.address,
                topic_address(log.topics[1]),
                topic_int(log.topics[2]),
                topic_int(log.topics[3]),
                word(data, 0),
                word(data, 1),
                word(data, 2),
            )
        )


_DECODERS: dict[str, tuple[int, Callable[[TxActions, Log, str], None]]] = {
    # topic0: (topics required, decoder)
    TRANSFER: (3, _transfer),
    V2_SWAP: (3, _v2_swap),
    V3_SWAP: (3, _v3_swap),
    PANCAKE_V3_SWAP: (3, _v3_swap),
    CURVE_EXCHANGE: (2, _curve_swap),
    CURVE_EXCHANGE_V2: (2, _curve_swap),
    CURVE_EXCHANGE_UNDERLYING: (2, _curve_swap),
    BALANCER_V2_SWAP: (4, _balancer_v2_swap),
    BALANCER_V1_SWAP: (4, _balancer_v1_swap),
    ZEROX_LIMIT: (1, _zerox(1, 2, 4, 5, 6, 7)),
    ZEROX_RFQ: (1, _zerox(1, 2, 3, 4, 5, 6)),
    ZEROX_OTC: (1, _zerox(1, 2, 3, 4, 6, 5)),
    AAVE_LIQUIDATION: (4, _aave),
    AAVE_V1_LIQUIDATION: (4, _aave_v1),
    COMPOUND_LIQUIDATION: (1, _compound),
    COMET_ABSORB_DEBT: (3, _comet_debt),
    COMET_ABSORB_COLLATERAL: (4, _comet_collateral),
    V3_MINT: (4, _v3_mint),
    V3_BURN: (4, _v3_burn),
}


def decode_logs(acts: TxActions, logs: list[Log]) -> None:
    """Append what `logs` (one successful transaction's, in order) record to `acts`."""
    decoders = _DECODERS
    for log in logs:
        if not log.topics:
            continue
        entry = decoders.get(log.topics[0])
        if entry is None or len(log.topics) < entry[0]:
            continue
        entry[1](acts, log, words(log.data))
