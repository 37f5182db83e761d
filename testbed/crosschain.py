"""The cross-chain world: two anvil chains (alpha 31401, beta 31402) with the same token and Uniswap V2
deployments (`sides`), Router02 and an agent's key, inventory and ArbExecutor on each (`deploy_venues`), and a
fleet on them (`fleet`): a real `Control` (ingest into PostgreSQL, the lease loop, the cross-chain service and
its position book) and two agents' bus links with real risk gates and live executors sending to their node.
tests/agent/control/test_crosschain_*.py and bench/crosschain_legs.py build it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import yaml
from mevcontrol.config import ControlConfig
from mevcontrol.db import connect_pool
from mevcontrol.positions import Position
from mevcontrol.service import Control
from redis.asyncio import Redis
from web3.contract import Contract

from mevagent.bus.link import BusLink
from mevagent.bus.publisher import BusPublisher
from mevagent.bus.spool import Spool
from mevagent.config import RiskLimits
from mevagent.crosschain.prices import PairPriceReporter, PairPricesConfig, PairSpec
from mevagent.executor.config import from_chain_config
from mevagent.executor.deploy import deploy_contract
from mevagent.executor.executor import ArbitrageExecutor
from mevagent.executor.keys import Signer, write_new_key_file
from mevagent.executor.routes import ARB_CONTRACT
from mevagent.executor.rpc import HttpJsonRpc
from mevagent.risk.gate import RiskGate
from mevagent.state.pools import PoolStore, V2Pool

from .control import Operator
from .e2e import agent_config, load
from .evm import MAX_UINT256, TX_GAS, Chain, deploy_token, deploy_v2_pair, set_v2_reserves, start_anvil, stop_anvil
from .services import Postgres, RedisServer

E18 = 10**18
INVENTORY = 10**6 * E18
ANN = Operator("ann", "operator")
LIMITS = RiskLimits(
    max_position_size_usd=100_000, max_total_exposure_usd=200_000, max_chain_exposure_usd=200_000,
    max_token_exposure_usd=200_000, max_slippage_bps=1,
)  # fmt: skip


@dataclass
class Side:
    name: str
    chain: Chain
    usd: Contract  # the quote token (18 decimals, as v2-core's test ERC20)
    weth: Contract
    pair: Contract
    deployed: str = ""  # the snapshot right after the deployments

    def fresh(self) -> None:
        """Back to the deployments (empty pair), whatever an earlier test did."""
        self.chain.revert(self.deployed)
        self.deployed = self.chain.snapshot()

    def store(self) -> PoolStore:
        """The agent's pool store for this chain, read from the pair as the state syncer would hold it."""
        r0, r1, _ = self.pair.functions.getReserves().call()
        token0 = self.pair.functions.token0().call().lower()
        token1 = self.pair.functions.token1().call().lower()
        store = PoolStore(self.name, block=self.chain.w3.eth.block_number)
        store.add(V2Pool(self.pair.address.lower(), "uniswap_v2", token0, token1, r0, r1, 30, 10_000))
        return store

    def set_price(self, weth: int, usd: int) -> None:
        self.fresh()
        token0 = self.pair.functions.token0().call()
        first, second = (self.weth, self.usd) if token0 == self.weth.address else (self.usd, self.weth)
        amounts = (weth, usd) if first is self.weth else (usd, weth)
        set_v2_reserves(self.chain, self.pair, first, second, *amounts)

    def swap(self, token_in: Contract, amount_in: int, token_out: Contract, amount_out: int) -> bool:
        """Pay `amount_in` into the pair and ask for `amount_out`: True if the pair's K check let it pass."""
        snapshot = self.chain.snapshot()
        self.chain.transact(token_in.functions.transfer(self.pair.address, amount_in))
        token0 = self.pair.functions.token0().call()
        outs = (amount_out, 0) if token0 == token_out.address else (0, amount_out)
        receipt = self.chain.transact(self.pair.functions.swap(*outs, self.chain.account, b""), expect_success=False)
        if receipt["status"] != 1:
            self.chain.revert(snapshot)
            return False
        return True


