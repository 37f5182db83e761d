"""The executor end to end on anvil: sized by mevagent.amm, simulated, risk-checked, signed, sent to
real local builder endpoints (or the chain's sequencer) and landed; or, in dry-run, only simulated.

A "winner" builder forwards what it receives to the node, as the builder that wins the block would;
the others accept without including, answer 503, or hang past their timeout.
"""

import asyncio
import dataclasses
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import pytest

from mevagent.config import RiskLimits
from mevagent.core import Hop, Opportunity, Outcome, Status
from mevagent.executor.config import BuilderEndpoint, ChainExecution
from mevagent.executor.contract import artifact
from mevagent.executor.deploy import Deployment, deploy_contract
from mevagent.executor.executor import ArbitrageExecutor, ExecutionReport, opportunity_id, shortfall
from mevagent.executor.keys import Signer
from mevagent.executor.rpc import HttpJsonRpc, RpcError, is_out_of_gas
from testbed.arb import (
    CHAIN,
    GAS_LIMIT,
    ArbWorld,
    BuilderBehaviour,
    CountingRisk,
    LocalBuilder,
    _swap_v2,
    builders,
    rpc_url,
)
from testbed.evm import deploy_v2_pair, set_v2_reserves

from .conftest import arb_world_fixtures

V2_PERIPHERY = "@uniswap/v2-periphery/build"

ROUTES = ["two_hop_v2", "three_hop_v2", "v2_then_v3", "v3_then_v2"]
FAN_OUT = [
    BuilderBehaviour("winner", include=True),
    BuilderBehaviour("idle"),
    BuilderBehaviour("broken", status=503),
    BuilderBehaviour("hanging", delay_s=30.0),
]


world, isolated = arb_world_fixtures("executor")
SLIPPAGE_BPS = RiskLimits().max_slippage_bps  # what an agent runs with unless its risk limits say otherwise


def _config(world: ArbWorld, servers: Sequence[LocalBuilder], **overrides: object) -> ChainExecution:
    endpoints = [
        BuilderEndpoint(
            name=s.behaviour.name,
            url=s.url,
            timeout_ms=100 if s.behaviour.delay_s > 1 else 2000,
            call_bundle=s.behaviour.name.startswith("simulating"),
        )
        for s in servers
    ]
    settings: dict[str, object] = {
        "chain": CHAIN,
        "chain_id": world.chain.w3.eth.chain_id,
        "rpc_url": rpc_url(world.chain),
        "contract": world.deployment.address,
        "key_file": world.key_file,
        "identity_key_file": world.identity_file,
        "builders": endpoints,
        "receipt_poll_ms": 10,
        "live": True,
    }
    settings.update(overrides)
    return ChainExecution.model_validate(settings)


@dataclass
class Run:
    outcomes: list[Outcome]
    reports: list[ExecutionReport]
    servers: list[LocalBuilder]
    relays: list[dict]
    in_flight: frozenset[int]


def _run(
    world: ArbWorld,
    opportunities: Sequence[Opportunity],
    risk: CountingRisk,
    behaviours: Sequence[BuilderBehaviour] = FAN_OUT,
    *,
    mine_every_s: float | None = None,
    max_slippage_bps: float = SLIPPAGE_BPS,
    **overrides: object,
) -> Run:
    async def scenario() -> Run:
        async with builders(behaviours, rpc_url(world.chain)) as servers:
            executor = await ArbitrageExecutor.open(
                _config(world, servers, **overrides),
                world.store(),
                risk,
                max_slippage_bps=lambda: max_slippage_bps,
            )
            miner = None
            if mine_every_s is not None:  # anvil mines only on transactions: give time a block height

                async def mine() -> None:
                    while True:
                        await executor.rpc.call("evm_mine", [])
                        await asyncio.sleep(mine_every_s)

                miner = asyncio.create_task(mine())
            try:
                outcomes = [await executor.execute(opportunity) for opportunity in opportunities]
            finally:
                if miner is not None:
                    miner.cancel()
                await executor.aclose()
            in_flight = executor.nonces.in_flight if executor.nonces else frozenset()
            return Run(outcomes, list(executor.reports), servers, executor.relays.snapshot(), in_flight)

    return asyncio.run(scenario())


