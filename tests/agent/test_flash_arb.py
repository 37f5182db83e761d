"""Flashloan-funded arbitrage on anvil: the ArbExecutor borrows the cycle's input from a real Aave V3 pool
(@aave/core-v3, flashLoanSimple), the Balancer V2 Vault (compiled from @balancer-labs/v2-vault), a Uniswap
V3 pool's `flash` or a Uniswap V2 pair's flash swap, runs a cycle through the published Uniswap V2 pairs
and V3 pool, repays the loan with its fee and keeps the rest. The executor chooses how to fund a cycle the contract
cannot pay for itself (re-sized for the loan's fee, or for the inventory it holds, whichever nets more),
asks the risk gate about the funded trade before signing, and what it keeps equals the prediction to the
wei, live and in dry-run (where nothing is sent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import aiohttp
import pytest
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.logs import DISCARD

from mevagent.amm.arbitrage import cycle_amounts
from mevagent.config import FlashProviderConfig
from mevagent.core import Opportunity, Outcome, Status
from mevagent.executor.contract import borrowed, contract_hops, execute_calldata, execute_flash_calldata
from mevagent.executor.executor import ArbitrageExecutor, ExecutionReport
from mevagent.executor.funding import LOAN_GAS, FlashOpportunity, FlashProvider, Loan, choose
from mevagent.executor.rpc import HttpJsonRpc
from mevagent.lending.aave_v3 import percent_mul
from mevagent.lending.flash import AaveV3Provider
from mevagent.lending.monitor import FlashMonitor
from mevagent.lending.providers import BalancerV2Provider, UniswapV2FlashProvider, UniswapV3FlashProvider
from testbed.aave import AaveMarket, ReserveSpec, deploy_aave
from testbed.arb import ArbWorld, BuilderBehaviour, CountingRisk, _swap_v2, build_world, builders, rpc_url
from testbed.balancer import BalancerVault, deploy_vault
from testbed.evm import MAX_UINT256, Chain

from .test_executor import FAN_OUT, SLIPPAGE_BPS, _config, _executor_nonce

PREMIUM_BPS = 9
LENT = 10**24  # of token A supplied to the Aave market: far more than any cycle here wants


@dataclass
class FlashWorld:
    world: ArbWorld
    aave: AaveMarket
    balancer: BalancerVault

    @property
    def chain(self) -> Chain:
        return self.world.chain

    def set_inventory(self, amount: int) -> None:
        """The contract's balance of A set to `amount` (withdrawn by its owner, or topped up)."""
        world, w3 = self.world, self.world.chain.w3
        held = world.balance(world.token_a)
        if held > amount:
            owner = w3.to_checksum_address(world.deployment.owner)
            w3.provider.make_request("anvil_impersonateAccount", [owner])
            fn = world.contract.functions.withdraw(world.token_a.address, world.chain.account, held - amount)
            tx_hash = fn.transact({"from": owner, "gas": 200_000, "gasPrice": 0})
            assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["status"] == 1
        elif held < amount:
            world.chain.transact(world.token_a.functions.transfer(world.contract.address, amount - held))
        assert world.balance(world.token_a) == amount

    def cash(self) -> int:
        a_token = self.aave.a_tokens["A"].address
        return int(self.world.token_a.functions.balanceOf(a_token).call())


@pytest.fixture(scope="module")
def flash_world(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlashWorld]:
    snapshot = chain.snapshot()
    world = build_world(chain, tmp_path_factory.mktemp("flash-arb"))
    # Token A listed on an Aave V3 market as it is (no mintable copy), flashloans on, 9 bps premium.
    aave = deploy_aave(chain, [ReserveSpec("A", 18, 10**8)], existing={"A": world.token_a})
    chain.transact(aave.configurator.functions.setReserveFlashLoaning(world.token_a.address, True))
    chain.transact(aave.configurator.functions.updateFlashloanPremiumTotal(PREMIUM_BPS))
    chain.transact(world.token_a.functions.approve(aave.pool.address, MAX_UINT256))
    chain.transact(aave.pool.functions.supply(world.token_a.address, LENT, chain.account, 0))
    # The Balancer Vault lends what it holds: A sent to it.
    balancer = deploy_vault(chain)
    chain.transact(world.token_a.functions.transfer(balancer.vault.address, LENT))
    yield FlashWorld(world, aave, balancer)
    chain.revert(snapshot)


