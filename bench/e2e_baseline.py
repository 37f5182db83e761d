"""The baseline of bench/agent_e2e.py: the searcher a Python user would otherwise write with web3.py.

AsyncWeb3 on the node's IPC socket (the transport the agent uses, so the comparison is about the
design, not the socket), subscribed to newHeads. On each head it refreshes every pool with one batched
request (getReserves, slot0, liquidity and its nonce), re-scans every cycle with the agent's own
DexArbStrategy (the same cycles and math: the ratio measures the design), encodes `execute` with
web3's contract ABI, signs it with eth_account, signs each bundle body for X-Flashbots-Signature and
POSTs eth_sendBundle for the same target blocks to the same builder with aiohttp.

It is given what it cannot cheaply refresh: the V3 pool's initialized ticks are read once before it
starts (nobody mints during the bench), which flatters it. It does not simulate before sending.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import AsyncIPCProvider, AsyncWeb3
from web3.contract import AsyncContract

from mevagent.core import Head, Opportunity, PoolUpdate
from mevagent.state.pools import PoolStore, V2Pool
from mevagent.strategies.dex_arb import DexArbStrategy


@dataclass(frozen=True, slots=True)
class BaselineSettings:
    ipc_path: Path
    builder_url: str
    chain_id: int
    contract: str  # the ArbExecutor
    contract_abi: list[dict[str, object]]
    v2_abi: list[dict[str, object]]
    v3_abi: list[dict[str, object]]
    key_file: Path  # owner of the contract: signs the transaction
    identity_file: Path  # signs X-Flashbots-Signature
    target_blocks: int
    min_profit_wei: int  # what the agent passes as the contract's minProfit for a gas-free cycle


@dataclass(frozen=True, slots=True)
class BaselineTiming:
    """perf_counter_ns of each step for one head that produced a bundle."""

    block: int
    head_ns: int  # the head handed to user code by web3's subscription stream
    refreshed_ns: int  # the batched refresh answered
    scanned_ns: int  # every cycle re-scanned
    signed_ns: int  # the transaction encoded and signed
    bodies_ns: int  # every bundle body signed for X-Flashbots-Signature; next: the POSTs


def _account(path: Path) -> LocalAccount:
    return Account.from_key(bytes.fromhex(path.read_text().strip().removeprefix("0x")))


@dataclass
class Web3Searcher:
    settings: BaselineSettings
    store: PoolStore  # read once from the chain before starting (ticks included)
    strategy: DexArbStrategy  # built over `store`: the agent's cycles and math
    processed: int = -1  # the last head fully handled
    timings: list[BaselineTiming] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        """Follow heads until cancelled."""
        s = self.settings
        owner, identity = _account(s.key_file), _account(s.identity_file)
        w3 = await AsyncWeb3(AsyncIPCProvider(str(s.ipc_path)))
        arb = w3.eth.contract(address=to_checksum_address(s.contract), abi=s.contract_abi)
        pools = [
            w3.eth.contract(address=to_checksum_address(a), abi=s.v2_abi if isinstance(p, V2Pool) else s.v3_abi)
            for a, p in self.store.pools.items()
        ]
        try:
            async with aiohttp.ClientSession() as session:
                await w3.eth.subscribe("newHeads")
                self.ready.set()
                async for message in w3.socket.process_subscriptions():
                    head_ns = time.perf_counter_ns()
                    block = await self._refresh_and_scan(w3, message["result"], head_ns, pools, owner.address)
                    if block is not None:
                        await self._send(block, arb, owner, identity, session)
                    self.processed = int(message["result"]["number"])
        finally:
            await w3.provider.disconnect()

    async def _refresh_and_scan(
        self, w3: AsyncWeb3[Any], header: Any, head_ns: int, pools: list[AsyncContract], owner: str
    ) -> _Found | None:
        number = int(header["number"])
        async with w3.batch_requests() as batch:
            for contract in pools:
                if isinstance(self.store.pools[contract.address.lower()], V2Pool):
                    batch.add(contract.functions.getReserves())
                else:
                    batch.add(contract.functions.slot0())
                    batch.add(contract.functions.liquidity())
            batch.add(w3.eth.get_transaction_count(to_checksum_address(owner), "pending"))
            results = list(await batch.async_execute())
        refreshed_ns = time.perf_counter_ns()
        for contract in pools:
            pool = self.store.pools[contract.address.lower()]
            if isinstance(pool, V2Pool):
                pool.reserve0, pool.reserve1, _ = results.pop(0)
            else:
                slot0, pool.state.liquidity = results.pop(0), results.pop(0)
                pool.state.sqrt_price_x96, pool.state.tick = slot0[0], slot0[1]
        nonce = int(results.pop(0))
        self.store.block = number
        base_fee = int(header.get("baseFeePerGas") or 0)
        hashes = ("0x" + bytes(header["hash"]).hex(), "0x" + bytes(header["parentHash"]).hex())
        self.strategy.on_head(Head("anvil", number, *hashes, int(header["timestamp"]), base_fee))
        found = self.strategy.on_pool_updates([PoolUpdate("anvil", a, number, refreshed_ns) for a in self.store.pools])
        if not found:
            return None
        return _Found(number, nonce, found[0], head_ns, refreshed_ns, time.perf_counter_ns())

    async def _send(
        self,
        found: _Found,
        arb: AsyncContract,
        owner: LocalAccount,
        identity: LocalAccount,
        session: aiohttp.ClientSession,
    ) -> None:
        s, best = self.settings, found.opportunity
        hops = []
        for hop in best.hops:
            pool = self.store.pools[hop.pool]
            fee, denominator = (pool.fee, pool.fee_denominator) if isinstance(pool, V2Pool) else (0, 0)
            addresses = (to_checksum_address(a) for a in (hop.pool, hop.token_in, hop.token_out))
            hops.append((*addresses, hop.kind == "v3", fee, denominator))
        last_block = found.block + s.target_blocks
        data = arb.encode_abi("execute", args=[hops, best.amount_in, s.min_profit_wei, 0, last_block])
        tx = {
            "type": 2,
            "chainId": s.chain_id,
            "nonce": found.nonce,
            "to": arb.address,
            "value": 0,
            "data": data,
            "gas": best.gas_limit,
            "maxFeePerGas": best.gas_price,
            "maxPriorityFeePerGas": 0,
        }
        raw = "0x" + bytes(owner.sign_transaction(tx).raw_transaction).hex()
        signed_ns = time.perf_counter_ns()
        requests = []
        for block in range(found.block + 1, last_block + 1):
            params = [{"txs": [raw], "blockNumber": hex(block)}]
            body = json.dumps({"jsonrpc": "2.0", "id": block, "method": "eth_sendBundle", "params": params}).encode()
            signature = identity.sign_message(encode_defunct(text="0x" + keccak(body).hex())).signature
            header = f"{identity.address}:0x{bytes(signature).hex()}"
            requests.append((body, {"Content-Type": "application/json", "X-Flashbots-Signature": header}))
        bodies_ns = time.perf_counter_ns()

        async def post(body: bytes, headers: dict[str, str]) -> None:
            async with session.post(s.builder_url, data=body, headers=headers) as response:
                response.raise_for_status()
                await response.read()

        await asyncio.gather(*(post(body, headers) for body, headers in requests))
        self.timings.append(
            BaselineTiming(found.block, found.head_ns, found.refreshed_ns, found.scanned_ns, signed_ns, bodies_ns)
        )


@dataclass(frozen=True, slots=True)
class _Found:
    block: int
    nonce: int
    opportunity: Opportunity
    head_ns: int
    refreshed_ns: int
    scanned_ns: int