def test_a_landed_bundle_reports_its_builder_payment_apart_from_gas(isolated: ArbWorld) -> None:
    """The coinbase transfer is in the outcome's gas cost (as ever) and, on its own, in builder_paid_usd."""
    world = isolated
    w3 = world.chain.w3
    # The cycle token is not the wrapped native token: the contract pays the builder from its native balance.
    w3.provider.make_request("anvil_setBalance", [world.contract.address, hex(10**18)])
    payment, gas_price = 12_345, 10**9
    probe = world.opportunity(world.two_hop_v2())
    usd_per_wei = probe.profit_usd * 1e-3 / (GAS_LIMIT * gas_price)  # the whole budget: about 0.1% of the profit
    opportunity = world.opportunity(
        world.two_hop_v2(), builder_payment=payment, gas_price=gas_price,
        gas_cost_usd=usd_per_wei * (GAS_LIMIT * gas_price + payment), opportunity_id="builder-paid",
    )  # fmt: skip
    coinbase = w3.eth.get_block("latest")["miner"]
    before = w3.eth.get_balance(coinbase)
    (outcome,) = _run(world, [opportunity], CountingRisk()).outcomes
    assert outcome.status is Status.LANDED, outcome.reason
    assert outcome.builder_paid_usd == pytest.approx(usd_per_wei * payment)
    assert outcome.gas_cost_usd >= outcome.builder_paid_usd > 0  # gas itself may be free on this anvil
    assert w3.eth.get_balance(world.contract.address) == 10**18 - payment
    assert w3.eth.get_balance(coinbase) - before >= payment


def _weth_world(world: ArbWorld) -> ArbWorld:
    """The fixture's two-pair cycle with WETH9 as the cycle token, and an ArbExecutor deployed with that
    WETH as its wrapped native token, holding WETH inventory (inside the test's snapshot)."""
    chain, w3 = world.chain, world.chain.w3
    w3.provider.make_request("anvil_setBalance", [chain.account, hex(10**24)])
    weth = chain.deploy(f"{V2_PERIPHERY}/WETH9.json")
    deposit = weth.functions.deposit().transact({"from": chain.account, "value": 10**21, "gas": 100_000, "gasPrice": 0})
    assert w3.eth.wait_for_transaction_receipt(deposit, timeout=60, poll_latency=0.01)["status"] == 1
    pairs = []
    for _ in range(2):
        pair = deploy_v2_pair(chain, weth, world.token_b)
        token0, token1 = (weth, world.token_b) if int(weth.address, 16) < int(world.b, 16) else (world.token_b, weth)
        set_v2_reserves(chain, pair, token0, token1, 10**20, 10**20)
        pairs.append(pair)
    _swap_v2(chain, pairs[0], world.token_b, 4 * 10**19)  # WETH is dear in the first pair

    async def deploy() -> Deployment:
        async with aiohttp.ClientSession() as session:
            rpc = HttpJsonRpc(rpc_url(chain), session)
            return await deploy_contract(rpc, Signer.from_file(world.key_file), weth.address.lower())

    deployment = asyncio.run(deploy())
    contract = w3.eth.contract(address=w3.to_checksum_address(deployment.address), abi=artifact()["abi"])
    chain.transact(weth.functions.transfer(contract.address, 10**20))
    return dataclasses.replace(
        world, deployment=deployment, contract=contract, token_a=weth, pair_ab_dear=pairs[0], pair_ab_cheap=pairs[1]
    )