def _side(name: str, chain_id: int) -> tuple[object, Side]:
    proc, w3 = start_anvil(chain_id)
    chain = Chain(w3)
    usd, weth = deploy_token(chain), deploy_token(chain)
    pair = deploy_v2_pair(chain, usd, weth)
    return proc, Side(name, chain, usd, weth, pair, chain.snapshot())


@contextlib.contextmanager
def sides() -> Iterator[tuple[Side, Side]]:
    """Two anvils (alpha 31401, beta 31402) with the same token and pair deployments, stopped on leaving."""
    started = []
    try:
        for name, chain_id in (("alpha", 31401), ("beta", 31402)):
            proc, side = _side(name, chain_id)
            started.append((proc, side))
        alpha, beta = (s for _, s in started)
        assert alpha.chain.w3.eth.chain_id == 31401 and beta.chain.w3.eth.chain_id == 31402
        # The same deployments: the same addresses on both chains (same deployer, same nonces).
        assert (alpha.usd.address, alpha.weth.address, alpha.pair.address) == (
            beta.usd.address, beta.weth.address, beta.pair.address,
        )  # fmt: skip
        yield alpha, beta
    finally:
        for proc, _ in started:
            stop_anvil(proc)  # type: ignore[arg-type]


def registry_for(directory: Path, side: Side) -> Path:
    """The devnet's registry: the two chains' tokens (the same addresses on both anvils) and two bridges."""
    return registry_file(directory, dict.fromkeys(("alpha", "beta"), side.weth.address),
                         dict.fromkeys(("alpha", "beta"), side.usd.address))  # fmt: skip


def registry_file(directory: Path, weth: dict[str, str], usd: dict[str, str]) -> Path:
    """Chains alpha and beta, each with ETH, WETH and TUSD at the given (EIP-55) addresses, and two bridges."""
    tokens = {}
    for chain in ("alpha", "beta"):
        tokens[f"{chain}:ETH"] = {"asset": "eth", "variant": "native", "address": "native", "decimals": 18}
        tokens[f"{chain}:WETH"] = {"asset": "eth", "variant": "wrapped", "address": weth[chain], "decimals": 18}
        tokens[f"{chain}:TUSD"] = {"asset": "tusd", "variant": "issued", "address": usd[chain], "decimals": 18}
    mesh = [["alpha:WETH", "beta:WETH"], ["alpha:TUSD", "beta:TUSD"]]
    data = {
        "chains": {"alpha": {"chain_id": 31401, "native": "ETH"}, "beta": {"chain_id": 31402, "native": "ETH"}},
        "tokens": tokens,
        "bridges": {
            "fastlane": {"kind": "intent", "use": "trade", "why": "a relayer fills within seconds",
                         "fee": {"fee_bps": 3, "fixed_usd": "0.25"}, "fill_s": 20, "mesh": mesh, "events": "across"},
            "slowmint": {"kind": "burn_mint", "use": "trade", "why": "burn and mint after finality",
                         "fee": {"fee_bps": 0, "fixed_usd": "0.01"}, "fill_s": 900, "mesh": mesh},
        },
    }  # fmt: skip
    path = directory / "registry.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def reporters(alpha: Side, beta: Side, publish: object) -> list[tuple[PairPriceReporter, Side]]:
    config = PairPricesConfig(
        pairs=(PairSpec(pool=alpha.pair.address.lower(), base=alpha.weth.address.lower()),),
        buy_sizes=(1_000 * E18, 10_000 * E18),
        sell_sizes=(E18, 10 * E18),
    )
    return [(PairPriceReporter(s.name, s.store(), config, publish), s) for s in (alpha, beta)]  # type: ignore[arg-type]


@dataclass
class Venue:
    side: Side
    router: Contract
    key_file: Path
    agent: str  # the agent's address (lower case): its inventory
    contract: str  # its ArbExecutor (a live chain has one; legs do not use it)
    v3_router: Contract | None = None  # v3-periphery's SwapRouter, once the `v3` fixture deployed it
    v3_pool: Contract | None = None  # a V3 WETH/TUSD pool (fee 3000), once the `v3` fixture deployed it
    v3_lens: Contract | None = None
    router02: Contract | None = None  # swap-router-contracts' SwapRouter02 (V2 factory and V3 factory), once deployed
    leg_venues: tuple[dict[str, Any], ...] = ()  # the agent's `leg_venues` on this chain

    def balances(self) -> tuple[int, int]:
        me = self.side.chain.w3.to_checksum_address(self.agent)
        return self.side.usd.functions.balanceOf(me).call(), self.side.weth.functions.balanceOf(me).call()


