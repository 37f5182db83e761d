"""A Venus core pool on anvil, deployed from the published `@venusprotocol/venus-protocol` 10.3.0 artifacts
(unpacked by deploy/bootstrap.sh under node_modules/.cache/venus-protocol-10.3.0).

What Venus runs on BNB Chain, minus governance: the Comptroller is the `Unitroller` proxy delegating to the
`Diamond`, which dispatches to the `MarketFacet`, `PolicyFacet` and `SetterFacet` (each selector cut to
the first facet that has it); its `ComptrollerLens` computes account liquidity and seize amounts. Markets
are `VBep20Immutable` vTokens over `MockToken`s, and the package's `VBNB` for a native spec (paid in BNB), with
a `WhitePaperInterestRateModel`. Prices come from
the package's `SimplePriceOracle` (a test contract: `setUnderlyingPrice` posts a price and emits
`PricePosted`; on BNB Chain the Comptroller reads Venus' ResilientOracle through the same
`getUnderlyingPrice(vToken)`), behind the package's `DeviationBoundedOracle` for the borrow path (no asset
has bounded pricing enabled, so it answers the spot price). Permissions come from the package's
`AccessControlManagerMock` (the deployer may call everything).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import function_signature_to_4byte_selector
from web3 import Web3
from web3.contract import Contract

from mevagent.executor.deploy import Deployment
from mevagent.lending.providers import UniswapV2FlashProvider
from mevagent.state.pools import PoolStore

from .arb import deploy_executor, v2_flash_provider, v2_store
from .evm import NODE_MODULES, Chain, artifact, seeded_v2_pair

VENUS = ".cache/venus-protocol-10.3.0/artifacts/contracts"
ORACLE_ARTIFACTS = ".cache/venus-protocol-10.3.0/artifacts/@venusprotocol/oracle/contracts"
WAD = 10**18
BLOCKS_PER_YEAR = 10_512_000  # BNB Chain at 3 s blocks, the figure Venus' rate models were deployed with
NATIVE_TOKEN = "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"  # DeviationBoundedOracle.NATIVE_TOKEN_ADDR: BNB


def path(relative: str) -> str:
    name = relative.rsplit("/", 1)[-1]
    return f"{VENUS}/{relative}.sol/{name}.json"


FACETS = ("MarketFacet", "PolicyFacet", "SetterFacet")


def available() -> bool:
    return (NODE_MODULES / VENUS / "Comptroller/Diamond/Diamond.sol/Diamond.json").is_file()


@cache
def comptroller_abi() -> list[dict[str, Any]]:
    """The Diamond's and its facets' functions and events, each once."""
    seen: set[str] = set()
    merged = []
    for relative in ("Comptroller/Diamond/Diamond", *(f"Comptroller/Diamond/facets/{f}" for f in FACETS)):
        for item in artifact(path(relative))[0]:
            if item["type"] not in ("function", "event"):
                continue
            key = item["type"] + item["name"] + ",".join(i["type"] for i in item["inputs"])
            if key not in seen:
                seen.add(key)
                merged.append(item)
    return merged


def _selectors(abi: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    out = []
    for item in abi:
        if item["type"] == "function":
            signature = f"{item['name']}({','.join(_type(i) for i in item['inputs'])})"
            out.append((signature, function_signature_to_4byte_selector(signature)))
    return out


def _type(item: dict[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_type(c) for c in item["components"]) + ")" + kind[len("tuple") :]
    return kind


@dataclass(frozen=True)
class MarketSpec:
    symbol: str
    decimals: int
    price_usd: int  # whole dollars per whole token
    collateral_factor: int = 70 * WAD // 100
    liquidation_threshold: int = 80 * WAD // 100
    liquidation_incentive: int = 110 * WAD // 100  # the liquidator seizes 10 % over what it repays
    reserve_factor: int = 10 * WAD // 100
    base_rate_per_year: int = 2 * WAD // 100
    multiplier_per_year: int = 20 * WAD // 100
    native: bool = False  # Venus' VBNB: the underlying is BNB itself (mint and repay are payable)


@dataclass
class VenusPool:
    chain: Chain
    comptroller: Contract  # the Unitroller, with the Diamond's and facets' ABI
    oracle: Contract
    lens: Contract
    acm: Contract  # AccessControlManagerMock: the deployer may call everything
    tokens: dict[str, Contract] = field(default_factory=dict)
    vtokens: dict[str, Contract] = field(default_factory=dict)
    specs: dict[str, MarketSpec] = field(default_factory=dict)

    def price_mantissa(self, symbol: str, usd: float | int) -> int:
        """What the oracle answers for `usd` per whole token: USD per smallest unit, 36 - decimals digits."""
        return int(usd * 10**6) * 10 ** (36 - self.specs[symbol].decimals) // 10**6

    def set_price(self, symbol: str, usd: float | int) -> dict[str, Any]:
        mantissa = self.price_mantissa(symbol, usd)
        if self.specs[symbol].native:
            # The borrow path's DeviationBoundedOracle asks the oracle's getPrice for BNB by Venus' native token
            # address; the Comptroller's liquidity asks getUnderlyingPrice(vBNB) (the price posted below).
            self.chain.transact(self.oracle.functions.setDirectPrice(NATIVE_TOKEN, mantissa))
        fn = self.oracle.functions.setUnderlyingPrice(self.vtokens[symbol].address, mantissa)
        return dict(self.chain.transact(fn))

    def fund(self, user: str, symbol: str, amount: int) -> None:
        if self.specs[symbol].native:  # `amount` wei more than the user has
            balance = self.chain.w3.eth.get_balance(user)  # type: ignore[arg-type]
            self.chain.w3.provider.make_request("anvil_setBalance", [user, hex(balance + amount)])
            return
        token = self.tokens[symbol]
        self.send(user, token.functions.faucet(amount))
        self.send(user, token.functions.approve(self.vtokens[symbol].address, 2**256 - 1))

    def supply(self, user: str, symbol: str, amount: int) -> None:
        """`amount` of the underlying minted into vTokens, entered as collateral."""
        self.fund(user, symbol, amount)
        if self.specs[symbol].native:
            self.send(user, self.vtokens[symbol].functions.mint(), value=amount)
        else:
            self.send(user, self.vtokens[symbol].functions.mint(amount))
        self.send(user, self.comptroller.functions.enterMarkets([self.vtokens[symbol].address]))

    def borrow(self, user: str, symbol: str, amount: int) -> dict[str, Any]:
        return self.send(user, self.vtokens[symbol].functions.borrow(amount))

    def send(self, user: str, fn: Any, value: int = 0) -> dict[str, Any]:
        if value:  # Chain.transact sends no value
            tx_hash = fn.transact({"from": user, "gas": 5_000_000, "gasPrice": 0, "value": value})
            receipt = self.chain.w3.eth.wait_for_transaction_receipt(tx_hash)
            assert receipt["status"] == 1, receipt
            return dict(receipt)
        return dict(self.chain.transact(fn, sender=user, gas=5_000_000))


def deploy_venus(chain: Chain, specs: list[MarketSpec], *, close_factor: int = WAD // 2) -> VenusPool:
    owner = chain.account
    acm = chain.deploy(path("test/AccessControlManagerMock"), owner)
    unitroller = chain.deploy(path("Comptroller/Unitroller"))
    diamond = chain.deploy(path("Comptroller/Diamond/Diamond"))
    chain.transact(unitroller.functions._setPendingImplementation(diamond.address))
    chain.transact(diamond.functions._become(unitroller.address))
    comptroller = chain.w3.eth.contract(address=unitroller.address, abi=comptroller_abi())
    taken = {s for _, s in _selectors(artifact(path("Comptroller/Diamond/Diamond"))[0])}
    cuts = []
    for facet_name in FACETS:
        relative = path(f"Comptroller/Diamond/facets/{facet_name}")
        facet = chain.deploy(relative)
        mine = [s for _, s in _selectors(artifact(relative)[0]) if s not in taken]
        taken.update(mine)
        cuts.append((facet.address, 0, mine))  # FacetCutAction.Add
    chain.transact(comptroller.functions.diamondCut(cuts))
    chain.transact(comptroller.functions._setAccessControl(acm.address))
    lens = chain.deploy(path("Lens/ComptrollerLens"))
    chain.transact(comptroller.functions._setComptrollerLens(lens.address))
    oracle = chain.deploy(path("test/SimplePriceOracle"))
    chain.transact(comptroller.functions.setPriceOracle(oracle.address))
    chain.transact(comptroller.functions.setCloseFactor(close_factor))
    pool = VenusPool(chain, comptroller, oracle, lens, acm)
    native = "0x" + "00" * 19 + "01"  # DeviationBoundedOracle's native market: none unless a spec is native
    for spec in specs:
        model = chain.deploy(
            path("InterestRateModels/WhitePaperInterestRateModel"),
            spec.base_rate_per_year,
            spec.multiplier_per_year,
            BLOCKS_PER_YEAR,
        )
        # Venus' own initial rate: 0.02 vTokens per unit, scaled to the underlying's decimals (8-decimal vTokens).
        initial_rate = 2 * 10 ** (spec.decimals + 8)
        if spec.native:
            assert spec.decimals == 18, "BNB has 18 decimals"
            # The package's SimplePriceOracle answers a fixed 1e18 for a market whose symbol is "vBNB" (Compound's
            # cETH rule) and its posted price otherwise: the fixture's vBNB is named apart so that its price moves.
            vtoken = chain.deploy(
                path("Tokens/VTokens/VBNB"),
                comptroller.address,
                model.address,
                initial_rate,
                f"Venus {spec.symbol}",
                f"v{spec.symbol}-fixture",
                8,
                owner,
            )
            native = vtoken.address
        else:
            token = chain.deploy(path("test/MockToken"), spec.symbol, spec.symbol, spec.decimals)
            vtoken = chain.deploy(
                path("Tokens/VTokens/VBep20Immutable"),
                token.address,
                comptroller.address,
                model.address,
                initial_rate,
                f"Venus {spec.symbol}",
                f"v{spec.symbol}",
                8,
                owner,
            )
            pool.tokens[spec.symbol] = token
        chain.transact(vtoken.functions.setAccessControlManager(acm.address))
        chain.transact(vtoken.functions.setReduceReservesBlockDelta(2**64))
        chain.transact(vtoken.functions._setReserveFactor(spec.reserve_factor))
        chain.transact(comptroller.functions.supportMarket(vtoken.address))
        pool.vtokens[spec.symbol], pool.specs[spec.symbol] = vtoken, spec
        pool.set_price(spec.symbol, spec.price_usd)
        set_cf = comptroller.get_function_by_signature("setCollateralFactor(address,uint256,uint256)")
        chain.transact(set_cf(vtoken.address, spec.collateral_factor, spec.liquidation_threshold))
        set_li = comptroller.get_function_by_signature("setLiquidationIncentive(address,uint256)")
        chain.transact(set_li(vtoken.address, spec.liquidation_incentive))
        chain.transact(comptroller.functions.setIsBorrowAllowed(0, vtoken.address, True))  # the core pool
    markets = [v.address for v in pool.vtokens.values()]
    unlimited = [2**255] * len(markets)
    chain.transact(comptroller.functions.setMarketSupplyCaps(markets, unlimited))
    chain.transact(comptroller.functions.setMarketBorrowCaps(markets, unlimited))
    bounded = chain.deploy(
        f"{ORACLE_ARTIFACTS}/DeviationBoundedOracle.sol/DeviationBoundedOracle.json",
        oracle.address,
        native,
        "0x" + "00" * 19 + "02",  # no VAI here
    )
    chain.transact(comptroller.functions.setDeviationBoundedOracle(bounded.address))
    return pool


OZ_PROXY = "@openzeppelin/contracts/build/contracts/TransparentUpgradeableProxy.json"
PROXY_ADMIN = "0x" + "00" * 19 + "AD"  # the proxy's admin: an account apart from every caller (transparent proxy)


def install_vai_controller(pool: VenusPool) -> Contract:
    """The package's VAIController behind its VAIUnitroller, with its VAI token, set as the Comptroller's VAI
    controller. Nobody mints VAI: every account's `getVAIRepayAmount` is 0."""
    chain = pool.chain
    unitroller = chain.deploy(path("Tokens/VAI/VAIUnitroller"))
    implementation = chain.deploy(path("Tokens/VAI/VAIController"))
    chain.transact(unitroller.functions._setPendingImplementation(implementation.address))
    chain.transact(implementation.functions._become(unitroller.address))
    controller = chain.w3.eth.contract(address=unitroller.address, abi=implementation.abi)
    chain.transact(controller.functions.initialize())
    chain.transact(controller.functions._setComptroller(pool.comptroller.address))
    chain.transact(controller.functions.setAccessControl(pool.acm.address))
    vai = chain.deploy(path("Tokens/VAI/VAI"), chain.w3.eth.chain_id)
    chain.transact(controller.functions.setVAIToken(vai.address))
    chain.transact(pool.comptroller.functions._setVAIController(controller.address))
    return controller


