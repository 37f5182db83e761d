"""The whole agent against a real node: configs as the fleet deploy renders them, the agent run in-process
exactly as `mevagent run` wires it (mevagent.app.Agent) or as the `mevagent` process, and its HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml

from mevagent.app import Agent
from mevagent.config import AgentConfig, validate
from mevagent.executor.deploy import Deployment, deploy_contract
from mevagent.executor.keys import Signer, write_new_key_file
from mevagent.executor.rpc import HttpJsonRpc

from .evm import REPO, Chain
from .pools import IpcAnvil
from .services import free_port
from .strategy import E18, Dex, deploy_dex, move_price

TOKEN = "e2e-token-" + "z" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MEVAGENT = REPO / ".venv" / "bin" / "mevagent"
T = TypeVar("T")


def write_token(directory: Path) -> Path:
    path = directory / "api.token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o600)
    return path


def devnet_chain(node: IpcAnvil, name: str = "ethereum") -> dict:
    """One chain as deploy/mevfleet/plan.py renders it on the devnet."""
    return {
        "name": name,
        "chain_id": 31337,
        "ipc_path": str(node.ipc_path),
        "ws_url": node.ws_url,
        "live": False,
        "max_gas_price_gwei": 300.0,
        "endpoints": [],
    }


def agent_config(directory: Path, chains: list[dict[str, Any]], **sections: Any) -> dict[str, Any]:
    """The shape deploy/mevfleet/plan.py agent_config renders, on free loopback ports."""
    return {
        "state_dir": str(directory / "state"),
        "api": {
            "bind": "127.0.0.1",
            "port": free_port(),
            "token_file": str(write_token(directory)),
            "metrics_bind": "127.0.0.1",
            "metrics_port": free_port(),
        },
        "chains": chains,
        **sections,
    }


def write_config(directory: Path, data: dict[str, Any]) -> Path:
    path = directory / "agent.yml"
    path.write_text(yaml.safe_dump(data))
    return path


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout_s: float = 20.0, what: str = "") -> T:
    """Poll `probe` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or probe}")
        await asyncio.sleep(0.05)


class Api:
    """The agent's control API and metrics listener over real HTTP."""

    def __init__(self, config: AgentConfig, session: aiohttp.ClientSession) -> None:
        self.base = f"http://{config.api.bind}:{config.api.port}"
        self.metrics_url = f"http://{config.api.metrics_bind}:{config.api.metrics_port}/metrics"
        self.session = session

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path) as response:
            body = await response.read()
            is_json = response.content_type == "application/json"
            return response.status, (await response.json()) if is_json else body.decode()

    async def post(self, path: str, payload: dict[str, Any], *, token: bool = True) -> tuple[int, Any]:
        async with self.session.post(self.base + path, json=payload, headers=AUTH if token else {}) as response:
            return response.status, await response.json()

    async def opportunities(self) -> list[dict[str, Any]]:
        status, body = await self.get("/opportunities?limit=1000")
        assert status == 200, body
        return body["opportunities"]

    async def ready(self) -> bool | None:
        status, _ = await self.get("/ready")
        return True if status == 200 else None


@contextlib.asynccontextmanager
async def running(config: AgentConfig) -> AsyncIterator[tuple[Agent, Api]]:
    """The agent as run_agent wires it, in this event loop; stopped as SIGTERM stops it."""
    agent = await Agent.build(config)
    await agent.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield agent, Api(config, session)
    finally:
        await agent.stop()


def load(data: dict[str, Any]) -> AgentConfig:
    return validate(data)


def start_process(config_path: Path) -> subprocess.Popen[bytes]:
    """`mevagent run --config ...`, the way the systemd unit starts it."""
    executable = [str(MEVAGENT)] if MEVAGENT.is_file() else [sys.executable, "-m", "mevagent.cli"]
    return subprocess.Popen(
        [*executable, "run", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=config_path.parent,
    )


# -- the end-to-end world: a DEX on anvil and the agent's deployed ArbExecutor ----------------------

CHAIN = "anvil"
INVENTORY = 50 * E18  # of W, held by the contract


@dataclass
class World:
    """anvil over IPC, the strategy fixture's DEX (V2 pairs from two factories, the 3-hop legs, a V3
    pool; published artifacts) and the ArbExecutor deployed by the agent's own deploy function,
    holding INVENTORY of the base token W. Used by tests/agent/test_e2e_agent.py and bench/agent_e2e.py."""

    node: IpcAnvil
    dex: Dex
    key_file: Path
    identity_file: Path
    identity: str  # the address that signs every bundle (X-Flashbots-Signature)
    deployment: Deployment
    factories: list[dict[str, Any]]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.node.port}"

    @property
    def w3(self) -> Any:
        return self.dex.chain.w3

    def nonce(self) -> int:
        return self.w3.eth.get_transaction_count(self.w3.to_checksum_address(self.deployment.owner))

    def inventory(self) -> int:
        return int(self.dex.w.functions.balanceOf(self.w3.to_checksum_address(self.deployment.address)).call())

    def gap(self, amount: int = 10 * E18) -> int:
        """A trader sells W into pair A (W is now cheap there); the block the swap landed in."""
        move_price(self.dex, self.dex.pairs["A"].address.lower(), self.dex.base, amount)
        return int(self.w3.eth.block_number)


