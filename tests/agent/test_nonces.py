"""Nonces per key on a real anvil: concurrent reservations are contiguous and unique; released nonces
come back first; a resync takes the node's word; and the node mines every transaction we sign from
concurrent reservations, which it would not if any nonce had a gap or a twin."""

import asyncio
import random
from pathlib import Path

import aiohttp

from mevagent.executor.keys import Signer, write_new_key_file
from mevagent.executor.nonces import NonceManager
from mevagent.executor.rpc import HttpJsonRpc
from testbed.arb import rpc_url
from testbed.evm import Chain


def _fresh_key(chain: Chain, tmp_path: Path) -> Signer:
    write_new_key_file(tmp_path / "key")
    signer = Signer.from_file(tmp_path / "key")
    chain.w3.provider.make_request("anvil_setBalance", [signer.address, hex(10**20)])
    return signer


def test_concurrent_reservations_have_no_gaps_or_duplicates_and_the_node_mines_them_all(
    chain: Chain, tmp_path: Path
) -> None:
    signer = _fresh_key(chain, tmp_path)
    chain_id = chain.w3.eth.chain_id

    async def scenario() -> list[int]:
        async with aiohttp.ClientSession() as session:
            rpc = HttpJsonRpc(rpc_url(chain), session)

            async def count(address: str) -> int:
                return int(await rpc.call("eth_getTransactionCount", [address, "pending"]), 16)

            nonces = NonceManager(signer.address, count)

            async def one(index: int) -> tuple[int, str]:
                nonce = await nonces.reserve()
                await asyncio.sleep(random.random() / 100)  # interleave the executions
                tx = {"chainId": chain_id, "nonce": nonce, "to": signer.address, "value": index, "gas": 21000}
                raw, tx_hash = signer.sign_transaction({**tx, "gasPrice": 0})
                await rpc.call("eth_sendRawTransaction", ["0x" + raw.hex()])
                nonces.confirm(nonce)
                return nonce, tx_hash

            sent = await asyncio.gather(*(one(i) for i in range(40)))
            assert nonces.in_flight == frozenset()
            for _, tx_hash in sent:
                while not await rpc.call("eth_getTransactionReceipt", [tx_hash]):
                    await asyncio.sleep(0.01)
            return [nonce for nonce, _ in sent]

    used = asyncio.run(scenario())
    assert sorted(used) == list(range(40))
    assert chain.w3.eth.get_transaction_count(signer.address, "latest") == 40


def test_released_nonces_are_reused_lowest_first_and_resync_follows_the_node() -> None:
    node_count = 7

    async def count(_: str) -> int:
        return node_count

    async def scenario() -> None:
        nonlocal node_count
        nonces = NonceManager("0xabc", count)
        held = await asyncio.gather(*(nonces.reserve() for _ in range(5)))
        assert sorted(held) == [7, 8, 9, 10, 11]
        nonces.release(9)
        nonces.release(8)
        assert [await nonces.reserve(), await nonces.reserve(), await nonces.reserve()] == [8, 9, 12]
        # 7 and 8 landed; 9 was dropped by a sequencer while 10, 11 and 12 are still out: the node
        # counts 9, so 9 is free again, and nothing in flight is handed out twice.
        nonces.confirm(7)
        nonces.confirm(8)
        nonces.confirm(9)
        node_count = 9
        await nonces.resync()
        assert nonces.in_flight == frozenset({10, 11, 12})
        assert [await nonces.reserve(), await nonces.reserve()] == [9, 13]
        # Everything settled; the node moved on by itself (another process used the key): follow it.
        for nonce in (9, 10, 11, 12, 13):
            nonces.confirm(nonce)
        node_count = 20
        await nonces.resync()
        assert await nonces.reserve() == 20
        # An error after signing: whether 20 went out is unknown. The next reservation asks the node,
        # which says it did not: 20 is handed out again, not skipped (a gap) and not guessed.
        nonces.confirm(20)
        nonces.mark_stale()
        assert await nonces.reserve() == 20

    asyncio.run(scenario())
