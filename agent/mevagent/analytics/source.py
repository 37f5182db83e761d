"""One block as nodes serve it, normalized: its transactions with their receipt logs and call frames.

Input is `{"block": eth_getBlockByNumber(n, true), "receipts": eth_getBlockReceipts(n),
"traces": trace_block(n)}`. Receipts and traces may each be missing (or null); `traces` may also be
geth `debug_traceBlockByNumber(n, {"tracer": "callTracer"})` output (nested frames), which is
flattened here into the same depth-first order Parity flat traces have. A malformed input raises
BlockInputError naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mevagent.analytics.abi import quantity


class BlockInputError(ValueError):
    """The block file is not what a node serves: the message names the field."""


@dataclass(slots=True)
class Log:
    address: str
    topics: list[str]
    data: str


@dataclass(slots=True)
class Frame:
    """One call frame, in depth-first order within its transaction."""

    depth: int
    call_type: str  # call, staticcall, delegatecall, callcode, create, create2, selfdestruct
    sender: str
    to: str
    input: str
    output: str
    value: int
    failed: bool  # this frame or one of its callers reverted: nothing it did happened
    end: int = 0  # index (in the transaction's frame list) just past this frame's subtree


@dataclass(slots=True)
class Tx:
    index: int
    hash: str
    sender: str
    to: str | None
    # None when unknown (traces without receipts give it from the top frame instead)
    status: int | None = None
    gas_used: int | None = None
    effective_gas_price: int | None = None
    logs: list[Log] | None = None  # None: no receipt for this transaction
    frames: list[Frame] | None = None  # None: no trace for this transaction (or not built yet)
    # Parity traces are kept raw until a decoder needs the frames: a transaction decoded from its
    # logs only needs its native value moves (native_moves), which is a scan, not a frame tree.
    raw_traces: list[Mapping[str, Any]] | None = None


@dataclass(slots=True)
class BlockInput:
    number: int
    hash: str
    miner: str
    base_fee: int
    txs: list[Tx] = field(default_factory=list)
    has_logs: bool = False
    has_traces: bool = False


def _lower(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BlockInputError(f"{name}: expected a hex string, got {value!r}")
    return value.lower()


def _q(value: Any, name: str) -> int:
    try:
        return quantity(value, name)
    except ValueError as exc:
        raise BlockInputError(str(exc)) from None


def load_block(raw: Mapping[str, Any]) -> BlockInput:
    """Normalize one block file's JSON."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("block"), Mapping):
        raise BlockInputError("block: missing (eth_getBlockByNumber(n, true) is required)")
    block = raw["block"]
    txs_raw = block.get("transactions")
    if not isinstance(txs_raw, list):
        raise BlockInputError("block.transactions: missing")
    out = BlockInput(
        number=_q(block.get("number"), "block.number"),
        hash=_lower(block.get("hash"), "block.hash"),
        miner=_lower(block.get("miner"), "block.miner"),
        base_fee=_q(block.get("baseFeePerGas", "0x0"), "block.baseFeePerGas"),
    )
    by_hash: dict[str, Tx] = {}
    for i, tx in enumerate(txs_raw):
        if not isinstance(tx, Mapping):
            raise BlockInputError(f"block.transactions[{i}]: expected full transaction objects (pass true)")
        to = tx.get("to")
        entry = Tx(
            index=i,
            hash=_lower(tx.get("hash"), f"block.transactions[{i}].hash"),
            sender=_lower(tx.get("from"), f"block.transactions[{i}].from"),
            to=None if to is None else _lower(to, f"block.transactions[{i}].to"),
        )
        out.txs.append(entry)
        by_hash[entry.hash] = entry
    _attach_receipts(out, raw.get("receipts"), by_hash)
    traces = raw.get("traces")
    if traces:
        if not isinstance(traces, list):
            raise BlockInputError("traces: expected a list")
        if isinstance(traces[0], Mapping) and "action" in traces[0]:
            _attach_parity(out, traces)
        else:
            _attach_geth(out, traces)
        out.has_traces = True
    return out


def _attach_receipts(out: BlockInput, receipts: Any, by_hash: dict[str, Tx]) -> None:
    if not receipts:
        return
    if not isinstance(receipts, list):
        raise BlockInputError("receipts: expected a list")
    for i, receipt in enumerate(receipts):
        name = f"receipts[{i}]"
        if not isinstance(receipt, Mapping):
            raise BlockInputError(f"{name}: expected an object")
        tx = by_hash.get(_lower(receipt.get("transactionHash"), f"{name}.transactionHash"))
        if tx is None:
            raise BlockInputError(f"{name}.transactionHash: not a transaction of this block")
        tx.status = _q(receipt.get("status", "0x1"), f"{name}.status")
        tx.gas_used = _q(receipt.get("gasUsed", "0x0"), f"{name}.gasUsed")
        tx.effective_gas_price = _q(receipt.get("effectiveGasPrice", "0x0"), f"{name}.effectiveGasPrice")
        logs = receipt.get("logs") or []
        if not isinstance(logs, list):
            raise BlockInputError(f"{name}.logs: expected a list")
        tx.logs = [_log(log, f"{name}.logs[{j}]") for j, log in enumerate(logs)]
        out.has_logs = out.has_logs or bool(logs)


def _log(log: Any, name: str) -> Log:
    if not isinstance(log, Mapping):
        raise BlockInputError(f"{name}: expected an object")
    topics, data = log.get("topics", ()), log.get("data", "0x")
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        raise BlockInputError(f"{name}.topics: expected a list of hex strings")
    if not isinstance(data, str):
        raise BlockInputError(f"{name}.data: expected a hex string")
    return Log(_lower(log.get("address"), f"{name}.address"), [t.lower() for t in topics], data)


