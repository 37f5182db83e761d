"""The bridge monitor: deposits and fills per bridge route, from the bridges' own events on both ends.

`BridgeWatcher` follows one bridge contract on one chain over JSON-RPC (`eth_getLogs` from the block it
reached, once per `poll_s`): a `FundsDeposited` is a transfer leaving that chain, a `FilledRelay` one
arriving (Across's SpokePool event shapes, matched by origin chain id and deposit id). Times are the
control host's clock when a watcher first saw each event (one clock for both ends, within `poll_s`):
two chains' block timestamps are not comparable to the second (and a devnet's run ahead of the wall
clock when blocks come faster than one a second).
`BridgeMonitor` keeps what is pending (and stuck past `stuck_after_s`), the last 1,000 fill times per
route and the failures (transfers that went stuck), and says which bridges are unhealthy.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import aiohttp
from eth_abi import decode
from eth_utils import keccak
from pydantic import Field

from mevagent.config import Strict
from mevagent.crosschain.registry import Registry
from mevagent.executor.rpc import HttpJsonRpc

log = logging.getLogger(__name__)

DEPOSITED = "0x" + keccak(text="FundsDeposited(address,address,uint256,uint256,uint256,uint32,address,address)").hex()
FILLED = "0x" + keccak(text="FilledRelay(address,address,uint256,uint256,uint256,uint256,uint32,address,address)").hex()


class BridgeWatch(Strict):
    bridge: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]  # its name in the bridge catalog
    chain: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    rpc_url: Annotated[str, Field(pattern=r"^https?://\S+$")]
    contract: Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]
    poll_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 1.0


def pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class BridgeMonitor:
    stuck_after_s: float = 3600.0
    pending: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)  # (bridge, id) → (route, at)
    fills: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(lambda: deque(maxlen=1000)))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unhealthy: set[str] = field(default_factory=set)  # bridges the route choice avoids
    _early: dict[tuple[str, str], float] = field(default_factory=dict)  # fills seen before their deposit
    _counted: set[tuple[str, str]] = field(default_factory=set)  # stuck transfers counted as failures

    def deposit(self, bridge: str, deposit_id: str, route: str, at: float) -> None:
        filled = self._early.pop((bridge, deposit_id), None)
        if filled is not None:  # the destination's watcher was ahead of the origin's
            self.fills[route].append(max(0.0, filled - at))
            return
        self.pending[(bridge, deposit_id)] = (route, at)

    def fill(self, bridge: str, deposit_id: str, at: float) -> float | None:
        seen = self.pending.pop((bridge, deposit_id), None)
        if seen is None:
            self._early[(bridge, deposit_id)] = at
            return None
        route, deposited = seen
        elapsed = max(0.0, at - deposited)
        self.fills[route].append(elapsed)
        self._counted.discard((bridge, deposit_id))
        return elapsed

    def unhealthy_bridges(self, now: float, typical_s: dict[str, float], slow_factor: float) -> set[str]:
        bad: set[str] = set()
        for (bridge, deposit_id), (route, at) in self.pending.items():
            if now - at > self.stuck_after_s:
                bad.add(bridge)
                if (bridge, deposit_id) not in self._counted:
                    self._counted.add((bridge, deposit_id))
                    self.failures[route] += 1
        for route, times in self.fills.items():
            recent = sorted(list(times)[-20:])
            if recent and route in typical_s and pct(recent, 0.9) > slow_factor * typical_s[route]:
                bad.add(route.split("@", 1)[0])
        return bad

    def performance(self) -> list[dict[str, Any]]:
        rows = []
        for route, times in sorted(self.fills.items()):
            ordered = sorted(times)
            rows.append(
                {"route": route, "fills": len(ordered), "failures": self.failures.get(route, 0),
                 "fill_s_p50": pct(ordered, 0.5), "fill_s_p90": pct(ordered, 0.9),
                 "fill_s_p99": pct(ordered, 0.99), "fill_s_max": ordered[-1]}
            )  # fmt: skip
        return rows

    def pending_rows(self, now: float) -> list[dict[str, Any]]:
        return [
            {"bridge": b, "deposit": d, "route": r, "age_s": now - at, "stuck": now - at > self.stuck_after_s}
            for (b, d), (r, at) in sorted(self.pending.items())
        ]


def route_name(bridge: str, src: str, dst: str) -> str:
    return f"{bridge}@{src}->{dst}"


class BridgeWatcher:
    """Follows one bridge contract on one chain into the monitor; `on_poll` after each round."""

    def __init__(
        self, watch: BridgeWatch, registry: Registry, monitor: BridgeMonitor, on_poll: Callable[[float], None]
    ) -> None:
        self.watch = watch
        self.registry = registry
        self.monitor = monitor
        self.on_poll = on_poll
        self.chain_id = registry.chain_id(watch.chain)
        self._by_id = {c.chain_id: name for name, c in registry.catalog.chains.items()}
        self.next_block: int | None = None
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            rpc = HttpJsonRpc(self.watch.rpc_url, session)
            while not self._stopping:
                try:
                    await self.poll(rpc)
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    log.warning("bridge monitor: %s on %s: %s", self.watch.bridge, self.watch.chain, exc)
                self.on_poll(time.time())
                await asyncio.sleep(self.watch.poll_s)

    async def poll(self, rpc: HttpJsonRpc) -> None:
        head = int(await rpc.call("eth_blockNumber", []), 16)
        # A new watch reads the contract's whole history (a devnet's; production would set where to start).
        start = 0 if self.next_block is None else self.next_block
        if start > head:
            return
        query = {"address": self.watch.contract, "fromBlock": hex(start), "toBlock": hex(head)}
        logs = await rpc.call("eth_getLogs", [{**query, "topics": [[DEPOSITED, FILLED]]}])
        seen = time.time()
        for entry in logs:
            self._apply(entry, seen)
        self.next_block = head + 1

    def _apply(self, entry: dict[str, Any], at: float) -> None:
        topics = entry["topics"]
        data = bytes.fromhex(entry["data"][2:])
        if topics[0] == DEPOSITED:
            input_token, output_token, _amount_in, _amount_out, _recipient = decode(
                ["address", "address", "uint256", "uint256", "address"], data
            )
            destination = self._by_id.get(int(topics[1], 16))
            src = self.registry.token_at(self.watch.chain, input_token)
            dst = self.registry.token_at(destination, output_token) if destination else None
            route = route_name(self.watch.bridge, src.id if src else input_token, dst.id if dst else output_token)
            self.monitor.deposit(self.watch.bridge, f"{self.chain_id}:{int(topics[2], 16)}", route, at)
        elif topics[0] == FILLED:
            self.monitor.fill(self.watch.bridge, f"{int(topics[1], 16)}:{int(topics[2], 16)}", at)
