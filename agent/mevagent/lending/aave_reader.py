"""Reading an Aave V3 market over raw JSON-RPC: reserves, oracle prices, one user's position, and the
events that change them. Words in, words out (mevagent.state.abi), no ABI codec on the per-event path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mevagent.executor.rpc import JsonRpc
from mevagent.lending.aave_v3 import Position, Reserve, ReserveParams
from mevagent.state.abi import address, encode_uint, selector, topic, words

GET_RESERVES_LIST = selector("getReservesList()")
GET_RESERVE_DATA = selector("getReserveData(address)")
GET_USER_CONFIGURATION = selector("getUserConfiguration(address)")
GET_ASSET_PRICE = selector("getAssetPrice(address)")
SCALED_BALANCE_OF = selector("scaledBalanceOf(address)")
FLASHLOAN_PREMIUM_TOTAL = selector("FLASHLOAN_PREMIUM_TOTAL()")

RESERVE_DATA_UPDATED = topic("ReserveDataUpdated(address,uint256,uint256,uint256,uint256,uint256)")
ASSET_SOURCE_UPDATED = topic("AssetSourceUpdated(address,address)")
ANSWER_UPDATED = topic("AnswerUpdated(int256,uint256,uint256)")
# Pool events naming a user whose balances changed: (topic, index of the topic holding the user).
USER_EVENTS = {
    topic("Supply(address,address,address,uint256,uint16)"): 2,  # onBehalfOf
    topic("Withdraw(address,address,address,uint256)"): 2,  # user
    topic("Borrow(address,address,address,uint256,uint8,uint256,uint16)"): 2,  # onBehalfOf
    topic("Repay(address,address,address,uint256,bool)"): 2,  # user
    topic("LiquidationCall(address,address,address,uint256,uint256,address,bool)"): 3,  # user
    topic("ReserveUsedAsCollateralEnabled(address,address)"): 2,
    topic("ReserveUsedAsCollateralDisabled(address,address)"): 2,
}


def address_arg(value: str) -> str:
    return encode_uint(int(value, 16))


async def call_words(rpc: JsonRpc, to: str, data: str, block: str) -> list[int]:
    return words(await rpc.call("eth_call", [{"to": to, "data": data}, block]))


async def read_reserves(rpc: JsonRpc, pool: str, now: int, block: str = "latest") -> dict[str, Reserve]:
    """Every reserve of the pool, as of `block` (`now`: unused unless a reserve was never updated)."""
    listed = await call_words(rpc, pool, GET_RESERVES_LIST, block)
    assets = [address(w) for w in listed[2 : 2 + listed[1]]]
    reserves = {}
    for asset in assets:
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
    return position


def reserve_update(log: dict[str, Any]) -> tuple[str, int, int, int, int] | None:
    """(asset, liquidity rate, variable borrow rate, liquidity index, variable index) of a ReserveDataUpdated."""
    if log["topics"][0] != RESERVE_DATA_UPDATED:
        return None
    liquidity_rate, _stable, variable_rate, liquidity_index, variable_index = words(log["data"])
    return address(int(log["topics"][1], 16)), liquidity_rate, variable_rate, liquidity_index, variable_index


def user_touched(log: dict[str, Any]) -> str | None:
    """The user whose position a Pool event changed, if it is one."""
    at = USER_EVENTS.get(log["topics"][0])
    return None if at is None else address(int(log["topics"][at], 16))


def source_update(log: dict[str, Any]) -> tuple[str, str] | None:
    """(asset, new price source) of an AaveOracle AssetSourceUpdated."""
    if log["topics"][0] != ASSET_SOURCE_UPDATED:
        return None
    return address(int(log["topics"][1], 16)), address(int(log["topics"][2], 16))


async def flashloan_premium(rpc: JsonRpc, pool: str, block: str = "latest") -> int:
    """The Pool's flashloan premium, in basis points (what flashLoanSimple charges: percentMul)."""
    return (await call_words(rpc, pool, FLASHLOAN_PREMIUM_TOTAL, block))[0]