def _behind_proxy(
    chain: Chain, relative: str, constructor: tuple[Any, ...], initializer: str, args: list[Any]
) -> Contract:
    """The implementation deployed with `constructor`, behind a TransparentUpgradeableProxy that calls `initializer`
    (the implementations disable their own initializers): the proxy with the implementation's ABI."""
    implementation = chain.deploy(relative, *constructor)
    data = implementation.encode_abi(initializer, args)
    proxy = chain.deploy(OZ_PROXY, implementation.address, Web3.to_checksum_address(PROXY_ADMIN), data)
    return chain.w3.eth.contract(address=proxy.address, abi=implementation.abi)


def deploy_liquidator(pool: VenusPool, wbnb: str, treasury_percent: int) -> tuple[Contract, Contract]:
    """Venus' published `Liquidator` (the implementation behind OpenZeppelin's TransparentUpgradeableProxy, as Venus
    deploys it, `initialize`d through the proxy: the implementation's constructor disables its initializers) set
    as the Comptroller's `liquidatorContract`, with the package's MockProtocolShareReserve receiving its treasury
    share. Its constructor reads the Comptroller's VAI controller (and its liquidations ask it for the borrower's
    VAI debt), so one is installed first (`install_vai_controller`). (liquidator, protocol share reserve)."""
    chain, comptroller = pool.chain, pool.comptroller
    native = next(v.address for s, v in pool.vtokens.items() if pool.specs[s].native)
    reserve = _behind_proxy(
        chain,
        path("test/MockProtocolShareReserve"),
        (comptroller.address, wbnb, native),
        "initialize",
        [pool.acm.address, 10],
    )
    # Its updateAssetsState asks a Prime for the asset's market: PrimeStorageV1 answers none for every asset.
    prime = chain.deploy(path("Tokens/Prime/PrimeStorage").replace("PrimeStorage.json", "PrimeStorageV1.json"))
    chain.transact(reserve.functions.setPrime(prime.address))
    liquidator = _behind_proxy(
        chain,
        path("Liquidator/Liquidator"),
        (comptroller.address, native, wbnb),
        "initialize",
        [treasury_percent, pool.acm.address, reserve.address],
    )
    chain.transact(comptroller.functions._setLiquidatorContract(liquidator.address))
    return liquidator, reserve


