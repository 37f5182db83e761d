"""The EVM collector on a real anvil over IPC: it follows heads, emits Heads and PoolUpdates, keeps the
pool store equal to the contracts, survives a dropped connection (gap fill, WebSocket fallback) and a
node that is stopped or killed and restarted on the same IPC path.

"No log missed, none applied twice" is checked by counting: the logs the syncer applied, minus those
it rolled back with a reorg, equal the node's own eth_getLogs count over the same blocks. The
collector also reconciles every pool with the node after every block: a single divergence fails.
"""

import asyncio
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mevagent.collectors.evm import EvmCollector, EvmCollectorConfig, PendingTransaction
from mevagent.core import Head, PoolUpdate
from mevagent.rpc import connect
from mevagent.state import abi
from testbed.evm import Chain
from testbed.pools import IpcAnvil, Pools, deploy_pools


@pytest.fixture(scope="module")
def pools(node: IpcAnvil) -> Pools:
    return deploy_pools(Chain(node.w3), random.Random(77))


def collector_for(node: IpcAnvil, pools: Pools, *, websocket: bool = False, **sync: Any) -> EvmCollector:
    config = EvmCollectorConfig(
        chain="anvil",
        ipc_path=node.ipc_path,
        ws_url=node.ws_url if websocket else None,
        sync=pools.sync_config(**sync),
        pending_transactions=True,
        request_timeout_s=10,
        backoff_base_s=0.02,
        backoff_cap_s=0.5,
    )
    return EvmCollector(config)