def test_a_payment_out_of_a_wrapped_native_cycle_is_counted_once(isolated: ArbWorld) -> None:
    """The contract unwraps the payment out of the WETH profit and reports the profit after it; the
    outcome values the profit before it, so realized - gas_cost (which holds the payment) nets it once."""
    world = _weth_world(isolated)
    w3 = world.chain.w3
    gas_price, usd_per_wei = 10**9, 2e-15  # WETH and the native coin at the one price
    probe = world.opportunity(world.two_hop_v2(), usd_per_a=usd_per_wei)
    payment = probe.gross_profit // 3
    opportunity = world.opportunity(
        world.two_hop_v2(), builder_payment=payment, gas_price=gas_price, usd_per_a=usd_per_wei,
        gas_cost_usd=usd_per_wei * (GAS_LIMIT * gas_price + payment), opportunity_id="paid-from-profit",
    )  # fmt: skip
    # Dry-run: the simulated profit is after the payment too, and gas_cost_usd is the opportunity's.
    (dry,) = _run(world, [opportunity], CountingRisk(), wrapped_native=world.a, live=False).outcomes
    assert dry.status is Status.DRY_RUN and "would keep" in dry.reason, dry.reason
    assert dry.realized_profit_usd == pytest.approx(opportunity.profit_usd)
    coinbase = w3.eth.get_block("latest")["miner"]
    before, coinbase_before = world.balance(world.token_a), w3.eth.get_balance(coinbase)
    native_before = w3.eth.get_balance(world.contract.address)
    run = _run(world, [opportunity], CountingRisk(), wrapped_native=world.a)
    (outcome,), (report,) = run.outcomes, run.reports
    assert outcome.status is Status.LANDED, outcome.reason
    receipt = w3.eth.get_transaction_receipt(outcome.tx_hashes[0])
    block = w3.eth.get_block(receipt["blockNumber"])
    tips = receipt["gasUsed"] * (receipt["effectiveGasPrice"] - block.get("baseFeePerGas", 0))
    gas_paid = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(coinbase) - coinbase_before == payment + tips
    assert w3.eth.get_balance(world.contract.address) == native_before  # unwrapped and paid on at once
    kept = world.balance(world.token_a) - before
    assert report.profit_wei == kept == opportunity.gross_profit - payment
    assert outcome.builder_paid_usd == pytest.approx(usd_per_wei * payment)
    net = outcome.realized_profit_usd - outcome.gas_cost_usd
    assert net == pytest.approx(usd_per_wei * (kept - gas_paid))
    assert outcome.realized_profit_usd == pytest.approx(opportunity.profit_usd)


def _executor_nonce(world: ArbWorld) -> int:
    return world.chain.w3.eth.get_transaction_count(world.chain.w3.to_checksum_address(world.deployment.owner))


@pytest.mark.parametrize("route", ROUTES)
def test_live_bundle_lands_and_realized_profit_equals_predicted_to_the_wei(isolated: ArbWorld, route: str) -> None:
    world = isolated
    opportunity = world.opportunity(getattr(world, route)(), opportunity_id=f"live-{route}")
    head = world.chain.w3.eth.block_number
    before, nonce_before = world.balance(world.token_a), _executor_nonce(world)
    risk = CountingRisk()
    run = _run(world, [opportunity], risk)
    (outcome,) = run.outcomes
    assert outcome.status is Status.LANDED, outcome.reason
    assert world.balance(world.token_a) - before == opportunity.gross_profit
    (report,) = run.reports
    assert report.profit_wei == opportunity.gross_profit and report.tx_hash == outcome.tx_hashes[0]
    assert outcome.realized_profit_usd == pytest.approx(opportunity.profit_usd)
    assert risk.checks == [opportunity.id] and risk.records == [outcome]
    assert _executor_nonce(world) == nonce_before + 1 and run.in_flight == frozenset()

    for server in run.servers:  # every builder was offered the same transaction for N+1..N+3
        blocks = sorted(int(b.params["blockNumber"], 16) for b in server.bundles)
        assert blocks == [head + 1, head + 2, head + 3]
        assert {tuple(b.params["txs"]) for b in server.bundles} == {tuple(server.bundles[0].params["txs"])}
        assert all(b.signer == b.claimed != world.deployment.owner for b in server.bundles)
    statuses = {row["name"]: row["last_status"] for row in run.relays}
    assert statuses == {"winner": "ok", "idle": "ok", "broken": "http_503", "hanging": "timeout"}


