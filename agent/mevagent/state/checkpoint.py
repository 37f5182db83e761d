"""The pool store on disk: written atomically, validated on load, resumed from its block.

A checkpoint records the block it is current at and that block's hash. On start the syncer loads it,
asks the node whether that hash is still canonical at that height, and replays logs from the next
block: a restart costs the blocks missed, not a full bootstrap. Integers are decimal strings because
reserves, prices and liquidity do not fit JSON's 64-bit numbers.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from sortedcontainers import SortedDict

from mevagent.amm.v2 import fork_fees
from mevagent.amm.v3.pool import V3PoolState
from mevagent.amm.v3_forks import v3_forks
from mevagent.state.logs import GrossTicks
from mevagent.state.pools import PoolStore, V2Pool, V3Pool

VERSION = 1

BigInt = Annotated[int, BeforeValidator(lambda v: int(v) if isinstance(v, str) else v)]
Hex = Annotated[str, Field(pattern=r"^0x[0-9a-f]+$")]


class CheckpointError(ValueError):
    """The checkpoint file exists but cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class V2Entry(_Strict):
    address: Hex
    fork: str
    token0: Hex
    token1: Hex
    reserve0: BigInt
    reserve1: BigInt
    fee: int
    fee_denominator: int
    # The fee on an input of token1 and the curve flag of pairs that keep their own (Camelot); absent in
    # checkpoints written before they existed, which held fixed-fee forks only: fee1 = fee, not stable.
    fee1: int | None = None
    stable: bool = False


class V3Entry(_Strict):
    address: Hex
    fork: str
    token0: Hex
    token1: Hex
    sqrt_price_x96: BigInt
    tick: int
    liquidity: BigInt
    fee: int
    tick_spacing: int
    ticks: list[tuple[int, BigInt, BigInt]]  # (tick, liquidityNet, liquidityGross)


class Checkpoint(_Strict):
    version: int
    chain: str
    block: int
    block_hash: Hex
    factories: list[Hex]  # the configured factories the pools came from: a new one needs a bootstrap
    v2: list[V2Entry]
    v3: list[V3Entry]


def _text(value: int) -> str:
    return str(value)


def save(path: Path, store: PoolStore, gross: GrossTicks, block_hash: str, factories: list[str]) -> int:
    """Write the store atomically (see write); returns bytes written."""
    return write(path, encode(store, gross, block_hash, factories))


def encode(store: PoolStore, gross: GrossTicks, block_hash: str, factories: list[str]) -> bytes:
    """The store as checkpoint bytes: a snapshot, so the store may change once this returns."""
    v2, v3 = [], []
    for pool in store.pools.values():
        if isinstance(pool, V2Pool):
            v2.append(
                {
                    "address": pool.address,
                    "fork": pool.fork,
                    "token0": pool.token0,
                    "token1": pool.token1,
                    "reserve0": _text(pool.reserve0),
                    "reserve1": _text(pool.reserve1),
                    "fee": pool.fee,
                    "fee_denominator": pool.fee_denominator,
                    "fee1": pool.fee1,
                    "stable": pool.stable,
                }
            )
        else:
            state = pool.state
            pool_gross = gross.get(pool.address, {})
            v3.append(
                {
                    "address": pool.address,
                    "fork": pool.fork,
                    "token0": pool.token0,
                    "token1": pool.token1,
                    "sqrt_price_x96": _text(state.sqrt_price_x96),
                    "tick": state.tick,
                    "liquidity": _text(state.liquidity),
                    "fee": state.fee,
                    "tick_spacing": state.tick_spacing,
                    "ticks": [[t, _text(net), _text(pool_gross.get(t, 0))] for t, net in state.ticks.items()],
                }
            )
    return orjson.dumps(
        {
            "version": VERSION,
            "chain": store.chain,
            "block": store.block,
            "block_hash": block_hash,
            "factories": sorted(factories),
            "v2": v2,
            "v3": v3,
        }
    )


def write(path: Path, payload: bytes) -> int:
    """Write `payload` atomically (temporary file in the same directory, fsync, rename, fsync the
    directory): a crash leaves the old checkpoint or the new one, never half of one. Blocking: the
    agent calls it in a thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return len(payload)


def load(path: Path) -> Checkpoint | None:
    """The checkpoint in `path`, None if there is none; CheckpointError if it is unreadable or invalid."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"{path}: {exc.strerror}") from None
    try:
        checkpoint = Checkpoint.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not JSON: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise CheckpointError(f"{path}: {field}: {first['msg']}") from None
    if checkpoint.version != VERSION:
        raise CheckpointError(f"{path}: version: {checkpoint.version}, this agent reads {VERSION}")
    # A pool's fork decides its fee (V2) and the Swap topic it is followed by (V3): one the fork tables
    # no longer have cannot be followed exactly, so such a checkpoint is not resumed.
    for kind, entries, known in (("v2", checkpoint.v2, fork_fees()), ("v3", checkpoint.v3, v3_forks())):
        for i, entry in enumerate(entries):
            if entry.fork not in known:
                raise CheckpointError(f"{path}: {kind}.{i}.fork: {entry.fork!r} is not a known {kind} fork")
    return checkpoint


def restore(checkpoint: Checkpoint, store: PoolStore, gross: GrossTicks) -> None:
    """Replace the store's pools with the checkpoint's (in place: strategies hold the same store)."""
    if checkpoint.chain != store.chain:
        raise CheckpointError(f"chain: the checkpoint is for {checkpoint.chain!r}, the store for {store.chain!r}")
    store.pools.clear()
    gross.clear()
    for e in checkpoint.v2:
        store.add(
            V2Pool(
                e.address,
                e.fork,
                e.token0,
                e.token1,
                e.reserve0,
                e.reserve1,
                e.fee,
                e.fee_denominator,
                e.fee1,
                e.stable,
            )
        )
    for e in checkpoint.v3:
        state = V3PoolState(
            e.sqrt_price_x96,
            e.tick,
            e.liquidity,
            e.fee,
            e.tick_spacing,
            SortedDict({t: net for t, net, _ in e.ticks}),
        )
        store.add(V3Pool(e.address, e.fork, e.token0, e.token1, state))
        gross[e.address] = {t: g for t, _, g in e.ticks}
    store.block = checkpoint.block
