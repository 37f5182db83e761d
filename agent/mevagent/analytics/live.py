"""Live classification: each new block of the chain classified after the hot path, never delaying it.

`on_head(number)` only records the head; one background task fetches the newest recorded block
(block with transactions, receipts, and traces when the node serves them), classifies it in a worker
thread, counts what it found (mev_block_mev_detected) and hands the result to the sink (the control
plane's, or files). If blocks come faster than that, older unclassified heads are skipped (counted in
`skipped`): the backfill command fills such gaps from history.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from mevagent import metrics_names as names
from mevagent.analytics.backfill import ClassificationSink
from mevagent.analytics.classify import classify_block
from mevagent.analytics.models import BlockClassification
from mevagent.analytics.prices import Price, priced
from mevagent.metrics import AgentMetrics

log = logging.getLogger(__name__)

Call = Callable[[str, list[Any]], Awaitable[Any]]


@dataclass
class LiveClassifier:
    chain: str
    call: Call  # the node's JSON-RPC call (method, params) -> result
    sink: ClassificationSink
    metrics: AgentMetrics | None = None
    traces: Literal["parity", "geth", "none"] = "parity"
    price: Price | None = None  # the chain's pricing (mevagent.pricing.Pricer.usd_per_unit), when it has one
    classified: int = 0
    skipped: int = 0
    failed: int = 0
    _latest: int | None = None
    _done: int = -1
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def on_head(self, number: int) -> None:
        """Record a new head (cheap, synchronous: safe to call from the hot path's head handling)."""
        if self._latest is not None and number > self._latest and self._latest > self._done:
            self.skipped += 1
        self._latest = number if self._latest is None else max(self._latest, number)
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            number = self._latest
            if number is None or number <= self._done:
                continue
            try:
                await self.classify(number)
            except Exception as exc:  # a node error must not stop the loop: the next head retries
                self.failed += 1
                log.warning("classify block %s on %s: %s: %s", number, self.chain, type(exc).__name__, exc)
            self._done = max(self._done, number)

    async def classify(self, number: int) -> BlockClassification:
        tag = hex(number)
        block, receipts = await asyncio.gather(
            self.call("eth_getBlockByNumber", [tag, True]), self.call("eth_getBlockReceipts", [tag])
        )
        traces = None
        if self.traces == "parity":
            traces = await self.call("trace_block", [tag])
        elif self.traces == "geth":
            traces = await self.call("debug_traceBlockByNumber", [tag, {"tracer": "callTracer"}])
        raw = {"block": block, "receipts": receipts, "traces": traces}
        result = await asyncio.to_thread(classify_block, raw)
        if self.price is not None:
            result = priced(result, self.price)
        self._count(result)
        await self.sink.write([result])
        self.classified += 1
        return result

    def _count(self, result: BlockClassification) -> None:
        if self.metrics is None:
            return
        for kind, found in (
            ("sandwich", result.sandwiches),
            ("arbitrage", result.arbitrages),
            ("liquidation", result.liquidations),
            ("jit", result.jit),
        ):
            if found:
                self.metrics.child(names.BLOCK_MEV, self.chain, kind).inc(len(found))