def test_risk_is_asked_after_the_nonce_is_reserved_and_before_anything_is_sent(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.two_hop_v2(), opportunity_id="order")
    observed: list[tuple[int, int]] = []
    node_url = rpc_url(world.chain)

    async def scenario() -> Outcome:
        async with builders(FAN_OUT, node_url) as servers:
            risk = CountingRisk()
            executor = await ArbitrageExecutor.open(
                _config(world, servers), world.store(), risk, max_slippage_bps=lambda: SLIPPAGE_BPS
            )
            assert executor.nonces is not None
            risk.on_check = lambda _: observed.append(
                (len(executor.nonces.in_flight), sum(len(s.received) for s in servers))  # type: ignore[union-attr]
            )
            try:
                return await executor.execute(opportunity)
            finally:
                await executor.aclose()

    assert asyncio.run(scenario()).status is Status.LANDED
    assert observed == [(1, 0)]


def test_live_sequencer_path_lands_with_the_predicted_profit(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.v2_then_v3(), opportunity_id="sequencer")
    before = world.balance(world.token_a)
    risk = CountingRisk()
    run = _run(
        world,
        [opportunity],
        risk,
        [],
        submission="sequencer",
        sequencer_url=rpc_url(world.chain),
        builders=[],
        identity_key_file=None,
    )
    assert run.outcomes[0].status is Status.LANDED, run.outcomes[0].reason
    assert world.balance(world.token_a) - before == opportunity.gross_profit
    assert [row["name"] for row in run.relays] == ["sequencer"] and run.relays[0]["ok"] == 1


def test_a_sequencer_chain_runs_one_execution_per_pool_at_a_time(isolated: ArbWorld) -> None:
    # A sequencer includes what it is sent and charges gas for a revert. Two cycles through the same
    # pools, started together against the same head, would both pass the simulation and the second
    # would revert on chain: it is refused before anything is signed, and once the first has settled
    # the pool is free again.
    world = isolated
    first = world.opportunity(world.v2_then_v3(), opportunity_id="first")
    second = world.opportunity(world.v2_then_v3(), opportunity_id="second")
    nonce = _executor_nonce(world)
    risk = CountingRisk()

    async def scenario() -> tuple[list[Outcome], Outcome]:
        config = _config(
            world, [], submission="sequencer", sequencer_url=rpc_url(world.chain), builders=[], identity_key_file=None
        )
        executor = await ArbitrageExecutor.open(config, world.store(), risk, max_slippage_bps=lambda: SLIPPAGE_BPS)
        try:
            together = list(await asyncio.gather(executor.execute(first), executor.execute(second)))
            # Settled: the pool is free. The first trade closed the gap, so the head simulation says so.
            return together, await executor.execute(dataclasses.replace(second, id="second, again"))
        finally:
            await executor.aclose()

    (landed, refused), again = asyncio.run(scenario())
    assert landed.status is Status.LANDED, landed.reason
    assert refused.status is Status.REJECTED and refused.reason.startswith("pool in flight: ")
    assert again.status is Status.FAILED and again.reason.startswith("simulation reverted"), again.reason
    assert _executor_nonce(world) == nonce + 1  # only the first was signed and sent
    assert risk.checks == ["first"]  # the refused one never reached the risk gate


