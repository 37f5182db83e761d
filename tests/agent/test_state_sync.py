"""The state syncer against real Uniswap V2/V3 contracts on anvil: bootstrap, exact log application,
gap fill with pools created on the way, checkpoints, reconciliation and reorg rollback.

After every scenario the whole store (reserves; V3 price, tick, in-range liquidity, every initialized
tick's liquidityNet and liquidityGross) is compared with what the contracts return.
"""

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak, to_checksum_address

from mevagent.core import Head
from mevagent.rpc import RpcClient, RpcError, connect
from mevagent.state import checkpoint
from mevagent.state.pools import PoolStore, V2Pool, V3Pool
from mevagent.state.sync import StateSyncer, parse_head
from testbed.evm import ANVIL, Chain, artifact, deploy_token
from testbed.pools import V2_CORE, V3_CORE, IpcAnvil, Pools, Position, deploy_pools


@dataclass
class Env:
    node: IpcAnvil
    pools: Pools


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    if not ANVIL.is_file():
        pytest.skip("anvil is missing: run `make setup` (npm ci) first")
    node = IpcAnvil()
    node.start()
    try:
        yield Env(node, deploy_pools(Chain(node.w3), random.Random(20261125)))
    finally:
        node.close()


async def latest(rpc: RpcClient) -> Head:
    return parse_head("anvil", await rpc.call("eth_getBlockByNumber", ["latest", False]))


async def activity(env: Env, rng: random.Random, blocks: int) -> None:
    for _ in range(blocks):
        await asyncio.to_thread(env.pools.random_block, rng)


