"""Running a cross-chain service's bridge watchers against real chains while a relayer thread of the test
fills deposits (test_crosschain_anvil.py: Across; test_bridge_events.py: CCTP and Stargate;
test_bridge_op_stack.py: the OP Stack's canonical bridge), and the stand-in bridges compiled."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import yaml
from mevcontrol.crosschain import CrossChainService
from web3.contract import Contract

from testbed.evm import CONTRACTS, Chain, start_anvil, stop_anvil

from ..conftest import _need_anvil

SOLCJS = Path(__file__).resolve().parents[3] / "node_modules" / "solc" / "solc.js"


@cache
def stand_ins(*files: str) -> dict[str, tuple[list[dict], str]]:
    """Contract name → (abi, creation bytecode) of testbed/contracts' `files`, compiled with the repo's solc-js."""
    source = {
        "language": "Solidity",
        "sources": {name: {"content": (CONTRACTS / name).read_text()} for name in files},
        "settings": {"evmVersion": "cancun", "optimizer": {"enabled": True, "runs": 200},
                     "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}}},
    }  # fmt: skip
    result = subprocess.run(
        [str(SOLCJS), "--standard-json"], input=json.dumps(source), capture_output=True, text=True, check=True
    )
    output = json.loads(result.stdout[result.stdout.index("{") :])
    assert not [e for e in output.get("errors", []) if e["severity"] == "error"], output["errors"]
    return {
        name: (c["abi"], "0x" + c["evm"]["bytecode"]["object"])
        for unit in output["contracts"].values()
        for name, c in unit.items()
        if c["evm"]["bytecode"]["object"]
    }


def deploy(chain: Chain, files: tuple[str, ...], name: str, *args: object) -> Contract:
    """Stand-in contract `name` of testbed/contracts' `files`, deployed on `chain` with `args`."""
    abi, bytecode = stand_ins(*files)[name]
    receipt = chain.transact(chain.w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args))
    return chain.w3.eth.contract(address=receipt["contractAddress"], abi=abi)


@contextmanager
def anvils(chain_ids: Iterable[int]) -> Iterator[list[tuple[Chain, str]]]:
    """A fresh anvil per chain id, as (Chain, RPC URL); all stopped after, whatever happened."""
    _need_anvil()
    procs = []
    try:
        chains = []
        for chain_id in chain_ids:
            proc, w3 = start_anvil(chain_id)
            procs.append(proc)
            chains.append((Chain(w3), w3.provider.endpoint_uri))  # type: ignore[attr-defined]
        yield chains
    finally:
        for proc in procs:
            stop_anvil(proc)


def registry_file(directory: Path, chain_ids: dict[str, int], tokens: dict, bridges: dict) -> Path:
    """A token registry of the test's chains (each with ETH as its native coin) with `tokens` and `bridges`,
    written to `directory`/registry.yml for the service's `registry_file`."""
    coins = {f"{c}:ETH": {"asset": "eth", "variant": "native", "address": "native", "decimals": 18} for c in chain_ids}
    data = {
        "chains": {c: {"chain_id": i, "native": "ETH"} for c, i in chain_ids.items()},
        "tokens": coins | tokens,
        "bridges": bridges,
    }
    path = directory / "registry.yml"
    path.write_text(yaml.safe_dump(data))
    return path


async def within(timeout_s: float, done: Callable[[], bool]) -> None:
    """Until `done()` holds (the watchers poll every 0.1 s); TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not done():
            await asyncio.sleep(0.05)


def watch_while(
    service: CrossChainService,
    relayer: threading.Thread,
    stop: threading.Event,
    scenario: Callable[[], Awaitable[None]],
) -> None:
    """The service's watchers and the relayer run while `scenario` does; all stopped after, whatever happened."""

    async def run() -> None:
        tasks = [asyncio.create_task(w.run()) for w in service.watchers]
        try:
            relayer.start()
            await scenario()
        finally:
            stop.set()
            service.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await service.redis.aclose()

    asyncio.run(run())
    relayer.join(10)