def _attach_parity(out: BlockInput, traces: Sequence[Any]) -> None:
    """Parity flat traces (trace_block): already depth-first per transaction, with traceAddress."""
    txs = out.txs
    for i, trace in enumerate(traces):
        if not isinstance(trace, Mapping):
            raise BlockInputError(f"traces[{i}]: expected an object")
        position = trace.get("transactionPosition")
        if position is None:
            continue  # block and uncle rewards
        tx_index = position if type(position) is int else _q(position, f"traces[{i}].transactionPosition")
        if not 0 <= tx_index < len(txs):
            raise BlockInputError(f"traces[{i}].transactionPosition: {tx_index} is not a transaction of this block")
        tx = txs[tx_index]
        if tx.raw_traces is None:
            tx.raw_traces = []
        tx.raw_traces.append(trace)
    for tx in txs:
        if tx.status is None and tx.raw_traces:
            tx.status = 0 if tx.raw_traces[0].get("error") else 1


def frames_of(tx: Tx) -> list[Frame] | None:
    """The transaction's frames, built from its raw Parity traces on first use."""
    if tx.frames is None and tx.raw_traces is not None:
        tx.frames = [_parity_frame(trace, tx.index) for trace in tx.raw_traces]
        _finish_frames(tx)
    return tx.frames


def _parity_frame(trace: Mapping[str, Any], tx_index: int) -> Frame:
    action = trace.get("action") or {}
    result = trace.get("result") or {}
    kind = trace.get("type", "call")
    if kind == "call":
        call_type = action.get("callType", "call")
        to, data, output = action.get("to") or "", action.get("input", "0x"), result.get("output", "0x")
    elif kind == "create":
        call_type, to, data, output = "create", result.get("address") or "", action.get("init", "0x"), "0x"
    else:  # suicide: the balance goes to refundAddress
        call_type, to, data, output = "selfdestruct", action.get("refundAddress") or "", "0x", "0x"
    sender = action.get("from") or action.get("address") or ""
    value = action.get("value") or action.get("balance") or "0x0"
    return Frame(
        len(trace.get("traceAddress") or ()),
        call_type,
        sender.lower(),
        to.lower(),
        data,
        output or "0x",
        0 if value == "0x0" else _q(value, f"transaction {tx_index}: trace value"),
        bool(trace.get("error")),
    )


def native_moves(tx: Tx) -> list[tuple[str, str, int]]:
    """(from, to, value) of every native value move that happened (no reverted frame above it)."""
    if tx.raw_traces is None:
        return [
            (f.sender, f.to, f.value)
            for f in tx.frames or ()
            if f.value and not f.failed and f.call_type not in ("delegatecall", "callcode")
        ]
    moves = []
    failed: list[tuple[int, ...]] = []
    for trace in tx.raw_traces:
        address = tuple(trace.get("traceAddress") or ())
        if trace.get("error"):
            failed.append(address)
        action = trace.get("action") or {}
        value = action.get("value") or action.get("balance") or "0x0"
        if value == "0x0" or action.get("callType") in ("delegatecall", "callcode"):
            continue
        if any(address[: len(f)] == f for f in failed):
            continue
        to = action.get("to") or action.get("refundAddress") or (trace.get("result") or {}).get("address") or ""
        moves.append((str(action.get("from") or action.get("address") or "").lower(), to.lower(), _q(value, "value")))
    return moves


def _attach_geth(out: BlockInput, traces: Sequence[Any]) -> None:
    """geth callTracer output: [{"txHash", "result": frame}] (or bare frames) in transaction order."""
    for i, item in enumerate(traces):
        if not isinstance(item, Mapping):
            raise BlockInputError(f"traces[{i}]: expected an object")
        root = item.get("result", item)
        if not isinstance(root, Mapping) or "type" not in root:
            raise BlockInputError(f"traces[{i}]: neither a Parity trace nor a callTracer frame")
        if i >= len(out.txs):
            raise BlockInputError(f"traces[{i}]: more traces than transactions")
        tx = out.txs[i]
        frames: list[Frame] = []
        stack: list[tuple[Mapping[str, Any], int]] = [(root, 0)]
        while stack:
            frame, depth = stack.pop()
            kind = str(frame.get("type", "CALL")).lower()
            frames.append(
                Frame(
                    depth,
                    kind,
                    str(frame.get("from", "")).lower(),
                    str(frame.get("to", "")).lower(),
                    frame.get("input", "0x") if not kind.startswith("create") else "0x",
                    frame.get("output", "0x") or "0x",
                    _q(frame.get("value", "0x0") or "0x0", f"traces[{i}].value"),
                    bool(frame.get("error")),
                )
            )
            stack.extend((child, depth + 1) for child in reversed(frame.get("calls") or ()))
        tx.frames = frames
        _finish_frames(tx)


def _finish_frames(tx: Tx) -> None:
    """Propagate reverts down to callees and record where each frame's subtree ends."""
    frames = tx.frames or []
    open_frames: list[int] = []
    for index, frame in enumerate(frames):
        while open_frames and frames[open_frames[-1]].depth >= frame.depth:
            frames[open_frames.pop()].end = index
        if open_frames and frames[open_frames[-1]].failed:
            frame.failed = True
        open_frames.append(index)
    for index in open_frames:
        frames[index].end = len(frames)
    if tx.status is None and frames:
        tx.status = 0 if frames[0].failed else 1
