"""Running a cross-chain service's bridge watchers against real chains while a relayer thread of the test
fills deposits (test_crosschain_anvil.py: Across; test_bridge_events.py: CCTP and Stargate;
test_bridge_op_stack.py: the OP Stack's canonical bridge), and the stand-in bridges compiled."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path

from mevcontrol.crosschain import CrossChainService

from testbed.evm import CONTRACTS

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