def test_dry_run_simulates_and_sends_nothing(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.three_hop_v2(), opportunity_id="dry")
    w3 = world.chain.w3
    head, nonce, balance = w3.eth.block_number, _executor_nonce(world), world.balance(world.token_a)
    risk = CountingRisk()
    run = _run(world, [opportunity], risk, live=False)
    (outcome,) = run.outcomes
    assert outcome.status is Status.DRY_RUN, outcome.reason
    assert run.reports[0].profit_wei == opportunity.gross_profit  # what it would have earned, exactly
    assert outcome.realized_profit_usd == pytest.approx(opportunity.profit_usd)
    assert (w3.eth.block_number, _executor_nonce(world), world.balance(world.token_a)) == (head, nonce, balance)
    assert all(not server.received for server in run.servers)
    assert all(row["requests"] == 0 for row in run.relays)
    assert risk.records == [outcome]


def test_dry_run_is_the_default(world: ArbWorld) -> None:
    config = ChainExecution(
        chain=CHAIN, chain_id=1, rpc_url="http://127.0.0.1:1", builders=[{"name": "b", "url": "http://127.0.0.1:2"}]
    )
    assert config.live is False


def test_dry_run_reports_the_revert_once_the_gap_has_closed(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.two_hop_v2(), opportunity_id="stale")
    _swap_v2(world.chain, world.pair_ab_dear, world.token_a, 3 * 10**20)  # someone else closes the gap
    run = _run(world, [opportunity], CountingRisk(), live=False)
    (outcome,) = run.outcomes
    assert outcome.status is Status.DRY_RUN and outcome.realized_profit_usd == 0
    assert "InsufficientProfit(" in outcome.reason


def test_risk_refusal_means_nothing_is_signed_or_sent(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.two_hop_v2(), usd_per_a=1e-15, opportunity_id="too-big")
    w3 = world.chain.w3
    head, nonce = w3.eth.block_number, _executor_nonce(world)
    risk = CountingRisk(max_notional_usd=1000.0)
    run = _run(world, [opportunity], risk)
    (outcome,) = run.outcomes
    assert outcome.status is Status.REJECTED and outcome.reason.startswith("max_position_size")
    assert outcome.tx_hashes == ()
    assert all(not server.received for server in run.servers)
    assert (w3.eth.block_number, _executor_nonce(world)) == (head, nonce)
    assert run.in_flight == frozenset() and risk.records == []  # a refusal reserves nothing to release


def test_a_gas_limit_the_cycle_cannot_run_on_fails_the_head_simulation_and_nothing_is_signed(
    isolated: ArbWorld,
) -> None:
    """The head simulation runs with the transaction's gas limit: without it the node's own cap carried the call,
    and a transaction signed with a limit too low for the cycle ran out of gas on chain."""
    world = isolated
    opportunity = dataclasses.replace(world.opportunity(world.two_hop_v2(), opportunity_id="thin"), gas_limit=120_000)
    head, nonce = world.chain.w3.eth.block_number, _executor_nonce(world)
    risk = CountingRisk()
    run = _run(world, [opportunity], risk)
    (outcome,) = run.outcomes
    assert outcome.status is Status.FAILED, outcome
    # The cycle's inner calls run out of the 63/64 they are given: the contract reverts without a reason.
    assert outcome.reason.startswith("simulation reverted: "), outcome.reason
    assert outcome.tx_hashes == () and all(not server.received for server in run.servers)
    assert (world.chain.w3.eth.block_number, _executor_nonce(world)) == (head, nonce)
    assert risk.checks == [] and run.in_flight == frozenset()
    # The same cycle with the fixture's gas limit lands.
    (landed,) = _run(world, [world.opportunity(world.two_hop_v2(), opportunity_id="thick")], CountingRisk()).outcomes
    assert landed.status is Status.LANDED, landed


