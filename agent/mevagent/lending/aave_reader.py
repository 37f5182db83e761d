"""Reading an Aave V3 or V2 market over raw JSON-RPC: reserves, oracle prices, one user's position, and the
events that change them. Words in, words out (mevagent.state.abi), no ABI codec on the per-event path.

What differs between the two is in `LAYOUTS`: how the addresses provider names the pool (getPool /
getLendingPool) and its configurator (getPoolConfigurator / getLendingPoolConfigurator), the pool's user
events (V2: Deposit, Borrow and Repay with their V2 arguments, Swap and RebalanceStableBorrowRate) and the
ReserveData tuple's order. A V2 position also has its stable-rate debt read (principal, rate, timestamp from
the StableDebtToken).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mevagent.executor.rpc import JsonRpc
from mevagent.lending.aave_v2 import ReserveV2
from mevagent.lending.aave_v3 import Position, Reserve, ReserveParams, StableDebt
from mevagent.state.abi import address, encode_uint, selector, topic, words

GET_RESERVES_LIST = selector("getReservesList()")
GET_RESERVE_DATA = selector("getReserveData(address)")
GET_USER_CONFIGURATION = selector("getUserConfiguration(address)")
GET_ASSET_PRICE = selector("getAssetPrice(address)")
SCALED_BALANCE_OF = selector("scaledBalanceOf(address)")
FLASHLOAN_PREMIUM_TOTAL = selector("FLASHLOAN_PREMIUM_TOTAL()")
PRINCIPAL_BALANCE_OF = selector("principalBalanceOf(address)")
GET_USER_STABLE_RATE = selector("getUserStableRate(address)")
GET_USER_LAST_UPDATED = selector("getUserLastUpdated(address)")

RESERVE_DATA_UPDATED = topic("ReserveDataUpdated(address,uint256,uint256,uint256,uint256,uint256)")
ASSET_SOURCE_UPDATED = topic("AssetSourceUpdated(address,address)")
ANSWER_UPDATED = topic("AnswerUpdated(int256,uint256,uint256)")
# The (Lending)PoolConfigurator's risk-parameter events, V3's and V2's alike (both published ABIs:
# @aave/core-v3 PoolConfigurator, @aave/protocol-v2 LendingPoolConfigurator); the fee is V3's only.
COLLATERAL_CONFIGURATION_CHANGED = topic("CollateralConfigurationChanged(address,uint256,uint256,uint256)")
LIQUIDATION_PROTOCOL_FEE_CHANGED = topic("LiquidationProtocolFeeChanged(address,uint256,uint256)")
# Pool events naming a user whose balances changed: (name, signature, index of the topic holding the user).
_V3_EVENTS = (
    ("Supply", "Supply(address,address,address,uint256,uint16)", 2),  # onBehalfOf
    ("Withdraw", "Withdraw(address,address,address,uint256)", 2),  # user
    ("Borrow", "Borrow(address,address,address,uint256,uint8,uint256,uint16)", 2),  # onBehalfOf
    ("Repay", "Repay(address,address,address,uint256,bool)", 2),  # user
    ("LiquidationCall", "LiquidationCall(address,address,address,uint256,uint256,address,bool)", 3),  # user
    ("ReserveUsedAsCollateralEnabled", "ReserveUsedAsCollateralEnabled(address,address)", 2),
    ("ReserveUsedAsCollateralDisabled", "ReserveUsedAsCollateralDisabled(address,address)", 2),
)
_V2_EVENTS = (
    ("Deposit", "Deposit(address,address,address,uint256,uint16)", 2),  # onBehalfOf
    ("Withdraw", "Withdraw(address,address,address,uint256)", 2),  # user
    ("Borrow", "Borrow(address,address,address,uint256,uint256,uint256,uint16)", 2),  # onBehalfOf
    ("Repay", "Repay(address,address,address,uint256)", 2),  # user
    ("Swap", "Swap(address,address,uint256)", 2),  # user: stable <-> variable
    ("RebalanceStableBorrowRate", "RebalanceStableBorrowRate(address,address)", 2),  # user
    ("LiquidationCall", "LiquidationCall(address,address,address,uint256,uint256,address,bool)", 3),  # user
    ("ReserveUsedAsCollateralEnabled", "ReserveUsedAsCollateralEnabled(address,address)", 2),
    ("ReserveUsedAsCollateralDisabled", "ReserveUsedAsCollateralDisabled(address,address)", 2),
)
USER_EVENTS = {topic(signature): slot for _, signature, slot in _V3_EVENTS}
USER_EVENTS_V2 = {topic(signature): slot for _, signature, slot in _V2_EVENTS}


def address_arg(value: str) -> str:
    return encode_uint(int(value, 16))


async def call_words(rpc: JsonRpc, to: str, data: str, block: str) -> list[int]:
    return words(await rpc.call("eth_call", [{"to": to, "data": data}, block]))


async def read_reserves(rpc: JsonRpc, pool: str, now: int, block: str = "latest") -> dict[str, Reserve]:
    """Every reserve of the pool, as of `block` (`now`: unused unless a reserve was never updated)."""
    reserves = {}
    for asset in await _reserves_list(rpc, pool, block):
        w = await call_words(rpc, pool, GET_RESERVE_DATA + address_arg(asset), block)
        params = ReserveParams.decode(w[0])
        if params.stable_borrowing:
            raise ValueError(f"reserve {asset}: stable-rate borrowing is enabled; its debt is not tracked")
        reserves[asset] = Reserve(
            asset=asset,
            id=w[7],
            params=params,
            a_token=address(w[8]),
            debt_token=address(w[10]),
            liquidity_index=w[1],
            variable_borrow_index=w[3],
            liquidity_rate=w[2],
            variable_borrow_rate=w[4],
            last_update=w[6] or now,
        )
    return reserves


async def _reserves_list(rpc: JsonRpc, pool: str, block: str) -> list[str]:
    listed = await call_words(rpc, pool, GET_RESERVES_LIST, block)
    return [address(w) for w in listed[2 : 2 + listed[1]]]


async def read_reserves_v2(rpc: JsonRpc, pool: str, now: int, block: str = "latest") -> dict[str, Reserve]:
    """Every reserve of an Aave V2 LendingPool (its ReserveData: configuration, liquidity index, variable
    borrow index, liquidity rate, variable and stable borrow rates, timestamp, aToken, stable and variable
    debt tokens, rate strategy, id), stable borrowing or not."""
    reserves: dict[str, Reserve] = {}
    for asset in await _reserves_list(rpc, pool, block):
        w = await call_words(rpc, pool, GET_RESERVE_DATA + address_arg(asset), block)
        reserves[asset] = ReserveV2(
            asset=asset,
            id=w[11],
            params=dataclasses.replace(ReserveParams.decode(w[0]), liquidation_protocol_fee=0),
            a_token=address(w[7]),
            debt_token=address(w[9]),
            liquidity_index=w[1],
            variable_borrow_index=w[2],
            liquidity_rate=w[3],
            variable_borrow_rate=w[4],
            last_update=w[6] or now,
            stable_debt_token=address(w[8]),
        )
    return reserves


async def read_prices(rpc: JsonRpc, oracle: str, assets: Sequence[str], block: str = "latest") -> dict[str, int]:
    return {a: (await call_words(rpc, oracle, GET_ASSET_PRICE + address_arg(a), block))[0] for a in assets}


async def read_position(
    rpc: JsonRpc, pool: str, user: str, reserves: dict[str, Reserve], block: str = "latest"
) -> Position:
    """The user's scaled balances where its configuration bitmap says it borrows or uses collateral."""
    bitmap = (await call_words(rpc, pool, GET_USER_CONFIGURATION + address_arg(user), block))[0]
    position = Position(user.lower())
    for asset, reserve in reserves.items():
        holdings = (
            (position.collateral, reserve.a_token, (bitmap >> (2 * reserve.id + 1)) & 1),
            (position.debt, reserve.debt_token, (bitmap >> (2 * reserve.id)) & 1),
        )
        for balances, token, flagged in holdings:
            if flagged:
                balances[asset] = (await call_words(rpc, token, SCALED_BALANCE_OF + address_arg(user), block))[0]
        if reserve.stable_debt_token and (bitmap >> (2 * reserve.id)) & 1:
            stable = await read_stable_debt(rpc, reserve.stable_debt_token, user, block)
            if stable.principal:
                position.stable[asset] = stable
    return position


