"""Venus liquidations with a vBNB leg executed by the agent's contract, on anvil against the published Venus 10.3.0
contracts (testbed/venus.py: the package's VBNB beside VBep20 markets), the package's WBNB (the
contract's wrapped native) and Uniswap V2 pairs from @uniswap/v2-core.

vBNB debt: the WBNB borrowed from a USDT/WBNB pair is unwrapped and sent as vBNB's payable `liquidateBorrow`, the
seized vETH redeemed and the ETH swapped to WBNB through an ETH/WBNB pair. vBNB collateral: the USDT borrowed from
a USDT/ETH pair repays vUSDT, the seized vBNB redeems to BNB, which is wrapped and swapped to USDT through the
USDT/WBNB pair. Either way the collector, strategy, route and executor run as the agent wires them, the vTokens
repay and seize exactly the strategy's amounts, and the contract keeps exactly the plan's profit (to the wei)
with its own BNB untouched.

Through Venus' Liquidator (the package's, behind OpenZeppelin's TransparentUpgradeableProxy, set as the
Comptroller's `liquidatorContract`, with the package's VAIController and MockProtocolShareReserve it needs): USDT
debt (with a Comptroller redeem fee) and vBNB debt (the payable form) are liquidated through it; it logs exactly
the sized seizure, keeps exactly the predicted treasury share, and the contract receives, redeems and keeps
exactly the plan's amounts; without a contract the same liquidation is simulated and reported. A borrower it
restricts to an allowlist without our contract is refused at plan time; one owing VAI is not sized, and the VAI
rule it forces is refused at plan time exactly when it answers `VAIDebtTooHigh`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from mevagent.config import VenusMarketConfig
from mevagent.core import LendingEvent, Outcome, Status
from mevagent.executor.contract import artifact, decode_revert
from mevagent.executor.deploy import Deployment
from mevagent.executor.executor import ExecutionReport
from mevagent.executor.liquidation import FundedVenusLiquidation, venus_liquidated
from mevagent.executor.rpc import HttpJsonRpc
from mevagent.lending.providers import UniswapV2FlashProvider
from mevagent.lending.venus import NATIVE, size_liquidation
from mevagent.lending.venus_monitor import VenusMonitor, account_of
from mevagent.lending.venus_reader import ExecutionTerms, execution_terms, liquidator_refusal
from mevagent.state.pools import PoolStore
from mevagent.strategies.venus_liquidation import Settings, VenusLiquidationOpportunity, VenusLiquidator, VenusRoute
from testbed.arb import (
    BuilderBehaviour,
    CountingRisk,
    builders,
    deploy_executor,
    emitted,
    open_executor,
    receipt_logs,
    rpc_url,
    v2_flash_provider,
    v2_store,
)
from testbed.evm import Chain, seeded_v2_pair
from testbed.venus import (
    VENUS,
    WAD,
    MarketSpec,
    VenusPool,
    available,
    deploy_liquidator,
    deploy_venus,
    install_vai_controller,
    path,
)

from .conftest import snapshot_fixtures

CHAIN = "anvil"
SPECS = [MarketSpec("USDT", 6, 1), MarketSpec("ETH", 18, 2_000), MarketSpec("BNB", 18, 600, native=True)]
BORROWER = Web3.to_checksum_address(f"0x{0xBE5300:040x}")
CONTRACT_BNB = 10**18  # the contract's own coin (what it pays builders from): no leg may touch it


@dataclass
class World:
    chain: Chain
    pool: VenusPool
    wbnb: Contract  # the package's WBNB: deposit/withdraw, the contract's wrapped native
    pairs: dict[str, Contract]  # "ETH/WBNB", "USDT/WBNB", "USDT/ETH"
    key_file: Path
    identity_file: Path
    deployment: Deployment

    def token(self, symbol: str) -> Contract:
        return self.wbnb if symbol == "WBNB" else self.pool.tokens[symbol]

    def balance(self, symbol: str, holder: str) -> int:
        return int(self.token(symbol).functions.balanceOf(Web3.to_checksum_address(holder)).call())

    def store(self) -> PoolStore:
        return v2_store(self.chain, list(self.pairs.values()))

    def providers(self) -> list[UniswapV2FlashProvider]:
        return [v2_flash_provider(pair) for pair in self.pairs.values()]


def _pair(world_chain: Chain, tokens: dict[str, Contract], a: str, amount_a: int, b: str, amount_b: int) -> Contract:
    return seeded_v2_pair(world_chain, tokens[a], amount_a, tokens[b], amount_b)


def _build(chain: Chain, directory: Path) -> World:
    if not available():
        pytest.fail(
            "the Venus artifacts are missing: run deploy/bootstrap.sh (it unpacks them into node_modules/.cache)"
        )
    w3 = chain.w3
    w3.provider.make_request("anvil_setBalance", [chain.account, hex(10**9 * WAD)])
    pool = deploy_venus(chain, SPECS)
    for spec in SPECS:  # the deployer's supply: what the borrower borrows
        pool.supply(chain.account, spec.symbol, 5_000_000 * 10**spec.decimals // spec.price_usd)
    w3.provider.make_request("anvil_impersonateAccount", [BORROWER])
    wbnb = chain.deploy(f"{VENUS}/test/WBNB.sol/WBNB.json")
    tx_hash = wbnb.functions.deposit().transact({"from": chain.account, "value": 100_000 * WAD, "gasPrice": 0})
    assert w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1
    for symbol, amount in (("USDT", 10**8 * 10**6), ("ETH", 10**5 * WAD)):
        chain.transact(pool.tokens[symbol].functions.faucet(amount))
    tokens = {**pool.tokens, "WBNB": wbnb}
    # Each pair prices at the oracle's prices after the scenario's drop (ETH 1,600 USD; BNB 480 USD).
    pairs = {
        "ETH/WBNB": _pair(chain, tokens, "ETH", 1_000 * WAD, "WBNB", 1_000 * WAD * 1_600 // 600),
        "USDT/WBNB": _pair(chain, tokens, "USDT", 4_800_000 * 10**6, "WBNB", 10_000 * WAD),
        "USDT/ETH": _pair(chain, tokens, "USDT", 1_600_000 * 10**6, "ETH", 1_000 * WAD),
    }
    key_file, identity_file, deployment = deploy_executor(chain, directory, wbnb.address)
    w3.provider.make_request("anvil_setBalance", [deployment.address, hex(CONTRACT_BNB)])
    return World(chain, pool, wbnb, pairs, key_file, identity_file, deployment)


built, world = snapshot_fixtures(_build, "venus-native", ("built", "world"))


@dataclass
class Run:
    found: VenusLiquidationOpportunity
    outcome: Outcome
    reports: list[ExecutionReport]


def _run(world: World, open_position: Callable[[VenusPool], None], drop: tuple[str, int], contract: bool = True) -> Run:
    """Collector -> strategy -> route -> executor (live, to a local builder that includes), around a price drop;
    without `contract`, the route with no executor (simulated, then reported)."""
    chain, pool = world.chain, world.pool
    vbnb = str(pool.vtokens["BNB"].address).lower()

    async def scenario() -> Run:
        async with (
            aiohttp.ClientSession() as session,
            builders([BuilderBehaviour("winner", include=True)], rpc_url(chain)) as servers,
        ):
            rpc = HttpJsonRpc(rpc_url(chain), session)
            market = VenusMarketConfig(name="venus", comptroller=str(pool.comptroller.address), native_market=vbnb)
            monitor = VenusMonitor.of(CHAIN, rpc, (market,))
            providers = world.providers()
            settings = Settings(min_profit_threshold=0, min_profit_bps=0, live_chains=(CHAIN,))
            strategy = VenusLiquidator(
                CHAIN, settings, 0, providers=lambda: providers, wrapped_native=world.wbnb.address
            )
            events = emitted(monitor)
            await monitor.poll()
            await asyncio.to_thread(open_position, pool)
            await monitor.poll()
            assert strategy.on_events(events) == []  # healthy
            events.clear()
            await asyncio.to_thread(pool.set_price, *drop)
            await monitor.poll()
            assert not monitor.feeds[0].error
            found = [o for o in strategy.on_events(events) if isinstance(o, VenusLiquidationOpportunity)]
            assert len(found) == 1, found
            if not contract:
                return Run(found[0], await VenusRoute(CountingRisk(), rpc).execute(found[0]), [])
            executor = await open_executor(
                world, servers[0], CountingRisk(), live=True, wrapped_native=world.wbnb.address
            )
            executor.flash_providers = lambda: providers
            try:
                outcome = await VenusRoute(None, rpc, executor).execute(found[0])
            finally:
                await executor.aclose()
            return Run(found[0], outcome, list(executor.reports))

    return asyncio.run(scenario())


def _borrow(collateral: str, amount: int, debt: str) -> Callable[[VenusPool], None]:
    """The borrower supplies `amount` of `collateral` and borrows 95 % of its borrowing power in `debt`."""

    def open_position(pool: VenusPool) -> None:
        pool.supply(BORROWER, collateral, amount)
        _, room, _ = pool.comptroller.functions.getHypotheticalAccountLiquidity(BORROWER, "0x" + "00" * 20, 0, 0).call()
        price = pool.price_mantissa(debt, pool.specs[debt].price_usd)  # USD (1e18) per unit, times 1e18
        pool.borrow(BORROWER, debt, room * 95 // 100 * WAD // price)

    return open_position


def _landed(world: World, run: Run, debt: str, collateral: str, redeem_fee: int = 0) -> FundedVenusLiquidation:
    """The common checks: landed in the block it was sized for, the vToken repaid and seized exactly the
    strategy's amounts, every seized vToken redeemed (less `redeem_fee` to the treasury), the contract's own
    BNB untouched."""
    found, outcome = run.found, run.outcome
    received = found.amount_out - redeem_fee
    assert outcome.status is Status.LANDED, outcome.reason
    funded = outcome.opportunity
    assert isinstance(funded, FundedVenusLiquidation) and funded.loan is not None
    assert (funded.user, funded.amount_in, funded.seized_vtokens, funded.collateral_seized) == (
        BORROWER.lower(),
        found.amount_in,
        found.seized,
        received,
    )
    assert found.flashloan_fee == funded.loan.fee > 0  # the strategy decided on the plan's loan fee
    (report,) = run.reports
    w3, pool, contract = world.chain.w3, world.pool, world.deployment.address
    receipt = w3.eth.get_transaction_receipt(report.tx_hash)
    assert receipt["blockNumber"] == found.block + 1
    vdebt, vcollateral = pool.vtokens[debt], pool.vtokens[collateral]
    (event,) = vdebt.events.LiquidateBorrow().process_receipt(receipt, errors=DISCARD)
    assert (event.args.borrower, event.args.repayAmount, event.args.seizeTokens) == (
        BORROWER,
        found.amount_in,
        found.seized,
    )
    assert venus_liquidated(receipt_logs(receipt), contract) == [
        (BORROWER.lower(), vcollateral.address.lower(), found.amount_in, found.seized, received)
    ]
    checksummed = Web3.to_checksum_address(contract)
    assert vcollateral.functions.balanceOf(checksummed).call() == 0
    assert w3.eth.get_balance(checksummed) == CONTRACT_BNB
    return funded


def test_vbnb_debt_is_repaid_with_unwrapped_wbnb_and_the_contract_keeps_the_plan_to_the_wei(world: World) -> None:
    pool = world.pool
    run = _run(world, _borrow("ETH", 10 * WAD, "BNB"), ("ETH", 1_600))
    assert run.found.hops[0].token_in == NATIVE
    funded = _landed(world, run, "BNB", "ETH")
    assert (funded.borrowed_native, funded.collateral_native) == (True, False)
    assert funded.loan is not None and funded.loan.lender == world.pairs["USDT/WBNB"].address.lower()
    assert funded.hops[0].pool == world.pairs["ETH/WBNB"].address.lower()
    kept = funded.swap_out - funded.amount_in - funded.loan.fee
    contract = world.deployment.address
    assert world.balance("WBNB", contract) == kept == funded.gross_profit == run.reports[0].profit_wei > 0
    assert world.balance("ETH", contract) == 0  # all of the redeemed ETH sold
    # The WBNB contract paid out exactly the repay in BNB: vBNB holds it.
    owed = pool.vtokens["BNB"].functions.borrowBalanceStored(BORROWER).call()
    borrowed = int(pool.vtokens["BNB"].events.Borrow().get_logs(from_block=0)[-1].args.borrowAmount)
    assert borrowed - funded.amount_in < owed < borrowed - funded.amount_in + 10**12


@pytest.mark.parametrize("treasury_percent", [0, 5 * WAD // 1000])
def test_vbnb_collateral_is_redeemed_wrapped_and_sold_and_the_contract_keeps_the_plan_to_the_wei(
    world: World, treasury_percent: int
) -> None:
    """With a redeem fee (0.5 %), vBNB pays the treasury its share in BNB and the plan wraps and sells the rest."""
    treasury = Web3.to_checksum_address(f"0x{0xBE5400:040x}")
    if treasury_percent:
        comptroller = world.pool.comptroller
        world.chain.transact(comptroller.functions._setTreasuryData(world.chain.account, treasury, treasury_percent))
    run = _run(world, _borrow("BNB", 50 * WAD, "USDT"), ("BNB", 480))
    assert run.found.hops[0].token_out == NATIVE
    fee = run.found.amount_out * treasury_percent // WAD
    assert world.chain.w3.eth.get_balance(treasury) == fee and (fee > 0) == (treasury_percent > 0)
    funded = _landed(world, run, "USDT", "BNB", redeem_fee=fee)
    assert funded.redeem_fee == fee
    assert (funded.borrowed_native, funded.collateral_native) == (False, True)
    assert funded.loan is not None and funded.loan.lender == world.pairs["USDT/ETH"].address.lower()
    assert funded.hops[0].pool == world.pairs["USDT/WBNB"].address.lower()
    assert funded.hops[0].token_in == world.wbnb.address.lower()
    kept = funded.swap_out - funded.amount_in - funded.loan.fee
    contract = world.deployment.address
    assert world.balance("USDT", contract) == kept == funded.gross_profit == run.reports[0].profit_wei > 0
    assert world.balance("WBNB", contract) == 0  # every redeemed BNB wrapped and sold


def test_a_native_leg_whose_token_is_not_the_wrapped_native_is_refused_by_the_contract(world: World) -> None:
    """The contract unwraps for a vBNB debt and wraps a vBNB seizure only in its own wrapped native: a native flag
    on a leg that trades another token reverts before any loan is taken."""
    pool, owner = world.pool, Web3.to_checksum_address(world.deployment.owner)
    arb = world.chain.w3.eth.contract(address=Web3.to_checksum_address(world.deployment.address), abi=artifact()["abi"])
    usdt, eth = (pool.tokens[s].address for s in ("USDT", "ETH"))
    vusdt, veth = (pool.vtokens[s].address for s in ("USDT", "ETH"))
    hop = (world.pairs["USDT/ETH"].address, eth, usdt, False, 3, 1000)  # ETH -> USDT: no WBNB anywhere
    loan = (4, world.pairs["USDT/WBNB"].address, 3, 1000)  # uniswap_v2
    terms = (10**6, 0, 0, 2**64)
    zero = "0x" + "00" * 20  # no Liquidator
    for target, token in (
        ((vusdt, veth, BORROWER, True, False, zero, False), usdt),
        ((vusdt, veth, BORROWER, False, True, zero, False), eth),
    ):
        with pytest.raises(ContractCustomError) as refused:
            arb.functions.liquidateVenus(target, [hop], terms, loan).call({"from": owner})
        assert decode_revert(bytes.fromhex(str(refused.value.data)[2:])) == f"NotWrappedNative({token.lower()})"


def _through_liquidator(world: World, treasury_percent: int) -> tuple[Contract, Contract]:
    """Venus' published Liquidator (behind its proxy) as the Comptroller's liquidator contract, taking
    `treasury_percent` of each seizure's bonus, and the protocol share reserve it pays; the VAI controller it needs
    installed first (nobody owes VAI)."""
    install_vai_controller(world.pool)
    return deploy_liquidator(world.pool, world.wbnb.address, treasury_percent)


@pytest.mark.parametrize(
    ("debt", "collateral", "drop", "redeem_percent"),
    [("USDT", "ETH", ("ETH", 1_600), 5 * WAD // 1000), ("BNB", "ETH", ("ETH", 1_600), 0)],
    ids=["usdt-debt-with-a-redeem-fee", "vbnb-debt"],
)
def test_through_venus_liquidator_the_contract_receives_and_keeps_the_plan_to_the_wei(
    world: World, debt: str, collateral: str, drop: tuple[str, int], redeem_percent: int
) -> None:
    """A Comptroller naming Venus' Liquidator (5 % of the bonus to its treasury): the contract liquidates through
    it (approving it the repay, or for vBNB debt sending the repay as the value), receives exactly the vTokens it
    passes on, which redeem (after the Liquidator redeemed its share, and less the Comptroller's redeem fee) to
    exactly the sized underlying, and keeps exactly the plan's profit."""
    pool, chain = world.pool, world.chain
    liquidator, reserve = _through_liquidator(world, 5 * WAD // 100)
    treasury = Web3.to_checksum_address(f"0x{0xBE5400:040x}")
    if redeem_percent:
        chain.transact(pool.comptroller.functions._setTreasuryData(chain.account, treasury, redeem_percent))
    amount = 10 * WAD
    run = _run(world, _borrow(collateral, amount, debt), drop)
    found, outcome = run.found, run.outcome
    assert found.terms is not None and found.terms.through_liquidator
    assert found.terms.liquidator == liquidator.address.lower() and found.terms.liquidator_percent == 5 * WAD // 100
    assert outcome.status is Status.LANDED, outcome.reason
    funded = outcome.opportunity
    assert isinstance(funded, FundedVenusLiquidation) and funded.loan is not None
    assert funded.liquidator == liquidator.address.lower()
    fee = found.amount_out * redeem_percent // WAD
    passed = found.seized - found.liquidator_vtokens
    assert 0 < found.liquidator_vtokens < found.seized
    assert (funded.amount_in, funded.seized_vtokens, funded.collateral_seized, funded.redeem_fee) == (
        found.amount_in,
        passed,
        found.amount_out - fee,
        fee,
    )
    (report,) = run.reports
    receipt = chain.w3.eth.get_transaction_receipt(report.tx_hash)
    assert receipt["blockNumber"] == found.block + 1
    vdebt, vcollateral = pool.vtokens[debt], pool.vtokens[collateral]
    (seizure,) = vdebt.events.LiquidateBorrow().process_receipt(receipt, errors=DISCARD)
    assert (seizure.args.liquidator, seizure.args.borrower) == (liquidator.address, BORROWER)
    assert (seizure.args.repayAmount, seizure.args.seizeTokens) == (found.amount_in, found.seized)
    (split,) = liquidator.events.LiquidateBorrowedTokens().process_receipt(receipt, errors=DISCARD)
    assert (split.args.seizeTokensForTreasury, split.args.seizeTokensForLiquidator) == (
        found.liquidator_vtokens,
        passed,
    )
    contract = world.deployment.address
    assert venus_liquidated(receipt_logs(receipt), contract) == [
        (BORROWER.lower(), vcollateral.address.lower(), found.amount_in, passed, found.amount_out - fee)
    ]
    kept = funded.swap_out - funded.amount_in - funded.loan.fee
    profit_token = "WBNB" if debt == "BNB" else debt
    assert world.balance(profit_token, contract) == kept == funded.gross_profit == report.profit_wei > 0
    checksummed = Web3.to_checksum_address(contract)
    assert vcollateral.functions.balanceOf(checksummed).call() == 0
    assert world.balance(collateral, contract) == 0
    assert chain.w3.eth.get_balance(checksummed) == CONTRACT_BNB
    assert receipt["gasUsed"] < found.gas_limit == 1_400_000  # Settings.liquidator_gas_limit
    # The Liquidator redeemed its share in the same call and sent the underlying to the protocol share reserve; the
    # Comptroller's treasury took its redeem fee of both redemptions.
    to_reserve = pool.tokens[collateral].functions.balanceOf(reserve.address).call()
    to_treasury = pool.tokens[collateral].functions.balanceOf(treasury).call()
    liquidator_redeemed = to_reserve + to_treasury - fee
    assert to_treasury - fee == liquidator_redeemed * redeem_percent // WAD
    assert liquidator_redeemed > 0 and (to_treasury > fee) == (redeem_percent > 0)


def test_a_borrower_the_liquidator_restricts_is_refused_at_plan_time_naming_why(world: World) -> None:
    """The Liquidator restricts the borrower's liquidations to an allowlist without our contract: refused before
    anything is simulated or signed, naming the Liquidator's rule."""
    liquidator, _reserve = _through_liquidator(world, 5 * WAD // 100)
    world.chain.transact(liquidator.functions.restrictLiquidation(BORROWER))
    run = _run(world, _borrow("ETH", 10 * WAD, "USDT"), ("ETH", 1_600))
    assert run.outcome.status is Status.REJECTED
    assert "restricts liquidations" in run.outcome.reason and "LiquidationNotAllowed" in run.outcome.reason
    assert world.deployment.address.lower() in run.outcome.reason.lower()
    assert run.reports == []


def test_without_a_contract_the_liquidation_through_the_liquidator_is_simulated_and_reported(world: World) -> None:
    """No contract: the route asks the Comptroller about the Liquidator (it allows it, not our probe) and the
    simulated seizure, split and redeemed after the Liquidator's own redemption, is exactly the sized one."""
    _through_liquidator(world, 5 * WAD // 100)
    run = _run(world, _borrow("ETH", 10 * WAD, "USDT"), ("ETH", 1_600), contract=False)
    assert run.outcome.status is Status.DRY_RUN, run.outcome.reason
    assert 0 < run.found.liquidator_vtokens < run.found.seized


def test_vai_debt_is_followed_and_refused_as_the_liquidator_would(world: World) -> None:
    """The collector follows the Liquidator's logs (a new treasury share re-reads the terms). A borrower who minted
    VAI: the collector follows the VAI controller's MintVAI log and re-reads its VAI debt,
    the strategy sizes the VAI liquidation the Liquidator forces first (test_venus_vai checks its amounts), and with
    the Liquidator forcing VAI first (`forceVAILiquidate`, `minLiquidatableVAI` 50 VAI) the plan-time check names
    the refusal the Liquidator itself answers (`VAIDebtTooHigh(100 VAI, 50 VAI)`); at 150 VAI minimum it names none."""
    chain, pool = world.chain, world.pool
    liquidator, _reserve = _through_liquidator(world, 5 * WAD // 100)
    controller = chain.at(path("Tokens/VAI/VAIController"), pool.comptroller.functions.vaiController().call())
    vai = chain.at(path("Tokens/VAI/VAI"), controller.functions.getVAIAddress().call())
    chain.transact(vai.functions.rely(controller.address))
    chain.transact(pool.comptroller.functions._setVAIMintRate(5_000))
    chain.transact(controller.functions.setMintCap(10**30))
    chain.transact(liquidator.functions.resumeForceVAILiquidate())
    chain.transact(liquidator.functions.setMinLiquidatableVAI(50 * WAD))
    contract = world.deployment.address

    async def scenario() -> tuple[list[object], list[object], ExecutionTerms, str, str]:
        async with aiohttp.ClientSession() as session:
            rpc = HttpJsonRpc(rpc_url(chain), session)
            vbnb = str(pool.vtokens["BNB"].address).lower()
            market = VenusMarketConfig(name="venus", comptroller=str(pool.comptroller.address), native_market=vbnb)
            monitor = VenusMonitor.of(CHAIN, rpc, (market,))
            strategy = VenusLiquidator(CHAIN, Settings(min_profit_threshold=0, min_profit_bps=0), 0)
            events = emitted(monitor)
            await monitor.poll()
            strategy.on_events(events)
            assert strategy.terms is not None and strategy.terms.liquidator_percent == 5 * WAD // 100
            # The Liquidator's own log of a new treasury share: the collector follows it and re-reads the terms.
            chain.transact(liquidator.functions.setTreasuryPercent(3 * WAD // 100))
            await monitor.poll()
            strategy.on_events(events)
            assert strategy.terms is not None and strategy.terms.liquidator_percent == 3 * WAD // 100
            pool.supply(BORROWER, "ETH", 10 * WAD)
            pool.send(BORROWER, controller.functions.mintVAI(100 * WAD))
            pool.borrow(BORROWER, "USDT", 8_000 * 10**6)
            await monitor.poll()
            strategy.on_events(events)
            pool.set_price("ETH", 1_000)  # 8,100 USD owed against 8,000 at the 80 % threshold
            await monitor.poll()
            found = strategy.on_events(events)
            terms = await execution_terms(rpc, str(pool.comptroller.address))
            refused = await liquidator_refusal(rpc, terms, BORROWER.lower(), contract)
            chain.transact(liquidator.functions.setMinLiquidatableVAI(150 * WAD))
            allowed = await liquidator_refusal(rpc, dataclasses.replace(terms, min_vai=150 * WAD), BORROWER, contract)
            chain.transact(liquidator.functions.setMinLiquidatableVAI(50 * WAD))
            # Its USDT debt is liquidatable with VAI valued (accrued, as the Liquidator accrues it), not without.
            account = strategy.accounts[BORROWER.lower()]
            markets, prices, block = strategy.markets, strategy.prices, int(chain.w3.eth.block_number) + 1
            borrowed, collateral = (str(pool.vtokens[s].address).lower() for s in ("USDT", "ETH"))
            close, vai = strategy.close_factor, strategy.vai
            assert size_liquidation(account, borrowed, collateral, markets, prices, close, block) is None
            assert vai is not None
            assert size_liquidation(account, borrowed, collateral, markets, prices, close, block, vai.accrued(block))
            return list(events), found, terms, refused, allowed

    events, found, terms, refused, allowed = asyncio.run(scenario())
    assert pool.comptroller.functions.getAccountLiquidity(BORROWER).call()[2] > 0  # VAI counted: a shortfall
    accounts = [e for e in events if isinstance(e, LendingEvent) and e.event == "VenusAccount"]
    (account,) = [e for e in accounts if e.user == BORROWER.lower()][-1:]
    assert account_of(account.user, dict(account.args)).vai.minted == 100 * WAD
    (forced,) = found  # VAI first, as the Liquidator forces it
    assert isinstance(forced, VenusLiquidationOpportunity) and forced.vai
    assert (forced.user, forced.borrowed) == (BORROWER.lower(), controller.address.lower())
    assert (terms.force_vai, terms.min_vai, terms.vai_controller) == (True, 50 * WAD, controller.address.lower())
    assert f"owes {100 * WAD} VAI" in refused and "VAIDebtTooHigh" in refused and allowed == ""
    usdt, veth = pool.vtokens["USDT"].address, pool.vtokens["ETH"].address
    with pytest.raises(ContractCustomError) as answered:
        liquidator.functions.liquidateBorrow(usdt, BORROWER, 10**6, veth).call(
            {"from": Web3.to_checksum_address(contract)}
        )
    data = bytes.fromhex(str(answered.value.data)[2:])
    assert data[:4] == keccak(text="VAIDebtTooHigh(uint256,uint256)")[:4]
    assert (int.from_bytes(data[4:36], "big"), int.from_bytes(data[36:68], "big")) == (100 * WAD, 50 * WAD)