def test_a_call_out_of_its_gas_is_told_from_a_node_failure() -> None:
    # geth answers a top-level eth_call that exhausts its gas with "out of gas" (no revert code), anvil with
    # "OutOfGas"; neither is the node failing.
    assert is_out_of_gas(RpcError("eth_call", -32000, "out of gas"))
    assert is_out_of_gas(RpcError("eth_call", -32003, "EVM error OutOfGas"))
    assert not is_out_of_gas(RpcError("eth_call", -32000, "header not found"))
    assert not is_out_of_gas(RpcError("eth_call", -32000, "intrinsic gas too high -- GasFloorMoreThanGasLimit"))


def test_the_same_opportunity_is_submitted_once(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.two_hop_v2())
    assert opportunity.id == "" and opportunity_id(opportunity) == opportunity_id(world.opportunity(world.two_hop_v2()))
    risk = CountingRisk()
    run = _run(world, [opportunity, opportunity], risk)
    first, second = run.outcomes
    assert first.status is Status.LANDED
    assert second.status is Status.REJECTED and second.reason.startswith("duplicate")
    assert len(risk.checks) == 1
    assert all(len(server.bundles) == 3 for server in run.servers)  # the first submission's three blocks only


def test_a_cycle_that_does_not_cover_its_gas_is_never_signed(isolated: ArbWorld) -> None:
    world = isolated
    # Gas priced above the gross profit: the contract's minimum profit exceeds what the cycle pays.
    opportunity = world.opportunity(world.two_hop_v2(), gas_cost_usd=10.0, usd_per_a=1e-19, opportunity_id="costly")
    assert opportunity.net_profit_usd < 0
    risk = CountingRisk()
    run = _run(world, [opportunity], risk)
    (outcome,) = run.outcomes
    assert outcome.status is Status.FAILED and "InsufficientProfit(" in outcome.reason
    assert risk.checks == [] and all(not server.received for server in run.servers)


def test_a_bundle_nobody_includes_fails_after_its_last_block_and_frees_its_nonce(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.two_hop_v2(), opportunity_id="unseen")
    nonce = _executor_nonce(world)
    risk = CountingRisk()
    run = _run(world, [opportunity], risk, [BuilderBehaviour("idle")], mine_every_s=0.02, target_blocks=2)
    (outcome,) = run.outcomes
    assert outcome.status is Status.FAILED and outcome.reason.startswith("not included in blocks")
    assert run.in_flight == frozenset() and _executor_nonce(world) == nonce
    assert risk.records == [outcome]


def test_no_builder_accepting_fails_at_once_and_frees_the_nonce(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.two_hop_v2(), opportunity_id="refused")
    risk = CountingRisk()
    behaviours = [BuilderBehaviour("down", status=502), BuilderBehaviour("hanging", delay_s=30.0)]
    run = _run(world, [opportunity], risk, behaviours)
    (outcome,) = run.outcomes
    assert outcome.status is Status.FAILED and outcome.reason.startswith("no endpoint accepted it")
    assert "down@" in outcome.reason and "timeout" in outcome.reason
    assert run.in_flight == frozenset() and risk.records == [outcome]


def test_keys_never_show(world: ArbWorld) -> None:
    signer = Signer.from_file(world.key_file)
    secret = world.key_file.read_text().strip().removeprefix("0x")
    assert secret not in repr(signer) and secret not in str(signer)
    assert "redacted" in repr(signer)


def test_a_builder_offering_call_bundle_simulates_the_signed_bundle_before_it_is_sent(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.v3_then_v2(), opportunity_id="call-bundle")
    before = world.balance(world.token_a)
    behaviours = [BuilderBehaviour("simulating", include=True), BuilderBehaviour("idle")]
    run = _run(world, [opportunity], CountingRisk(), behaviours)
    assert run.outcomes[0].status is Status.LANDED, run.outcomes[0].reason
    assert world.balance(world.token_a) - before == opportunity.gross_profit
    simulating, idle = run.servers
    assert [r.method for r in simulating.received] == ["eth_callBundle"] + ["eth_sendBundle"] * 3
    assert all(r.method == "eth_sendBundle" for r in idle.received)
    simulated = next(row for row in run.relays if row["name"] == "simulating")
    assert (simulated["requests"], simulated["ok"]) == (4, 4)  # the simulation answered, and said it pays


