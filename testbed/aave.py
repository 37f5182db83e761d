"""An Aave V3 market on anvil, deployed from the published `@aave/core-v3` artifacts (v1.19.3, Aave V3.0.2).

What the protocol's own deploy scripts do, in order: the addresses provider and its ACL, the Pool
implementation linked against its logic libraries (behind the provider's proxy), the configurator
linked against ConfiguratorLogic, the AaveOracle over one MockAggregator per asset, the data provider,
then one reserve per MintableERC20 with the default interest-rate strategy, configured as collateral
and borrowable. Price moves are what the protocol sees in production: a new aggregator answer, set as
the asset's source (`AaveOracle.setAssetSources`, which emits `AssetSourceUpdated`; the aggregator's
constructor emits `AnswerUpdated`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from web3 import Web3
from web3.contract import Contract

from mevagent.lending.aave_v3 import WAD, Position, Reserve, account_data

from .evm import NODE_MODULES, Chain, seeded_v2_pair

AAVE = "@aave/core-v3/artifacts/contracts"
RAY = 10**27


LIBRARIES = ("SupplyLogic", "BorrowLogic", "LiquidationLogic", "EModeLogic", "BridgeLogic", "PoolLogic")


def _linked(relative: str, libraries: dict[str, str]) -> tuple[list[dict[str, Any]], str]:
    """(abi, bytecode) with every library placeholder replaced by its deployed address."""
    data = json.loads((NODE_MODULES / relative).read_text())
    code = data["bytecode"][2:]
    for refs in data["linkReferences"].values():
        for name, spots in refs.items():
            address = libraries[name][2:].lower()
            for spot in spots:
                start = spot["start"] * 2
                code = code[:start] + address + code[start + spot["length"] * 2 :]
    return data["abi"], "0x" + code


def _deploy_linked(chain: Chain, relative: str, libraries: dict[str, str], *args: Any) -> Contract:
    abi, bytecode = _linked(relative, libraries)
    receipt = chain.transact(chain.w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args))
    return chain.w3.eth.contract(address=receipt["contractAddress"], abi=abi)


@cache
def find(name: str) -> str:
    """The artifact path (under node_modules) of the Aave contract `name`."""
    matches = [p for p in (NODE_MODULES / AAVE).rglob(f"{name}.json") if not p.name.endswith(".dbg.json")]
    if not matches:
        raise FileNotFoundError(f"{name}.json under {AAVE}")
    return str(matches[0].relative_to(NODE_MODULES))


@dataclass(frozen=True)
class ReserveSpec:
    symbol: str
    decimals: int
    price: int  # USD with 8 decimals, as the aggregators answer
    ltv: int = 8000  # basis points
    liquidation_threshold: int = 8250
    liquidation_bonus: int = 10500  # 105 %: the liquidator gets 5 % over the debt it repays


@dataclass
class AaveMarket:
    chain: Chain
    provider: Contract
    pool: Contract
    configurator: Contract
    oracle: Contract
    data_provider: Contract
    tokens: dict[str, Contract] = field(default_factory=dict)  # by symbol
    a_tokens: dict[str, Contract] = field(default_factory=dict)
    debt_tokens: dict[str, Contract] = field(default_factory=dict)
    specs: dict[str, ReserveSpec] = field(default_factory=dict)

    def asset(self, symbol: str) -> str:
        return str(self.tokens[symbol].address)

    def set_price(self, symbol: str, price: int) -> dict[str, Any]:
        """A new aggregator answering `price`, set as the asset's source: returns the receipt of the switch."""
        feed = self.chain.deploy(find("MockAggregator"), price)
        return dict(self.chain.transact(self.oracle.functions.setAssetSources([self.asset(symbol)], [feed.address])))

    def fund(self, user: str, symbol: str, amount: int) -> None:
        """`amount` minted to `user`, the pool allowed to take all of it."""
        token = self.tokens[symbol]
        self.chain.transact(token.get_function_by_signature("mint(address,uint256)")(user, amount))
        self._send(user, token.functions.approve(self.pool.address, 2**256 - 1))

    def supply(self, user: str, symbol: str, amount: int) -> None:
        self.fund(user, symbol, amount)
        self._send(user, self.pool.functions.supply(self.asset(symbol), amount, user, 0))

    def borrow(self, user: str, symbol: str, amount: int) -> None:
        self._send(user, self.pool.functions.borrow(self.asset(symbol), amount, 2, 0, user))

    def _send(self, user: str, fn: Any) -> dict[str, Any]:
        return dict(self.chain.transact(fn, sender=user, gas=5_000_000))


