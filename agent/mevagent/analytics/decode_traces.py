"""Actions from a transaction's call frames (Parity flat traces or flattened geth callTracer frames).

Transfers are the ERC-20 transfer/transferFrom calls and native value; a swap is the pool call
itself (its arguments and return values), completed when its subtree ends, so it sees the
transfers it caused just as its Swap event would. Delegate and static calls are skipped: a proxy's
implementation repeats the proxy's call, and a static call changes nothing.

In a reverted transaction every frame is read (nothing happened, but what it tried to do is what
tells a failed arbitrage apart); in a successful one, frames that reverted inside it are skipped.
"""

from __future__ import annotations

from collections.abc import Callable

from mevagent.analytics.abi import ETH, address_word, selector, signed_word, word, words
from mevagent.analytics.actions import Liquidation, Liquidity, Swap, Transfer, TxActions, match_transfer, resolve_legs
from mevagent.analytics.source import Frame

ERC20_TRANSFER = selector("transfer(address,uint256)")
ERC20_TRANSFER_FROM = selector("transferFrom(address,address,uint256)")
V2_SWAP = selector("swap(uint256,uint256,address,bytes)")
V3_SWAP = selector("swap(address,bool,int256,uint160,bytes)")
V3_MINT = selector("mint(address,int24,int24,uint128,bytes)")
V3_BURN = selector("burn(int24,int24,uint128)")
CURVE_EXCHANGE = selector("exchange(int128,int128,uint256,uint256)")
CURVE_EXCHANGE_UINT = selector("exchange(uint256,uint256,uint256,uint256)")
CURVE_EXCHANGE_UNDERLYING = selector("exchange_underlying(int128,int128,uint256,uint256)")
AAVE_LIQUIDATION_CALL = selector("liquidationCall(address,address,address,uint256,bool)")
COMPOUND_LIQUIDATE = selector("liquidateBorrow(address,uint256,address)")
COMPOUND_SEIZE = selector("seize(address,address,uint256)")
# The Balancer V2 Vault asks a pool for each step of a swap or batchSwap: onSwap(SwapRequest(kind, tokenIn,
# tokenOut, amount, poolId, lastChangeBlock, from, to, userData), balances...) returns the amount the pool
# computed (out for GIVEN_IN, in for GIVEN_OUT). MinimalSwapInfo/TwoToken pools take two balances, general
# pools all of them and two indexes.
_SWAP_REQUEST = "(uint8,address,address,uint256,bytes32,uint256,address,address,bytes)"
BALANCER_V2_ON_SWAP = selector(f"onSwap({_SWAP_REQUEST},uint256,uint256)")
BALANCER_V2_ON_SWAP_GENERAL = selector(f"onSwap({_SWAP_REQUEST},uint256[],uint256,uint256)")
# Balancer V1 pools (BPool): swapExactAmountIn(tokenIn, tokenAmountIn, tokenOut, minAmountOut, maxPrice) returns
# (tokenAmountOut, spotPriceAfter); swapExactAmountOut(tokenIn, maxAmountIn, tokenOut, tokenAmountOut, maxPrice)
# returns (tokenAmountIn, spotPriceAfter).
BALANCER_V1_EXACT_IN = selector("swapExactAmountIn(address,uint256,address,uint256,uint256)")
BALANCER_V1_EXACT_OUT = selector("swapExactAmountOut(address,uint256,address,uint256,uint256)")
# 0x V4 native orders filled through the Exchange Proxy (its feature runs in a delegate call, skipped: the
# call to the proxy is read). The orders are static tuples inline in the call data: LimitOrder(makerToken,
# takerToken, makerAmount, takerAmount, takerTokenFeeAmount, maker, taker, sender, feeRecipient, pool, expiry,
# salt), RfqOrder(makerToken, takerToken, makerAmount, takerAmount, maker, taker, txOrigin, pool, expiry, salt),
# OtcOrder(makerToken, takerToken, makerAmount, takerAmount, maker, taker, txOrigin, expiryAndNonce), then the
# Signature (4 words) and the taker token amount to fill.
_LIMIT_ORDER = "(address,address,uint128,uint128,uint128,address,address,address,address,bytes32,uint64,uint256)"
_RFQ_ORDER = "(address,address,uint128,uint128,address,address,address,bytes32,uint64,uint256)"
_OTC_ORDER = "(address,address,uint128,uint128,address,address,address,uint256)"
_SIGNATURE = "(uint8,uint8,bytes32,bytes32)"
# The proxy's batch and multiplex features (multiplexBatchSell*, multiplexMultiHopSell*, batchFill*Orders,
# marketSell*/marketBuy*) fill each native order by calling the proxy itself, so that a failed fill reverts
# alone: INativeOrdersFeature(address(this))._fillRfqOrder(order, signature, takerTokenFillAmount, taker,
# useSelfBalance, recipient) (older deployments: without the last two), _fillOtcOrder the same,
# _fillLimitOrder(order, signature, takerTokenFillAmount, taker, sender); each returns (taker token filled,
# maker token filled). The taker is an argument there, not the caller (the proxy). The multiplex's other
# subcalls (Uniswap V2/V3 pairs and pools) are calls of their own, read as such.
# selector -> (the maker's word, the fill amount's word, fill or kill: the output is the maker amount only,
# the taker's word: None for the caller)
ZEROX_FILLS: dict[str, tuple[int, int, bool, int | None]] = {
    selector(f"fillLimitOrder({_LIMIT_ORDER},{_SIGNATURE},uint128)"): (5, 16, False, None),
    selector(f"fillOrKillLimitOrder({_LIMIT_ORDER},{_SIGNATURE},uint128)"): (5, 16, True, None),
    selector(f"fillRfqOrder({_RFQ_ORDER},{_SIGNATURE},uint128)"): (4, 14, False, None),
    selector(f"fillOrKillRfqOrder({_RFQ_ORDER},{_SIGNATURE},uint128)"): (4, 14, True, None),
    selector(f"fillOtcOrder({_OTC_ORDER},{_SIGNATURE},uint128)"): (4, 12, False, None),
    selector(f"_fillLimitOrder({_LIMIT_ORDER},{_SIGNATURE},uint128,address,address)"): (5, 16, False, 17),
    selector(f"_fillRfqOrder({_RFQ_ORDER},{_SIGNATURE},uint128,address,bool,address)"): (4, 14, False, 15),
    selector(f"_fillRfqOrder({_RFQ_ORDER},{_SIGNATURE},uint128,address)"): (4, 14, False, 15),
    selector(f"_fillOtcOrder({_OTC_ORDER},{_SIGNATURE},uint128,address,bool,address)"): (4, 12, False, 13),
}
_SKIPPED_CALL_TYPES = frozenset({"staticcall", "delegatecall", "callcode"})


