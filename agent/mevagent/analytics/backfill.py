"""Historical classification: read a block range from a node in JSON-RPC batches, classify, hand to a sink.

Resumable: after each batch is written, the next block number is saved to a cursor file (atomically),
and a restarted backfill starts there. The sink is an interface: `FileSink` writes the same
`<block number>.json` files as `mevagent classify`; the control plane's PostgreSQL ingestion
implements `ClassificationSink` on its side (it owns the schema and the connection).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import aiohttp
import orjson

from mevagent.analytics.classify import classify_block
from mevagent.analytics.models import BlockClassification
from mevagent.analytics.prices import priced, reference_stores
from mevagent.pricing import Pricer, PricingConfig

TraceKind = Literal["parity", "geth", "none"]


class BackfillError(RuntimeError):
    """The node refused or failed a request: the message names the method and the block."""


class ClassificationSink(Protocol):
    """Where classified blocks go (files here; the control plane's PostgreSQL on its side)."""

    async def write(self, results: Sequence[BlockClassification]) -> None: ...


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def classification_json(result: BlockClassification) -> bytes:
    return orjson.dumps(result.model_dump(mode="json"), option=orjson.OPT_INDENT_2)


@dataclass
class FileSink:
    out_dir: Path

    async def write(self, results: Sequence[BlockClassification]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for result in results:
            write_atomic(self.out_dir / f"{result.block_number}.json", classification_json(result))


def _requests(number: int, traces: TraceKind) -> list[tuple[str, list[Any]]]:
    tag = hex(number)
    calls: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", [tag, True]), ("eth_getBlockReceipts", [tag])]
    if traces == "parity":
        calls.append(("trace_block", [tag]))
    elif traces == "geth":
        calls.append(("debug_traceBlockByNumber", [tag, {"tracer": "callTracer"}]))
    return calls


async def fetch_blocks(
    session: aiohttp.ClientSession, url: str, numbers: Sequence[int], traces: TraceKind
) -> list[dict[str, Any]]:
    """One JSON-RPC batch for `numbers`: each block as {"block", "receipts", "traces"}."""
    batch = []
    for number in numbers:
        for method, params in _requests(number, traces):
            batch.append({"jsonrpc": "2.0", "id": len(batch), "method": method, "params": params})
    async with session.post(url, data=orjson.dumps(batch), headers={"Content-Type": "application/json"}) as response:
        if response.status != 200:
            raise BackfillError(f"{url}: HTTP {response.status} for blocks {numbers[0]}..{numbers[-1]}")
        answers = orjson.loads(await response.read())
    if not isinstance(answers, list):
        raise BackfillError(f"{url}: the node does not answer JSON-RPC batches: {str(answers)[:200]}")
    by_id = {a.get("id"): a for a in answers}
    blocks = []
    per_block = len(_requests(0, traces))
    for i, number in enumerate(numbers):
        parts = []
        for j in range(per_block):
            answer = by_id.get(i * per_block + j) or {}
            if "error" in answer or "result" not in answer:
                method = batch[i * per_block + j]["method"]
                raise BackfillError(f"{method}({number}): {answer.get('error', 'no answer')}")
            parts.append(answer["result"])
        if parts[0] is None:
            raise BackfillError(f"eth_getBlockByNumber({number}): the node does not have this block")
        blocks.append({"block": parts[0], "receipts": parts[1], "traces": parts[2] if len(parts) > 2 else None})
    return blocks


def read_cursor(path: Path | None, start: int) -> int:
    if path is None or not path.exists():
        return start
    try:
        saved = int(orjson.loads(path.read_bytes())["next"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise BackfillError(f"{path}: not a backfill cursor ({exc})") from None
    return max(start, saved)


async def backfill(
    url: str,
    first: int,
    last: int,
    sink: ClassificationSink,
    *,
    cursor: Path | None = None,
    batch_size: int = 10,
    traces: TraceKind = "parity",
    timeout_s: float = 60.0,
    pricing: PricingConfig | None = None,
) -> int:
    """Classify blocks first..last (inclusive) into `sink`; returns how many were done in this run.

    With `pricing` (a chain's `pricing:` section), each block's MEV is priced as the live classifier prices it
    (mevagent.analytics.prices: the reference pools read at that block)."""
    if batch_size < 1:
        raise ValueError("batch_size: must be at least 1")
    start = read_cursor(cursor, first)
    done = 0
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for low in range(start, last + 1, batch_size):
            numbers = list(range(low, min(low + batch_size, last + 1)))
            raws = await fetch_blocks(session, url, numbers, traces)
            # Classification is CPU work: off the event loop, so a co-located agent keeps its latency.
            results = await asyncio.to_thread(lambda rs=raws: [classify_block(r) for r in rs])
            if pricing is not None:
                stores = await reference_stores(session, url, pricing, numbers)
                results = [priced(r, Pricer(pricing, stores[r.block_number]).usd_per_unit) for r in results]
            await sink.write(results)
            if cursor is not None:
                write_atomic(cursor, orjson.dumps({"next": numbers[-1] + 1}))
            done += len(numbers)
    return done