@dataclass
class VAIMinting:
    """The pool's VAIController (behind its VAIUnitroller) and VAI token, open for minting."""

    controller: Contract
    vai: Contract


def open_vai_minting(
    pool: VenusPool, *, mint_rate_bps: int = 10_000, base_rate: int = 0, float_rate: int = 0, price: int = WAD
) -> VAIMinting:
    """`install_vai_controller` plus what minting needs: the controller allowed to mint the token (`rely`), the
    Comptroller's `vaiMintRate` (of the collateral-factor-weighted supply, in basis points), an unlimited mint cap,
    a receiver of the interest, the yearly base and float rates, and the oracle's VAI price (the package's
    SimplePriceOracle answers a posted price for a token whose symbol is `VAI`)."""
    chain = pool.chain
    controller = install_vai_controller(pool)
    vai = chain.at(path("Tokens/VAI/VAI"), controller.functions.getVAIAddress().call())
    chain.transact(vai.functions.rely(controller.address))
    chain.transact(pool.comptroller.functions._setVAIMintRate(mint_rate_bps))
    chain.transact(controller.functions.setMintCap(2**255))
    chain.transact(controller.functions.setReceiver(Web3.to_checksum_address("0x" + "00" * 19 + "7e")))
    chain.transact(controller.functions.setBaseRate(base_rate))
    chain.transact(controller.functions.setFloatRate(float_rate))
    chain.transact(pool.oracle.functions.setDirectPrice(vai.address, price))
    return VAIMinting(controller, vai)