def _returned_true(output: str) -> bool:
    # Tokens that return nothing (USDT) succeed by not reverting; others return a bool.
    payload = words(output)
    return not payload or word(payload, 0) != 0


def _v2_swap(acts: TxActions, frame: Frame, payload: str, first_transfer: int) -> None:
    pool = frame.to
    amount_out = word(payload, 0) or word(payload, 1)
    out = match_transfer(acts.transfers[first_transfer:], None, pool, None, amount_out)
    if out is None:
        acts.unresolved_swaps += 1
        return
    # The input was sent before the call (or inside it, by a flash-swap callback): the latest
    # transfer of the other token to the pair.
    leg_in = next(
        (t for t in reversed(acts.transfers) if not t.used_in and t.recipient == pool and t.token != out.token), None
    )
    if leg_in is None:
        out.used_out = False
        acts.unresolved_swaps += 1
        return
    leg_in.used_in = True
    acts.swaps.append(
        Swap(
            pool,
            "uniswap_v2",
            frame.sender,
            address_word(payload, 2),
            leg_in.token,
            leg_in.amount,
            out.token,
            amount_out,
        )
    )


def _v3_swap(acts: TxActions, frame: Frame, payload: str, first_transfer: int) -> None:
    result = words(frame.output)
    if len(result) < 128:
        acts.unresolved_swaps += 1
        return
    amount0, amount1 = signed_word(result, 0), signed_word(result, 1)
    amount_in, amount_out = (amount0, -amount1) if amount0 > 0 else (amount1, -amount0)
    leg_in, leg_out = resolve_legs(acts.transfers, frame.to, amount_in, amount_out)
    if leg_in is None or leg_out is None:
        acts.unresolved_swaps += 1
        return
    acts.swaps.append(
        Swap(
            frame.to,
            "uniswap_v3",
            frame.sender,
            address_word(payload, 0),
            leg_in.token,
            amount_in,
            leg_out.token,
            amount_out,
        )
    )