def deploy_venues(sides: tuple[Side, Side], directory: Path) -> tuple[Venue, Venue]:
    """Router02 on each chain's factory, an agent key holding inventory of both tokens and approving the router,
    its ArbExecutor deployed: then a new baseline snapshot (each test's set_price goes back to it)."""
    out = []
    for side in sides:
        chain, w3 = side.chain, side.chain.w3
        factory = side.pair.functions.factory().call()
        router = chain.deploy("@uniswap/v2-periphery/build/UniswapV2Router02.json", factory, side.weth.address)
        (directory / side.name).mkdir(parents=True)
        key_file = directory / side.name / "agent.key"
        agent = write_new_key_file(key_file)
        w3.provider.make_request("anvil_setBalance", [agent, hex(10**20)])
        for token in (side.usd, side.weth):
            chain.transact(token.functions.transfer(agent, INVENTORY))
        w3.provider.make_request("anvil_impersonateAccount", [agent])
        for token in (side.usd, side.weth):
            tx = token.functions.approve(router.address, MAX_UINT256).transact(
                {"from": agent, "gas": TX_GAS, "gasPrice": 0}
            )
            assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
        w3.provider.make_request("anvil_stopImpersonatingAccount", [agent])

        async def deploy(url: str = str(w3.provider.endpoint_uri), key: Path = key_file) -> str:  # type: ignore[attr-defined]
            async with aiohttp.ClientSession() as session:
                return (await deploy_contract(HttpJsonRpc(url, session), Signer.from_file(key))).address

        contract = asyncio.run(deploy())
        side.deployed = chain.snapshot()
        out.append(Venue(side, router, key_file, agent.lower(), contract))
    return out[0], out[1]


def fleet_config(tmp: Path, redis: RedisServer, pg: Postgres, registry: Path | None, **execution: Any) -> ControlConfig:
    dsn = tmp / "pg.dsn"
    dsn.write_text(pg.dsn)
    dsn.chmod(0o600)
    return ControlConfig.model_validate({
        "redis_url": redis.url, "redis_password_file": str(redis.password_file), "postgres_dsn_file": str(dsn),
        "operators": [ANN.entry], "lease_ttl_s": 3, "live_chains": ["alpha", "beta"],
        "crosschain": {
            "registry_file": registry and str(registry), "max_bridge_time": 600, "usd": {"eth": "3000", "tusd": "1"},
            "gas_price_wei": {"alpha": 10**9, "beta": 10**9},
            "execution": {"agents": {"alpha": "xa", "beta": "xb"}, "leg_timeout_s": 5, "settle_s": 2, **execution},
        },
    })  # fmt: skip


