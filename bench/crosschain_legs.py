"""Cross-chain arbitrage: the triggering block → both legs received by their chains' sequencers (target
p99 ≤ 25 ms), beside a baseline from the same run.

The pipeline is tests/agent/control/test_crosschain_legs.py's (testbed/crosschain.py): two anvils (31401, 31402) with
the same Uniswap V2 pair and the published Router02, a real `Control` (ingest into PostgreSQL, the lease loop,
the cross-chain service and its position book) and two agents' bus links with real risk gates and live
executors sending to their node as their sequencer. Both chains start at 3,060 TUSD per WETH (no gap).

Each trial (`--trials`, 100 by default; `pct` is the other benches' index ⌊q·n⌋, so
the p99 of 100 trials is their largest):

1. full: the bench's own account sells 1 WETH into alpha's pair through Router02 (anvil automine: one block).
   t0 is the wall-clock instant the bench holds that transaction's receipt: the first moment anyone outside
   the node can know the block exists (the block's own timestamp has one-second resolution, far too coarse).
   The bench then plays the agent's state syncer for that block without any further RPC: the pair's `Sync`
   log in the receipt updates the agent's pool store, and the agent's `PairPriceReporter` publishes the new
   price through a long-running `BusPublisher` onto `mev:prices`. From there everything is the fleet's own
   code: the service's XREAD, the engine's `absorb`, the book's `consider`, one `crosschain_leg` command per
   chain, each agent's XREAD, risk gate, simulation, signing and `eth_sendRawTransaction`.
   The end is the later of the two legs' `sent_at`, which the agents' `LegExecutor` records right after
   the node answered `eth_sendRawTransaction` (so the node holds the transaction) and which the position
   book keeps as `agent_sent_at`: read from there, no polling of the nodes' txpools.
2. baseline: the same trigger, the same t0, then the same two leg commands (the engine's from the first
   full trial, fresh ids and deadline) handed straight to the same agents' `LegExecutor`s (same node
   clients, keys, nonce managers, gates), concurrently: what the legs cost with no reporter, bus, engine,
   book or command stream. It isolates the fleet's share (full minus baseline) from the part no engine can
   remove (the gate's reads, the simulation, signing and the send); the bus alone would leave the engine
   and the command path out of both sides.

After each run both chains go back to their snapshot (evm_revert), the agents' nonce managers re-read the
node's count (it went back with the chain; read there, outside the measured window) and alpha's baseline
price is published again, so every trial opens the same gap.

Stages of the full trials (one host clock, time.time()): t0 → the reporter's publish returned (the
syncer's part), → the engine's `absorb` called (the publisher's batching, Redis, the service's XREAD), →
the opportunity's `found_at` (the engine), → the later leg's command made (`command.at`: the book), → the
position's record and both legs' command rows committed in PostgreSQL (one statement of
`Control.open_position`), → both legs' XADDs answered (one pipeline; Redis appends with fsync on every write,
as the bus is configured), → the leg's `agent_received_at` (the agent's XREAD and dispatch), → its
`agent_sent_at` (the agent: reads, gate, signing, the send). The PostgreSQL and XADD instants come from a
wrapper the bench puts around `Control.open_position` (it calls the original) and the Redis pipeline it
opens right after the commit.

Once the fleet is up, the process freezes its startup heap (mevagent.heap.freeze_startup), as `mevcontrol run`
and `mevagent run` do: without it a full GC pass over the startup objects (100-370 ms here) lands in about one
trial in a hundred.

Limits: the control plane and both agents run in this one process on one event loop (as the test does),
not three processes on three hosts; the state syncer's log read is played by the bench from the receipt.

Run: .venv/bin/python bench/crosschain_legs.py [--trials 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testbed/, the local worlds

import aiohttp  # noqa: E402
from figures import pct  # noqa: E402
from mevcontrol.db import migrate  # noqa: E402
from mevcontrol.positions import Position  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from mevagent.bus.events import CrossChainLegCommand, new_id  # noqa: E402
from mevagent.bus.publisher import BusPublisher  # noqa: E402
from mevagent.bus.spool import Spool  # noqa: E402
from mevagent.crosschain.legs import LegExecutor  # noqa: E402
from mevagent.crosschain.prices import PairPriceReporter  # noqa: E402
from mevagent.executor.executor import ArbitrageExecutor  # noqa: E402
from mevagent.executor.routes import ARB_CONTRACT  # noqa: E402
from mevagent.executor.rpc import HttpJsonRpc  # noqa: E402
from mevagent.heap import freeze_startup  # noqa: E402
from mevagent.state import abi  # noqa: E402
from mevagent.state.pools import V2Pool  # noqa: E402
from testbed import crosschain  # noqa: E402
from testbed.evm import DEADLINE, MAX_UINT256  # noqa: E402
from testbed.services import Postgres, RedisServer  # noqa: E402

E18 = 10**18
TRIGGER_WETH = E18  # 1 WETH sold into 100 WETH / 306,000 TUSD: alpha's price drops to about 3,000 (beta 3,060)
BETA_REFRESH_S = 30.0  # beta's unchanged price published again this often (the engine's stale_after_s is 60)
TERMINAL = ("closed", "failed", "unwound", "stuck", "refused")


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclasses.dataclass
class Trial:
    total: float
    stages: dict[str, float] = dataclasses.field(default_factory=dict)


class Bench:
    def __init__(self, venues: tuple[crosschain.Venue, crosschain.Venue], fleet: crosschain.Fleet, tmp: Path) -> None:
        self.va, self.vb = venues
        self.fleet = fleet
        self.tmp = tmp
        alpha = self.va.side
        self.url = str(alpha.chain.w3.provider.endpoint_uri)
        self.account = alpha.chain.account
        router = self.va.router
        path = [alpha.weth.address, alpha.usd.address]
        self.trigger_data = router.functions.swapExactTokensForTokens(
            TRIGGER_WETH, 0, path, self.account, DEADLINE
        )._encode_transaction_data()
        self.pair = alpha.pair.address.lower()
        store = alpha.store()
        self.baseline_pool = store.get(self.pair)
        assert isinstance(self.baseline_pool, V2Pool)
        self.store = store
        self.reporter: PairPriceReporter | None = None
        self.beta_published = time.monotonic()  # beta's price on the bus (published once the fleet is up)
        self.publisher: BusPublisher | None = None
        self.snapshots = (alpha.chain.snapshot(), self.vb.side.chain.snapshot())
        self.arrived: list[float] = []  # the engine's absorb calls (time.time()), for the stage split
        self.recorded: dict[str, float] = {}  # command id → its history row committed in PostgreSQL
        self.xadded: dict[str, float] = {}  # command id → its XADD onto the agent's command stream answered
        self.commands: tuple[CrossChainLegCommand, CrossChainLegCommand] | None = None

    def executor(self, name: str, chain: str) -> ArbitrageExecutor:
        executor: ArbitrageExecutor = self.fleet.links[name].router.executors[chain][ARB_CONTRACT]
        return executor

    async def trigger(self, rpc: HttpJsonRpc) -> tuple[float, dict[str, Any]]:
        """Alpha's gap-opening block; (the instant its receipt arrived, the receipt)."""
        tx = {"from": self.account, "to": self.va.router.address, "data": self.trigger_data, "gas": hex(300_000),
              "gasPrice": "0x0"}  # fmt: skip
        tx_hash = await rpc.call("eth_sendTransaction", [tx])
        while True:
            receipt = await rpc.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                t0 = time.time()
                assert int(receipt["status"], 16) == 1, receipt
                return t0, receipt

    def sync_from(self, receipt: dict[str, Any]) -> int:
        """The agent's state syncer on this block: the pair's Sync log → its pool store. The block number."""
        for log in receipt["logs"]:
            if log["address"].lower() == self.pair and log["topics"][0] == abi.SYNC:
                data = bytes.fromhex(log["data"][2:])
                r0, r1 = int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big")
                self.store.add(dataclasses.replace(self.baseline_pool, reserve0=r0, reserve1=r1))
                return int(receipt["blockNumber"], 16)
        raise AssertionError("the trigger's receipt has no Sync log of alpha's pair")

    async def restore(self, *, republish: bool) -> None:
        """Both chains back to the snapshot; the agents re-read their nonces; alpha's baseline price again
        (`republish`: the engine saw the trigger's price)."""
        await asyncio.sleep(0.05)  # the legs' last receipt reads
        snapshots = []
        for venue, snap in zip((self.va, self.vb), self.snapshots, strict=True):
            venue.side.chain.revert(snap)
            snapshots.append(venue.side.chain.snapshot())
        self.snapshots = (snapshots[0], snapshots[1])
        for name, chain in (("xa", "alpha"), ("xb", "beta")):
            nonces = self.executor(name, chain).nonces
            assert nonces is not None
            await nonces.resync()  # now, so no trial pays the count's read in its window
        if not republish:
            return
        assert self.reporter is not None and self.publisher is not None
        self.store.add(self.baseline_pool)
        block = self.va.side.chain.w3.eth.block_number
        assert self.reporter.observe([self.pair], block) == 1
        if time.monotonic() - self.beta_published > BETA_REFRESH_S:
            # Beta's price never moves, so its reporter publishes it once: a fresh reporter publishes it again
            # before the engine counts it stale (stale_after_s, 60 s), or a run longer than that finds no gap.
            (_, _), (beta, side) = crosschain.reporters(self.va.side, self.vb.side, self.publisher.publish)
            assert beta.observe([side.pair.address.lower()], side.chain.w3.eth.block_number) == 1
            self.beta_published = time.monotonic()
        await self.publisher.flushed(5)
        await asyncio.sleep(0.15)  # the engine has absorbed it (the service's XREAD blocks at most 100 ms)

    async def full(self, rpc: HttpJsonRpc) -> Trial:
        book = self.fleet.control.crosschain.book
        known = set(book.positions)
        assert self.reporter is not None
        t0, receipt = await self.trigger(rpc)
        block = self.sync_from(receipt)
        assert self.reporter.observe([self.pair], block) == 1
        published = time.time()
        position: Position | None = None
        async with asyncio.timeout(20):
            while position is None or position.state not in TERMINAL:
                await asyncio.sleep(0.005)
                fresh = [p for p in book.positions.values() if p.id not in known]
                position = fresh[0] if fresh else None
        if position.state != "closed":
            raise RuntimeError(f"position {position.id} ended {position.state}: {position.steps}")
        buy, sell = position.legs["buy"], position.legs["sell"]
        if self.commands is None:
            self.commands = (buy.command, sell.command)
        found = float(position.opportunity["found_at"])
        arrived = next(a for a in reversed(self.arrived) if a >= published)
        sent = [leg.agent_sent_at for leg in (buy, sell)]
        received = [leg.agent_received_at for leg in (buy, sell)]
        assert all(s is not None for s in sent) and all(r is not None for r in received)
        last = max(range(2), key=lambda i: sent[i])  # type: ignore[arg-type, return-value]
        command = (buy, sell)[last].command
        return Trial(
            max(sent) - t0,  # type: ignore[type-var, operator]
            {
                "syncer+reporter": published - t0,
                "bus (publish → absorb)": arrived - published,
                "engine (absorb → found)": found - arrived,
                "book (found → command)": command.at - found,
                "record + rows in PostgreSQL": self.recorded[command.id] - command.at,
                "both XADDs (one pipeline)": self.xadded[command.id] - self.recorded[command.id],
                "XADD → agent received": received[last] - self.xadded[command.id],  # type: ignore[operator]
                "agent gate → sent": sent[last] - received[last],  # type: ignore[operator]
            },
        )

    async def direct(self, rpc: HttpJsonRpc) -> Trial:
        assert self.commands is not None
        legs = [LegExecutor(self.executor("xa", "alpha"), "xa"), LegExecutor(self.executor("xb", "beta"), "xb")]
        position = new_id()
        commands = [c.model_copy(update={"id": new_id(), "position_id": position, "deadline": time.time() + 60})
                    for c in self.commands]  # fmt: skip
        t0, _receipt = await self.trigger(rpc)
        results = await asyncio.gather(*(leg.execute(c) for leg, c in zip(legs, commands, strict=True)))
        for r in results:
            if r.status != "landed" or r.sent_at is None:
                raise RuntimeError(f"direct leg {r.leg} on {r.chain}: {r.status} {r.reason}")
        later = max(results, key=lambda r: r.sent_at or 0.0)
        assert later.sent_at is not None
        return Trial(later.sent_at - t0, {"agent gate → sent": later.sent_at - later.received_at})