def _curve(acts: TxActions, frame: Frame, payload: str, first_transfer: int) -> None:
    pool, amount_in = frame.to, word(payload, 2)
    result = words(frame.output)
    leg_in, leg_out = resolve_legs(acts.transfers, pool, amount_in, word(result, 0) if result else -1)
    if leg_in is None or leg_out is None:
        acts.unresolved_swaps += 1
        return
    acts.swaps.append(
        Swap(pool, "curve", frame.sender, leg_out.recipient, leg_in.token, amount_in, leg_out.token, leg_out.amount)
    )


def _balancer_v2(acts: TxActions, frame: Frame, payload: str, first_transfer: int) -> None:
    result = words(frame.output)
    start = word(payload, 0) // 32 if len(payload) >= 64 else -1  # the request tuple's offset, in words
    if not result or start < 0 or len(payload) < 64 * (start + 4):
        acts.unresolved_swaps += 1
        return
    kind, amount, computed = word(payload, start), word(payload, start + 3), word(result, 0)
    amount_in, amount_out = (amount, computed) if kind == 0 else (computed, amount)
    # As from the Vault's Swap event (decode_logs): the trader is taken to be the transaction's sender, so
    # that logs and traces give one answer.
    acts.swaps.append(
        Swap(
            frame.to,
            "balancer_v2",
            acts.sender,
            acts.sender,
            address_word(payload, start + 1),
            amount_in,
            address_word(payload, start + 2),
            amount_out,
        )
    )


def _balancer_v1(acts: TxActions, frame: Frame, payload: str, first_transfer: int) -> None:
    result = words(frame.output)
    if not result:
        acts.unresolved_swaps += 1
        return
    if frame.input[:10] == BALANCER_V1_EXACT_IN:
        amount_in, amount_out = word(payload, 1), word(result, 0)
    else:
        amount_in, amount_out = word(result, 0), word(payload, 3)
    # As from LOG_SWAP (decode_logs): the caller is both the trader and the recipient.
    acts.swaps.append(
        Swap(
            frame.to,
            "balancer_v1",
            frame.sender,
            frame.sender,
            address_word(payload, 0),
            amount_in,
            address_word(payload, 2),
            amount_out,
        )
    )


def _zerox_fill(acts: TxActions, frame: Frame, payload: str, first_transfer: int) -> None:
    maker_i, fill_i, fill_or_kill, taker_i = ZEROX_FILLS[frame.input[:10]]
    result = words(frame.output)
    if fill_or_kill:  # it fills the whole amount asked or reverts
        taker_amount, maker_amount = word(payload, fill_i), word(result, 0)
    else:
        taker_amount, maker_amount = word(result, 0), word(result, 1)
    if not result or not taker_amount or not maker_amount:
        if not result:
            acts.unresolved_swaps += 1
        return
    # As from the OrderFilled events (decode_logs): the maker stands where a pool would, the taker is the caller
    # (or, in the proxy's call to itself, its taker argument).
    taker = frame.sender if taker_i is None else address_word(payload, taker_i)
    acts.swaps.append(
        Swap(
            address_word(payload, maker_i),
            "0x",
            taker,
            taker,
            address_word(payload, 1),
            taker_amount,
            address_word(payload, 0),
            maker_amount,
        )
    )


def _v3_mint(acts: TxActions, frame: Frame, payload: str, first_transfer: int) -> None:
    result = words(frame.output)
    acts.liquidity.append(
        Liquidity(
            "mint",
            frame.to,
            address_word(payload, 0),
            signed_word(payload, 1),
            signed_word(payload, 2),
            word(payload, 3),
            word(result, 0),
            word(result, 1),
        )
    )


