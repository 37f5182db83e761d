"""PancakeSwap V3 against its published contracts (@pancakeswap/v3-core 1.0.2) on anvil.

The package ships PancakeV3Factory and PancakeV3Pool artifacts (no pool deployer, no periphery), so
contracts/PancakeV3Harness.sol, compiled here with the repo's solc-js, stands in for the deployer the
factory calls and for a router that pays the pool's callbacks (pancakeV3MintCallback and
pancakeV3SwapCallback, not Uniswap's). Proven against the real factory and pool:

- amm/v3_forks.yml's pancakeswap_v3 entry: its Swap event text is the artifact's (two uint128 fields
  after tick), and its fee tiers are exactly the ones the deployed factory enables.
- The state syncer discovers the factory's pools from PoolCreated, reads them (slot0, liquidity,
  tickBitmap, ticks), and follows swaps by Pancake's own Swap topic plus mints and burns, so the store
  equals the pools after every block.
- simulate_swap on the store's state is the pool's swap to the wei: amount0, amount1, sqrtPriceX96,
  tick and liquidity of its Swap event, for exact input and exact output, in every fee tier, and
  whatever the simulation rejects the pool rejects too.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract
from web3.logs import DISCARD

from mevagent.amm import Revert, V3Hop, simulate_swap
from mevagent.amm.segments import exact_at, real_optimum
from mevagent.amm.v3 import MAX_TICK, MIN_TICK, get_sqrt_ratio_at_tick
from mevagent.amm.v3.pool import default_sqrt_price_limit
from mevagent.amm.v3_forks import v3_forks
from mevagent.executor.contract import ContractHop, execute_calldata
from mevagent.executor.contract import artifact as arb_artifact
from mevagent.rpc import RpcClient, connect
from mevagent.state import abi
from mevagent.state.config import SyncConfig
from mevagent.state.pools import PoolStore, V3Pool
from mevagent.state.reconcile import reconcile_ticks, word_range
from mevagent.state.sync import StateSyncer, parse_head
from testbed.evm import ANVIL, CONTRACTS, NODE_MODULES, V2_CORE, Chain, artifact, deploy_token
from testbed.pools import IpcAnvil

PANCAKE_CORE = "@pancakeswap/v3-core/artifacts/contracts"
FACTORY_ARTIFACT = f"{PANCAKE_CORE}/PancakeV3Factory.sol/PancakeV3Factory.json"
POOL_ARTIFACT = f"{PANCAKE_CORE}/PancakeV3Pool.sol/PancakeV3Pool.json"
HARNESS = CONTRACTS / "PancakeV3Harness.sol"
SOLCJS = NODE_MODULES / "solc" / "solc.js"  # 0.8.30's CLI (.bin/solcjs may be solc-js 0.7's)
FORK = v3_forks()["pancakeswap_v3"]
# Liquidity of the positions minted at the start, per pool: wide ones for depth, narrow ones so that
# middling swaps cross several initialized ticks, and one across several bitmap words.
POSITIONS = ((-60, 60), (-600, 1200), (-30_000, 30_000), (-5, 5), (0, 20), (-200_000, -100_000))
TOKEN_FUNDS = 1 << 190


@cache
def _harness() -> dict[str, tuple[list[dict[str, Any]], str]]:
    """(abi, creation bytecode) of each contract of PancakeV3Harness.sol, compiled with solc-js."""
    source = {"language": "Solidity", "sources": {HARNESS.name: {"content": HARNESS.read_text()}}}
    source["settings"] = {
        "evmVersion": "cancun",
        "optimizer": {"enabled": True, "runs": 200},
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
    }
    result = subprocess.run(
        [str(SOLCJS), "--standard-json"], input=json.dumps(source), capture_output=True, text=True, check=True
    )
    output = json.loads(result.stdout[result.stdout.index("{") :])
    errors = [e["formattedMessage"] for e in output.get("errors", []) if e["severity"] == "error"]
    assert not errors, errors
    return {
        name: (contract["abi"], "0x" + contract["evm"]["bytecode"]["object"])
        for name, contract in output["contracts"][HARNESS.name].items()
    }


def _deploy_harness(chain: Chain, name: str) -> Contract:
    contract_abi, bytecode = _harness()[name]
    receipt = chain.transact(chain.w3.eth.contract(abi=contract_abi, bytecode=bytecode).constructor())
    return chain.w3.eth.contract(address=receipt["contractAddress"], abi=contract_abi)


@dataclass
class Env:
    node: IpcAnvil
    chain: Chain
    factory: Contract
    trader: Contract
    pools: list[Contract]  # one per fee tier of the catalog
    # (pool index, lower, upper, liquidity) of every position the trader holds.
    positions: list[tuple[int, int, int, int]]
    # The syncer's bootstrap of the pools as set up, saved once: each example resumes from it (the
    # chain is reverted to that block after every example) instead of reading ~7800 bitmap words again.
    checkpoint: Path


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    if not ANVIL.is_file() or not SOLCJS.is_file():
        pytest.skip("anvil or solc-js is missing: run `make setup` (npm ci) first")
    if not (NODE_MODULES / POOL_ARTIFACT).is_file():
        pytest.skip("@pancakeswap/v3-core is missing: run `npm ci` at the repo root")
    node = IpcAnvil()
    node.start()
    try:
        chain = Chain(node.w3)
        deployer = _deploy_harness(chain, "TestPoolDeployer")
        chain.transact(deployer.functions.setPoolCode(artifact(POOL_ARTIFACT)[1]))
        factory = chain.deploy(FACTORY_ARTIFACT, deployer.address)
        trader = _deploy_harness(chain, "TestTrader")
        tokens = [deploy_token(chain), deploy_token(chain)]
        for token in tokens:
            chain.transact(token.functions.transfer(trader.address, TOKEN_FUNDS))
        pools, positions = [], []
        for index, (fee, spacing) in enumerate(sorted(FORK.fee_tiers.items())):
            chain.transact(factory.functions.createPool(tokens[0].address, tokens[1].address, fee))
            pool = chain.at(POOL_ARTIFACT, factory.functions.getPool(tokens[0].address, tokens[1].address, fee).call())
            # Different starting prices per pool, each inside the positions around tick 0.
            chain.transact(pool.functions.initialize(get_sqrt_ratio_at_tick(7 * index - 11)))
            for k, (lower, upper) in enumerate(POSITIONS):
                lower, upper = (lower // spacing) * spacing, -(-upper // spacing) * spacing
                if lower == upper:
                    upper += spacing
                liquidity = 10**21 // (k + 1) ** 3
                chain.transact(trader.functions.mint(pool.address, lower, upper, liquidity))
                positions.append((index, lower, upper, liquidity))
            pools.append(pool)
        env = Env(node, chain, factory, trader, pools, positions, node.dir / "pancake-pools.json")

        async def bootstrap(rpc: RpcClient) -> None:
            syncer = StateSyncer(PoolStore("anvil"), _config(env))
            await syncer.bootstrap(rpc)  # discovers the pools from the factory's PoolCreated logs
            _assert_store_is_the_chain(env, syncer.store)
            assert syncer.write_checkpoint()

        _run(env, bootstrap)
        yield env
    finally:
        node.close()


def _run(env: Env, scenario: Any) -> None:
    async def main() -> None:
        async with await connect(str(env.node.ipc_path), request_timeout=30) as rpc:
            await scenario(rpc)

    asyncio.run(main())


def _config(env: Env) -> SyncConfig:
    factory = {"kind": "v3", "address": env.factory.address, "fork": "pancakeswap_v3"}
    return SyncConfig(factories=(factory,), checkpoint_path=env.checkpoint)


def _signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(i['type'] for i in entry['inputs'])})"


def test_the_catalog_entry_is_the_published_contracts() -> None:
    pool_events = {e["name"]: _signature(e) for e in artifact(POOL_ARTIFACT)[0] if e["type"] == "event"}
    factory_events = {e["name"]: _signature(e) for e in artifact(FACTORY_ARTIFACT)[0] if e["type"] == "event"}
    assert pool_events["Swap"] == FORK.swap_event
    assert abi.V3_SWAP_BY_FORK["pancakeswap_v3"] == "0x" + keccak(text=pool_events["Swap"]).hex() != abi.V3_SWAP
    # Everything else the syncer decodes is emitted exactly as Uniswap's pool and factory emit it.
    for name, expected in (("Initialize", abi.V3_INITIALIZE), ("Mint", abi.V3_MINT), ("Burn", abi.V3_BURN)):
        assert "0x" + keccak(text=pool_events[name]).hex() == expected
    assert "0x" + keccak(text=factory_events["PoolCreated"]).hex() == abi.POOL_CREATED


def test_fee_tiers_are_exactly_the_ones_the_factory_enables(env: Env) -> None:
    spacing = env.factory.functions.feeAmountTickSpacing
    assert {fee: spacing(fee).call() for fee in FORK.fee_tiers} == FORK.fee_tiers
    # Uniswap's 0.3% tier is not one of Pancake's: the factory has no spacing for it.
    assert spacing(3000).call() == 0
    # Each pool reports the tier it was created in.
    assert [(p.functions.fee().call(), p.functions.tickSpacing().call()) for p in env.pools] == sorted(
        FORK.fee_tiers.items()
    )


def _assert_store_is_the_chain(env: Env, store: PoolStore) -> None:
    by_address = {p.address.lower(): p for p in env.pools}
    assert set(store.pools) == set(by_address)
    for address, pool in store.pools.items():
        assert isinstance(pool, V3Pool) and pool.fork == "pancakeswap_v3"
        contract = by_address[address]
        sqrt_price, tick, *_ = contract.functions.slot0().call()
        state = pool.state
        assert (state.sqrt_price_x96, state.tick, state.liquidity) == (
            sqrt_price,
            tick,
            contract.functions.liquidity().call(),
        )
        immutables = (contract.functions.fee().call(), contract.functions.tickSpacing().call())
        assert (state.fee, state.tick_spacing) == immutables


# An operation on one pool: ("swap", pool, zero_for_one, amount, exact_input) or ("mint"/"burn", ...).
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("swap"),
            st.integers(0, len(FORK.fee_tiers) - 1),
            st.booleans(),
            st.integers(0, 80).map(lambda bits: 1 << bits).flatmap(lambda top: st.integers(1, top)),
            st.booleans(),
        ),
        st.tuples(st.just("mint"), st.integers(0, len(FORK.fee_tiers) - 1), st.integers(-50, 50), st.integers(1, 60)),
        st.tuples(st.just("burn"), st.integers(0, len(POSITIONS) * len(FORK.fee_tiers) - 1), st.integers(1, 100)),
    ),
    min_size=1,
    max_size=6,
)


def _follow(env: Env, ops: list[tuple]) -> list[int]:
    """Run `ops` on the chain, one block each, checking every swap against the simulation before it
    and the syncer's store against the chain after it; the chain is reverted afterwards. Returns the
    initialized ticks each successful swap crossed."""
    chain = env.chain
    snapshot = chain.snapshot()
    crossed: list[int] = []

    async def scenario(rpc: RpcClient) -> None:
        syncer = StateSyncer(PoolStore("anvil"), _config(env))
        await syncer.start(rpc)
        assert syncer.stats.checkpoint_loads == 1  # resumed: the chain is back at the checkpoint's block
        _assert_store_is_the_chain(env, syncer.store)
        remaining = {i: position[3] for i, position in enumerate(env.positions)}
        for op in ops:
            if op[0] == "swap":
                _, index, zero_for_one, amount, exact_input = op
                pool = env.pools[index]
                state = syncer.store.pools[pool.address.lower()]
                assert isinstance(state, V3Pool)
                specified = amount if exact_input else -amount
                try:
                    expected = simulate_swap(state.state, zero_for_one, specified)
                except Revert:
                    expected = None
                limit = default_sqrt_price_limit(zero_for_one)
                receipt = chain.transact(
                    env.trader.functions.swap(pool.address, zero_for_one, specified, limit), expect_success=False
                )
                if expected is None:
                    assert receipt["status"] == 0
                    continue
                assert receipt["status"] == 1
                (event,) = pool.events.Swap().process_receipt(receipt, errors=DISCARD)
                args = event["args"]
                assert (args["amount0"], args["amount1"], args["sqrtPriceX96"], args["tick"], args["liquidity"]) == (
                    expected.amount0,
                    expected.amount1,
                    expected.sqrt_price_x96,
                    expected.tick,
                    expected.liquidity,
                )
                crossed.append(expected.ticks_crossed)
                (log,) = [entry for entry in receipt["logs"] if entry["address"] == pool.address]
                assert "0x" + log["topics"][0].hex().removeprefix("0x") == abi.V3_SWAP_BY_FORK["pancakeswap_v3"]
            elif op[0] == "mint":
                _, index, center, width = op
                spacing = env.pools[index].functions.tickSpacing().call()
                lower = max(center * 7 - width, MIN_TICK // spacing + 1) * spacing
                upper = min(center * 7 + width, MAX_TICK // spacing - 1) * spacing
                if lower >= upper:
                    continue
                chain.transact(env.trader.functions.mint(env.pools[index].address, lower, upper, 10**18 * width))
            else:
                _, position, percent = op
                index, lower, upper, _ = env.positions[position]
                # A percent of what is left: two burns of one position must never take more than it holds.
                amount = remaining[position] * percent // 100
                remaining[position] -= amount
                chain.transact(env.trader.functions.burn(env.pools[index].address, lower, upper, amount))
            head = await rpc.call("eth_getBlockByNumber", ["latest", False])
            await syncer.sync_to(rpc, parse_head("anvil", head))
            _assert_store_is_the_chain(env, syncer.store)
        # Every initialized tick of every pool (liquidityNet and liquidityGross) is the node's.
        for pool in syncer.store.pools.values():
            assert isinstance(pool, V3Pool)
            gross = syncer.gross[pool.address]
            drift = await reconcile_ticks(rpc, pool, gross, word_range(pool), syncer.store.block, [], 1000)
            assert drift == []

    try:
        _run(env, scenario)
    finally:
        chain.revert(snapshot)
    return crossed


@pytest.mark.timeout(600)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_swaps_simulate_to_the_wei_and_the_syncer_follows_pancakes_events(env: Env, ops: list[tuple]) -> None:
    _follow(env, ops)


def test_swaps_across_many_ticks_in_every_tier_both_ways(env: Env) -> None:
    ops: list[tuple] = [("burn", 3, 60), ("mint", 2, -2, 9)]
    for index in range(len(env.pools)):
        ops += [("swap", index, True, 3 * 10**20, True), ("swap", index, False, 5 * 10**20, False)]
    ops += [("swap", 0, True, 10**30, True)]  # more than the pool holds: it stops at the price limit
    crossed = _follow(env, ops)
    assert len(crossed) == len(ops) - 2  # every swap went through, as the simulation said
    assert min(crossed[:-1]) >= 2 and crossed[-1] >= 4


def test_the_arb_executor_trades_a_cycle_through_two_pancake_pools_for_the_predicted_profit(env: Env) -> None:
    # The ArbExecutor (its committed artifact) must pay each Pancake pool through pancakeV3SwapCallback:
    # a contract answering only Uniswap's callback name makes the pool revert.
    chain = env.chain
    snapshot = chain.snapshot()
    store = PoolStore("anvil")

    async def read(rpc: RpcClient) -> None:
        syncer = StateSyncer(store, _config(env))
        await syncer.start(rpc)  # the checkpoint of the fixture's block, then the trader's swap
        await syncer.sync_to(rpc, parse_head("anvil", await rpc.call("eth_getBlockByNumber", ["latest", False])))
        _assert_store_is_the_chain(env, store)

    try:
        # A trader sells token0 in the 0.01% tier: its price falls below the 0.05% tier's.
        dump = env.trader.functions.swap(env.pools[0].address, True, 2 * 10**18, default_sqrt_price_limit(True))
        chain.transact(dump)
        _run(env, read)
        low, high = (store.pools[pool.address.lower()] for pool in (env.pools[0], env.pools[1]))
        assert isinstance(low, V3Pool) and isinstance(high, V3Pool) and low.state.tick < high.state.tick
        # token0 buys more token1 where its price (the tick) is higher: sell it there, buy it back below.
        hops = [V3Hop(high.state, True), V3Hop(low.state, False)]
        optimum = real_optimum(hops)
        assert optimum is not None
        sized = exact_at(hops, optimum.amount_in)
        assert sized is not None and sized.profit > 0

        compiled = arb_artifact()
        deployed = chain.transact(
            chain.w3.eth.contract(abi=compiled["abi"], bytecode=compiled["bytecode"]).constructor(
                chain.w3.to_checksum_address(low.token0)
            )
        )
        executor = chain.w3.eth.contract(address=deployed["contractAddress"], abi=compiled["abi"])
        token = chain.at(f"{V2_CORE}/ERC20.json", chain.w3.to_checksum_address(low.token0))
        chain.transact(token.functions.transfer(executor.address, sized.amount_in))
        route = (
            ContractHop(high.address, high.token0, high.token1, True, 0, 0),
            ContractHop(low.address, low.token1, low.token0, True, 0, 0),
        )
        calldata = execute_calldata(route, sized.amount_in, sized.profit, 0, chain.w3.eth.block_number + 5)
        before = token.functions.balanceOf(executor.address).call()
        tx = {"from": chain.account, "to": executor.address, "data": calldata, "gas": 2_000_000, "gasPrice": 0}
        receipt = chain.w3.eth.wait_for_transaction_receipt(chain.w3.eth.send_transaction(tx), timeout=60)
        assert receipt["status"] == 1
        assert token.functions.balanceOf(executor.address).call() - before == sized.profit  # to the wei
    finally:
        chain.revert(snapshot)