def build_world(keys: Path) -> World:
    """Start anvil and build the world; the keys are written into `keys`. The caller closes world.node."""
    node = IpcAnvil()
    node.start()
    try:
        dex = deploy_dex(Chain(node.w3))
        key_file, identity_file = keys / "anvil.key", keys / "anvil-searcher.key"
        owner = write_new_key_file(key_file)
        identity = write_new_key_file(identity_file)
        node.w3.provider.make_request("anvil_setBalance", [owner, hex(10**20)])

        async def deploy() -> Deployment:
            async with aiohttp.ClientSession() as session:
                rpc = HttpJsonRpc(f"http://127.0.0.1:{node.port}", session)
                return await deploy_contract(rpc, Signer.from_file(key_file))

        deployment = asyncio.run(deploy())
        dex.chain.transact(dex.w.functions.transfer(node.w3.to_checksum_address(deployment.address), INVENTORY))
        factories = [
            {"kind": "v2", "address": pair.functions.factory().call(), "fork": "uniswap_v2"}
            for pair in dex.pairs.values()
        ]
        factories.append({"kind": "v3", "address": dex.v3.functions.factory().call(), "fork": "uniswap_v3"})
        return World(node, dex, key_file, identity_file, identity, deployment, factories)
    except BaseException:
        node.close()
        raise


def world_config(
    world: World,
    directory: Path,
    builder_url: str,
    *,
    live: bool,
    target_blocks: int = 3,
    chain_extra: dict[str, Any] | None = None,
    **sections: Any,
) -> AgentConfig:
    """The agent on the world's chain, one local builder, W as base token (gas is free on this anvil).
    `chain_extra`: more fields of the chain's section (lending markets, flash providers ...)."""
    chain: dict[str, Any] = {
        "name": CHAIN,
        "chain_id": world.w3.eth.chain_id,
        "ipc_path": str(world.node.ipc_path),
        "ws_url": world.node.ws_url,
        "live": live,
        "max_gas_price_gwei": 100,
        "endpoints": [{"name": "builder", "url": builder_url, "kind": "bundle", "timeout_ms": 2000}],
        "searcher_key_file": str(world.identity_file),
        "factories": world.factories,
        "contract": world.deployment.address,
        "base_tokens": [world.dex.base],
        # W stands in for WETH: gas (free on this anvil) is valued in it.
        "pricing": {"native_token": world.dex.base, "tokens": {world.dex.base: {"usd": 1.0, "decimals": 18}}},
        "max_head_age_s": 3600,  # anvil mines only on transactions (or when the bench says so)
        "max_state_age_s": 3600,
    }
    if live:
        chain["signing_key_file"] = str(world.key_file)
    chain.update(chain_extra or {})
    data = agent_config(
        directory,
        [chain],
        strategies={"dex_arb": {"min_profit_bps": 0, "min_profit_threshold": 0, "max_hops": 3}},
        gas={"priority_fee_gwei": 0, "builder_payment_share": 0, "target_blocks": target_blocks},
        # One execution at a time: the cycles of one block share the swapped pool, only one can land.
        engine={"max_in_flight": 1},
        **sections,
    )
    return load(data)