# The world the agent's contract liquidates in (test_venus_execution.py, bench/agent_liquidations.py): the pool
# with the deployer's supply, an ETH/USDT pair the seized ETH is sold in, a USDT/WBNB pair the USDT is
# flash-borrowed from, and the agent's contract.
SPECS = [MarketSpec("USDT", 6, 1), MarketSpec("ETH", 18, 2_000), MarketSpec("WBNB", 18, 600)]
BORROWER, RIVAL = (Web3.to_checksum_address(f"0x{0xBE5000 + i:040x}") for i in range(2))


@dataclass
class LiquidationWorld:
    chain: Chain
    pool: VenusPool
    swap: Contract  # ETH/USDT: the seized ETH is sold here
    lender: Contract  # USDT/WBNB: the USDT is flash-borrowed here
    key_file: Path
    identity_file: Path
    deployment: Deployment

    def usdt(self, holder: str) -> int:
        return int(self.pool.tokens["USDT"].functions.balanceOf(Web3.to_checksum_address(holder)).call())

    def store(self) -> PoolStore:
        return v2_store(self.chain, [self.swap, self.lender])

    def provider(self) -> UniswapV2FlashProvider:
        return v2_flash_provider(self.lender)


def _pair(chain: Chain, pool: VenusPool, a: str, amount_a: int, b: str, amount_b: int) -> Contract:
    tokens = {a: pool.tokens[a], b: pool.tokens[b]}
    for symbol, amount in ((a, amount_a), (b, amount_b)):
        chain.transact(tokens[symbol].functions.faucet(amount))
    return seeded_v2_pair(chain, tokens[a], amount_a, tokens[b], amount_b)