@dataclass
class Fleet:
    control: Control
    links: dict[str, BusLink]
    redis: RedisServer

    async def publish_gap(self, alpha: Side, beta: Side, tmp: Path) -> None:
        """Each chain's pair price through a real BusPublisher onto `mev:prices`, as the agents' reporters do."""
        redis = Redis(host="127.0.0.1", port=self.redis.port, password=self.redis.password)
        publisher = BusPublisher(redis, Spool(tmp / "spool"))
        task = asyncio.create_task(publisher.run())
        try:
            for reporter, side in reporters(alpha, beta, publisher.publish):
                assert reporter.observe([side.pair.address.lower()], side.chain.w3.eth.block_number) == 1
            await publisher.flushed(5)
        finally:
            publisher.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await redis.aclose()

    async def publish(self, items: list[tuple[PairPriceReporter, str, int]], tmp: Path) -> None:
        """Each (reporter, pool, block)'s pair price through a real BusPublisher onto `mev:prices`."""
        redis = Redis(host="127.0.0.1", port=self.redis.port, password=self.redis.password)
        publisher = BusPublisher(redis, Spool(tmp / "spool"))
        task = asyncio.create_task(publisher.run())
        try:
            for reporter, pool, block in items:
                reporter.publish = publisher.publish
                assert reporter.observe([pool], block) == 1
            await publisher.flushed(5)
        finally:
            publisher.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await redis.aclose()

    async def position(self, *states: str, timeout: float = 20) -> Position:
        book = self.control.crosschain.book  # type: ignore[union-attr]
        async with asyncio.timeout(timeout):
            while True:
                done = [p for p in book.positions.values() if p.state in states]
                if done:
                    await asyncio.sleep(0.3)  # the record's last write
                    return done[-1]
                await asyncio.sleep(0.02)

    async def record(self, position_id: str) -> tuple[str, dict[str, Any], list[Any]]:
        async with self.control.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT state, record FROM crosschain_positions WHERE id = $1", position_id)
            legs = await conn.fetch(
                """SELECT leg, chain, status, amount_in, amount_out FROM crosschain_legs WHERE position_id = $1
                   ORDER BY at""",
                position_id,
            )
        return row["state"], orjson.loads(row["record"]), [tuple(r) for r in legs]


@contextlib.asynccontextmanager
async def fleet(
    venues: tuple[Venue, Venue],
    redis: RedisServer,
    pg: Postgres,
    tmp: Path,
    live: tuple[bool, bool] = (True, True),
    **execution: Any,
) -> AsyncIterator[Fleet]:
    config = fleet_config(tmp, redis, pg, registry_for(tmp, venues[0].side), **execution)
    client = Redis(host="127.0.0.1", port=redis.port, password=redis.password)
    await client.delete("mev:prices")  # an earlier test's prices: this fleet starts from an empty graph
    await client.aclose()
    pool = await connect_pool(pg.dsn)
    control = Control(config, Redis(host="127.0.0.1", port=redis.port, password=redis.password), pool)
    await control.start()
    links: dict[str, BusLink] = {}
    sessions = []
    try:
        for name, venue, is_live in zip(("xa", "xb"), venues, live, strict=True):
            side = venue.side
            url = str(side.chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
            chain = {
                "name": side.name, "chain_id": side.chain.w3.eth.chain_id, "http_url": url, "live": is_live,
                "max_gas_price_gwei": 100.0, "signing_key_file": str(venue.key_file), "contract": venue.contract,
                "swap_router": venue.router.address.lower(),
                **({"v3_swap_router": venue.v3_router.address.lower()} if venue.v3_router is not None else {}),
                **({"leg_venues": list(venue.leg_venues)} if venue.leg_venues else {}),
                "endpoints": [{"name": "node", "url": url, "kind": "private_tx"}],
            }  # fmt: skip
            bus = {"agent": name, "redis_url": redis.url, "password_file": str(redis.password_file), "heartbeat_s": 0.2}
            (tmp / name).mkdir()
            agent = load(agent_config(tmp / name, [chain], bus=bus))
            gate = RiskGate.from_config(agent)
            gate.update_limits(LIMITS)
            session = aiohttp.ClientSession()
            sessions.append(session)
            settings = from_chain_config(agent.chains[0], contract=venue.contract, rpc_url=url)
            executor = ArbitrageExecutor(
                settings, PoolStore(side.name), gate, HttpJsonRpc(url, session), session,
                max_slippage_bps=lambda: LIMITS.max_slippage_bps, signer=Signer.from_file(venue.key_file),
            )  # fmt: skip
            link = BusLink(agent, gate, apply=lambda _: asyncio.sleep(0))
            link.router = SimpleNamespace(
                executors={side.name: {ARB_CONTRACT: executor}}, nodes={side.name: executor.rpc}
            )  # type: ignore[assignment]
            links[name] = link
            await link.start()
        async with asyncio.timeout(10):  # the control plane's lease reached both (live chains sign only with it)
            while not all(link.lease.fresh() or not link.live_chains for link in links.values()):
                await asyncio.sleep(0.05)
        yield Fleet(control, links, redis)
    finally:
        for link in links.values():
            await link.stop(0.5)
        for session in sessions:
            await session.close()
        await control.close()