def _v3_burn(acts: TxActions, frame: Frame, payload: str, first_transfer: int) -> None:
    if word(payload, 2):
        result = words(frame.output)
        acts.liquidity.append(
            Liquidity(
                "burn",
                frame.to,
                frame.sender,
                signed_word(payload, 0),
                signed_word(payload, 1),
                word(payload, 2),
                word(result, 0),
                word(result, 1),
            )
        )


def _aave(acts: TxActions, frame: Frame, payload: str, first_transfer: int) -> None:
    liquidator, collateral, debt = frame.sender, address_word(payload, 0), address_word(payload, 1)
    inside = acts.transfers[first_transfer:]
    acts.liquidations.append(
        Liquidation(
            "aave",
            liquidator,
            address_word(payload, 2),
            debt,
            sum(t.amount for t in inside if t.token == debt and t.sender == liquidator),
            collateral,
            sum(t.amount for t in inside if t.token == collateral and t.recipient == liquidator),
        )
    )


_POST_ORDER: dict[str, Callable[[TxActions, Frame, str, int], None]] = {
    V2_SWAP: _v2_swap,
    V3_SWAP: _v3_swap,
    V3_MINT: _v3_mint,
    V3_BURN: _v3_burn,
    CURVE_EXCHANGE: _curve,
    CURVE_EXCHANGE_UINT: _curve,
    CURVE_EXCHANGE_UNDERLYING: _curve,
    AAVE_LIQUIDATION_CALL: _aave,
    BALANCER_V2_ON_SWAP: _balancer_v2,
    BALANCER_V2_ON_SWAP_GENERAL: _balancer_v2,
    **dict.fromkeys(ZEROX_FILLS, _zerox_fill),
    BALANCER_V1_EXACT_IN: _balancer_v1,
    BALANCER_V1_EXACT_OUT: _balancer_v1,
}


def decode_frames(acts: TxActions, frames: list[Frame], coinbase: str) -> None:
    """Append what `frames` (one transaction's, depth-first) did to `acts`."""
    include_failed = acts.reverted
    pending: list[tuple[int, Frame, str, int, Callable[[TxActions, Frame, str, int], None]]] = []
    for index, frame in enumerate(frames):
        while pending and pending[-1][0] <= index:
            _end, done, payload, first, decoder = pending.pop()
            decoder(acts, done, payload, first)
        if (frame.failed and not include_failed) or frame.call_type in _SKIPPED_CALL_TYPES:
            continue
        if frame.value:
            acts.transfers.append(Transfer(ETH, frame.sender, frame.to, frame.value))
            if frame.to == coinbase and not frame.failed:
                acts.coinbase_transfer += frame.value
        data = frame.input
        if len(data) < 10:
            continue
        sig = data[:10]
        if sig == ERC20_TRANSFER:
            if _returned_true(frame.output):
                payload = data[10:]
                acts.transfers.append(Transfer(frame.to, frame.sender, address_word(payload, 0), word(payload, 1)))
        elif sig == ERC20_TRANSFER_FROM:
            if _returned_true(frame.output):
                payload = data[10:]
                acts.transfers.append(
                    Transfer(frame.to, address_word(payload, 0), address_word(payload, 1), word(payload, 2))
                )
        elif sig == COMPOUND_LIQUIDATE:
            payload = data[10:]
            acts.liquidations.append(
                Liquidation(
                    "compound_v2",
                    frame.sender,
                    address_word(payload, 0),
                    frame.to,
                    word(payload, 1),
                    address_word(payload, 2),
                    0,
                )
            )
        elif sig == COMPOUND_SEIZE:
            payload = data[10:]
            # The borrowed market calls seize(liquidator, borrower, seizeTokens) on the collateral market.
            for liquidation in reversed(acts.liquidations):
                if (
                    liquidation.protocol == "compound_v2"
                    and liquidation.collateral_token == frame.to
                    and not liquidation.collateral_amount
                ):
                    liquidation.collateral_amount = word(payload, 2)
                    break
        else:
            decoder = _POST_ORDER.get(sig)
            if decoder is not None:
                pending.append((frame.end, frame, data[10:], len(acts.transfers), decoder))
    while pending:
        _end, done, payload, first, decoder = pending.pop()
        decoder(acts, done, payload, first)