@pytest.fixture
def fw(flash_world: FlashWorld) -> Iterator[FlashWorld]:
    snapshot = flash_world.chain.snapshot()
    yield flash_world
    flash_world.chain.revert(snapshot)


async def _aave_provider(fw: FlashWorld, rpc: HttpJsonRpc) -> AaveV3Provider:
    pool = str(fw.aave.pool.address)
    premium = int(fw.aave.pool.functions.FLASHLOAN_PREMIUM_TOTAL().call())
    a_tokens = {fw.world.a: str(fw.aave.a_tokens["A"].address)}
    return await AaveV3Provider.load("anvil", rpc, pool, a_tokens, premium, fw.chain.w3.eth.block_number)


@dataclass
class Run:
    outcomes: list[Outcome]
    reports: list[ExecutionReport]
    providers: list[FlashProvider]


def _run(
    fw: FlashWorld,
    opportunities: Sequence[Opportunity],
    risk: CountingRisk,
    *,
    providers: Callable[[HttpJsonRpc], object] | None = None,
    behaviours: Sequence[BuilderBehaviour] = FAN_OUT[:1],
    **overrides: object,
) -> Run:
    world = fw.world

    async def scenario() -> Run:
        async with builders(behaviours, rpc_url(world.chain)) as servers:
            executor = await ArbitrageExecutor.open(
                _config(world, servers, **overrides), world.store(), risk, max_slippage_bps=lambda: SLIPPAGE_BPS
            )
            try:
                loaded: list[FlashProvider] = [await _aave_provider(fw, executor.rpc)]  # type: ignore[arg-type]
                if providers is not None:
                    loaded = list(await providers(executor.rpc))  # type: ignore[misc]
                executor.flash_providers = lambda: loaded
                outcomes = [await executor.execute(o) for o in opportunities]
            finally:
                await executor.aclose()
            return Run(outcomes, list(executor.reports), loaded)

    return asyncio.run(scenario())


def _amm_hops(fw: FlashWorld, opportunity: Opportunity) -> list:
    """The cycle's hops on the chain's state now (call it before anything trades)."""
    store = fw.world.store()
    return [store.pools[h.pool].hop(h.token_in) for h in opportunity.hops]


def _net(hops: list, amount: int) -> int:
    """What the contract keeps on `amount` borrowed from the Aave pool: cycle output - input - premium."""
    amounts = cycle_amounts(hops, amount)
    assert amounts is not None
    return amounts[-1] - amount - percent_mul(amount, PREMIUM_BPS)


