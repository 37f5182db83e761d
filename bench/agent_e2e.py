"""End-to-end latency on a local chain: anvil block mined -> bundle received by a local builder, p50/p99.

The world is tests/agent's end-to-end one (bench/e2e_world.py): anvil over IPC, Uniswap V2 pairs and a
V3 pool from the published artifacts, the ArbExecutor deployed by the agent's own deploy function.
Automine is off: the bench alone decides when a block is mined.

Each round: a trader's swap that knocks one pool off the common price goes into anvil's mempool; at t0
the bench writes `evm_mine` to anvil's IPC socket; t1 is when the builder (its own process, see
bench/e2e_builder.py) started handling the earliest of the eth_sendBundle requests for that block. Both are
CLOCK_MONOTONIC, so t1 - t0 is anvil mining and announcing the block plus everything the searcher does
until its bundle reaches the builder. The builder includes the bundle (forwards it to anvil) and the
bench mines it in a block of its own, then waits until the searcher is idle before the next round.

Ours: the real agent (mevagent.app.Agent, wired as `mevagent run` wires it) LIVE on that chain, in this
process. Its engine's own stage timings (mev_latency: pool_queue, strategy) and a few observing hooks
(the collector's head receipt, the executor's start, its node round trips, the bundle send) split t1 - t0.
Baseline, side by side on the same anvil rewound to the same state with the same sequence of swaps:
bench/e2e_baseline.py, what a user would write with web3.py (AsyncWeb3 over IPC, newHeads, a batched
refresh, the same cycles scanned, eth_account signing, aiohttp POST).

Usage: .venv/bin/python bench/agent_e2e.py [--rounds N] [--warmup N] [--seed N]    (about 2 minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from e2e_baseline import BaselineSettings, Web3Searcher
from e2e_world import (  # also puts the repository on sys.path, for testbed below
    TARGET_BLOCKS,
    BuilderProcess,
    BundleSeen,
    IpcRpc,
    agent_settings,
    send_gap,
)
from eth_keys.backends import get_backend
from web3.exceptions import TransactionNotFound

from mevagent.app import Agent
from mevagent.config import AgentConfig
from mevagent.core import Opportunity, Outcome, PoolUpdate
from mevagent.executor.contract import artifact as arb_artifact
from mevagent.pricing import Pricer
from mevagent.strategies.dex_arb import DexArbStrategy, dex_arb_config
from testbed.e2e import CHAIN, INVENTORY, World, build_world, eventually
from testbed.evm import ANVIL, REPO, V2_CORE, V3_CORE, artifact
from testbed.strategy import E18, read_store

P99_TARGET_MS = 20.0
BUNDLE_TIMEOUT_S = 5.0
POLL_S = 0.01
RECEIPT_POLL_MS = 20


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the two searchers -----------------------------------------------------------------------------


class Searcher(Protocol):
    name: str

    async def start(self) -> None: ...

    def idle_at(self, head: int) -> bool: ...

    def failure(self) -> str: ...

    async def stop(self) -> None: ...


@dataclass
class AgentTrace:
    """(what, perf_counter_ns when it happened, value) from observing hooks; the agent is not changed."""

    events: list[tuple[str, int, int]] = field(default_factory=list)

    def first(self, what: str, lo: int, hi: int) -> tuple[int, int] | None:
        for name, at, value in self.events:
            if name == what and lo <= at <= hi:
                return at, value
        return None

    def between(self, prefix: str, lo: int, hi: int) -> list[tuple[str, int, int]]:
        return [event for event in self.events if event[0].startswith(prefix) and lo <= event[1] <= hi]


def instrument(agent: Agent) -> AgentTrace:
    """Wrap, on the instances, the calls the split needs. Each hook takes one clock read and an append."""
    trace = AgentTrace()
    now = time.perf_counter_ns
    record = trace.events.append
    engine = agent.engine
    emit = engine.emit

    async def traced_emit(event: object) -> None:
        if isinstance(event, PoolUpdate):  # seen_ns: when the collector read the head notification
            record(("head_seen", now(), event.seen_ns))
        await emit(event)

    metrics_stage = agent.metrics.stage

    def traced_stage(chain: str, stage: str, elapsed_ns: int) -> None:
        record((f"stage:{stage}", now(), elapsed_ns))
        metrics_stage(chain, stage, elapsed_ns)

    route = agent.router.execute

    async def traced_execute(opportunity: Opportunity) -> Outcome:
        record(("execute", now(), opportunity.block))
        return await route(opportunity)

    runtime = agent.chains[CHAIN]
    node_call = runtime.node.call

    async def traced_call(method: str, params: Any = ()) -> Any:
        started = now()
        try:
            return await node_call(method, params)
        finally:
            record((f"rpc:{method}", started, now() - started))

    gate_check = agent.gate.check

    def traced_check(opportunity: Opportunity) -> Any:
        started = now()
        try:
            return gate_check(opportunity)
        finally:
            record(("risk_check", started, now() - started))

    # The collector writes its pool checkpoint (two fsyncs) synchronously after emitting a head's
    # updates and before it next awaits, so the strategy waits for it: note when that happens.
    collector = runtime.collector
    assert collector is not None
    write_checkpoint = collector.syncer.write_checkpoint

    def traced_checkpoint() -> bool:
        started = now()
        try:
            return write_checkpoint()
        finally:
            record(("checkpoint", started, now() - started))

    bundles = runtime.executor.bundles
    assert bundles is not None, "the chain is live with a builder: the executor sends bundles"
    send_bundle = bundles.send_bundle

    async def traced_send(raw_txs: Any, blocks: range, opportunity_id: str) -> Any:
        record(("send", now(), blocks.start))
        return await send_bundle(raw_txs, blocks, opportunity_id)

    # One body per target block is signed (X-Flashbots-Signature) before any is posted: the end of the
    # last signature is where the HTTP part starts. A private method, observed only, if it is there.
    signed_body = getattr(bundles, "_signed_body", None)

    def traced_signed_body(method: str, params: Any) -> Any:
        assert signed_body is not None
        signed = signed_body(method, params)
        record(("body_signed", now(), 0))
        return signed

    if signed_body is not None:
        bundles._signed_body = traced_signed_body  # type: ignore[method-assign]

    # aiohttp's own request tracing on the executor's session: when a request's body was written to the
    # socket. Observing only; skipped if the session is not where it was.
    session = getattr(runtime.executor, "_session", None)
    if isinstance(session, aiohttp.ClientSession):
        tracing = aiohttp.TraceConfig()

        async def written(*_: Any) -> None:
            record(("http_sent", now(), 0))

        tracing.on_request_chunk_sent.append(written)
        tracing.freeze()
        session.trace_configs.append(tracing)

    agent.gate.check = traced_check  # type: ignore[method-assign]
    collector.syncer.write_checkpoint = traced_checkpoint  # type: ignore[method-assign]
    engine.emit = traced_emit  # type: ignore[method-assign]
    agent.metrics.stage = traced_stage  # type: ignore[method-assign]
    agent.router.execute = traced_execute  # type: ignore[method-assign]
    runtime.node.call = traced_call  # type: ignore[method-assign]
    bundles.send_bundle = traced_send  # type: ignore[method-assign]
    return trace


class AgentSearcher:
    name = "agent"

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.agent: Agent | None = None
        self.trace = AgentTrace()

    async def start(self) -> None:
        self.agent = await Agent.build(self.config)
        # After sending, the executor polls for the receipt every 200 ms and holds its one execution slot
        # until then. That is after t1 and decides only how soon the bench may start the next round.
        executor = self.agent.chains[CHAIN].executor
        executor.config = executor.config.model_copy(update={"receipt_poll_ms": RECEIPT_POLL_MS})
        self.trace = instrument(self.agent)  # before start: the collector takes engine.emit when it starts
        await self.agent.start()
        collector = self.agent.chains[CHAIN].collector
        assert collector is not None

        async def following() -> bool:
            return collector.synced.is_set()

        await eventually(following, 30, "the agent's collector to follow the node")

    def idle_at(self, head: int) -> bool:
        assert self.agent is not None
        stats = self.agent.engine.stats()
        return (
            stats["heads"].get(CHAIN) == head
            and stats["in_flight"] == 0
            and all(q["depth"] == 0 for q in stats["queues"].values())
        )

    def failure(self) -> str:
        task = self.agent.engine_task if self.agent else None
        if task is not None and task.done():
            return f"the agent's engine stopped: {task.exception() if not task.cancelled() else 'cancelled'}"
        return ""

    async def stop(self) -> None:
        if self.agent is not None:
            await self.agent.stop()


class BaselineSearcher:
    name = "baseline"

    def __init__(self, searcher: Web3Searcher) -> None:
        self.searcher = searcher
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.searcher.run(), name="baseline")
        ready = asyncio.create_task(self.searcher.ready.wait())
        await asyncio.wait({self.task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self.failure() or not self.searcher.ready.is_set():
            raise Broken(f"the baseline did not subscribe: {self.failure()}")

    def idle_at(self, head: int) -> bool:
        return self.searcher.processed == head

    def failure(self) -> str:
        if self.task is not None and self.task.done():
            return f"the baseline stopped: {self.task.exception() if not self.task.cancelled() else 'cancelled'}"
        return ""

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait([self.task])


# -- rounds ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Round:
    block: int  # the block the trader's swap was mined in
    t0: int  # evm_mine written to anvil's socket
    bundle: BundleSeen | None  # the earliest-received of the block's eth_sendBundle requests

    @property
    def latency_ms(self) -> float:
        assert self.bundle is not None
        return (self.bundle.received_ns - self.t0) / 1e6


class Broken(Exception):
    """Something the figures cannot be trusted after: exit non-zero."""


@dataclass
class Driver:
    world: World
    rpc: IpcRpc
    builder: BuilderProcess
    head: int = 0

    async def mine(self) -> int:
        t0 = await self.rpc.mine()
        self.head += 1
        return t0

    async def known(self, tx_hash: str) -> None:
        """Until the node has the transaction (the builder forwards it after answering)."""

        async def probe() -> bool:
            return await self.rpc.call("eth_getTransactionByHash", [tx_hash]) is not None

        try:
            await eventually(probe, 10, f"the builder to forward {tx_hash} to the node")
        except AssertionError as exc:
            raise Broken(str(exc)) from None

    async def settle(self, searcher: Searcher) -> None:
        """Mine until the searcher's bundles are all included and it is idle at the head.

        A landing can open a smaller gap elsewhere that the searcher trades too: mine again until no
        bundle arrives and the searcher has been idle for three polls in a row.
        """
        for _ in range(20):
            mark = len(self.builder.bundles)
            await self.mine()
            calm = 0
            deadline = time.monotonic() + 30
            while calm < 3 and len(self.builder.bundles) == mark:
                if failure := searcher.failure():
                    raise Broken(failure)
                if time.monotonic() > deadline:
                    raise Broken(f"{searcher.name} did not go idle at block {self.head}")
                calm = calm + 1 if searcher.idle_at(self.head) else 0
                await asyncio.sleep(POLL_S)
            if len(self.builder.bundles) == mark:
                return
            for bundle in self.builder.bundles[mark:]:
                await self.known(bundle.tx_hash)
        raise Broken(f"{searcher.name} kept sending bundles for 20 blocks")

    async def round(self, searcher: Searcher, rng: random.Random) -> Round:
        await asyncio.to_thread(send_gap, self.world.dex, rng)
        mark = len(self.builder.bundles)
        t0 = await self.mine()
        block = self.head
        # Both searchers send one bundle per target block, all at once.
        bundle = await self.builder.first_after(mark, TARGET_BLOCKS, BUNDLE_TIMEOUT_S)
        if bundle is not None:
            await self.known(bundle.tx_hash)
        await self.settle(searcher)
        return Round(block, t0, bundle)


async def run_phase(driver: Driver, searcher: Searcher, rounds: int, warmup: int, seed: int) -> list[Round]:
    """Every round, warm-up first."""
    rng = random.Random(seed)  # the same swaps for both searchers
    await searcher.start()
    try:
        await driver.settle(searcher)
        return [await driver.round(searcher, rng) for _ in range(warmup + rounds)]
    finally:
        await searcher.stop()


# -- splits ------------------------------------------------------------------------------------------


@dataclass
class AgentSplit:
    steps: dict[str, list[float]] = field(default_factory=dict)  # ms per round, by step
    calls: list[str] = field(default_factory=list)  # the node calls made before sending (last round)
    checkpointed: list[float] = field(default_factory=list)  # latency of rounds with a checkpoint write in them


def agent_splits(rounds: list[Round], trace: AgentTrace) -> AgentSplit:
    """Per-step ms of every round the hooks saw whole."""
    split = AgentSplit()
    splits = split.steps
    for r in rounds:
        if r.bundle is None:
            continue
        t1 = r.bundle.received_ns
        if trace.first("checkpoint", r.t0, t1):
            split.checkpointed.append(r.latency_ms)
        seen = trace.first("head_seen", r.t0, t1)
        pool_queue = trace.first("stage:pool_queue", r.t0, t1)
        strategy = trace.first("stage:strategy", r.t0, t1)
        execute = trace.first("execute", r.t0, t1)
        send = trace.first("send", r.t0, t1)
        if None in (seen, pool_queue, strategy, execute, send):
            continue
        assert seen and pool_queue and strategy and execute and send
        node_calls = trace.between("rpc:", execute[0], send[0])
        split.calls = [name.removeprefix("rpc:") for name, _, _ in node_calls]
        bodies = trace.between("body_signed", send[0], t1)
        steps = {
            "anvil mines, head notification read": seen[1] - r.t0,
            "collector: logs -> store, queue (pool_queue)": pool_queue[0] - seen[1],
            "strategy (mev_latency strategy)": strategy[1],
            "opportunity queue -> executor": execute[0] - strategy[0],
            "executor before send": send[0] - execute[0],
            "  node round trips": sum(value for _, _, value in node_calls),
            "  risk gate check": sum(v for _, _, v in trace.between("risk_check", execute[0], send[0])),
            "  the rest (mostly signing the transaction)": send[0]
            - execute[0]
            - sum(v for _, _, v in node_calls + trace.between("risk_check", execute[0], send[0])),
        }
        written = trace.between("http_sent", send[0], t1)
        if bodies and written:
            # The agent sends the next block's bundle before it signs the later blocks' bodies.
            first = written[0][1]
            signed_before = [at for _, at, _ in bodies if at <= first]
            last_signed = signed_before[-1] if signed_before else send[0]
            steps["sign the bundle bodies sent first"] = last_signed - send[0]
            steps["aiohttp: first request written"] = first - last_signed
            steps["loopback, builder process wakes, handler"] = t1 - first
        else:
            steps["bundle: sign bodies, HTTP -> builder"] = t1 - send[0]
        for label, ns in steps.items():
            splits.setdefault(label, []).append(ns / 1e6)
    return split


def baseline_splits(rounds: list[Round], searcher: Web3Searcher) -> dict[str, list[float]]:
    timings = {t.block: t for t in searcher.timings}
    splits: dict[str, list[float]] = {}
    for r in rounds:
        t = timings.get(r.block)
        if r.bundle is None or t is None:
            continue
        steps = {
            "anvil mines, head reaches user code": t.head_ns - r.t0,
            "batched eth_call refresh": t.refreshed_ns - t.head_ns,
            "scan every cycle": t.scanned_ns - t.refreshed_ns,
            "encode, sign the transaction": t.signed_ns - t.scanned_ns,
            f"sign {TARGET_BLOCKS} bundle bodies": t.bodies_ns - t.signed_ns,
            "HTTP -> builder handler": r.bundle.received_ns - t.bodies_ns,
        }
        for label, ns in steps.items():
            splits.setdefault(label, []).append(ns / 1e6)
    return splits


def landed(world: World, rounds: list[Round]) -> int:
    """Rounds whose bundled transaction was mined and succeeded (the prediction held on chain)."""
    w3 = world.node.w3
    ok = 0
    for r in rounds:
        if r.bundle is None:
            continue
        with contextlib.suppress(TransactionNotFound):
            ok += w3.eth.get_transaction_receipt(r.bundle.tx_hash)["status"] == 1
    return ok


# -- report ------------------------------------------------------------------------------------------


def _row(label: str, value: str, target: str = "", verdict: str = "") -> None:
    print(f"  {label:<44} {value:>16}  {target:<14} {verdict}")


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _side(label: str, ours: float, base: float, target: str = "", verdict: str = "") -> None:
    ratio = base / ours if ours > 0 else math.inf
    print(f"  {label:<44} {ours:>9.2f} ms {base:>9.2f} ms {ratio:>13.1f}x  {target:<14} {verdict}")


def _split_table(title: str, splits: dict[str, list[float]]) -> None:
    print(f"  {title:<44} {'p50':>12} {'p99':>12}")
    for label, values in splits.items():
        print(f"  {label:<44} {_percentile(values, 0.5):>9.2f} ms {_percentile(values, 0.99):>9.2f} ms")


@dataclass
class Phase:
    rounds: list[Round]
    landed: int
    bad_signatures: int

    @property
    def latencies(self) -> list[float]:
        return [r.latency_ms for r in self.rounds if r.bundle is not None]

    @property
    def missed(self) -> int:
        return sum(1 for r in self.rounds if r.bundle is None)


def _phase(world: World, rounds: list[Round]) -> Phase:
    bad = sum(1 for r in rounds if r.bundle is not None and r.bundle.signer.lower() != world.identity.lower())
    return Phase(rounds, landed(world, rounds), bad)


async def bench(world: World, directory: Path, args: argparse.Namespace) -> tuple[Phase, Phase, dict[str, Any]]:
    rpc = await IpcRpc.open(world.node.ipc_path)
    try:
        snapshot = await rpc.call("evm_snapshot", [])
        await rpc.call("evm_setAutomine", [False])
        # A builder per phase: the baseline's first transaction can be byte for byte the agent's (same state,
        # same nonce), and a builder that already forwarded it would not forward it again.
        builder = await BuilderProcess.start(world.http_url)
        driver = Driver(world, rpc, builder, int(await rpc.call("eth_blockNumber", []), 16))
        config = agent_settings(world, directory, builder.url)
        ours = AgentSearcher(config)
        agent_started = time.perf_counter()
        try:
            agent_all = await run_phase(driver, ours, args.rounds, args.warmup, args.seed)
        finally:
            await builder.stop()
        agent_seconds = time.perf_counter() - agent_started
        agent_rounds = agent_all[args.warmup :]
        agent_phase = await asyncio.to_thread(_phase, world, agent_rounds)

        # The same chain state and the same swaps for the baseline.
        if not await rpc.call("evm_revert", [snapshot]):
            raise Broken("evm_revert to the pre-agent snapshot failed")
        await rpc.call("evm_setAutomine", [False])
        builder = await BuilderProcess.start(world.http_url)
        driver = Driver(world, rpc, builder, int(await rpc.call("eth_blockNumber", []), 16))
        store = await asyncio.to_thread(read_store, world.dex)
        chain = config.chains[0]
        assert chain.pricing is not None
        strategy = DexArbStrategy(
            store, dex_arb_config(chain, config.strategies["dex_arb"], config.gas), Pricer(chain.pricing, store)
        )
        settings = BaselineSettings(
            ipc_path=world.node.ipc_path,
            builder_url=builder.url,
            chain_id=chain.chain_id,
            contract=world.deployment.address,
            contract_abi=arb_artifact()["abi"],
            v2_abi=artifact(f"{V2_CORE}/UniswapV2Pair.json")[0],
            v3_abi=artifact(f"{V3_CORE}/UniswapV3Pool.sol/UniswapV3Pool.json")[0],
            key_file=world.key_file,
            identity_file=world.identity_file,
            target_blocks=TARGET_BLOCKS,
            min_profit_wei=1,
        )
        web3_searcher = Web3Searcher(settings, store, strategy)
        base_started = time.perf_counter()
        try:
            base_all = await run_phase(driver, BaselineSearcher(web3_searcher), args.rounds, args.warmup, args.seed)
        finally:
            await builder.stop()
        base_seconds = time.perf_counter() - base_started
        base_rounds = base_all[args.warmup :]
        base_phase = await asyncio.to_thread(_phase, world, base_rounds)
        extra = {
            "agent_split": agent_splits(agent_rounds, ours.trace),
            "base_split": baseline_splits(base_rounds, web3_searcher),
            "agent_s": agent_seconds,
            "base_s": base_seconds,
            "cycles": len(strategy.cycles),
            "pools": len(store),
            # The first round starts from the same state with the same swap and nonce: both searchers
            # signed the same bytes if they built the same transaction (later rounds drift apart: the
            # baseline has no risk gate and also trades the tiny cycles the agent's refuses).
            "same_first_tx": agent_all[0].bundle is not None
            and base_all[0].bundle is not None
            and agent_all[0].bundle.tx_hash == base_all[0].bundle.tx_hash,
        }
        return agent_phase, base_phase, extra
    finally:
        await rpc.close()


def report(ours: Phase, base: Phase, extra: dict[str, Any], args: argparse.Namespace, setup_s: float) -> int:
    print(
        f"End to end on anvil: block mined -> bundle received by a local builder (Python {sys.version.split()[0]}, "
        "one machine)"
    )
    print()
    print(
        f"World: {extra['pools']} pools (4 Uniswap V2 pairs from 4 factories, 1 V3 pool), {extra['cycles']} cycles "
        f"from W; ArbExecutor holding {INVENTORY // E18} W; anvil over IPC, automine off (set up in {setup_s:.1f} s)"
    )
    print(
        f"Rounds: {args.rounds} per searcher after {args.warmup} warm-up; each a trader's swap of 2-6% of one pool's "
        "depth, mined, bundled, included in the next block"
    )
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"Machine: {os.cpu_count()} cores, load average {load} at the end (other jobs add noise to both)")
    print("t0: evm_mine written to anvil's IPC socket; t1: the builder (own process) starts handling the earliest of")
    print(f"    the block's eth_sendBundle requests ({TARGET_BLOCKS} target blocks each, as the agent's default)")
    # Signing is a large share of both figures, and its cost depends on eth_keys' backend.
    print(f"Signing: eth_account through eth_keys' {type(get_backend()).__name__} (coincurve is the fast one)")
    print()
    broken: list[str] = []
    for name, phase in (("ours", ours), ("baseline", base)):
        if not phase.latencies:
            broken.append(f"{name}: no bundle received in any round")
        if phase.missed:
            broken.append(
                f"{name}: {phase.missed} of {len(phase.rounds)} rounds got no bundle in {BUNDLE_TIMEOUT_S:g} s"
            )
        if phase.bad_signatures:
            broken.append(f"{name}: {phase.bad_signatures} bundles not signed by the searcher identity")
        if phase.landed != len(phase.latencies):
            broken.append(
                f"{name}: {len(phase.latencies) - phase.landed} bundled transactions did not succeed on chain"
            )
    if ours.latencies and base.latencies:
        o, b = ours.latencies, base.latencies
        print(f"  {'anvil block -> bundle received':<44} {'ours':>12} {'baseline':>12} {'baseline/ours':>14}  target")
        _side("p50", _percentile(o, 0.5), _percentile(b, 0.5))
        p99 = _percentile(o, 0.99)
        _side("p99", p99, _percentile(b, 0.99), f"<= {P99_TARGET_MS:.0f} ms", _verdict(p99 <= P99_TARGET_MS))
        _side("max", max(o), max(b))
        _side("mean", statistics.fmean(o), statistics.fmean(b))
        print()
        _row("bundles received / landed: ours", f"{len(o)} / {ours.landed}")
        _row("bundles received / landed: baseline", f"{len(b)} / {base.landed}")
        _row("first round: both signed the same bytes", "yes" if extra["same_first_tx"] else "NO")
        _row("wall time: ours / baseline phase", f"{extra['agent_s']:.0f} s / {extra['base_s']:.0f} s")
        print()
        split: AgentSplit = extra["agent_split"]
        _split_table("Ours, where the time goes", split.steps)
        if split.calls:
            print(f"  (node calls before sending: {', '.join(split.calls)})")
        if split.checkpointed:
            print(
                f"  (rounds where the collector wrote its pool checkpoint before the strategy ran: "
                f"{len(split.checkpointed)}, median {statistics.median(split.checkpointed):.1f} ms)"
            )
        print()
        _split_table("Baseline, where the time goes", extra["base_split"])
    print()
    print("Not measured here: a real builder or relay across the internet (its round trip adds to both), a real")
    print("client's block import (anvil builds the block in-process), mainnet-size pool sets (5 pools here; see")
    print("bench/agent_hot_path.py for 5,000), competition for the block. The baseline skips the pre-send eth_call")
    print("the agent makes, and is handed the V3 pool's ticks once instead of refreshing them.")
    for problem in broken:
        print(f"BROKEN: {problem}")
    return 1 if broken else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="measured rounds per searcher")
    parser.add_argument("--warmup", type=int, default=5, help="rounds per searcher before measuring")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    if not ANVIL.is_file():
        print(f"{ANVIL.relative_to(REPO)} is missing: run `make setup` first", file=sys.stderr)
        return 1
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mevbench") as tmp:
        directory = Path(tmp)
        world = build_world(directory)
        try:
            setup_s = time.perf_counter() - wall
            try:
                ours, base, extra = asyncio.run(bench(world, directory, args))
            except Broken as exc:
                print(f"BROKEN: {exc}")
                return 1
            code = report(ours, base, extra, args, setup_s)
        finally:
            world.node.close()
    print()
    print(f"total bench time {time.perf_counter() - wall:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
