"""MEV analytics inside `mevagent run`: the live block classifier and the sandwich detector per chain, and
the :8904-style routes on their own loopback listener.

Nothing here is on the hot path. The chain's collector hands every event to the engine first and only
then to `tap` (mevagent.app), which does constant work: a head is recorded for the classifier's
background task, a pending hash is queued for the body fetcher. Detection only: nothing here signs or
sends a transaction, and no risk signal reaches an executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from mevagent import metrics_names as names
from mevagent.analytics.api import make_app
from mevagent.analytics.backfill import ClassificationSink, FileSink
from mevagent.analytics.live import LiveClassifier, Price
from mevagent.analytics.monitor import DetectorConfig, RouterSpec, SandwichMonitor
from mevagent.analytics.publish import BusSink, FanoutSink
from mevagent.bus.events import Event
from mevagent.collectors.evm import PendingTransaction
from mevagent.config import AnalyticsConfig
from mevagent.core import Head
from mevagent.metrics import AgentMetrics
from mevagent.solana.book import PoolBook
from mevagent.solana.sandwich import SlotClassifier
from mevagent.state.pools import PoolStore

log = logging.getLogger(__name__)

Call = Callable[[str, list[Any]], Awaitable[Any]]


@dataclass
class PendingBodies:
    """Pending hashes → full transactions (eth_getTransactionByHash) → the detector.

    Bounded: at most `limit` hashes wait; when full, the oldest is dropped (a stale pending swap is the
    least useful). Coalesced: a hash already waiting is not queued twice. At most `concurrency` calls
    to the node at once, so a mempool burst never floods the node the executor also uses.
    """

    chain: str
    call: Call
    monitor: SandwichMonitor
    limit: int
    concurrency: int
    metrics: AgentMetrics | None = None
    counts: dict[str, int] = field(default_factory=dict)
    _waiting: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, tx_hash: str) -> None:
        if tx_hash in self._waiting:
            self._count("coalesced")
            return
        if len(self._waiting) >= self.limit:
            self._waiting.popitem(last=False)
            self._count("dropped")
        self._waiting[tx_hash] = None
        self._wake.set()

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if self.metrics is not None:
            self.metrics.child(names.PENDING_BODIES, self.chain, outcome).inc()

    async def run(self) -> None:
        await asyncio.gather(*(self._worker() for _ in range(self.concurrency)))

    async def _worker(self) -> None:
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            tx_hash, _ = self._waiting.popitem(last=False)
            try:
                tx = await self.call("eth_getTransactionByHash", [tx_hash])
            except Exception as exc:  # the node is down or refused: the detector misses this one
                self._count("failed")
                log.debug("%s: pending body %s: %s", self.chain, tx_hash, exc)
                continue
            if not tx:
                self._count("missing")  # already mined or replaced
                continue
            self._count("fetched")
            if tx.get("blockNumber"):
                continue  # mined while it waited: no longer a pending swap
            self.monitor.observe(tx)


async def poll_heads(call: Call, classifier: LiveClassifier, interval_s: float) -> None:
    """Heads for the classifier of a chain that has no pool collector to tap: eth_blockNumber every interval."""
    while True:
        try:
            classifier.on_head(int(await call("eth_blockNumber", []), 16))
        except Exception as exc:  # the node is away: the next poll retries
            log.debug("%s: head poll: %s", classifier.chain, exc)
        await asyncio.sleep(interval_s)


@dataclass
class ChainAnalytics:
    chain: str
    classifier: LiveClassifier | None = None
    monitor: SandwichMonitor | None = None
    bodies: PendingBodies | None = None
    poll: Awaitable[None] | None = None  # the head poll, on a chain without pool state

    def tap(self, event: object) -> None:
        """Called after the engine got the event: constant work only."""
        if isinstance(event, Head):
            if self.classifier is not None:
                self.classifier.on_head(event.number)
        elif isinstance(event, PendingTransaction) and self.bodies is not None:
            self.bodies.offer(event.hash)

    def tasks(self) -> list[Awaitable[None]]:
        runs: list[Awaitable[None]] = []
        if self.classifier is not None:
            runs.append(self.classifier.run())
        if self.bodies is not None:
            runs.append(self.bodies.run())
        if self.poll is not None:
            runs.append(self.poll)
        return runs


@dataclass
class AnalyticsService:
    config: AnalyticsConfig
    chains: dict[str, ChainAnalytics]
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)  # its node connections
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @classmethod
    def build(
        cls,
        config: AnalyticsConfig,
        state_dir: Path,
        chains: dict[str, tuple[PoolStore, Call]],
        metrics: AgentMetrics,
        *,
        prices: dict[str, Price] | None = None,
        bus: tuple[str, Callable[[Event], None]] | None = None,
        polled: frozenset[str] = frozenset(),
        solana: Mapping[str, PoolBook] | None = None,
    ) -> AnalyticsService:
        """`chains`: per chain, its store and its node's call. `prices`: per chain, the USD price of a token's
        base unit where the chain has pricing. `bus`: (this agent's name, the bus link's publish): each
        classified block also goes to the control plane. `polled`: the chains without pool state, whose
        heads the classifier polls (the others' heads come from their collector through `tap`). `solana`: the
        Solana chains' pool books: their slots are classified from getBlock (mevagent.solana.sandwich)."""
        files = FileSink(config.out_dir or state_dir / "classified")
        built: dict[str, ChainAnalytics] = {}
        for name, (store, call) in chains.items():
            one = ChainAnalytics(name)
            if config.classify_blocks:
                sink: ClassificationSink = files
                if bus is not None:
                    sink = FanoutSink([files, BusSink(bus[0], name, bus[1])])
                price = (prices or {}).get(name)
                if solana and name in solana:
                    one.classifier = SlotClassifier(name, call, sink, metrics, book=solana[name])
                else:
                    one.classifier = LiveClassifier(name, call, sink, metrics, traces=config.traces, price=price)
                if name in polled:
                    one.poll = poll_heads(call, one.classifier, config.head_poll_s)
            detector = config.detector.get(name)
            if detector is not None:
                routers = {a: RouterSpec(v2_fork=r.v2_fork, v3_fork=r.v3_fork) for a, r in detector.routers.items()}
                settings = DetectorConfig(chain=name, routers=routers, window_s=detector.window_s, keep=detector.keep)
                one.monitor = SandwichMonitor(settings, store, metrics, bus=bus, price=(prices or {}).get(name))
                one.bodies = PendingBodies(
                    name, call, one.monitor, config.pending_queue, config.fetch_concurrency, metrics
                )
            built[name] = one
        return cls(config, built)

    def tap(self, chain: str) -> Callable[[object], None] | None:
        one = self.chains.get(chain)
        return one.tap if one is not None else None

    def app(self) -> web.Application | None:
        """The routes of the only detector at /, and every detector's under /<chain>/; None without one."""
        monitors = {n: c.monitor for n, c in self.chains.items() if c.monitor is not None}
        if not monitors:
            return None
        root = make_app(next(iter(monitors.values()))) if len(monitors) == 1 else web.Application()
        for name, monitor in monitors.items():
            root.add_subapp(f"/{name}", make_app(monitor))
        return root

    async def start(self) -> None:
        for one in self.chains.values():
            for run in one.tasks():
                self._tasks.append(asyncio.create_task(run, name=f"analytics:{one.chain}"))  # type: ignore[arg-type]
        app = self.app()
        if app is None:
            return
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.config.bind, self.config.port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("sandwich detector routes on %s:%d (detection only)", self.config.bind, self.config.port)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for close in self.closers:
            with contextlib.suppress(Exception):
                await close()