@pytest.mark.parametrize("route", ["two_hop_v2", "v2_then_v3", "v3_then_v2"])
def test_a_cycle_the_contract_cannot_fund_is_flash_funded_and_keeps_the_prediction_to_the_wei(
    fw: FlashWorld, route: str
) -> None:
    world, w3 = fw.world, fw.chain.w3
    opportunity = world.opportunity(getattr(world, route)(), opportunity_id=f"flash-{route}")
    hops = _amm_hops(fw, opportunity)
    fw.set_inventory(0)
    cash_before = fw.cash()
    risk = CountingRisk()
    run = _run(fw, [opportunity], risk)
    (outcome,) = run.outcomes
    assert outcome.status is Status.LANDED, outcome.reason
    funded = outcome.opportunity
    assert isinstance(funded, FlashOpportunity) and funded.loan is not None
    loan = funded.loan
    # Sized for the net of the premium: not the strategy's input, and no neighbour keeps more.
    assert loan.amount == funded.amount_in != opportunity.amount_in
    kept = _net(hops, loan.amount)
    assert funded.gross_profit == kept > 0
    for step in (1, 1_000, 10**6):
        assert _net(hops, loan.amount - step) <= kept >= _net(hops, loan.amount + step)
    # Realized: what the contract holds now, and what its events and the Aave pool say.
    assert world.balance(world.token_a) == kept
    (report,) = run.reports
    assert report.profit_wei == kept and report.funding == "aave_v3"
    receipt = dict(w3.eth.get_transaction_receipt(report.tx_hash))
    receipt["logs"] = [
        {"address": log["address"], "topics": ["0x" + t.hex() for t in log["topics"]], "data": "0x" + log["data"].hex()}
        for log in receipt["logs"]
    ]
    lender, token, amount, fee = borrowed(receipt, world.contract.address)[0]
    assert (lender, token, amount) == (str(fw.aave.pool.address).lower(), world.a, loan.amount)
    assert fee == loan.fee == percent_mul(loan.amount, PREMIUM_BPS)
    raw_receipt = w3.eth.get_transaction_receipt(report.tx_hash)
    (flash_event,) = fw.aave.pool.events.FlashLoan().process_receipt(raw_receipt, errors=DISCARD)
    assert flash_event["args"]["premium"] == fee
    assert fw.cash() == cash_before + fee  # the premium stays with the reserve
    # The risk gate was asked about the funded trade, once, and told its outcome.
    assert risk.checks == [opportunity.id] and risk.records == [outcome]
    assert outcome.opportunity.gas_limit == opportunity.gas_limit + LOAN_GAS["aave_v3"]
    assert receipt["gasUsed"] < outcome.opportunity.gas_limit


def test_dry_run_simulates_the_flash_funded_cycle_and_sends_nothing(fw: FlashWorld) -> None:
    world, w3 = fw.world, fw.chain.w3
    opportunity = world.opportunity(world.three_hop_v2(), opportunity_id="flash-dry")
    hops = _amm_hops(fw, opportunity)
    fw.set_inventory(0)
    head, nonce = w3.eth.block_number, _executor_nonce(world)
    run = _run(fw, [opportunity], CountingRisk(), live=False)
    (outcome,) = run.outcomes
    assert outcome.status is Status.DRY_RUN, outcome.reason
    funded = outcome.opportunity
    assert isinstance(funded, FlashOpportunity) and funded.loan is not None
    assert run.reports[0].profit_wei == funded.gross_profit == _net(hops, funded.amount_in)
    assert (w3.eth.block_number, _executor_nonce(world), world.balance(world.token_a)) == (head, nonce, 0)


def test_inventory_that_covers_the_cycle_borrows_nothing(fw: FlashWorld) -> None:
    world = fw.world
    opportunity = world.opportunity(world.two_hop_v2(), opportunity_id="inventory")
    before = world.balance(world.token_a)  # the fixture's inventory, far more than the cycle wants
    (outcome,) = _run(fw, [opportunity], CountingRisk()).outcomes
    assert outcome.status is Status.LANDED, outcome.reason
    assert outcome.opportunity is opportunity and not isinstance(outcome.opportunity, FlashOpportunity)
    assert world.balance(world.token_a) - before == opportunity.gross_profit