async def until(
    what: str, predicate: Callable[[], bool], detail: Callable[[], str] = lambda: "", timeout: float = 60
) -> None:
    """Wait for `predicate`; fail naming `what` if it never holds (a deadline, not a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {detail()}")
        await asyncio.sleep(0.01)


async def caught_up(collector: EvmCollector, node: IpcAnvil) -> int:
    latest = await asyncio.to_thread(lambda: node.w3.eth.block_number)
    await until(
        f"the collector to reach block {latest}",
        lambda: collector.synced.is_set() and collector.store.block >= latest,
        lambda: f"at block {collector.store.block}, {collector.stats}, {collector.syncer.stats}",
    )
    return latest


async def activity(pools: Pools, rng: random.Random, blocks: int) -> None:
    for _ in range(blocks):
        await asyncio.to_thread(pools.random_block, rng)


async def canonical_log_count(node: IpcAnvil, collector: EvmCollector, first: int, last: int) -> int:
    async with await connect(str(node.ipc_path)) as rpc:
        logs = await rpc.call(
            "eth_getLogs",
            [
                {
                    "fromBlock": hex(first),
                    "toBlock": hex(last),
                    "address": collector.syncer.addresses(),
                    "topics": [list(abi.STATE_TOPICS)],
                }
            ],
        )
    return len(logs)


def assert_exactly_once(collector: EvmCollector, canonical: int) -> None:
    stats = collector.syncer.stats
    assert stats.logs_applied - stats.logs_rolled_back == canonical
    assert stats.divergences == 0, list(collector.syncer.divergences)


def test_collector_follows_heads_and_emits_heads_and_pool_updates(node: IpcAnvil, pools: Pools) -> None:
    async def scenario() -> None:
        collector = collector_for(node, pools)
        emitted: list[object] = []

        async def emit(item: object) -> None:
            emitted.append(item)

        task = asyncio.create_task(collector.run(emit))
        try:
            await caught_up(collector, node)
            start = collector.syncer.ring[0].number
            await activity(pools, random.Random(1), 12)
            last = await caught_up(collector, node)
            pools.assert_store_matches(collector.store, collector.syncer.gross, last)
            assert_exactly_once(collector, await canonical_log_count(node, collector, start + 1, last))
            assert collector.syncer.stats.pools_reconciled >= 5 * 12
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        heads = [e for e in emitted if isinstance(e, Head)]
        updates = [e for e in emitted if isinstance(e, PoolUpdate)]
        numbers = [h.number for h in heads]
        assert numbers == sorted(set(numbers)) and numbers[-1] == last
        assert all(h.chain == "anvil" and h.hash.startswith("0x") for h in heads)
        assert updates and {u.pool for u in updates} <= set(collector.store.pools)
        # Every update follows the Head of its block: strategies see the head's base fee first.
        head_at = {h.number: i for i, h in enumerate(emitted) if isinstance(h, Head)}
        for i, update in enumerate(emitted):
            if isinstance(update, PoolUpdate):
                assert update.block in head_at and head_at[update.block] < i
        pending = [e for e in emitted if isinstance(e, PendingTransaction)]
        assert pending and all(len(p.hash) == 66 for p in pending)

    asyncio.run(scenario())


def test_a_dropped_connection_is_gap_filled_and_websocket_takes_over(node: IpcAnvil, pools: Pools) -> None:
    """The collector's IPC connection drops and the socket path disappears while blocks are mined:
    it reconnects over WebSocket, fills the gap from its last block, and misses no log."""

    async def scenario() -> None:
        collector = collector_for(node, pools, websocket=True)
        gate = asyncio.Event()
        gate.set()
        stalled: list[object] = []

        async def emit(item: object) -> None:
            if not gate.is_set():
                stalled.append(item)
            await gate.wait()

        task = asyncio.create_task(collector.run(emit))
        moved = node.ipc_path.with_name("moved.ipc")
        try:
            await caught_up(collector, node)
            start = collector.syncer.ring[0].number
            rng = random.Random(2)
            await activity(pools, rng, 3)
            await caught_up(collector, node)

            # Hold the collector inside its next emit, so that what follows certainly happens while
            # it is not reading: the connection drops and blocks are mined behind its back.
            gate.clear()
            await activity(pools, rng, 1)
            # The head, not just the pending transaction: that one is forwarded by a task of its own,
            # and a collector stalled only there would follow the next blocks one by one (no gap).
            await until("the collector to block in emit of the head", lambda: any(isinstance(i, Head) for i in stalled))
            os.rename(node.ipc_path, moved)  # new IPC connections now fail
            assert collector.client is not None
            await collector.client.close()  # and the current one is gone
            behind = collector.store.block
            await activity(pools, rng, 6)
            assert await asyncio.to_thread(lambda: node.w3.eth.block_number) >= behind + 6
            gate.set()
            last = await caught_up(collector, node)
            assert collector.client is not None and collector.client.endpoint == node.ws_url
            assert collector.stats.disconnects >= 1 and collector.stats.connection_failures >= 1
            assert collector.syncer.stats.gap_fills >= 1
            pools.assert_store_matches(collector.store, collector.syncer.gross, last)
            os.rename(moved, node.ipc_path)
            assert_exactly_once(collector, await canonical_log_count(node, collector, start + 1, last))
        finally:
            if moved.exists():
                os.rename(moved, node.ipc_path)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


def test_node_stopped_or_killed_mid_stream_and_restarted(node: IpcAnvil, pools: Pools, tmp_path: Path) -> None:
    """Fault injection on the node itself, same IPC path: first a clean stop (the state file keeps
    every block), then SIGKILL (the node comes back at the clean stop's block, without any block
    mined since, which to the agent is a reorg). Each time the collector reconnects with
    backoff, resyncs, and ends equal to the contracts with every canonical log applied exactly once.
    The checkpoint it writes on the way out lets a new collector resume instead of bootstrapping."""
    checkpoint_path = tmp_path / "anvil.json"

    async def scenario() -> None:
        collector = collector_for(node, pools, checkpoint_path=checkpoint_path, checkpoint_every_blocks=5)

        async def emit(item: object) -> None:
            return None

        task = asyncio.create_task(collector.run(emit))
        try:
            await caught_up(collector, node)
            start = collector.syncer.ring[0].number
            rng = random.Random(3)
            await activity(pools, rng, 4)
            await caught_up(collector, node)

            await asyncio.to_thread(node.stop)
            await until("the collector to notice", lambda: collector.stats.disconnects >= 1)
            await asyncio.sleep(0.3)  # a few reconnect attempts against a missing node
            await asyncio.to_thread(node.start)
            restarted_at = await asyncio.to_thread(lambda: node.w3.eth.block_number)
            await activity(pools, rng, 4)
            last = await caught_up(collector, node)
            pools.assert_store_matches(collector.store, collector.syncer.gross, last)
            assert_exactly_once(collector, await canonical_log_count(node, collector, start + 1, last))

            await activity(pools, rng, 4)
            # The node's head, not `last + 4`: one random operation can take several blocks (an
            # approve, then the mint), so the store may pass last + 4 with more still to come.
            lost = await caught_up(collector, node) - restarted_at
            await asyncio.to_thread(node.kill)
            await until("the collector to notice", lambda: collector.stats.disconnects >= 2)
            await asyncio.to_thread(node.start)
            await activity(pools, rng, 5)
            last = await caught_up(collector, node)
            pools.assert_store_matches(collector.store, collector.syncer.gross, last)
            assert_exactly_once(collector, await canonical_log_count(node, collector, start + 1, last))
            assert collector.stats.connection_failures >= 1
            # The node came back at the block of the clean stop: every block after it was undone.
            assert collector.syncer.stats.reorgs == 1 and collector.syncer.stats.blocks_rolled_back == lost
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert collector.syncer.stats.bootstraps == 1

        resumed = collector_for(node, pools, checkpoint_path=checkpoint_path)
        task = asyncio.create_task(resumed.run(emit))
        try:
            last = await caught_up(resumed, node)
            assert (resumed.syncer.stats.checkpoint_loads, resumed.syncer.stats.bootstraps) == (1, 0)
            pools.assert_store_matches(resumed.store, resumed.syncer.gross, last)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
