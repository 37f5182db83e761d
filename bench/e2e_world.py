"""The world of bench/agent_e2e.py and the bench's hands on it: the node, the trader, the builder process.

The world is tests/agent's end-to-end one (testbed/e2e.py): anvil with IPC (testbed/pools.IpcAnvil), the
strategy fixture's DEX (Uniswap V2 pairs A, B from two factories, C, D for 3-hop cycles and a V3 pool,
all from the published artifacts) and the ArbExecutor deployed with the agent's own deploy function,
holding the base token W. The bench then switches automine off and mines every block itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testbed/, the local worlds

from mevagent.config import AgentConfig  # noqa: E402
from testbed.e2e import World, world_config  # noqa: E402
from testbed.evm import TX_GAS, Chain  # noqa: E402
from testbed.strategy import Dex, move_price  # noqa: E402

TARGET_BLOCKS = 3  # bundles for N+1..N+3, the agent's default


def agent_settings(world: World, directory: Path, builder_url: str) -> AgentConfig:
    """LIVE on the world's chain, as tests/agent/test_e2e_agent.py configures it."""
    return world_config(world, directory, builder_url, live=True, target_blocks=TARGET_BLOCKS)


# -- driving the node --------------------------------------------------------------------------------


class IpcRpc:
    """The bench's own line to anvil's IPC socket: one request at a time, newline-framed JSON."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._ids = 0

    @classmethod
    async def open(cls, path: Path) -> IpcRpc:
        return cls(*await asyncio.open_unix_connection(str(path), limit=1 << 24))

    async def call(self, method: str, params: list[Any]) -> Any:
        self._ids += 1
        self._writer.write(
            orjson.dumps({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}) + b"\n"
        )
        answer = orjson.loads(await self._reader.readuntil(b"\n"))
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    async def mine(self) -> int:
        """Mine one block; t0: when evm_mine was about to be written to the socket."""
        t0 = time.perf_counter_ns()
        await self.call("evm_mine", [])
        return t0

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class _SendOnly(Chain):
    """Chain.transact that returns once the node has the transaction: with automine off it waits in the
    mempool until the bench mines. Lets the strategy fixture's move_price open a gap unchanged."""

    def transact(self, fn: Any, *, expect_success: bool = True) -> Any:
        return fn.transact({"from": self.account, "gas": TX_GAS, "gasPrice": 0})


# (token x, token y, y per x when aligned) of each pool of the strategy fixture's DEX
def _references(dex: Dex) -> dict[str, tuple[str, str, float]]:
    w, t, u = (c.address.lower() for c in (dex.w, dex.t, dex.u))
    pools = {name: (dex.pairs[name].address.lower(), w, t, 1000.0) for name in ("A", "B")}
    pools["C"] = (dex.pairs["C"].address.lower(), t, u, 2.0)
    pools["D"] = (dex.pairs["D"].address.lower(), w, u, 2000.0)
    pools["V"] = (dex.v3.address.lower(), w, t, 1000.0)
    return {address: (x, y, ref) for address, x, y, ref in pools.values()}


def send_gap(dex: Dex, rng: random.Random) -> None:
    """A trader's swap of 2-6% of one pool's depth, toward and past its aligned price (so prices stay near
    their start over hundreds of rounds), into the mempool. Arbitrage on it pays far more than its fees."""
    address, (x, y, ref) = rng.choice(sorted(_references(dex).items()))
    contract = dex.contract_of(address)
    token0 = contract.functions.token0().call().lower()
    if address == dex.v3.address.lower():
        sqrt_price = contract.functions.slot0().call()[0] / (1 << 96)
        liquidity = contract.functions.liquidity().call()
        depth = {token0: liquidity / sqrt_price, contract.functions.token1().call().lower(): liquidity * sqrt_price}
    else:
        reserve0, reserve1, _ = contract.functions.getReserves().call()
        depth = {token0: reserve0, contract.functions.token1().call().lower(): reserve1}
    y_per_x = depth[y] / depth[x]  # for V3 the virtual reserves at the current price
    token_in = x if y_per_x > ref else y  # sell what is dear
    amount = int(depth[token_in] * rng.uniform(0.02, 0.06))
    move_price(dataclasses.replace(dex, chain=_SendOnly(dex.chain.w3)), address, token_in, amount)


# -- the builder process ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BundleSeen:
    received_ns: int
    block: int  # its target block
    tx_hash: str
    signer: str


class BuilderProcess:
    """bench/e2e_builder.py as a child process; every bundle line it prints, in the order handled."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url
        self.bundles: list[BundleSeen] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="builder-lines")

    @classmethod
    async def start(cls, node_url: str) -> BuilderProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).with_name("e2e_builder.py")), node_url, stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
        if first[:1] != ["url"]:
            proc.kill()
            raise RuntimeError(f"the builder did not start: {first}")
        return cls(proc, first[1])

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            _, received, block, tx_hash, signer = line.decode().split()
            self.bundles.append(BundleSeen(int(received), int(block), tx_hash, signer))
            self._arrived.set()

    async def first_after(self, mark: int, count: int, timeout_s: float) -> BundleSeen | None:
        """The earliest-received of the bundles after the first `mark` ones, once `count` of them arrived
        (or `timeout_s` passed); None if none arrived.

        Lines come once a request is handled, not in arrival order: a handler that forwards to the node
        finishes after one that did not need to, so the first line is not always the first arrival.
        """
        deadline = time.monotonic() + timeout_s
        while len(self.bundles) < mark + count:
            self._arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.returncode is not None:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        arrived = self.bundles[mark:]
        return min(arrived, key=lambda b: b.received_ns) if arrived else None

    async def stop(self) -> None:
        self._reader.cancel()
        if self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