def deploy_aave(chain: Chain, specs: list[ReserveSpec], existing: dict[str, Contract] | None = None) -> AaveMarket:
    """`existing`: tokens (by symbol) to list as they are, instead of a new MintableERC20."""
    owner = chain.account
    existing = existing or {}
    provider = chain.deploy(find("PoolAddressesProvider"), "mevfleet-test", owner)
    chain.transact(provider.functions.setACLAdmin(owner))
    acl = chain.deploy(find("ACLManager"), provider.address)
    chain.transact(provider.functions.setACLManager(acl.address))
    chain.transact(acl.functions.addPoolAdmin(owner))
    libraries = {name: str(chain.deploy(find(name)).address) for name in LIBRARIES}
    libraries["FlashLoanLogic"] = str(_deploy_linked(chain, find("FlashLoanLogic"), libraries).address)
    pool_impl = _deploy_linked(chain, find("Pool"), libraries, provider.address)
    chain.transact(provider.functions.setPoolImpl(pool_impl.address))
    pool = chain.w3.eth.contract(address=provider.functions.getPool().call(), abi=pool_impl.abi)
    configurator_logic = chain.deploy(find("ConfiguratorLogic"))
    configurator_impl = _deploy_linked(
        chain, find("PoolConfigurator"), {"ConfiguratorLogic": str(configurator_logic.address)}
    )
    chain.transact(provider.functions.setPoolConfiguratorImpl(configurator_impl.address))
    configurator = chain.w3.eth.contract(
        address=provider.functions.getPoolConfigurator().call(), abi=configurator_impl.abi
    )
    tokens = {
        s.symbol: existing.get(s.symbol) or chain.deploy(find("MintableERC20"), s.symbol, s.symbol, s.decimals)
        for s in specs
    }
    feeds = [chain.deploy(find("MockAggregator"), s.price) for s in specs]
    oracle = chain.deploy(
        find("AaveOracle"),
        provider.address,
        [tokens[s.symbol].address for s in specs],
        [f.address for f in feeds],
        "0x" + "00" * 20,
        "0x" + "00" * 20,  # base currency USD
        10**8,
    )
    chain.transact(provider.functions.setPriceOracle(oracle.address))
    data_provider = chain.deploy(find("AaveProtocolDataProvider"), provider.address)
    chain.transact(provider.functions.setPoolDataProvider(data_provider.address))
    a_impl = chain.deploy(find("AToken"), pool.address)
    variable_impl = chain.deploy(find("VariableDebtToken"), pool.address)
    stable_impl = chain.deploy(find("StableDebtToken"), pool.address)
    strategy = chain.deploy(
        find("DefaultReserveInterestRateStrategy"),
        provider.address,
        RAY * 8 // 10,  # optimal usage 80 %
        0,
        RAY * 4 // 100,
        RAY * 75 // 100,
        RAY * 2 // 100,
        RAY * 75 // 100,
        RAY * 2 // 100,
        RAY * 5 // 100,
        RAY * 2 // 10,
    )
    inputs = [
        (
            a_impl.address,
            stable_impl.address,
            variable_impl.address,
            s.decimals,
            strategy.address,
            tokens[s.symbol].address,
            owner,  # treasury
            "0x" + "00" * 20,  # no incentives controller
            f"a{s.symbol}",
            f"a{s.symbol}",
            f"vd{s.symbol}",
            f"vd{s.symbol}",
            f"sd{s.symbol}",
            f"sd{s.symbol}",
            b"",
        )
        for s in specs
    ]
    chain.transact(configurator.functions.initReserves(inputs))
    market = AaveMarket(chain, provider, pool, configurator, oracle, data_provider)
    for s in specs:
        asset = tokens[s.symbol].address
        chain.transact(
            configurator.functions.configureReserveAsCollateral(
                asset, s.ltv, s.liquidation_threshold, s.liquidation_bonus
            )
        )
        chain.transact(configurator.functions.setReserveBorrowing(asset, True))
        data = pool.functions.getReserveData(asset).call()
        market.tokens[s.symbol] = tokens[s.symbol]
        market.a_tokens[s.symbol] = chain.w3.eth.contract(address=data[8], abi=a_impl.abi)
        market.debt_tokens[s.symbol] = chain.w3.eth.contract(address=data[10], abi=variable_impl.abi)
        market.specs[s.symbol] = s
    return market