def test_short_inventory_takes_whichever_of_inventory_and_loan_keeps_more(fw: FlashWorld) -> None:
    world = fw.world
    opportunity = world.opportunity(world.two_hop_v2())
    hops = _amm_hops(fw, opportunity)
    provider = AaveV3Provider("anvil", str(fw.aave.pool.address).lower(), PREMIUM_BPS, {world.a: fw.cash()})
    for held in (opportunity.amount_in * 999 // 1000, opportunity.amount_in // 10):
        amounts = cycle_amounts(hops, held)
        assert amounts is not None
        on_inventory = amounts[-1] - held
        funded, _ = choose(opportunity, hops, held, [provider])
        assert funded is not None
        if isinstance(funded, FlashOpportunity) and funded.loan is not None:
            assert funded.gross_profit == _net(hops, funded.amount_in) > on_inventory
        else:
            assert funded.amount_in == held and funded.gross_profit == on_inventory
        # 99.9 % held: the premium on the whole input costs more than the last 0.1 % earns; 10 %: the loan.
        assert (funded.amount_in == held) is (held > opportunity.amount_in // 2)
    fw.set_inventory(opportunity.amount_in // 10)
    before = world.balance(world.token_a)
    (outcome,) = _run(fw, [opportunity], CountingRisk()).outcomes
    assert outcome.status is Status.LANDED, outcome.reason
    assert world.balance(world.token_a) - before == outcome.opportunity.gross_profit == funded.gross_profit


def test_a_provider_never_lends_more_than_it_holds_and_an_empty_one_is_never_chosen(fw: FlashWorld) -> None:
    world = fw.world
    opportunity = world.opportunity(world.two_hop_v2(), opportunity_id="thin")
    hops = _amm_hops(fw, opportunity)
    fw.set_inventory(0)
    pool = str(fw.aave.pool.address).lower()
    thin = opportunity.amount_in // 3

    async def providers(_rpc: HttpJsonRpc) -> list[AaveV3Provider]:
        return [AaveV3Provider("anvil", pool, PREMIUM_BPS, {world.a: thin}, name="thin")]

    (outcome,) = _run(fw, [opportunity], CountingRisk(), providers=providers).outcomes
    assert outcome.status is Status.LANDED, outcome.reason
    funded = outcome.opportunity
    assert isinstance(funded, FlashOpportunity) and funded.loan is not None and funded.loan.amount == thin
    assert world.balance(world.token_a) == _net(hops, thin)

    async def empty(_rpc: HttpJsonRpc) -> list[AaveV3Provider]:
        return [AaveV3Provider("anvil", pool, PREMIUM_BPS, {world.a: 0}, name="empty")]

    again = world.opportunity(world.two_hop_v2(), opportunity_id="empty")
    fw.set_inventory(0)  # what the first trade kept would fund part of it
    (outcome,) = _run(fw, [again], CountingRisk(), providers=empty).outcomes
    assert outcome.status is Status.REJECTED and outcome.reason.startswith("funding: "), outcome.reason


def test_the_risk_gate_sees_the_loan_and_its_refusal_sends_nothing(fw: FlashWorld) -> None:
    world = fw.world
    opportunity = world.opportunity(world.two_hop_v2(), opportunity_id="capped", usd_per_a=1e-18)
    fw.set_inventory(0)
    nonce = _executor_nonce(world)
    seen: list[Opportunity] = []
    risk = CountingRisk(max_notional_usd=opportunity.notional_usd / 2, on_check=seen.append)
    (outcome,) = _run(fw, [opportunity], risk).outcomes
    assert outcome.status is Status.REJECTED and outcome.reason.startswith("max_position_size"), outcome.reason
    # Asked about the loan it would take: its amount as the notional, its fee out of the profit.
    (asked,) = seen
    assert isinstance(asked, FlashOpportunity) and asked.loan is not None
    assert asked.notional_usd == pytest.approx(asked.loan.amount * 1e-18)
    assert asked.amount_out == asked.cycle_out - asked.loan.fee
    assert (_executor_nonce(world), world.balance(world.token_a)) == (nonce, 0)


def test_the_flash_contract_keeps_no_less_than_required_and_only_its_lender_calls_back(fw: FlashWorld) -> None:
    world = fw.world
    opportunity = world.opportunity(world.two_hop_v2())
    fw.set_inventory(0)
    amount = opportunity.amount_in
    kept = _net(_amm_hops(fw, opportunity), amount)
    hops = contract_hops(opportunity, world.store())
    loan = Loan("aave_v3", "aave_v3", str(fw.aave.pool.address).lower(), world.a, amount, 0)
    head = fw.chain.w3.eth.block_number
    owner = fw.chain.w3.to_checksum_address(world.deployment.owner)
    contract = world.contract

    def call(min_profit: int) -> int:
        data = execute_flash_calldata(hops, amount, min_profit, 0, head + 1, loan)
        return int.from_bytes(fw.chain.w3.eth.call({"from": owner, "to": contract.address, "data": data}), "big")

    assert call(kept) == kept
    with pytest.raises((ContractCustomError, ContractLogicError)):
        call(kept + 1)
    # Nobody but the lender being called, during its loan, gets the cycle run.
    hop_data = b""
    stranger = fw.chain.account
    token = world.token_a.address
    with pytest.raises((ContractCustomError, ContractLogicError)):
        contract.functions.executeOperation(token, amount, 0, contract.address, hop_data).call({"from": stranger})
    with pytest.raises((ContractCustomError, ContractLogicError)):
        contract.functions.executeOperation(token, amount, 0, contract.address, hop_data).call(
            {"from": fw.aave.pool.address}
        )
    with pytest.raises((ContractCustomError, ContractLogicError)):
        contract.functions.uniswapV3FlashCallback(0, 0, hop_data).call({"from": world.v3_pool.address})
    with pytest.raises((ContractCustomError, ContractLogicError)):
        contract.functions.uniswapV2Call(contract.address, amount, 0, hop_data).call({"from": world.pair_ca.address})
    # Someone else's flashloan naming the contract as receiver: refused (the initiator is not the contract).
    with pytest.raises((ContractCustomError, ContractLogicError)):
        fw.aave.pool.functions.flashLoanSimple(contract.address, world.token_a.address, 10**18, b"", 0).call(
            {"from": stranger}
        )


async def _lenders(fw: FlashWorld, rpc: HttpJsonRpc) -> dict[str, FlashProvider]:
    """Every kind of provider lending A, loaded from the chain as the monitor loads them."""
    world, block = fw.world, fw.chain.w3.eth.block_number
    return {
        "aave_v3": await _aave_provider(fw, rpc),
        "balancer_v2": await BalancerV2Provider.load("anvil", rpc, str(fw.balancer.vault.address), [world.a], block),
        "uniswap_v3": await UniswapV3FlashProvider.load("anvil", rpc, str(world.v3_pool.address), block),
        "uniswap_v2": await UniswapV2FlashProvider.load("anvil", rpc, str(world.pair_ca.address), 3, 1000, block),
    }


def _receipt_logs(fw: FlashWorld, tx_hash: str) -> dict:
    receipt = dict(fw.chain.w3.eth.get_transaction_receipt(tx_hash))
    receipt["logs"] = [
        {"address": log["address"], "topics": ["0x" + t.hex() for t in log["topics"]], "data": "0x" + log["data"].hex()}
        for log in receipt["logs"]
    ]
    return receipt


@pytest.mark.parametrize("lender", ["balancer_v2", "balancer_v2_with_fee", "uniswap_v3", "uniswap_v2"])
def test_each_lender_funds_the_cycle_and_charges_exactly_the_fee_predicted(fw: FlashWorld, lender: str) -> None:
    world = fw.world
    kind = lender.removesuffix("_with_fee")
    if lender.endswith("_with_fee"):
        fw.balancer.set_flash_fee(5 * 10**14)  # 0.05 %, rounded up by the Vault's mulUp
    opportunity = world.opportunity(world.two_hop_v2(), opportunity_id=f"lender-{lender}")
    hops = _amm_hops(fw, opportunity)
    fw.set_inventory(0)

    async def only(rpc: HttpJsonRpc) -> list[FlashProvider]:
        return [(await _lenders(fw, rpc))[kind]]

    run = _run(fw, [opportunity], CountingRisk(), providers=only)
    (outcome,) = run.outcomes
    assert outcome.status is Status.LANDED, outcome.reason
    funded = outcome.opportunity
    assert isinstance(funded, FlashOpportunity) and funded.loan is not None
    (provider,) = run.providers
    amount = funded.loan.amount
    amounts = cycle_amounts(hops, amount)
    assert amounts is not None
    fee = provider.fee(world.a, amount)
    if lender == "balancer_v2":
        assert fee == 0
    elif lender == "balancer_v2_with_fee":
        assert fee == -(-amount * 5 * 10**14 // 10**18)
    elif kind == "uniswap_v3":
        assert fee == -(-amount * 3000 // 10**6)
    else:  # the least repayment the pair's K check accepts: 997·repaid ≥ 1000·borrowed
        repaid = amount + fee
        assert 997 * repaid >= 1000 * amount > 997 * (repaid - 1)
    kept = amounts[-1] - amount - fee
    assert funded.gross_profit == kept == world.balance(world.token_a) > 0
    (report,) = run.reports
    assert report.profit_wei == kept and report.funding == kind
    ((lender_address, token, lent, charged),) = borrowed(_receipt_logs(fw, report.tx_hash), world.contract.address)
    assert (lender_address, token, lent, charged) == (provider.lender, world.a, amount, fee)


def test_the_cheapest_provider_holding_enough_is_chosen(fw: FlashWorld) -> None:
    world = fw.world
    opportunity = world.opportunity(world.two_hop_v2())
    hops = _amm_hops(fw, opportunity)

    async def load() -> dict[str, FlashProvider]:
        async with aiohttp.ClientSession() as session:
            return await _lenders(fw, HttpJsonRpc(rpc_url(fw.chain), session))

    lenders = asyncio.run(load())
    # The Vault charges nothing: it wins over 9 bps (Aave), 30 bps (the V3 pool) and the pair's ~30.1 bps.
    funded, _ = choose(opportunity, hops, 0, list(lenders.values()))
    assert isinstance(funded, FlashOpportunity) and funded.loan is not None and funded.loan.kind == "balancer_v2"
    assert funded.loan.fee == 0 and funded.gross_profit == opportunity.gross_profit  # no fee: the strategy's profit
    # An empty Vault is never chosen: Aave, the next cheapest.
    assert isinstance(lenders["balancer_v2"], BalancerV2Provider)
    lenders["balancer_v2"].balances.cash[world.a] = 0
    funded, _ = choose(opportunity, hops, 0, list(lenders.values()))
    assert isinstance(funded, FlashOpportunity) and funded.loan is not None and funded.loan.kind == "aave_v3"
    # A pool of the cycle cannot lend to it (it is locked during its own loan): never chosen.
    in_cycle = world.opportunity(world.v2_then_v3())
    only_v3 = [lenders["uniswap_v3"]]
    assert choose(in_cycle, _amm_hops(fw, in_cycle), 0, only_v3)[0] is None


def test_the_monitor_follows_each_provider_from_its_logs(fw: FlashWorld) -> None:
    world, chain = fw.world, fw.chain
    configs = (
        FlashProviderConfig(name="vault", protocol="balancer_v2", address=fw.balancer.vault.address, tokens=(world.a,)),
        FlashProviderConfig(name="pool", protocol="uniswap_v3", address=world.v3_pool.address),
        FlashProviderConfig(name="pair", protocol="uniswap_v2", address=world.pair_ca.address),
    )

    def held(token: object, holder: str) -> int:
        return int(token.functions.balanceOf(holder).call())  # type: ignore[attr-defined]

    async def scenario() -> list[dict]:
        async with aiohttp.ClientSession() as session:
            monitor = FlashMonitor.of("anvil", HttpJsonRpc(rpc_url(chain), session), (), 60.0, configs)
            await monitor.poll()
            assert all(row["healthy"] for row in monitor.status()), monitor.status()
            # Moves it learns from logs only: A into and out of the Vault, a flash loan with a fee, swaps.
            await asyncio.to_thread(fw.balancer.set_flash_fee, 10**15)
            await asyncio.to_thread(chain.transact, world.token_a.functions.transfer(fw.balancer.vault.address, 777))
            opportunity = world.opportunity(world.two_hop_v2(), opportunity_id="followed")
            await asyncio.to_thread(fw.set_inventory, 0)
            vault_only = [p for p in monitor.providers() if p.kind == "balancer_v2"]
            assert vault_only and vault_only[0].fee_percentage == 0  # not polled since the change
            await monitor.poll()
            assert vault_only[0].fee_percentage == 10**15  # from FlashLoanFeePercentageChanged

            async def providers(_rpc: HttpJsonRpc) -> list[FlashProvider]:
                return vault_only

            run = await asyncio.to_thread(_run, fw, [opportunity], CountingRisk(), providers=providers)
            assert run.outcomes[0].status is Status.LANDED, run.outcomes[0].reason
            assert run.outcomes[0].opportunity.loan.fee > 0  # type: ignore[attr-defined]
            # A trader's swap on the pair (its Sync), and A sent straight to the V3 pool (a Transfer).
            await asyncio.to_thread(_swap_v2, chain, world.pair_ca, world.token_c, 10**19)
            await asyncio.to_thread(chain.transact, world.token_a.functions.transfer(world.v3_pool.address, 12345))
            await monitor.poll()
            return monitor.status()

    rows = {row["provider"]: row for row in asyncio.run(scenario())}
    a = world.a
    vault, pool, pair = (c.address for c in (fw.balancer.vault, world.v3_pool, world.pair_ca))
    liquidity = {name: {x["token"]: int(x["available"]) for x in row["liquidity"]} for name, row in rows.items()}
    assert liquidity["vault"] == {a: held(world.token_a, vault)}
    assert liquidity["pool"] == {a: held(world.token_a, pool), world.b: held(world.token_b, pool)}
    # A pair lends all but one unit of each reserve (its Sync'd balance).
    assert liquidity["pair"] == {a: held(world.token_a, pair) - 1, world.c: held(world.token_c, pair) - 1}
    assert rows["vault"]["fee_bps"] == 10 and rows["pool"]["fee_bps"] == 30
    assert rows["pair"]["fee_bps"] == pytest.approx(3 * 10_000 / 997)
    assert all(row["healthy"] and row["last_update_block"] == chain.w3.eth.block_number for row in rows.values())


@pytest.mark.parametrize("kind", ["aave_v3", "balancer_v2", "uniswap_v3", "uniswap_v2"])
def test_the_gas_a_loan_adds_is_within_its_allowance(fw: FlashWorld, kind: str) -> None:
    """LOAN_GAS[kind] is what the executor adds to the cycle's gas limit: the loan's real cost must fit."""
    world, w3 = fw.world, fw.chain.w3
    opportunity = world.opportunity(world.two_hop_v2())
    amount = opportunity.amount_in // 2  # a size every lender here holds
    fw.set_inventory(amount)

    async def load() -> dict[str, FlashProvider]:
        async with aiohttp.ClientSession() as session:
            return await _lenders(fw, HttpJsonRpc(rpc_url(fw.chain), session))

    provider = asyncio.run(load())[kind]
    fee_param, fee_denominator = provider.loan_fee()
    loan = Loan(kind, kind, provider.lender, world.a, amount, provider.fee(world.a, amount), fee_param, fee_denominator)
    hops = contract_hops(opportunity, world.store())
    head = w3.eth.block_number
    owner = w3.to_checksum_address(world.deployment.owner)
    to = world.contract.address

    def gas(data: bytes) -> int:
        return int(w3.eth.estimate_gas({"from": owner, "to": to, "data": "0x" + data.hex()}))

    on_inventory = gas(execute_calldata(hops, amount, 0, 0, head + 1))
    on_loan = gas(execute_flash_calldata(hops, amount, 0, 0, head + 1, loan))
    assert 0 < on_loan - on_inventory <= LOAN_GAS[kind], (on_loan, on_inventory)