def run(env: Env, scenario: Callable[[RpcClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with await connect(str(env.node.ipc_path), request_timeout=10) as rpc:
            await scenario(rpc)

    asyncio.run(main())


def test_bootstrap_reads_every_pool_and_tick_exactly(env: Env) -> None:
    async def scenario(rpc: RpcClient) -> None:
        syncer = StateSyncer(PoolStore("anvil"), env.pools.sync_config())
        await syncer.bootstrap(rpc)
        assert syncer.store.block == (await latest(rpc)).number
        assert env.pools.assert_store_matches(syncer.store, syncer.gross) == 5
        v3 = [p for p in syncer.store.pools.values() if isinstance(p, V3Pool)]
        assert all(len(p.state.ticks) >= 2 for p in v3), "the pools were minted with positions"

    run(env, scenario)


@pytest.mark.parametrize("seed", [1, 2])
def test_every_block_applied_from_logs_equals_the_contracts(env: Env, seed: int) -> None:
    """Head by head, as the collector drives it: swaps, mints and burns on both kinds of pool, some
    blocks holding several of them, the store equal to the contracts after each block."""

    async def scenario(rpc: RpcClient) -> None:
        syncer = StateSyncer(PoolStore("anvil"), env.pools.sync_config())
        await syncer.bootstrap(rpc)
        rng = random.Random(seed)
        changed_any = 0
        for _ in range(15):
            await activity(env, rng, 1)
            head = await latest(rpc)
            changed = await syncer.sync_to(rpc, head)
            changed_any += bool(changed)
            assert syncer.store.block == head.number and syncer.tip.hash == head.hash
            env.pools.assert_store_matches(syncer.store, syncer.gross, head.number)
        assert changed_any and syncer.stats.logs_applied > 15
        assert syncer.stats.reorgs == syncer.stats.divergences == 0

    run(env, scenario)


def _create2(deployer: str, salt: bytes, init_code: str) -> str:
    digest = keccak(b"\xff" + bytes.fromhex(deployer[2:]) + salt + keccak(hexstr=init_code))
    return to_checksum_address(digest[12:])


def test_gap_fill_in_chunks_picks_up_pools_created_on_the_way(env: Env) -> None:
    """A long gap, applied in chunks of 4 blocks with a 3-block undo window, during which a V2 pair
    and a V3 pool are created *and funded in their creation block*: their first logs are in the
    same block as the factory's event, so the syncer must fetch them once it knows the address."""
    pools = env.pools
    chain = pools.chain

    async def scenario(rpc: RpcClient) -> None:
        syncer = StateSyncer(PoolStore("anvil"), pools.sync_config(log_chunk_blocks=4, reorg_depth=3))
        await syncer.bootstrap(rpc)
        rng = random.Random(3)
        await activity(env, rng, 6)

        token = await asyncio.to_thread(deploy_token, chain)
        token0, token1 = sorted((token, pools.tokens[0]), key=lambda t: int(t.address, 16))
        pair_address = _create2(
            pools.v2_factory.address,
            keccak(bytes.fromhex(token0.address[2:]) + bytes.fromhex(token1.address[2:])),
            artifact(f"{V2_CORE}/UniswapV2Pair.json")[1],
        )
        pair = chain.at(f"{V2_CORE}/UniswapV2Pair.json", pair_address)
        await asyncio.to_thread(
            pools.in_one_block,
            [
                pools.v2_factory.functions.createPair(token0.address, token1.address),
                token0.functions.transfer(pair_address, 10**21),
                token1.functions.transfer(pair_address, 3 * 10**21),
                pair.functions.mint(chain.account),
            ],
        )
        assert pair.functions.getReserves().call()[:2] == [10**21, 3 * 10**21]
        pools.v2_pairs.append(pair)
        pools.tokens.append(token)
        await activity(env, rng, 5)

        fee = 10000  # the factory's third default tier: spacing 200
        a, b = pools.tokens[1], pools.tokens[2]
        pool_address = _create2(
            pools.v3_factory.address,
            keccak(
                bytes(12) + bytes.fromhex(a.address[2:]) + bytes(12) + bytes.fromhex(b.address[2:]) + fee.to_bytes(32)
            ),
            artifact(f"{V3_CORE}/UniswapV3Pool.sol/UniswapV3Pool.json")[1],
        )
        pool = chain.w3.eth.contract(address=pool_address, abi=pools.v3_pools[0].abi)
        await asyncio.to_thread(
            pools.in_one_block,
            [
                pools.v3_factory.functions.createPool(a.address, b.address, fee),
                pool.functions.initialize(2**96),
                # The price sits exactly on tick 0: a position starting there is in range, one
                # ending there is not (the contract's lower <= tick < upper).
                *(
                    pools.npm.functions.mint(
                        (a.address, b.address, fee, lower, upper, 10**20, 10**20, 0, 0, chain.account, 2**64)
                    )
                    for lower, upper in ((-2000, 2000), (0, 2000), (-2000, 0))
                ),
            ],
        )
        assert pool.functions.slot0().call()[1] == 0 and pool.functions.liquidity().call() > 0
        pools.v3_pools.append(pool)
        pools.v3_fees.append(fee)
        for back in (2, 1, 0):
            pools.positions.append(_position_of_last_mint(pools, len(pools.v3_pools) - 1, back))
        await activity(env, rng, 6)

        head = await latest(rpc)
        await syncer.sync_to(rpc, head)
        assert syncer.stats.gap_fills == 1
        assert syncer.store.block == head.number and syncer.tip.hash == head.hash
        # The base (never undone) and the last reorg_depth blocks; the older ones were applied without undo.
        assert [r.number for r in syncer.ring] == list(range(head.number - 3, head.number + 1))
        assert pools.assert_store_matches(syncer.store, syncer.gross) == 7
        new_pair = syncer.store.pools[pair_address.lower()]
        assert isinstance(new_pair, V2Pool) and {new_pair.token0, new_pair.token1} == {
            token0.address.lower(),
            token1.address.lower(),
        }

    run(env, scenario)


def _position_of_last_mint(pools: Pools, index: int, back: int = 0) -> Position:
    token_id = pools.npm.functions.totalSupply().call() - back
    pos = pools.npm.functions.positions(token_id).call()
    return Position(token_id, index, pos[5], pos[6], pos[7])


def test_checkpoint_round_trip_and_resume_from_its_block(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "state" / "anvil.json"

    async def scenario(rpc: RpcClient) -> None:
        config = env.pools.sync_config(checkpoint_path=path, checkpoint_every_blocks=3)
        first = StateSyncer(PoolStore("anvil"), config)
        await first.start(rpc)
        assert first.stats.bootstraps == 1
        rng = random.Random(4)
        for _ in range(3):
            await activity(env, rng, 1)
            await first.sync_to(rpc, await latest(rpc))
            await first.block_done()
        assert first.stats.checkpoints_written == 1 and path.is_file()
        assert [p.name for p in path.parent.iterdir()] == ["anvil.json"], "a temporary file was left behind"
        saved_block = first.store.block

        restored = PoolStore("anvil")
        gross: dict = {}
        checkpoint.restore(checkpoint.load(path), restored, gross)
        assert restored.block == saved_block
        assert restored.pools == first.store.pools and gross == first.gross

        # The agent is down while the chain moves on; it resumes from the checkpoint, not a bootstrap.
        await activity(env, rng, 4)
        second = StateSyncer(PoolStore("anvil"), config)
        await second.start(rpc)
        assert (second.stats.checkpoint_loads, second.stats.bootstraps) == (1, 0)
        assert second.store.block == saved_block
        head = await latest(rpc)
        await second.sync_to(rpc, head)
        env.pools.assert_store_matches(second.store, second.gross, head.number)

        # A damaged checkpoint is refused with the field named, and the syncer bootstraps instead.
        path.write_text(path.read_text().replace('"block":', '"block":"x", "blok":', 1))
        with pytest.raises(checkpoint.CheckpointError, match="block"):
            checkpoint.load(path)
        third = StateSyncer(PoolStore("anvil"), config)
        await third.start(rpc)
        assert (third.stats.checkpoint_loads, third.stats.bootstraps) == (0, 1)
        env.pools.assert_store_matches(third.store, third.gross)

    run(env, scenario)


def test_reconcile_finds_counts_and_fixes_divergences(env: Env) -> None:
    async def scenario(rpc: RpcClient) -> None:
        syncer = StateSyncer(PoolStore("anvil"), env.pools.sync_config(reconcile_per_block=2))
        await syncer.bootstrap(rpc)
        assert await syncer.reconcile(rpc) == []
        pools = list(syncer.store.pools.values())
        v2 = next(p for p in pools if isinstance(p, V2Pool))
        v3 = next(p for p in pools if isinstance(p, V3Pool))
        v2.reserve0 += 1
        v3.state.liquidity += 5
        v3.state.tick -= 1
        found = []
        rounds = (len(pools) + 1) // 2  # two pools per block, round robin: then every pool was seen
        for _ in range(rounds):
            found += await syncer.reconcile(rpc)
        assert sorted((d.pool, d.field) for d in found) == sorted(
            [(v2.address, "reserve0"), (v3.address, "liquidity"), (v3.address, "tick")]
        )
        assert syncer.stats.divergences == 3 and syncer.stats.pools_reconciled == 2 + 2 * rounds
        env.pools.assert_store_matches(syncer.store, syncer.gross)

    run(env, scenario)


class RefusesBlockObjects:
    """The node as EthereumJS answers: eth_call's block only as a number or a tag, never an EIP-1898 object."""

    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc

    async def call(self, method: str, params: Any = ()) -> Any:
        return await self.rpc.call(method, params)

    async def batch(self, calls: Any, *, chunk: int = 1000) -> list[Any]:
        refused = RpcError("eth_call", -32602, "invalid argument 1: argument must be a string")
        answers = await self.rpc.batch([c for c in calls if not _by_object(c)], chunk=chunk)
        it = iter(answers)
        return [refused if _by_object(c) else next(it) for c in calls]


def _by_object(call: Any) -> bool:
    method, params = call
    return method == "eth_call" and isinstance(params[1], dict)


def test_reconcile_reads_by_number_where_the_node_refuses_a_block_hash(env: Env) -> None:
    """Before, every reconcile on such a node was skipped, so a state change the logs missed stayed."""

    async def scenario(rpc: RpcClient) -> None:
        node = RefusesBlockObjects(rpc)
        syncer = StateSyncer(PoolStore("anvil"), env.pools.sync_config(reconcile_tick_words=8))
        await syncer.bootstrap(rpc)
        v2 = next(p for p in syncer.store.pools.values() if isinstance(p, V2Pool))
        v2.reserve0 += 1
        found = await syncer.reconcile(node)
        assert [(d.pool, d.field) for d in found] == [(v2.address, "reserve0")], found
        assert not syncer._by_hash and syncer.stats.reconciles_skipped == 0
        assert syncer.stats.tick_words_reconciled > 0  # the tick words are read by number too
        env.pools.assert_store_matches(syncer.store, syncer.gross)

    run(env, scenario)


def test_reconcile_walks_the_tick_bitmaps_and_fixes_ticks(env: Env) -> None:
    """A wrong liquidityNet, a tick the pool does not have, and a missing tick: the bitmap walk (a
    budget of words per block, pool after pool) finds all three and puts the node's values back."""

    async def scenario(rpc: RpcClient) -> None:
        syncer = StateSyncer(PoolStore("anvil"), env.pools.sync_config(reconcile_tick_words=200))
        await syncer.bootstrap(rpc)
        v3 = [p for p in syncer.store.pools.values() if isinstance(p, V3Pool)]
        wrong, extra, missing = v3[0], v3[1], v3[-1]
        wrong_tick = wrong.state.ticks.keys()[0]
        wrong.state.ticks[wrong_tick] += 1
        extra_tick = extra.state.tick_spacing * 4242
        extra.state.ticks[extra_tick] = 10**18
        syncer.gross[extra.address][extra_tick] = 10**18
        missing_tick = missing.state.ticks.keys()[-1]
        del missing.state.ticks[missing_tick]
        del syncer.gross[missing.address][missing_tick]

        words = sum(
            len(range((-887272 // p.state.tick_spacing) >> 8, ((887272 // p.state.tick_spacing) >> 8) + 1)) for p in v3
        )
        found = []
        while syncer.stats.tick_words_reconciled < words:
            found += await syncer.reconcile(rpc)
        assert sorted((d.pool, d.field) for d in found) == sorted(
            [
                (wrong.address, f"tick {wrong_tick}"),
                (extra.address, f"tick {extra_tick}"),
                (missing.address, f"tick {missing_tick}"),
            ]
        )
        env.pools.assert_store_matches(syncer.store, syncer.gross)

    run(env, scenario)


def test_reorg_rolls_back_to_the_fork_and_replays_the_new_branch(env: Env) -> None:
    """Follow five blocks head by head, then the node drops them (evm_revert) and mines a different
    branch: the next head's parent is unknown, the syncer rolls back exactly those five blocks and
    applies the new ones. Then anvil_reorg replaces the last two blocks with empty ones."""
    chain = env.pools.chain

    async def scenario(rpc: RpcClient) -> None:
        syncer = StateSyncer(PoolStore("anvil"), env.pools.sync_config(reorg_depth=64))
        await syncer.bootstrap(rpc)
        fork_point = syncer.store.block
        snapshot = chain.snapshot()
        positions = [dataclasses.replace(p) for p in env.pools.positions]
        rng = random.Random(5)
        for _ in range(5):
            await activity(env, rng, 1)
            await syncer.sync_to(rpc, await latest(rpc))
        old_tip = syncer.tip.hash
        assert syncer.store.block >= fork_point + 5

        chain.revert(snapshot)
        env.pools.positions = positions  # the positions minted on the dropped branch are gone too
        await activity(env, random.Random(6), 7)
        # Before the syncer has seen the new branch, the per-block reconcile reads the node at our tip's
        # hash, which it no longer has: skipped, instead of "correcting" the pools to the other branch's
        # state at that height (by number it would).
        assert await syncer.reconcile(rpc) == []
        assert syncer.stats.reconciles_skipped == 1 and syncer.stats.divergences == 0
        head = await latest(rpc)
        changed = await syncer.sync_to(rpc, head)
        assert syncer.stats.reorgs == 1 and syncer.stats.blocks_rolled_back >= 5
        assert syncer.tip.hash == head.hash != old_tip
        assert changed, "strategies must re-read the pools the reorg touched"
        env.pools.assert_store_matches(syncer.store, syncer.gross, head.number)

        await activity(env, random.Random(7), 2)
        await syncer.sync_to(rpc, await latest(rpc))
        await rpc.call("anvil_reorg", [2, []])
        head = await latest(rpc)
        await syncer.sync_to(rpc, head)
        assert syncer.stats.reorgs == 2 and syncer.tip.hash == head.hash
        env.pools.assert_store_matches(syncer.store, syncer.gross, head.number)

    run(env, scenario)


def test_a_reorg_deeper_than_the_ring_rebuilds_the_store(env: Env) -> None:
    chain = env.pools.chain

    async def scenario(rpc: RpcClient) -> None:
        syncer = StateSyncer(PoolStore("anvil"), env.pools.sync_config(reorg_depth=2))
        await syncer.bootstrap(rpc)
        snapshot = chain.snapshot()
        positions = [dataclasses.replace(p) for p in env.pools.positions]
        rng = random.Random(8)
        for _ in range(4):
            await activity(env, rng, 1)
            await syncer.sync_to(rpc, await latest(rpc))
        chain.revert(snapshot)
        env.pools.positions = positions
        await activity(env, random.Random(9), 5)
        head = await latest(rpc)
        changed = await syncer.sync_to(rpc, head)
        assert syncer.stats.bootstraps == 2
        assert set(changed) == set(syncer.store.pools)
        env.pools.assert_store_matches(syncer.store, syncer.gross, head.number)

    run(env, scenario)
