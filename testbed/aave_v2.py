"""An Aave V2 market on anvil, deployed from the published `@aave/protocol-v2` artifacts (v1.0.1), standing in
for Radiant (a fork of Aave V2 whose own deployment is not published on npm).

What the protocol's own deploy scripts do, in order: the addresses provider (pool admin: the deployer), the
LendingPool implementation linked against ReserveLogic and ValidationLogic (itself linked against
GenericLogic) behind the provider's proxy, the configurator likewise, the collateral manager (liquidations
run in it by delegatecall), the lending-rate oracle (the stable rates' base), the AaveOracle over one
MockAggregator per asset (answers in USD with 8 decimals, as Radiant's oracle answers), then one reserve
per MintableERC20 with its aToken, stable and variable debt token implementations and the default
interest-rate strategy, configured as collateral, borrowable at a variable and a stable rate.
`bootstrap.sh` unpacks the package under node_modules/.cache (it is not in package.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from web3.contract import Contract

from .aave import AaveMarket, ReserveSpec, _deploy_linked
from .evm import NODE_MODULES, Chain, seeded_v2_pair

AAVE_V2 = ".cache/aave-protocol-v2-1.0.1/artifacts/contracts"
RAY = 10**27
NO_WETH = "0x" + "00" * 19 + "01"  # the AaveOracle answers 1 ether for its WETH: no reserve is that address
NO_INCENTIVES = "0x" + "00" * 20  # nor a fallback oracle
STABLE = 1
VARIABLE = 2


@cache
def find(name: str) -> str:
    """The artifact path (under node_modules) of the Aave V2 contract `name`."""
    matches = [p for p in (NODE_MODULES / AAVE_V2).rglob(f"{name}.json") if not p.name.endswith(".dbg.json")]
    if not matches:
        raise FileNotFoundError(f"{name}.json under node_modules/{AAVE_V2}: run deploy/bootstrap.sh")
    return str(matches[0].relative_to(NODE_MODULES))


@dataclass
class AaveV2Market(AaveMarket):
    stable_tokens: dict[str, Contract] | None = None

    def fund(self, user: str, symbol: str, amount: int) -> None:
        """`amount` minted to `user` (V2's MintableERC20 mints to its caller), the pool allowed to take all of it."""
        token = self.tokens[symbol]
        self._send(user, token.functions.mint(amount))
        self._send(user, token.functions.approve(self.pool.address, 2**256 - 1))

    def set_price(self, symbol: str, price: int) -> dict[str, Any]:
        feed = self.chain.deploy(find("MockAggregator"), price)
        return dict(self.chain.transact(self.oracle.functions.setAssetSources([self.asset(symbol)], [feed.address])))

    def supply(self, user: str, symbol: str, amount: int) -> None:
        self.fund(user, symbol, amount)
        self._send(user, self.pool.functions.deposit(self.asset(symbol), amount, user, 0))

    def borrow(self, user: str, symbol: str, amount: int, mode: int = VARIABLE) -> None:
        self._send(user, self.pool.functions.borrow(self.asset(symbol), amount, mode, 0, user))


def deploy_aave_v2(chain: Chain, specs: list[ReserveSpec], stable_rate_base: int = RAY * 3 // 100) -> AaveV2Market:
    owner = chain.account
    provider = chain.deploy(find("LendingPoolAddressesProvider"), "mevfleet-test")
    chain.transact(provider.functions.setPoolAdmin(owner))
    chain.transact(provider.functions.setEmergencyAdmin(owner))
    reserve_logic = chain.deploy(find("ReserveLogic"))
    generic_logic = chain.deploy(find("GenericLogic"))
    validation_logic = _deploy_linked(chain, find("ValidationLogic"), {"GenericLogic": str(generic_logic.address)})
    libraries = {"ReserveLogic": str(reserve_logic.address), "ValidationLogic": str(validation_logic.address)}
    pool_impl = _deploy_linked(chain, find("LendingPool"), libraries)
    chain.transact(provider.functions.setLendingPoolImpl(pool_impl.address))
    pool = chain.w3.eth.contract(address=provider.functions.getLendingPool().call(), abi=pool_impl.abi)
    configurator_impl = chain.deploy(find("LendingPoolConfigurator"))
    chain.transact(provider.functions.setLendingPoolConfiguratorImpl(configurator_impl.address))
    configurator = chain.w3.eth.contract(
        address=provider.functions.getLendingPoolConfigurator().call(), abi=configurator_impl.abi
    )
    manager = chain.deploy(find("LendingPoolCollateralManager"))
    chain.transact(provider.functions.setLendingPoolCollateralManager(manager.address))
    rate_oracle = chain.deploy(find("LendingRateOracle"))
    chain.transact(provider.functions.setLendingRateOracle(rate_oracle.address))
    tokens = {s.symbol: chain.deploy(find("MintableERC20"), s.symbol, s.symbol, s.decimals) for s in specs}
    feeds = [chain.deploy(find("MockAggregator"), s.price) for s in specs]
    oracle = chain.deploy(
        find("AaveOracle"),
        [tokens[s.symbol].address for s in specs],
        [f.address for f in feeds],
        NO_INCENTIVES,  # no fallback oracle
        NO_WETH,
    )
    chain.transact(provider.functions.setPriceOracle(oracle.address))
    data_provider = chain.deploy(find("AaveProtocolDataProvider"), provider.address)
    strategy = chain.deploy(
        find("DefaultReserveInterestRateStrategy"),
        provider.address,
        RAY * 8 // 10,  # optimal usage 80 %
        0,
        RAY * 4 // 100,
        RAY * 75 // 100,
        RAY * 2 // 100,
        RAY * 75 // 100,
    )
    market = AaveV2Market(chain, provider, pool, configurator, oracle, data_provider, stable_tokens={})
    for s in specs:
        asset = tokens[s.symbol].address
        chain.transact(rate_oracle.functions.setMarketBorrowRate(asset, stable_rate_base))
        a_impl = chain.deploy(find("AToken"), pool.address, asset, owner, f"a{s.symbol}", f"a{s.symbol}", NO_INCENTIVES)
        stable_impl = chain.deploy(find("StableDebtToken"), pool.address, asset, f"sd{s.symbol}", "sd", NO_INCENTIVES)
        variable_impl = chain.deploy(
            find("VariableDebtToken"), pool.address, asset, f"vd{s.symbol}", "vd", NO_INCENTIVES
        )
        chain.transact(
            configurator.functions.initReserve(
                a_impl.address, stable_impl.address, variable_impl.address, s.decimals, strategy.address
            )
        )
        chain.transact(
            configurator.functions.configureReserveAsCollateral(
                asset, s.ltv, s.liquidation_threshold, s.liquidation_bonus
            )
        )
        chain.transact(configurator.functions.enableBorrowingOnReserve(asset, True))
        data = pool.functions.getReserveData(asset).call()
        market.tokens[s.symbol] = tokens[s.symbol]
        market.a_tokens[s.symbol] = chain.w3.eth.contract(address=data[7], abi=a_impl.abi)
        assert market.stable_tokens is not None
        market.stable_tokens[s.symbol] = chain.w3.eth.contract(address=data[8], abi=stable_impl.abi)
        market.debt_tokens[s.symbol] = chain.w3.eth.contract(address=data[9], abi=variable_impl.abi)
        market.specs[s.symbol] = s
    return market


def weth_usdc_market_priced_by_a_pair(chain: Chain, specs: list[ReserveSpec]) -> tuple[AaveV2Market, Contract]:
    """Aave V2 with the deployer holding WETH and USDC, and a WETH/USDC pair pricing WETH at 1,800 USDC (1,000
    WETH against 1.8 M USDC): a liquidation's collateral swaps back there."""
    market = deploy_aave_v2(chain, specs)
    weth, usdc = market.tokens["WETH"], market.tokens["USDC"]
    for token, amount in ((weth, 10**24), (usdc, 10**16)):
        chain.transact(token.functions.mint(amount))
    return market, seeded_v2_pair(chain, weth, 1_000 * 10**18, usdc, 1_800_000 * 10**6)
