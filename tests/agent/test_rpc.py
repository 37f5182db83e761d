"""The raw JSON-RPC client against a real anvil: IPC and WebSocket, batches, error objects,
subscriptions, and what happens when the node goes away and comes back."""

import asyncio
import random

import pytest
from web3 import Web3

from mevagent.rpc import Backoff, ConnectionLost, RpcClient, RpcError, connect, connect_first
from testbed.evm import Chain, deploy_token
from testbed.pools import IpcAnvil


def endpoints(node: IpcAnvil) -> list[str]:
    return [str(node.ipc_path), node.ws_url]


def test_calls_and_batches_over_ipc_and_websocket(node: IpcAnvil) -> None:
    async def check(endpoint: str) -> None:
        async with await connect(endpoint) as client:
            assert await client.call("eth_chainId") == hex(node.w3.eth.chain_id)
            accounts = await client.call("eth_accounts")
            calls = [("eth_getBalance", [accounts[i % 2], "latest"]) for i in range(2500)]
            calls[1234] = ("eth_getBlockByNumber", ["not-a-block", False])
            # chunk=1000: three round trips, answers still in request order.
            answers = await client.batch(calls, chunk=1000)
            assert len(answers) == 2500
            error = answers[1234]
            assert isinstance(error, RpcError) and error.method == "eth_getBlockByNumber"
            balances = [a for i, a in enumerate(answers) if i != 1234]
            expected = [hex(node.w3.eth.get_balance(Web3.to_checksum_address(a))) for a in accounts[:2]]
            assert balances == [expected[i % 2] for i in range(2500) if i != 1234]

    for endpoint in endpoints(node):
        asyncio.run(check(endpoint))


def test_an_error_object_is_raised_with_its_code_and_message(node: IpcAnvil) -> None:
    async def check() -> None:
        async with await connect(str(node.ipc_path)) as client:
            with pytest.raises(RpcError) as raised:
                await client.call("eth_no_such_method", [])
            assert raised.value.method == "eth_no_such_method"
            assert isinstance(raised.value.code, int) and raised.value.code < 0
            # A revert carries its data: the client keeps it for the caller.
            with pytest.raises(RpcError) as reverted:
                await client.call("eth_call", [{"to": "0x" + "00" * 19 + "01", "data": "0x"}, "not-a-tag"])
            assert reverted.value.code != 0 and reverted.value.message
            # The connection is still good after errors.
            assert int(await client.call("eth_blockNumber"), 16) >= 0

    asyncio.run(check())


def test_subscriptions_heads_filtered_logs_and_pending_transactions(node: IpcAnvil) -> None:
    chain = Chain(node.w3)
    watched, other = deploy_token(chain), deploy_token(chain)

    async def check(endpoint: str) -> None:
        async with await connect(endpoint) as client:
            heads = await client.subscribe("newHeads")
            logs = await client.subscribe("logs", {"address": [watched.address]})
            pending = await client.subscribe("newPendingTransactions")
            before = int(await client.call("eth_blockNumber"), 16)
            await asyncio.to_thread(chain.transact, other.functions.transfer(chain.account, 1))
            await asyncio.to_thread(chain.transact, watched.functions.transfer(chain.account, 7))
            head_numbers = [int((await anext(heads)).result["number"], 16) for _ in range(2)]
            assert head_numbers == [before + 1, before + 2]
            log = (await anext(logs)).result
            assert log["address"].lower() == watched.address.lower()
            assert int(log["blockNumber"], 16) == before + 2 and int(log["data"], 16) == 7
            assert logs.pending() == 0, "a log of an address outside the filter was delivered"
            tx = (await anext(pending)).result
            assert isinstance(tx, str) and tx.startswith("0x") and len(tx) == 66
            await logs.unsubscribe()
            with pytest.raises(ConnectionLost):
                await anext(logs)

    for endpoint in endpoints(node):
        asyncio.run(check(endpoint))


def test_losing_the_node_fails_waiters_and_subscriptions_then_backoff_reconnects(node: IpcAnvil) -> None:
    async def check() -> None:
        client = await connect(str(node.ipc_path), request_timeout=30)
        heads = await client.subscribe("newHeads")
        await asyncio.to_thread(node.stop)
        with pytest.raises(ConnectionLost):
            await anext(heads)
        with pytest.raises(ConnectionLost):
            await client.call("eth_blockNumber")
        assert client.closed
        await client.close()

        failures: list[str] = []
        backoff = Backoff(base=0.02, cap=0.2)
        reconnect = asyncio.create_task(
            connect_first(endpoints(node), backoff, timeout=1, on_failure=lambda e, exc: failures.append(e))
        )
        await asyncio.sleep(0.3)
        assert not reconnect.done() and failures, "connect_first gave up or never tried"
        # Both endpoints were tried, IPC first, while the node was down.
        assert failures[:2] == endpoints(node)
        await asyncio.to_thread(node.start)
        fresh: RpcClient = await asyncio.wait_for(reconnect, 30)
        async with fresh:
            assert fresh.endpoint == str(node.ipc_path)
            assert int(await fresh.call("eth_blockNumber"), 16) >= 0

    asyncio.run(check())


def test_backoff_grows_exponentially_with_jitter_and_resets() -> None:
    backoff = Backoff(base=0.1, cap=2.0, rng=random.Random(5))
    delays = [backoff.next() for _ in range(8)]
    for attempt, delay in enumerate(delays):
        ceiling = min(2.0, 0.1 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays), "no jitter"
    backoff.reset()
    assert backoff.next() <= 0.1
    with pytest.raises(ValueError):
        Backoff(base=3, cap=1)
