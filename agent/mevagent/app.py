"""The running agent: every configured chain wired into one engine, the control API and the metrics listener.

Per chain: a pool store kept by the EVM collector (IPC first, WebSocket as fallback) from the configured
factories, every installed strategy plug-in (mevagent.strategies) whose section enables it and whose
state the chain keeps, and one ArbitrageExecutor (dry-run unless the chain says `live: true`) that asks
the shared risk gate before it signs, plus the executor routes plug-ins bring. A router hands each
opportunity to the executor of its chain and route. Nothing here names a strategy. The agent keeps its own connection to
each node for the executor, /ready and the node metrics, apart from the collector's: a collector that
reconnects must not fail an execution that is waiting for its receipt.

A chain without factories (a fresh devnet host) still connects to its node, serves /ready from it and
exports its metrics; it has no pool state to search. SIGTERM or SIGINT stops the collectors and
strategies, lets executions in flight finish (their outcomes must reach the risk gate), writes the
pool checkpoints and exits 0. A config that cannot run exits 2 with a message naming the field.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mevagent import metrics_names as names
from mevagent.analytics.service import AnalyticsService
from mevagent.api import ControlPlane, ReadinessCheck, Servers, StateFreshness, Token, node_synced, start_servers
from mevagent.api.readiness import CheckFn
from mevagent.bus.link import BusLink
from mevagent.collectors.evm import EvmCollector, EvmCollectorConfig
from mevagent.config import GWEI, AgentConfig, ChainConfig, GasSettings, describe
from mevagent.core import Collector, Emit, Executor, Head, Opportunity, Outcome, PoolUpdate, Status, Strategy
from mevagent.engine import Engine, EngineLimits, LiveSettings, RecentOpportunities
from mevagent.executor.config import ChainExecution, from_chain_config
from mevagent.executor.executor import ArbitrageExecutor
from mevagent.executor.keys import KeyFileError
from mevagent.executor.mevboost import MevBoostProbe
from mevagent.heap import freeze_startup
from mevagent.lending.monitor import FlashMonitor
from mevagent.lending.venus_monitor import VenusMonitor
from mevagent.metrics import AgentMetrics
from mevagent.pricing import Pricer
from mevagent.risk import RiskGate
from mevagent.rpc import ConnectionLost, RpcClient, connect
from mevagent.solana.book import PoolBook
from mevagent.solana.node import SolanaCollector, SolanaNode
from mevagent.state.config import SyncConfig
from mevagent.state.pools import PoolStore
from mevagent.strategies import PluginStrategy, StrategyContext, plugins

log = logging.getLogger("mevagent")

WATCH_INTERVAL_S = 1.0  # node metrics, pool-state age and reorg counts


class StartupError(Exception):
    """The config validated but cannot run here (a missing contract, an unreadable key): exit 2."""


# ---- the node, for calls -----------------------------------------------------------------------


class NodeLink:
    """Calls to one chain's node on a connection that is re-made on demand (IPC first, then WebSocket).

    Unlike the collector, it never waits out a backoff: a call while the node is down fails at once
    with ConnectionLost, and the next call tries again. (A Solana chain's node is mevagent.solana.node
    .SolanaNode, with the same head/readiness methods.)
    """

    head_tolerance = 0  # ChainRouter: an opportunity computed on any earlier block is stale

    def __init__(self, chain: str, endpoints: Sequence[str], *, connect_timeout_s: float, request_timeout_s: float):
        self.chain = chain
        self.endpoints = tuple(endpoints)
        self._connect_timeout = connect_timeout_s
        self._request_timeout = request_timeout_s
        self._client: RpcClient | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> RpcClient:
        async with self._lock:
            if self._client is not None and not self._client.closed:
                return self._client
            if self._client is not None:
                await self._client.close()
                self._client = None
            failures = []
            for endpoint in self.endpoints:
                try:
                    self._client = await connect(
                        endpoint, timeout=self._connect_timeout, request_timeout=self._request_timeout
                    )
                    return self._client
                except ConnectionLost as exc:
                    failures.append(str(exc))
            raise ConnectionLost(f"{self.chain}: no node endpoint answers: {'; '.join(failures)}")

    async def call(self, method: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        client = await self._connected()
        return await client.call(method, list(params) if not isinstance(params, dict) else params)

    async def head(self) -> int:
        return int(await self.call("eth_blockNumber", []), 16)

    async def head_lag_s(self) -> float:
        block = await self.call("eth_getBlockByNumber", ["latest", False])
        return max(0.0, time.time() - int(block["timestamp"], 16))

    def synced(self, max_head_age_s: float) -> CheckFn:
        return node_synced(self.call, max_head_age_s)

    def identity(self, chain_id: int) -> CheckFn:
        async def check() -> tuple[bool, str]:
            # A socket path or URL of another chain's node would have every transaction signed for the wrong chain.
            node_id = int(await self.call("eth_chainId", []), 16)
            if node_id != chain_id:
                return False, f"the node serves chain id {node_id}, the config says {chain_id}"
            return True, f"chain id {node_id}"

        return check

    async def close(self) -> None:
        async with self._lock:
            if self._client is not None:
                await self._client.close()
                self._client = None


ChainNode = NodeLink | SolanaNode


# ---- pieces the parts do not provide ------------------------------------------------------------


class ChainRouter:
    """core.Executor over every chain: each opportunity goes to its chain's executor for its route, while
    it is current.

    The engine drops an opportunity once the collector has announced a later head, but the collector
    can be a block behind the node (it applies the block's logs first). The executor simulates and signs
    against the node's latest state, so an opportunity of block N executed on N+1 could land with a
    different profit than predicted (the contract only guarantees the minimum). One round trip to the
    node, right before the executor starts, refuses it instead: nothing is signed.
    """

    def __init__(self, executors: dict[str, dict[str, Executor]], nodes: dict[str, ChainNode]) -> None:
        self.executors = executors  # chain -> route -> executor
        self.nodes = nodes

    async def execute(self, opportunity: Opportunity, head: int | None = None) -> Outcome:
        routes = self.executors.get(opportunity.chain)
        if routes is None:
            return Outcome(opportunity, Status.REJECTED, reason=f"chain: no executor for {opportunity.chain!r}")
        executor = routes.get(opportunity.route)
        if executor is None:
            reason = f"route: {opportunity.chain} has no executor for route {opportunity.route!r}"
            return Outcome(opportunity, Status.REJECTED, reason=reason)
        node = self.nodes[opportunity.chain]
        try:
            head = await node.head()
        except Exception as exc:  # the node is down or answered nonsense: nothing can be simulated either
            return Outcome(opportunity, Status.FAILED, reason=f"node: {type(exc).__name__}: {exc}")
        if head > opportunity.block + node.head_tolerance:
            reason = f"stale: the node is at block {head}, the opportunity was computed on {opportunity.block}"
            return Outcome(opportunity, Status.REJECTED, reason=reason)
        return await executor.execute(opportunity, head)


class FreshStateCollector:
    """The chain's collector, marking the pool state fresh at every head it has brought the store to.

    The collector emits a Head only after the syncer applied that block, so the mark is the state's.
    After the store was (re)loaded (bootstrap, checkpoint, rebuild after a deep reorg) every pool is
    announced once: a strategy learns a pool from its updates, and a pool that does not trade for a
    while must still be part of the cycles that a change elsewhere opens. Every other event goes to
    the engine as it is (pending transactions no strategy consumes are counted there and dropped).
    """

    def __init__(self, collector: EvmCollector, freshness: StateFreshness) -> None:
        self.collector = collector
        self.freshness = freshness
        self.name = collector.name
        self._loads = 0
        self.tap: Callable[[object], None] | None = None  # analytics: after the engine has the event

    async def run(self, emit: Emit) -> None:
        store, stats = self.collector.store, self.collector.syncer.stats

        async def forward(event: object) -> None:
            await emit(event)
            if self.tap is not None:
                self.tap(event)
            if not isinstance(event, Head):
                return
            self.freshness.mark(event.number)
            loads = stats.bootstraps + stats.checkpoint_loads
            if loads != self._loads:
                self._loads = loads
                now = time.perf_counter_ns()
                for pool in list(store.pools):
                    await emit(PoolUpdate(store.chain, pool, store.block, now))

        await self.collector.run(forward)


def execution_settings(chain: ChainConfig, gas: GasSettings) -> ChainExecution:
    """The executor's settings for `chain`; StartupError naming the agent's field when they cannot run."""
    if chain.live and chain.contract is None:
        raise StartupError(
            f"chains.{chain.name}.contract: live: true needs the deployed ArbExecutor "
            "(python -m mevagent.executor.deploy prints its address)"
        )
    if chain.live and any(e.kind == "bundle" for e in chain.endpoints) and chain.searcher_key_file is None:
        raise StartupError(
            f"chains.{chain.name}.searcher_key_file: a live chain with bundle endpoints signs "
            "X-Flashbots-Signature with it"
        )
    common = {"contract": chain.contract, "wrapped_native": chain.wrapped_native, "target_blocks": gas.target_blocks}
    try:
        # A dry-run chain without endpoints gets an executor with nowhere to send (ChainConfig refuses a
        # live one): dry-run never signs, so it needs none.
        settings = from_chain_config(chain, **common)
        return settings.model_copy(update={"priority_fee_wei": int(gas.priority_fee_gwei * GWEI)})
    except ValidationError as exc:
        raise StartupError(f"chains.{chain.name}: its executor cannot be built: {describe(exc, {})}") from None


def sync_config(config: AgentConfig, chain: ChainConfig) -> SyncConfig:
    sync = chain.sync
    return SyncConfig(
        factories=chain.factories,
        checkpoint_path=config.state_dir / f"pools-{chain.name}.json",
        checkpoint_every_blocks=sync.checkpoint_every_blocks,
        reorg_depth=sync.reorg_depth,
        reconcile_per_block=sync.reconcile_per_block,
        log_chunk_blocks=sync.log_chunk_blocks,
        batch_size=sync.batch_size,
    )


def _endpoints(chain: ChainConfig) -> list[str]:
    return [str(e) for e in (chain.ipc_path, chain.ws_url, chain.http_url) if e is not None]


# ---- one chain ----------------------------------------------------------------------------------


@dataclass
class ChainRuntime:
    config: ChainConfig
    store: PoolStore
    node: ChainNode
    executor: ArbitrageExecutor | None  # the EVM route's; None on Solana (its route comes with its plug-in)
    collector: EvmCollector | None = None
    solana: SolanaCollector | None = None  # a Solana chain's collector (its pool book is solana.book)
    fresh: FreshStateCollector | None = None
    freshness: StateFreshness | None = None
    strategies: dict[str, PluginStrategy] = field(default_factory=dict)  # by plug-in name
    routes: dict[str, Executor] = field(default_factory=dict)  # executor by route name
    flash: FlashMonitor | None = None  # the chain's lending markets as flashloan providers
    venus: VenusMonitor | None = None  # the chain's Venus core pools (their accounts and prices)
    _reorgs_seen: int = 0

    def readiness(self) -> list[ReadinessCheck]:
        name = self.config.name
        checks = [ReadinessCheck(f"{name}:node_synced", self.node.synced(self.config.max_head_age_s), chain=name)]
        checks.append(ReadinessCheck(f"{name}:chain_id", self.node.identity(self.config.chain_id), chain=name))
        checks.append(ReadinessCheck(f"{name}:state_fresh", self._state_check, chain=name))
        return checks

    async def _state_check(self) -> tuple[bool, str]:
        if self.solana is not None and self.freshness is not None:
            ok, detail = await self.freshness.check()
            return ok, f"{detail}, {len(self.solana.book.pools)} pools"
        if self.collector is None or self.freshness is None:
            return True, "no factories configured: no pool state to keep"
        if not self.collector.synced.is_set():
            error = self.collector.stats.last_error
            return False, "the collector is not following the node" + (f" ({error})" if error else "")
        ok, detail = await self.freshness.check()
        return ok, f"{detail}, {len(self.store)} pools"

    async def watch(self, metrics: AgentMetrics) -> None:
        """Node liveness and head lag, pool-state age and reorgs, once a second."""
        name = self.config.name
        while True:
            try:
                metrics.node(name, up=True, head_lag_s=await self.node.head_lag_s())
            except Exception as exc:  # whatever the node or the transport says: the node is down for us
                metrics.node(name, up=False)
                log.debug("%s: node check failed: %s", name, exc)
            if self.freshness is not None and (age := self.freshness.age()) is not None:
                metrics.pool_state_age(name, age)
            if self.collector is not None:
                reorgs = self.collector.syncer.stats.reorgs
                for _ in range(reorgs - self._reorgs_seen):
                    metrics.reorg(name)
                self._reorgs_seen = reorgs
            await asyncio.sleep(WATCH_INTERVAL_S)


# ---- the agent ----------------------------------------------------------------------------------


@dataclass
class Agent:
    config: AgentConfig
    metrics: AgentMetrics
    gate: RiskGate
    settings: LiveSettings
    chains: dict[str, ChainRuntime]
    router: ChainRouter
    engine: Engine
    plane: ControlPlane
    servers: Servers | None = None
    bus: BusLink | None = None  # the fleet bus (config.bus): events out, commands and the risk lease in
    analytics: AnalyticsService | None = None  # config.analytics: classifier, sandwich detector, :8904 routes
    mev_boost: list[MevBoostProbe] = field(default_factory=list)  # chains[].mev_boost: its status checks
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    engine_task: asyncio.Task[None] | None = None
    _stopped: bool = False

    @classmethod
    async def build(cls, config: AgentConfig) -> Agent:
        """Everything wired, nothing started (no connection, no listener): StartupError when it cannot run."""
        try:
            config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"state_dir: cannot create {config.state_dir}: {exc.strerror}") from None
        try:
            token = Token.from_file(config.api.token_file)
        except ValueError as exc:
            raise StartupError(f"api.token_file: {exc}") from None
        metrics = AgentMetrics()
        gate = RiskGate.from_config(config, metrics)
        settings = LiveSettings.from_config(config)
        # The bus link first: a plug-in may publish on it (extras["bus"]); it connects only when started.
        bus = _bus_link(config, gate) if config.bus is not None else None
        chains: dict[str, ChainRuntime] = {}
        try:
            for chain in config.chains:
                chains[chain.name] = await _chain_runtime(config, chain, gate, settings, bus)
        except BaseException:
            for runtime in chains.values():
                await _close_routes(runtime)
            raise
        settings.subscribe(lambda live: _retune_executors(chains.values(), live.gas))
        router: Any = ChainRouter({n: c.routes for n, c in chains.items()}, {n: c.node for n, c in chains.items()})
        if bus is not None:
            router = bus.reporting(router)
        collectors: list[Collector] = [c.fresh for c in chains.values() if c.fresh is not None]
        collectors += [c.solana for c in chains.values() if c.solana is not None]  # account subscriptions
        collectors += [c.flash for c in chains.values() if c.flash is not None]  # lending events, flash liquidity
        collectors += [c.venus for c in chains.values() if c.venus is not None]  # Venus accounts and prices
        strategies: list[Strategy] = [s for c in chains.values() for s in c.strategies.values()]
        limits = EngineLimits(
            max_pool_keys=config.engine.max_pool_keys,
            max_opportunities=config.engine.max_opportunities,
            max_in_flight=config.engine.max_in_flight,
        )
        engine = Engine(
            collectors,
            strategies,
            router,
            gate,
            metrics=metrics,
            limits=limits,
            recent=RecentOpportunities(config.api.opportunities_kept),
        )
        for chain in chains.values():
            if chain.executor is not None:
                chain.executor.relays.observer = metrics.endpoint_result
                chain.executor.exposure_observer = lambda name, usd: metrics.child(names.EXECUTION_EXPOSURE, name).inc(
                    usd
                )
            for name, strategy in chain.strategies.items():
                # Read when Prometheus scrapes: the strategy's hot path only bumps its own ints.
                metrics.sample(plugins()[name].counters, (chain.config.name, name), strategy.counters)
        # mev-boost's status, per chain that names one: asked on tasks of their own (start), never by the engine.
        boosts = [MevBoostProbe(c.name, c.mev_boost, metrics) for c in config.chains if c.mev_boost is not None]
        plane = ControlPlane(
            gate=gate,
            settings=settings,
            metrics=metrics,
            token=token,
            recent=engine.recent,
            apply=engine.command,
            engine_stats=engine.stats,
            relays=[c.executor.relays for c in chains.values() if c.executor is not None],
            mev_boost=[b.status for b in boosts],
            readiness=[check for c in chains.values() for check in c.readiness()],
            providers=[c.flash for c in chains.values() if c.flash is not None],
        )
        if bus is not None:
            bus.apply = plane.command  # bus commands share the API's ordered control queue
            bus.providers = [c.flash for c in chains.values() if c.flash is not None]  # published to the fleet
        analytics = _analytics(config, chains, metrics, bus) if config.analytics is not None else None
        return cls(
            config, metrics, gate, settings, chains, router, engine, plane, bus=bus, analytics=analytics,
            mev_boost=boosts,
        )  # fmt: skip

    async def start(self) -> None:
        """Listen (API and metrics), then run the engine; the collectors connect to their nodes."""
        self.servers = await start_servers(self.config.api, self.plane)
        self.engine_task = asyncio.create_task(self.engine.run(), name="engine")
        if self.bus is not None:
            await self.bus.start()
        if self.analytics is not None:
            await self.analytics.start()
        for runtime in self.chains.values():
            self._tasks.append(asyncio.create_task(runtime.watch(self.metrics), name=f"watch:{runtime.config.name}"))
        for probe in self.mev_boost:
            self._tasks.append(asyncio.create_task(probe.run(), name=f"mev-boost:{probe.status.chain}"))
        api = self.config.api
        log.info("control API on %s:%d, metrics on %s:%d", api.bind, api.port, api.metrics_bind, api.metrics_port)

    async def stop(self) -> None:
        """Stop taking new work, let executions in flight finish, write checkpoints, close everything."""
        if self._stopped:
            return
        self._stopped = True
        self.engine.stop()
        if self.engine_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self.engine_task
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.servers is not None:
            await self.servers.close()
        if self.analytics is not None:
            await self.analytics.stop()
        if self.bus is not None:
            await self.bus.stop()  # after the engine: the outcomes of the last executions are spooled
        for runtime in self.chains.values():
            await _close_routes(runtime)
            await runtime.node.close()


async def _close_routes(runtime: ChainRuntime) -> None:
    for executor in {id(e): e for e in (runtime.executor, *runtime.routes.values()) if e is not None}.values():
        close = getattr(executor, "aclose", None)
        if close is not None:
            await close()


def _analytics(
    config: AgentConfig, chains: dict[str, ChainRuntime], metrics: AgentMetrics, bus: BusLink | None
) -> AnalyticsService:
    """Analytics on every chain: tapped after the engine in its collector where it keeps pool state, else the
    classifier polls the node's head.

    Each chain's analytics get their own node connection: a block's traces (megabytes) must never sit
    in front of an executor's call on the executor's connection."""
    assert config.analytics is not None
    links: dict[str, ChainNode] = {}
    for n, c in chains.items():
        if isinstance(c.node, SolanaNode):  # its slots classified from getBlock on the chain's pool book
            links[n] = SolanaNode(n, c.node.url, c.node.ws_url, 0, timeout_s=30.0)
        else:
            links[n] = NodeLink(n, _endpoints(c.config), connect_timeout_s=2.0, request_timeout_s=30.0)
    kept = {n: (chains[n].store, link.call) for n, link in links.items()}
    prices = {n: Pricer(c.config.pricing, c.store).usd_per_unit for n, c in chains.items() if c.config.pricing}
    publish = (bus.agent, bus.publish) if bus is not None else None
    # No collector: the classifier polls.
    polled = frozenset(n for n, c in chains.items() if c.fresh is None and c.solana is None)
    books = {n: c.solana.book for n, c in chains.items() if c.solana is not None}
    service = AnalyticsService.build(
        config.analytics, config.state_dir, kept, metrics, prices=prices, bus=publish, polled=polled, solana=books
    )
    service.closers.extend(link.close for link in links.values())
    for name, runtime in chains.items():
        if runtime.fresh is not None:
            runtime.fresh.tap = service.tap(name)
        elif runtime.solana is not None:
            runtime.solana.tap = service.tap(name)
    return service


def _bus_link(config: AgentConfig, gate: RiskGate) -> BusLink:
    try:
        return BusLink(config, gate, apply=_unwired)
    except (ValueError, OSError) as exc:
        raise StartupError(f"bus: {exc}") from None


async def _unwired(command: Any) -> None:
    raise RuntimeError("the bus link is used before Agent.build wired it to the control queue")


def _retune_executors(chains: Iterable[ChainRuntime], gas: GasSettings) -> None:
    """POST /config/gas reaches the executors too: the priority fee they offer, the blocks bundles target."""
    for runtime in chains:
        executor = runtime.executor
        if executor is None:
            continue
        executor.config = executor.config.model_copy(
            update={"priority_fee_wei": int(gas.priority_fee_gwei * GWEI), "target_blocks": gas.target_blocks}
        )


async def _chain_runtime(
    config: AgentConfig, chain: ChainConfig, gate: RiskGate, settings: LiveSettings, bus: BusLink | None = None
) -> ChainRuntime:
    if chain.solana is not None:
        return await _solana_runtime(config, chain, gate, settings, bus)
    store = PoolStore(chain.name)
    node = NodeLink(chain.name, _endpoints(chain), connect_timeout_s=2.0, request_timeout_s=10.0)
    execution = execution_settings(chain, config.gas)
    try:
        # The gate's limits as they are at each execution: POST /config/risk can change max_slippage_bps.
        executor = await ArbitrageExecutor.open(
            execution, store, gate, rpc=node, max_slippage_bps=lambda: gate.limits.max_slippage_bps
        )
    except KeyFileError as exc:
        raise StartupError(f"chains.{chain.name}: {exc}") from None
    except ValueError as exc:
        raise StartupError(f"chains.{chain.name}: {exc}") from None
    runtime = ChainRuntime(chain, store, node, executor, routes={executor.route: executor})
    if chain.lending or chain.flash_providers:
        runtime.flash = FlashMonitor.of(chain.name, node, chain.lending, chain.max_state_age_s, chain.flash_providers)
        executor.flash_providers = runtime.flash.providers  # cycles beyond the inventory are flash-funded
    if chain.venus:
        runtime.venus = VenusMonitor.of(chain.name, node, chain.venus)
    mode = "LIVE" if chain.live else "dry-run"
    if not chain.factories:
        log.info("%s (chain id %d, %s): no factories configured: no pool state", chain.name, chain.chain_id, mode)
        await _start_strategies(runtime, config, settings, gate, bus)
        return runtime
    collector = EvmCollector(
        EvmCollectorConfig(
            chain=chain.name,
            ipc_path=chain.ipc_path,
            ws_url=chain.ws_url,
            http_url=chain.http_url,
            sync=sync_config(config, chain),
            pending_transactions=chain.pending_transactions,
        ),
        store,
    )
    runtime.collector = collector
    runtime.freshness = StateFreshness(chain.max_state_age_s)
    runtime.fresh = FreshStateCollector(collector, runtime.freshness)
    log.info("%s (%s): %d factories tracked", chain.name, mode, len(chain.factories))
    await _start_strategies(runtime, config, settings, gate, bus)
    return runtime


async def _solana_runtime(
    config: AgentConfig, chain: ChainConfig, gate: RiskGate, settings: LiveSettings, bus: BusLink | None
) -> ChainRuntime:
    """A Solana chain: its node, its pool book kept from account subscriptions, its plug-ins' routes."""
    assert chain.solana is not None and chain.http_url is not None and chain.ws_url is not None
    node = SolanaNode(chain.name, chain.http_url, chain.ws_url, chain.solana.max_slot_lag)
    freshness = StateFreshness(chain.max_state_age_s)
    collector = SolanaCollector(chain.name, chain.solana, node, PoolBook(), freshness)
    runtime = ChainRuntime(chain, PoolStore(chain.name), node, None, solana=collector, freshness=freshness)
    mode = "LIVE" if chain.live else "dry-run"
    log.info("%s (solana, %s): %d pools tracked", chain.name, mode, len(chain.solana.pools))
    try:
        await _start_strategies(runtime, config, settings, gate, bus)
    except BaseException:
        await _close_routes(runtime)
        raise
    return runtime


def chain_state(runtime: ChainRuntime) -> dict[str, object]:
    """The state a chain keeps, by the names plug-ins declare (mevagent.strategies)."""
    state: dict[str, object] = {}
    if runtime.solana is not None:
        state["solana_pools"] = runtime.solana.book
    if runtime.collector is not None:
        state["pools"] = runtime.store
        if runtime.config.pricing is not None:
            state["prices"] = Pricer(runtime.config.pricing, runtime.store)
    return state


async def _start_strategies(
    runtime: ChainRuntime, config: AgentConfig, settings: LiveSettings, gate: RiskGate, bus: BusLink | None = None
) -> None:
    """Every installed plug-in that can run on the chain, and the executor routes they bring."""
    chain = runtime.config
    state = chain_state(runtime)
    extras: dict[str, object] = {"node": runtime.node, "gate": gate, "executor": runtime.executor}
    if bus is not None:
        extras["bus"] = bus  # publishing is an O(1) append (mevagent.bus.publisher)
    for name, plugin in plugins().items():
        ctx = StrategyContext(name, chain, config, settings, state, extras)
        why_not = plugin.why_not(ctx)
        if why_not:
            log.info("%s: %s does not run: %s", chain.name, name, why_not)
            continue
        try:
            strategy = plugin.build(ctx)
            if plugin.route not in runtime.routes:
                if plugin.open_route is None:
                    raise ValueError(f"no executor for its route {plugin.route!r}")
                runtime.routes[plugin.route] = await plugin.open_route(ctx)
        except (ValueError, ValidationError) as exc:
            raise StartupError(f"chains.{chain.name}: {name} cannot run: {exc}") from None
        runtime.strategies[name] = strategy
        log.info(
            "%s: %s runs (%s), route %s, contract %s",
            chain.name,
            name,
            strategy.describe(),
            plugin.route,
            chain.contract or "none (dry-run reports unsimulated opportunities)",
        )


# ---- the process --------------------------------------------------------------------------------


def configure_logging() -> None:
    """Plain lines on stderr: journald stamps time and unit. Nothing logged carries a key or the token."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def serve(config: AgentConfig, stop: asyncio.Event) -> int:
    """Run until `stop` is set (0) or the engine fails (1); 2 when the config cannot run."""
    try:
        agent = await Agent.build(config)
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 2
    try:
        await agent.start()
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        await agent.stop()
        return 1
    live = [c.name for c in config.chains if c.live]
    frozen = freeze_startup()  # full GC passes never traverse startup's objects again (mevagent.heap)
    log.info("mevagent running on %d chain(s); live on %s; %d startup objects frozen", len(config.chains),
             ", ".join(live) or "none (dry-run)", frozen)  # fmt: skip
    assert agent.engine_task is not None
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({stopping, agent.engine_task}, return_when=asyncio.FIRST_COMPLETED)
    failed = agent.engine_task.done() and not stopping.done()
    if failed:
        exc = agent.engine_task.exception() if not agent.engine_task.cancelled() else None
        log.error("the engine stopped: %r", exc)
    else:
        log.info("stopping: finishing executions in flight")
    stopping.cancel()
    await agent.stop()
    log.info("stopped")
    return 1 if failed else 0


def run_agent(config: AgentConfig) -> int:
    """`mevagent run`: the agent until SIGTERM/SIGINT (exit 0); 2 for a config that cannot run."""
    configure_logging()

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await serve(config, stop)

    return asyncio.run(main())