async def read_stable_debt(rpc: JsonRpc, token: str, user: str, block: str = "latest") -> StableDebt:
    """A user's stable-rate debt as its StableDebtToken keeps it (principal, rate, timestamp)."""
    arg = address_arg(user)
    principal = (await call_words(rpc, token, PRINCIPAL_BALANCE_OF + arg, block))[0]
    if principal == 0:
        return StableDebt(0, 0, 0)
    rate = (await call_words(rpc, token, GET_USER_STABLE_RATE + arg, block))[0]
    updated = (await call_words(rpc, token, GET_USER_LAST_UPDATED + arg, block))[0]
    return StableDebt(principal, rate, updated)


def reserve_update(log: dict[str, Any]) -> tuple[str, int, int, int, int] | None:
    """(asset, liquidity rate, variable borrow rate, liquidity index, variable index) of a ReserveDataUpdated."""
    if log["topics"][0] != RESERVE_DATA_UPDATED:
        return None
    liquidity_rate, _stable, variable_rate, liquidity_index, variable_index = words(log["data"])
    return address(int(log["topics"][1], 16)), liquidity_rate, variable_rate, liquidity_index, variable_index


def user_touched(log: dict[str, Any], events: dict[str, int] = USER_EVENTS) -> str | None:
    """The user whose position a Pool event changed, if it is one (`events`: USER_EVENTS_V2 on a V2 pool)."""
    at = events.get(log["topics"][0])
    return None if at is None else address(int(log["topics"][at], 16))