def live_chain(
    node: IpcAnvil,
    builder_url: str,
    key_file: Path,
    identity_file: Path,
    contract: str,
    v2_factory: str,
    **fields: Any,
) -> dict[str, Any]:
    """A live chain section on `node` for the running-agent liquidation tests: one local builder, the agent's
    contract, the pairs of a Uniswap V2 `v2_factory` bootstrapped into the store; `fields`: its markets and
    the rest (wrapped_native, lending, venus, flash_providers ...)."""
    return {
        "name": CHAIN,
        "chain_id": node.w3.eth.chain_id,
        "ipc_path": str(node.ipc_path),
        "ws_url": node.ws_url,
        "live": True,
        "max_gas_price_gwei": 100,
        "endpoints": [{"name": "builder", "url": builder_url, "kind": "bundle", "timeout_ms": 2000}],
        "signing_key_file": str(key_file),
        "searcher_key_file": str(identity_file),
        "factories": [{"kind": "v2", "address": v2_factory, "fork": "uniswap_v2"}],
        "contract": contract,
        **fields,
        "max_head_age_s": 3600,
        "max_state_age_s": 3600,
    }


def live_liquidation_config(directory: Path, chain: dict[str, Any], strategy: str, **section: Any) -> AgentConfig:
    """The agent on one `chain`, its liquidation `strategy` sending live there at any profit (`section`: more of
    its settings), no priority fee."""
    settings = {"min_profit_threshold": 0, "min_profit_bps": 0, "live_chains": [CHAIN], **section}
    return load(agent_config(directory, [chain], strategies={strategy: settings}, gas={"priority_fee_gwei": 0}))


def assert_landed_after_the_drop(entry: dict[str, Any], covered: str) -> None:
    """The running agent's liquidation (its outcome `entry`, with the block of the price drop and what the
    contract holds after) landed in the block right after the drop, the contract keeping to the wei the swap's
    output less the debt covered (the entry's `covered` field) and the loan fee."""
    assert entry["status"] == "landed", entry
    assert entry["landed_in"] == entry["price_block"] + 1  # the block right after the price drop
    kept = int(entry["swap_out"]) - int(entry[covered]) - int(entry["flashloan_fee"])
    assert entry["kept"] == kept > 0  # to the wei


async def outcome_of(api: Api, strategy: str) -> dict[str, Any] | None:
    """The first opportunity of `strategy` the agent lists, once it is no longer pending (None until then)."""
    found = [o for o in await api.opportunities() if o["strategy"] == strategy]
    return found[0] if found and found[0]["status"] != "pending" else None


# -- waiting for the agent, on anvil and on the real pair (test_e2e_ethpair) ---------------------------------


def in_block(entries: list[dict[str, Any]], block: int, status: str) -> dict[str, Any] | None:
    return next((e for e in entries if e["block"] == block and e["status"] == status), None)


async def settled(
    api: Api, block: int, status: str, *, or_later: bool = False, timeout_s: float = 30.0, agent: Any = None
) -> dict[str, Any]:
    """The opportunity of `block` with `status`; with `or_later`, the earliest one at `block` or after it.

    `or_later` is for heads that are polled (HTTP, the real pair): a poll that comes late skips a head,
    and the collector then applies the skipped block's logs with the next head, so the agent prices the
    change at that later head and names that block. On a timeout the message carries the agent's last
    opportunities and, given the agent, its engine's counts and heads (did it see the block at all?).
    """
    seen: list[dict[str, Any]] = []

    async def probe() -> dict[str, Any] | None:
        seen[:] = await api.opportunities()
        if not or_later:
            return in_block(seen, block, status)
        later = [e for e in seen if e["block"] >= block and e["status"] == status]
        return min(later, key=lambda e: e["block"]) if later else None

    try:
        return await eventually(probe, timeout_s, f"an opportunity of block {block} with status {status}")
    except AssertionError as exc:
        found = [(e["block"], e["status"], e.get("reason", "")) for e in seen[-10:]]
        stats = {} if agent is None else agent.engine.stats()
        engine = f"; the engine's counts {stats['counts']} and heads {stats['heads']}" if stats else ""
        raise AssertionError(f"{exc}; the agent's last opportunities: {found}{engine}") from None


async def settle(agent: Any, world: Any, chain: str = CHAIN) -> None:
    """Until the agent has processed the chain's head and has nothing queued or in flight, three polls running.

    The collector emits a head and that block's pool updates without yielding, and the strategy queues
    what it finds without yielding, so head seen + empty queues + nothing in flight means done.
    """
    calm = 0

    async def quiet() -> bool:
        nonlocal calm
        stats = agent.engine.stats()
        head = await asyncio.to_thread(lambda: int(world.w3.eth.block_number))
        idle = (
            stats["heads"].get(chain) == head
            and stats["in_flight"] == 0
            and all(q["depth"] == 0 for q in stats["queues"].values())
        )
        calm = calm + 1 if idle else 0
        return calm >= 3

    await eventually(quiet, 30, "the pipeline to settle")