def weth_usdc_market_priced_by_a_pair(
    chain: Chain, specs: list[ReserveSpec], premium_bps: int
) -> tuple[AaveMarket, Contract]:
    """Aave with flashloans on at `premium_bps`, the deployer holding WETH and USDC, and a WETH/USDC pair
    pricing WETH at 1,800 USDC (1,000 WETH against 1.8 M USDC): a liquidation's collateral swaps back there."""
    market = deploy_aave(chain, specs)
    for spec in specs:
        chain.transact(market.configurator.functions.setReserveFlashLoaning(market.asset(spec.symbol), True))
    chain.transact(market.configurator.functions.updateFlashloanPremiumTotal(premium_bps))
    weth, usdc = market.tokens["WETH"], market.tokens["USDC"]
    for token, amount in ((weth, 10**24), (usdc, 10**16)):
        chain.transact(token.get_function_by_signature("mint(address,uint256)")(chain.account, amount))
    return market, seeded_v2_pair(chain, weth, 1_000 * 10**18, usdc, 1_800_000 * 10**6)


def mine(chain: Chain, seconds: int) -> int:
    """One block mined `seconds` after the last (none: at once); its number."""
    if seconds:
        chain.w3.provider.make_request("evm_increaseTime", [seconds])
    chain.w3.provider.make_request("evm_mine", [])
    return int(chain.w3.eth.block_number)


def accrue_then_move_prices(
    market: AaveMarket, specs: Sequence[ReserveSpec], seconds: int, moves: Sequence[int]
) -> int:
    """Interest accrues for `seconds`; a deposit of one unit of every reserve (by the deployer) then writes its
    indexes (ReserveDataUpdated), half as long passes, and each price moves to `moves` % of its spec's. The
    block mined after the moves, returned."""
    chain = market.chain
    mine(chain, seconds)
    for spec in specs:
        market.supply(chain.account, spec.symbol, 1)
    mine(chain, seconds // 2)
    for spec, move in zip(specs, moves, strict=True):
        market.set_price(spec.symbol, spec.price * move // 100)
    return mine(chain, 1)


def assert_account_data_is_the_pools(
    market: AaveMarket,
    positions: Mapping[str, Position],
    reserves: Mapping[str, Reserve],
    prices: Mapping[str, int],
    now: int,
    block: int,
) -> set[str]:
    """Every position's account data (mevagent.lending.aave_v3.account_data) is the pool's getUserAccountData
    at `block`, to the unit; the users whose health factor is below one, returned."""
    liquidatable = set()
    for user, position in positions.items():
        ours = account_data(position, reserves, prices, now)
        pools = market.pool.functions.getUserAccountData(Web3.to_checksum_address(user)).call(block_identifier=block)
        assert (
            ours.total_collateral_base,
            ours.total_debt_base,
            ours.available_borrows_base,
            ours.current_liquidation_threshold,
            ours.ltv,
            ours.health_factor,
        ) == tuple(pools), user
        if pools[5] < WAD:
            liquidatable.add(user)
    return liquidatable