def test_a_revert_in_the_builder_simulation_sends_nothing_and_frees_the_nonce(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.two_hop_v2(), opportunity_id="call-bundle-revert")
    nonce = _executor_nonce(world)
    behaviours = [BuilderBehaviour("simulating", call_bundle_revert="InsufficientProfit"), BuilderBehaviour("idle")]
    risk = CountingRisk()
    run = _run(world, [opportunity], risk, behaviours)
    (outcome,) = run.outcomes
    assert outcome.status is Status.FAILED and "simulation at simulating reverted" in outcome.reason
    assert all(not server.bundles for server in run.servers)
    assert run.in_flight == frozenset() and _executor_nonce(world) == nonce and risk.records == [outcome]


def test_a_stalled_chain_does_not_hold_the_executor_forever(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.two_hop_v2(), opportunity_id="stalled")
    nonce = _executor_nonce(world)
    risk = CountingRisk()
    # The builder accepts, nobody includes, and anvil makes no block: the head never passes N+k.
    run = _run(world, [opportunity], risk, [BuilderBehaviour("idle")], inclusion_timeout_s=0.3)
    (outcome,) = run.outcomes
    assert outcome.status is Status.FAILED and outcome.reason.startswith("no receipt and no block past")
    assert run.in_flight == frozenset() and _executor_nonce(world) == nonce and risk.records == [outcome]


def test_a_node_that_does_not_answer_fails_the_execution_before_anything_is_signed(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.two_hop_v2(), opportunity_id="no-node")
    risk = CountingRisk()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    run = _run(world, [opportunity], risk, rpc_url=closed)
    (outcome,) = run.outcomes
    assert outcome.status is Status.FAILED and outcome.reason.startswith("before signing: ClientConnectorError")
    assert risk.checks == [] and all(not server.received for server in run.servers)


# -- the head simulation against the prediction --------------------------------------------------------

# Selling 10 A into the dear pair after detection leaves the two-hop cycle paying ~43 A instead of ~47 A
# (3.5 A short, beyond 50 bps of its ~165 A output) but still well above break-even, so the contract's
# minProfit alone would let it through; 1 A leaves it ~0.36 A short, within the tolerance.
MOVED_PAST_TOLERANCE = 10 * 10**18
MOVED_WITHIN_TOLERANCE = 10**18


def _moved_after_detection(world: ArbWorld, opportunity_id: str, amount: int) -> tuple[Opportunity, int]:
    """An opportunity detected now, then a trader's swap into the pool it sells into; and what the same
    amount in pays on the moved pools (the pool store re-read, sized by mevagent.amm at the same input)."""
    detected = world.opportunity(world.two_hop_v2(), opportunity_id=opportunity_id)
    _swap_v2(world.chain, world.pair_ab_dear, world.token_a, amount)
    now = world.opportunity(world.two_hop_v2(), amount_in=detected.amount_in)
    assert 0 < now.gross_profit < detected.gross_profit
    return detected, now.gross_profit


def test_live_refuses_to_sign_when_the_head_simulation_falls_short_of_the_prediction(isolated: ArbWorld) -> None:
    world = isolated
    opportunity, simulated = _moved_after_detection(world, "moved", MOVED_PAST_TOLERANCE)
    tolerance = opportunity.amount_out * SLIPPAGE_BPS / 10_000
    assert opportunity.gross_profit - simulated > tolerance
    w3 = world.chain.w3
    head, nonce, balance = w3.eth.block_number, _executor_nonce(world), world.balance(world.token_a)
    risk = CountingRisk()
    run = _run(world, [opportunity], risk)
    (outcome,) = run.outcomes
    assert outcome.status is Status.FAILED and outcome.reason.startswith(
        "simulation at the head short of the prediction"
    )
    assert f"would keep {simulated} of {opportunity.token}, predicted {opportunity.gross_profit}" in outcome.reason
    assert f"{SLIPPAGE_BPS:g} bps" in outcome.reason and outcome.tx_hashes == ()
    # Nothing signed or sent, no nonce taken, and not booked with the risk gate (no breaker failure).
    assert all(not server.received for server in run.servers)
    assert (w3.eth.block_number, _executor_nonce(world), world.balance(world.token_a)) == (head, nonce, balance)
    assert run.in_flight == frozenset() and risk.checks == [] and risk.records == []
    assert run.reports[0].profit_wei is None  # nothing was kept