def _approve_router(venue: Any) -> None:
    chain = venue.side.chain
    chain.transact(venue.side.weth.functions.approve(venue.router.address, MAX_UINT256))


@dataclasses.dataclass
class World:
    venues: tuple[crosschain.Venue, crosschain.Venue]
    redis: RedisServer
    pg: Postgres


@contextlib.contextmanager
def _world(root: Path) -> Iterator[World]:
    redis = RedisServer(Path(tempfile.mkdtemp(prefix="redis-", dir=root)))
    redis.start()
    pg = Postgres()
    try:
        pg.init()
        asyncio.run(migrate(pg.dsn))
        with crosschain.sides() as sides:
            venues = crosschain.deploy_venues(sides, Path(tempfile.mkdtemp(prefix="venues-", dir=root)))
            for venue in venues:
                venue.side.set_price(100 * E18, 306_000 * E18)  # 3,060 on both: no gap until the trigger
                _approve_router(venue)
            yield World(venues, redis, pg)
    finally:
        pg.remove()
        redis.stop()


async def run(world: World, trials: int, tmp: Path) -> tuple[list[Trial], list[Trial]]:
    va, vb = world.venues
    async with crosschain.fleet(world.venues, world.redis, world.pg, tmp) as f:
        bench = Bench(world.venues, f, tmp)
        engine = f.control.crosschain.engine
        absorb = engine.absorb

        def timed_absorb(event: Any) -> Any:  # the bus's end: when the engine got the price
            bench.arrived.append(time.time())
            return absorb(event)

        engine.absorb = timed_absorb
        # The book opens a position through Control.open_position: its record and the legs' rows in one commit,
        # then the legs' XADDs in one pipeline, made right after the commit: that instant splits the two.
        control = f.control
        open_position, pipeline = control.open_position, control.redis.pipeline
        opening: dict[Any, list[str]] = {}  # the open_position task → its commands' ids

        def timed_pipeline(*args: Any, **kwargs: Any) -> Any:
            for command_id in opening.get(asyncio.current_task(), ()):
                bench.recorded[command_id] = time.time()
            return pipeline(*args, **kwargs)

        async def timed_open(record: Any, version: int, commands: list[Any]) -> None:
            opening[asyncio.current_task()] = [c.id for c in commands]
            try:
                await open_position(record, version, commands)
            finally:
                del opening[asyncio.current_task()]
            for command in commands:
                bench.xadded[command.id] = time.time()

        control.redis.pipeline = timed_pipeline  # type: ignore[method-assign]
        control.open_position = timed_open  # type: ignore[method-assign]
        redis = Redis(host="127.0.0.1", port=world.redis.port, password=world.redis.password)
        publisher = BusPublisher(redis, Spool(tmp / "spool"))
        task = asyncio.create_task(publisher.run())
        bench.publisher = publisher
        (ra, _), (rb, _) = crosschain.reporters(va.side, vb.side, publisher.publish)
        ra.store = bench.store  # alpha's reporter reads the pool store the bench's "syncer" keeps
        bench.reporter = ra
        full: list[Trial] = []
        direct: list[Trial] = []
        try:
            assert ra.observe([bench.pair], va.side.chain.w3.eth.block_number) == 1
            assert rb.observe([bench.pair], vb.side.chain.w3.eth.block_number) == 1
            await publisher.flushed(5)
            await asyncio.sleep(0.3)
            freeze_startup()  # as `mevcontrol run` and `mevagent run` do once started (mevagent.heap)
            async with aiohttp.ClientSession() as session:
                rpc = HttpJsonRpc(bench.url, session)
                for n in range(trials):
                    full.append(await bench.full(rpc))
                    await bench.restore(republish=True)
                    direct.append(await bench.direct(rpc))
                    await bench.restore(republish=False)
                    if (n + 1) % 10 == 0:
                        print(f"  {n + 1}/{trials} trials", flush=True)
        finally:
            publisher.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await redis.aclose()
    return full, direct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    print(f"load average at start: {loadavg()}")
    root = Path(tempfile.mkdtemp(prefix="bench-legs-"))
    started = time.perf_counter()
    try:
        with _world(root) as world:
            full, direct = asyncio.run(run(world, args.trials, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ms = 1000.0

    def line(values: list[float]) -> str:
        return f"p50 {pct(values, 0.5) * ms:6.1f} ms  p99 {pct(values, 0.99) * ms:6.1f} ms  max {max(values) * ms:6.1f}"

    totals, bases = [t.total for t in full], [t.total for t in direct]
    print(f"{len(full)} trials, {time.perf_counter() - started:.0f} s")
    print(f"block → both legs sent (full pipeline):       {line(totals)}")
    print(f"block → both legs sent (legs straight to the executors, baseline): {line(bases)}")
    p50, p99 = pct(totals, 0.5) / pct(bases, 0.5), pct(totals, 0.99) / pct(bases, 0.99)
    print(f"ratio full/baseline: p50 {p50:.2f}  p99 {p99:.2f}")
    print("stages of the full trials (the later leg's):")
    for stage in full[0].stages:
        values = [t.stages[stage] for t in full]
        print(f"  {stage:28} {line(values)}")
    gate = [t.stages["agent gate → sent"] for t in direct]
    print(f"  {'baseline: agent gate → sent':28} {line(gate)}")
    target = pct(totals, 0.99) * ms <= 25
    print(f"p99 ≤ 25 ms: {'met' if target else 'not met'}")
    print(f"load average at end: {loadavg()}")


if __name__ == "__main__":
    main()
