"""Plain HTTP to a node without IPC or subscriptions (EthereumJS, the devnet's real execution client),
checked against a real anvil's HTTP port: calls and batches, newHeads emulated by polling, a node that
goes away ends the stream and every waiter, and the collector over HTTP alone keeps the pool store exact
(every canonical log applied once) through a node stopped and restarted under it."""

import asyncio
import random
from typing import Any

import pytest

from mevagent.collectors.evm import EvmCollector, EvmCollectorConfig
from mevagent.rpc import ConnectionLost, RpcError, connect
from testbed.evm import Chain
from testbed.pools import IpcAnvil, Pools

from .test_collector import activity, assert_exactly_once, canonical_log_count, caught_up, pools, until

__all__ = ["pools"]  # the module's pools fixture, shared with test_collector


def http_url(node: IpcAnvil) -> str:
    return f"http://127.0.0.1:{node.port}"


def test_calls_batches_and_polled_heads_over_http(node: IpcAnvil) -> None:
    chain = Chain(node.w3)

    async def check() -> None:
        async with await connect(http_url(node)) as client:
            client.poll_interval = 0.02
            assert await client.call("eth_chainId") == hex(node.w3.eth.chain_id)
            answers = await client.batch([("eth_blockNumber", []), ("eth_getBlockByNumber", ["nope", False])])
            assert int(answers[0], 16) >= 0 and isinstance(answers[1], RpcError)
            with pytest.raises(RpcError, match="HTTP has no logs subscription"):
                await client.subscribe("logs", {})
            heads = await client.subscribe("newHeads")
            first = int((await anext(heads)).result["number"], 16)  # the current head, right away
            for _ in range(3):
                await asyncio.to_thread(chain.w3.provider.make_request, "evm_mine", [])
            latest = await asyncio.to_thread(lambda: node.w3.eth.block_number)
            seen = [first]
            while seen[-1] < latest:
                seen.append(int((await anext(heads)).result["number"], 16))
            assert seen == sorted(set(seen)), "polled heads come in order, each once"
            await heads.unsubscribe()
            with pytest.raises(ConnectionLost):
                await anext(heads)

    asyncio.run(check())


def test_a_stopped_node_ends_the_polled_stream_and_every_call(node: IpcAnvil) -> None:
    async def check() -> None:
        client = await connect(http_url(node), request_timeout=10)
        client.poll_interval = 0.02
        heads = await client.subscribe("newHeads")
        await anext(heads)
        await asyncio.to_thread(node.stop)
        try:
            with pytest.raises(ConnectionLost):
                while True:
                    await anext(heads)
            with pytest.raises(ConnectionLost):
                await client.call("eth_blockNumber")
            assert client.closed
        finally:
            await client.close()
            await asyncio.to_thread(node.start)

    asyncio.run(check())


def http_collector(node: IpcAnvil, pools: Pools, **sync: Any) -> EvmCollector:
    return EvmCollector(
        EvmCollectorConfig(
            chain="anvil",
            http_url=http_url(node),
            sync=pools.sync_config(**sync),
            request_timeout_s=10,
            backoff_base_s=0.02,
            backoff_cap_s=0.5,
        )
    )


def test_collector_over_http_alone_stays_exact_through_a_killed_node(node: IpcAnvil, pools: Pools) -> None:
    async def scenario() -> None:
        collector = http_collector(node, pools)
        heads: list[int] = []

        async def emit(item: object) -> None:
            number = getattr(item, "number", None)
            if number is not None and getattr(item, "hash", None):
                heads.append(number)

        task = asyncio.create_task(collector.run(emit))
        try:
            await caught_up(collector, node)
            assert collector.client is not None and collector.client.endpoint == http_url(node)
            start = collector.syncer.ring[0].number
            rng = random.Random(5)
            await activity(pools, rng, 6)
            last = await caught_up(collector, node)
            pools.assert_store_matches(collector.store, collector.syncer.gross, last)
            assert_exactly_once(collector, await canonical_log_count(node, collector, start + 1, last))

            await asyncio.to_thread(node.stop)
            await until("the collector to notice the node is gone", lambda: collector.stats.disconnects >= 1)
            await asyncio.to_thread(node.start)
            await activity(pools, rng, 4)
            last = await caught_up(collector, node)
            pools.assert_store_matches(collector.store, collector.syncer.gross, last)
            assert_exactly_once(collector, await canonical_log_count(node, collector, start + 1, last))
            assert collector.syncer.stats.divergences == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert heads == sorted(heads) or collector.syncer.stats.reorgs >= 1

    asyncio.run(scenario())