def build_liquidation_world(chain: Chain, directory: Path) -> LiquidationWorld:
    """The Venus pool with the deployer's supply, the two pairs and the agent's contract, on `chain`."""
    if not available():
        raise RuntimeError(
            "the Venus artifacts are missing: run deploy/bootstrap.sh (it unpacks them into node_modules/.cache)"
        )
    w3 = chain.w3
    pool = deploy_venus(chain, SPECS)
    for spec in SPECS:  # the deployer's supply: what the borrower borrows
        pool.supply(chain.account, spec.symbol, 5_000_000 * 10**spec.decimals // spec.price_usd)
    for user in (BORROWER, RIVAL):
        w3.provider.make_request("anvil_impersonateAccount", [user])
    # The pair prices ETH at the oracle's price after the drop (1,600 USD).
    swap = _pair(chain, pool, "ETH", 1_000 * 10**18, "USDT", 1_600_000 * 10**6)
    lender = _pair(chain, pool, "USDT", 1_000_000 * 10**6, "WBNB", 1_000 * 10**18)
    key_file, identity_file, deployment = deploy_executor(chain, directory)
    return LiquidationWorld(chain, pool, swap, lender, key_file, identity_file, deployment)


def open_borrow(pool: VenusPool) -> None:
    """The borrower's 10 ETH at 2,000 USD, then 95 % of its borrowing power borrowed in USDT."""
    pool.supply(BORROWER, "ETH", 10 * 10**18)
    _, room, _ = pool.comptroller.functions.getHypotheticalAccountLiquidity(BORROWER, "0x" + "00" * 20, 0, 0).call()
    pool.borrow(BORROWER, "USDT", room * 95 // 100 * 10**6 // WAD)