def source_update(log: dict[str, Any]) -> tuple[str, str] | None:
    """(asset, new price source) of an AaveOracle AssetSourceUpdated."""
    if log["topics"][0] != ASSET_SOURCE_UPDATED:
        return None
    return address(int(log["topics"][1], 16)), address(int(log["topics"][2], 16))


def configuration_update(log: dict[str, Any]) -> tuple[str, dict[str, int]] | None:
    """(asset, the risk parameters it sets, by ReserveParams field) of a PoolConfigurator
    CollateralConfigurationChanged (LTV, liquidation threshold and bonus, basis points) or
    LiquidationProtocolFeeChanged (the protocol's share of the bonus)."""
    first = log["topics"][0]
    if first == COLLATERAL_CONFIGURATION_CHANGED:
        ltv, threshold, bonus = words(log["data"])
        fields = {"ltv": ltv, "liquidation_threshold": threshold, "liquidation_bonus": bonus}
    elif first == LIQUIDATION_PROTOCOL_FEE_CHANGED:
        fields = {"liquidation_protocol_fee": words(log["data"])[1]}
    else:
        return None
    return address(int(log["topics"][1], 16)), fields


async def flashloan_premium(rpc: JsonRpc, pool: str, block: str = "latest") -> int:
    """The Pool's flashloan premium, in basis points (what flashLoanSimple charges: percentMul)."""
    return (await call_words(rpc, pool, FLASHLOAN_PREMIUM_TOTAL, block))[0]


@dataclass(frozen=True)
class Layout:
    """What one Aave version's market looks like to the reader and the monitor."""

    protocol: str
    get_pool: str  # the addresses provider's getter of the pool (its selector)
    get_configurator: str  # and of the pool's configurator (whose events change the reserves' risk parameters)
    user_events: dict[str, int]  # topic -> the topic holding the user
    event_names: dict[str, str]  # topic -> the event's name
    read_reserves: Callable[[JsonRpc, str, int, str], Awaitable[dict[str, Reserve]]]


LAYOUTS = {
    "aave_v3": Layout(
        "aave_v3",
        selector("getPool()"),
        selector("getPoolConfigurator()"),
        USER_EVENTS,
        {topic(s): n for n, s, _ in _V3_EVENTS},
        read_reserves,
    ),
    "aave_v2": Layout(
        "aave_v2",
        selector("getLendingPool()"),
        selector("getLendingPoolConfigurator()"),
        USER_EVENTS_V2,
        {topic(s): n for n, s, _ in _V2_EVENTS},
        read_reserves_v2,
    ),
}