def test_dry_run_reports_that_live_would_not_sign_a_cycle_the_head_pays_less_for(isolated: ArbWorld) -> None:
    world = isolated
    opportunity, simulated = _moved_after_detection(world, "moved-dry", MOVED_PAST_TOLERANCE)
    risk = CountingRisk()
    run = _run(world, [opportunity], risk, live=False)
    (outcome,) = run.outcomes
    assert outcome.status is Status.DRY_RUN
    assert outcome.reason.startswith("live would not sign: simulation at the head short of the prediction")
    assert f"would keep {simulated} of {opportunity.token}, predicted {opportunity.gross_profit}" in outcome.reason
    assert outcome.realized_profit_usd == 0 and run.reports[0].profit_wei == simulated
    assert all(not server.received for server in run.servers) and risk.records == [outcome]


@pytest.mark.parametrize(
    ("moved", "max_slippage_bps"),
    [(MOVED_WITHIN_TOLERANCE, SLIPPAGE_BPS), (MOVED_PAST_TOLERANCE, 500.0)],
    ids=["small-move", "wide-tolerance"],
)
def test_a_head_simulation_within_the_tolerance_is_signed_and_lands(
    isolated: ArbWorld, moved: int, max_slippage_bps: float
) -> None:
    world = isolated
    opportunity, simulated = _moved_after_detection(world, f"within-{moved}", moved)
    assert opportunity.gross_profit - simulated <= opportunity.amount_out * max_slippage_bps / 10_000
    before = world.balance(world.token_a)
    risk = CountingRisk()
    run = _run(world, [opportunity], risk, max_slippage_bps=max_slippage_bps)
    (outcome,) = run.outcomes
    assert outcome.status is Status.LANDED, outcome.reason
    assert world.balance(world.token_a) - before == run.reports[0].profit_wei == simulated
    assert risk.checks == [opportunity.id] and risk.records == [outcome]


def _opp(amount_in: int, amount_out: int, builder_payment: int = 0) -> Opportunity:
    hop = Hop("0x" + "01" * 20, "v2", "0x" + "aa" * 20, "0x" + "bb" * 20)
    return Opportunity("anvil", "dex_arb", 1, (hop,), amount_in, amount_out, 1, 1, builder_payment, 1.0, 1.0, 0.1, 0)


def test_the_tolerance_is_max_slippage_bps_of_the_output_to_the_wei() -> None:
    opportunity = _opp(90_000, 100_000)  # predicted 10 000; 50 bps of the output is 500
    assert shortfall(opportunity, 9_500, False, 50.0) == ""
    assert shortfall(opportunity, 12_000, False, 50.0) == ""  # better than predicted is never refused
    refusal = shortfall(opportunity, 9_499, False, 50.0)
    assert "would keep 9499 of" in refusal and "predicted 10000: 501 short" in refusal and "(500)" in refusal
    assert shortfall(opportunity, 9_999, False, 0.0) != ""
    # A builder payment the contract took out of the profit is part of the prediction: added back.
    paid = _opp(90_000, 100_000, builder_payment=2_000)
    assert shortfall(paid, 7_500, True, 50.0) == ""
    assert shortfall(paid, 7_500, False, 50.0) != ""
