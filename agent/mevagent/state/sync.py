"""The state syncer: the only writer of a chain's pool store.

It takes the store from a checkpoint (or a bootstrap) to each new head by applying logs block by
block, each block with an undo journal kept in a ring of the last `reorg_depth` blocks. A head whose
parent is not our tip means a gap (reconnect, missed heads) or a reorg: the syncer asks the node for
the canonical hashes of the blocks it holds, rolls back every block that is no longer canonical, and
replays the node's branch with eth_getLogs. Logs are always applied in (block, logIndex) order, each
exactly once: a block is either applied whole, with its hash checked against the node's header, or
rolled back whole.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mevagent.core import Head
from mevagent.rpc import RpcError
from mevagent.state import abi, checkpoint
from mevagent.state.bootstrap import Rpc, get_logs, load_pools, read_pair_fees
from mevagent.state.config import FactoryConfig, SyncConfig
from mevagent.state.logs import GrossTicks, Undo, apply_log
from mevagent.state.pools import Pool, PoolStore, V2Pool, V3Pool
from mevagent.state.reconcile import Divergence, reconcile, reconcile_ticks, word_range

T = TypeVar("T")

log = logging.getLogger(__name__)


class Reorged(Exception):
    """What the node returned belongs to a branch other than the one the store is on: rewind, retry."""


class DeepReorg(Exception):
    """Even the oldest block the ring can undo is no longer canonical: the store must be rebuilt."""


@dataclass(slots=True)
class BlockRecord:
    number: int
    hash: str
    undo: list[Undo] = field(default_factory=list)
    pools: set[str] = field(default_factory=set)  # pools this block changed (or created)
    logs: int = 0  # logs applied in this block


@dataclass(slots=True)
class SyncStats:
    bootstraps: int = 0
    checkpoint_loads: int = 0
    checkpoints_written: int = 0
    blocks_applied: int = 0
    logs_applied: int = 0
    logs_rolled_back: int = 0  # so logs_applied - logs_rolled_back = the canonical logs since the start
    gap_fills: int = 0  # heads that needed more than their own block (reconnect, missed heads, restart)
    reorgs: int = 0
    blocks_rolled_back: int = 0
    deepest_reorg: int = 0
    pools_reconciled: int = 0
    tick_words_reconciled: int = 0
    reconciles_skipped: int = 0  # the node refused our tip's hash (a reorg on its way) or a call failed
    divergences: int = 0


def parse_head(chain: str, header: dict[str, Any]) -> Head:
    return Head(
        chain=chain,
        number=int(header["number"], 16),
        hash=header["hash"].lower(),
        parent_hash=header["parentHash"].lower(),
        timestamp=int(header["timestamp"], 16),
        base_fee=int(header.get("baseFeePerGas") or "0x0", 16),
    )


class StateSyncer:
    def __init__(self, store: PoolStore, config: SyncConfig) -> None:
        self.store = store
        self.config = config
        self.gross: GrossTicks = {}
        self.factories: dict[str, FactoryConfig] = {f.address: f for f in config.factories}
        # The oldest record is the base: it is never undone (there is nothing before it to undo to).
        self.ring: deque[BlockRecord] = deque(maxlen=config.reorg_depth + 1)
        self.stats = SyncStats()
        self.divergences: deque[Divergence] = deque(maxlen=256)
        self._reconcile_next = 0
        # Reconcile reads the node at our tip by hash (EIP-1898) until the node refuses that form (see
        # _read_at), then by number after checking the tip is still the node's block at that height.
        self._by_hash = True
        self._ours_by_number = ""  # the tip hash last found to be the node's block at its height
        self._tick_cursor: tuple[int, int | None] = (0, None)  # (V3 pool index, next bitmap word)
        self._blocks_since_checkpoint = 0
        self._write_lock = threading.Lock()
        self._encodings = self._written_encoding = 0

    @property
    def ready(self) -> bool:
        return bool(self.ring)

    @property
    def tip(self) -> BlockRecord:
        return self.ring[-1]

    def addresses(self) -> list[str]:
        """What eth_getLogs filters on: the factories (new pools) and every tracked pool."""
        return [*self.factories, *self.store.pools]

    # -- start -----------------------------------------------------------------------------------

    async def start(self, rpc: Rpc) -> None:
        """Resume from the checkpoint if it is still on the canonical chain, else bootstrap."""
        path = self.config.checkpoint_path
        if path is not None and await self._resume(rpc, path):
            return
        await self.bootstrap(rpc)

    async def _resume(self, rpc: Rpc, path: Path) -> bool:
        try:
            saved = checkpoint.load(path)
        except checkpoint.CheckpointError as exc:
            log.warning("ignoring the checkpoint, bootstrapping instead: %s", exc)
            return False
        if saved is None:
            return False
        if set(saved.factories) != set(self.factories):
            log.info("%s: the configured factories changed since the checkpoint: bootstrapping", path)
            return False
        header = await rpc.call("eth_getBlockByNumber", [hex(saved.block), False])
        if header is None or header["hash"].lower() != saved.block_hash:
            log.info("%s: block %d is no longer canonical on the node: bootstrapping", path, saved.block)
            return False
        checkpoint.restore(saved, self.store, self.gross)
        self.ring.clear()
        self.ring.append(BlockRecord(saved.block, saved.block_hash))
        self.stats.checkpoint_loads += 1
        log.info("resumed %d pools at block %d from %s", len(self.store), saved.block, path)
        return True

    async def bootstrap(self, rpc: Rpc) -> None:
        """Read every pool at the node's latest block; retried if that block is reorged meanwhile."""
        while True:
            head = parse_head(self.store.chain, await rpc.call("eth_getBlockByNumber", ["latest", False]))
            pools, gross = await load_pools(rpc, self.config, head.number)
            check = await rpc.call("eth_getBlockByNumber", [hex(head.number), False])
            if check is not None and check["hash"].lower() == head.hash:
                break
            log.info("block %d was reorged during the bootstrap: reading again", head.number)
        self.store.pools.clear()
        for pool in pools:
            self.store.add(pool)
        self.gross.clear()
        self.gross.update(gross)
        self.store.block = head.number
        self.ring.clear()
        self.ring.append(BlockRecord(head.number, head.hash))
        self.stats.bootstraps += 1
        log.info("bootstrapped %d pools at block %d", len(pools), head.number)

    # -- following the chain ---------------------------------------------------------------------

    async def sync_to(self, rpc: Rpc, head: Head) -> dict[str, int]:
        """Bring the store to `head` (the node's announcement); {pool: block} of what changed.

        After a rollback a pool's entry is the block it is now current at, so strategies re-read it.
        """
        changed: dict[str, int] = {}
        if head.hash == self.tip.hash:
            return changed  # already applied (a repeated notification, or the head a gap fill reached)
        # Anything else goes through the parent check. An older block of ours as the head is either a
        # late notification (then the rewind finds nothing to undo) or a node that went back to it,
        # e.g. restarted without the blocks it had not persisted (then the blocks above it are undone).
        for _ in range(16):
            try:
                if head.parent_hash == self.tip.hash and head.number == self.tip.number + 1:
                    await self._advance(rpc, head.number, changed, head)
                else:
                    await self._rewind(rpc, changed)
                    if head.number > self.tip.number:
                        if head.number > self.tip.number + 1:
                            self.stats.gap_fills += 1
                        await self._advance(rpc, head.number, changed, None)
                return changed
            except Reorged as exc:
                log.info("the chain moved under a catch-up (%s): rewinding", exc)
            except DeepReorg as exc:
                log.warning("%s: rebuilding the pool store from the node", exc)
                await self.bootstrap(rpc)
                return dict.fromkeys(self.store.pools, self.store.block)
        raise Reorged(f"the chain kept reorganizing under block {head.number}")

    async def _rewind(self, rpc: Rpc, changed: dict[str, int]) -> None:
        """Undo every block of ours that the node no longer has on its canonical chain."""
        numbers = [record.number for record in self.ring]
        headers = await rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        canonical = {
            n: h["hash"].lower() for n, h in zip(numbers, headers, strict=True) if isinstance(h, dict) and h.get("hash")
        }
        undone = 0
        while len(self.ring) > 1 and canonical.get(self.tip.number) != self.tip.hash:
            record = self.ring.pop()
            for undo in reversed(record.undo):
                undo()
            undone += 1
            self.stats.logs_rolled_back += record.logs
            self.store.block = record.number - 1
            for pool in record.pools:
                changed[pool] = self.store.block
        if canonical.get(self.tip.number) != self.tip.hash:
            raise DeepReorg(f"block {self.tip.number} ({self.tip.hash}) is not canonical and cannot be undone")
        if undone:
            self.stats.reorgs += 1
            self.stats.blocks_rolled_back += undone
            self.stats.deepest_reorg = max(self.stats.deepest_reorg, undone)
            log.warning("reorg: rolled back %d blocks to %d (%s)", undone, self.tip.number, self.tip.hash)

    async def _advance(self, rpc: Rpc, target: int, changed: dict[str, int], head: Head | None) -> None:
        """Apply blocks tip+1..target. `head`, when given, is block target = tip+1 and its parent is our tip."""
        window_start = target - self.config.reorg_depth + 1
        start = self.tip.number + 1
        while start <= target:
            end = min(target, start + self.config.log_chunk_blocks - 1)
            logs = await self._logs(rpc, start, end, self.addresses(), head)
            if head is not None:
                hashes = {head.number: head.hash}
            else:
                needed = {start, end, *(int(entry["blockNumber"], 16) for entry in logs)}
                needed.update(range(max(start, window_start - 1), end + 1))
                hashes, parents = await self._headers(rpc, needed)
                if parents[start] != self.tip.hash:
                    raise Reorged(
                        f"block {start}'s parent is {parents[start]}, our block {self.tip.number} is {self.tip.hash}"
                    )
            self._check_logs(logs, hashes)
            await self._apply_range(rpc, start, end, window_start, logs, hashes, changed, head)
            start = end + 1

    async def _logs(
        self, rpc: Rpc, start: int, end: int, addresses: list[str], head: Head | None
    ) -> list[dict[str, Any]]:
        if head is not None:
            # By hash, not number: these are the logs of exactly the block whose parent we checked.
            return await rpc.call(
                "eth_getLogs", [{"blockHash": head.hash, "address": addresses, "topics": [list(abi.STATE_TOPICS)]}]
            )
        return await get_logs(rpc, start, end, addresses, abi.STATE_TOPICS, self.config.log_chunk_blocks)

    async def _headers(self, rpc: Rpc, numbers: set[int]) -> tuple[dict[int, str], dict[int, str]]:
        ordered = sorted(numbers)
        answers = await rpc.batch(
            [("eth_getBlockByNumber", [hex(n), False]) for n in ordered], chunk=self.config.batch_size
        )
        hashes, parents = {}, {}
        for number, header in zip(ordered, answers, strict=True):
            if not isinstance(header, dict):
                raise Reorged(f"the node has no block {number} any more")
            hashes[number] = header["hash"].lower()
            parents[number] = header["parentHash"].lower()
        return hashes, parents

    @staticmethod
    def _check_logs(logs: list[dict[str, Any]], hashes: dict[int, str]) -> None:
        for entry in logs:
            number = int(entry["blockNumber"], 16)
            if entry.get("removed") or hashes.get(number) != entry["blockHash"].lower():
                raise Reorged(f"a log of block {number} is from block {entry['blockHash']}, not {hashes.get(number)}")

    async def _apply_range(
        self,
        rpc: Rpc,
        start: int,
        end: int,
        window_start: int,
        logs: list[dict[str, Any]],
        hashes: dict[int, str],
        changed: dict[str, int],
        head: Head | None,
    ) -> None:
        logs.sort(key=_position)
        i = 0
        for number in range(start, end + 1):
            # Blocks older than the reorg window are applied without undo; from then on nothing before
            # them can be undone, so the ring restarts at them ("" never matches: a rewind rebuilds).
            record = BlockRecord(number, hashes.get(number, ""))
            while i < len(logs) and int(logs[i]["blockNumber"], 16) == number:
                entry = logs[i]
                i += 1
                known = len(self.store.pools)
                pool = apply_log(self.store, self.gross, self.factories, entry, record.undo)
                self.stats.logs_applied += 1
                record.logs += 1
                if pool is None:
                    continue
                record.pools.add(pool)
                changed[pool] = number
                if len(self.store.pools) != known:
                    created = self.store.pools[pool]
                    if isinstance(created, V2Pool):
                        # A pair keeping its own fee (BiSwap, Camelot) starts from the fork's default
                        # in the store; its real fee (and curve) are read at this block.
                        await read_pair_fees(rpc, [created], number, self.config.batch_size)
                    # A pool created in this block: its own logs, from this one on, were not in the filter.
                    extra = await self._logs(rpc, number, end, [pool], head)
                    position = _position(entry)
                    extra = [e for e in extra if _position(e) > position]
                    missing = {int(e["blockNumber"], 16) for e in extra} - hashes.keys()
                    if missing:
                        hashes.update((await self._headers(rpc, missing))[0])
                    self._check_logs(extra, hashes)
                    logs[i:] = sorted(logs[i:] + extra, key=_position)
            self.store.block = number
            if number < window_start:
                self.ring.clear()
                record.undo.clear()
            self.ring.append(record)
            self.stats.blocks_applied += 1

    # -- per block upkeep --------------------------------------------------------------------------

    async def reconcile(self, rpc: Rpc) -> list[Divergence]:
        """Compare the next pools in turn (all by default) with the node at the store's block; fix them."""
        count = self.config.reconcile_per_block
        pools: list[Pool] = list(self.store.pools.values())
        if count == 0 or not pools:
            return []
        if count is not None and count < len(pools):
            first = self._reconcile_next % len(pools)
            pools = (pools[first:] + pools[:first])[:count]
            self._reconcile_next = first + count
        record = self.tip
        try:
            found = await self._read_at(
                rpc, record, lambda at: reconcile(rpc, pools, self.store.block, record.undo, self.config.batch_size, at)
            )
        except RpcError as exc:
            self._skipped(exc)  # every answer is read before anything is fixed: nothing changed
            return []
        if found is None:
            return []  # the node has another block at our height: the next head brings the reorg
        found += await self._reconcile_ticks(rpc, record)
        self.stats.pools_reconciled += len(pools)
        self.stats.divergences += len(found)
        self.divergences.extend(found)
        record.pools.update(d.pool for d in found)
        return found

    async def _read_at(self, rpc: Rpc, record: BlockRecord, read: Callable[[str | None], Awaitable[T]]) -> T | None:
        """`read(block_hash)` at our tip: by hash, or by number (hash None) once the node refused the hash
        form; None when, by number, the node's block at that height is no longer ours.

        EthereumJS takes only a number or a tag as eth_call's block ("invalid argument 1: argument must be a
        string", -32602): by hash every reconcile was skipped there, so a state change the logs missed was
        never repaired (a load-dependent miss of the real pair's end-to-end test)."""
        if self._by_hash:
            try:
                return await read(record.hash)
            except RpcError as exc:
                if exc.code != -32602:
                    raise
                self._by_hash = False
                log.info("the node refuses a block hash as eth_call's block (%s): reconciling by number", exc)
        if self._ours_by_number != record.hash:  # once per tip: the pools' and the tick words' reads share it
            header = await rpc.call("eth_getBlockByNumber", [hex(record.number), False])
            if not isinstance(header, dict) or str(header.get("hash", "")).lower() != record.hash:
                return None
            self._ours_by_number = record.hash
        return await read(None)

    async def _reconcile_ticks(self, rpc: Rpc, record: BlockRecord) -> list[Divergence]:
        """The next `reconcile_tick_words` bitmap words of the V3 pools, in turn."""
        budget = self.config.reconcile_tick_words
        v3 = [p for p in self.store.pools.values() if isinstance(p, V3Pool)]
        found: list[Divergence] = []
        index, word = self._tick_cursor
        while budget > 0 and v3:
            pool = v3[index % len(v3)]
            words = word_range(pool)
            start = words.start if word is None or word not in words else word
            chunk = range(start, min(words.stop, start + budget))
            try:
                fixed = await self._read_at(
                    rpc,
                    record,
                    lambda at, pool=pool, chunk=chunk: reconcile_ticks(
                        rpc, pool, self.gross[pool.address], chunk, self.store.block, record.undo,
                        self.config.batch_size, at,
                    ),
                )  # fmt: skip
            except RpcError as exc:
                self._skipped(exc)  # this pool's words are read again at the next block
                break
            if fixed is None:
                break  # another block at our height: read again after the reorg
            found += fixed
            budget -= len(chunk)
            self.stats.tick_words_reconciled += len(chunk)
            if chunk.stop >= words.stop:
                index, word = (index + 1) % len(v3), None
                if index == 0:
                    break  # every pool once per block at most
            else:
                word = chunk.stop
        self._tick_cursor = (index, word)
        return found

    def _skipped(self, exc: RpcError) -> None:
        # Most often our tip is no longer the node's block (read by hash, it refuses): the next head
        # brings the reorg, and the state it rolls back to is checked then.
        self.stats.reconciles_skipped += 1
        log.info("reconcile at block %d (%s) skipped: %s", self.store.block, self.tip.hash, exc)

    async def block_done(self) -> bool:
        """Count a processed head; when a checkpoint is due, write it. True if one was due.

        The bytes are encoded here, on the event loop, so they are this block's store even if the next
        block is applied meanwhile; the file is written and fsynced in a thread, so the strategies work
        on this block's updates instead of waiting for the disk."""
        self._blocks_since_checkpoint += 1
        if self._blocks_since_checkpoint < self.config.checkpoint_every_blocks:
            return False
        encoded = self._encoded_checkpoint()
        if encoded is None:
            return False
        await asyncio.to_thread(self._write, *encoded)
        return True

    def write_checkpoint(self) -> bool:
        """Write the checkpoint now, blocking (at start-up and on the way out)."""
        encoded = self._encoded_checkpoint()
        if encoded is None:
            return False
        self._write(*encoded)
        return True

    def _encoded_checkpoint(self) -> tuple[Path, bytes, int] | None:
        path = self.config.checkpoint_path
        if path is None or not self.ring or not self.tip.hash:
            return None
        self._blocks_since_checkpoint = 0
        self._encodings += 1
        return path, checkpoint.encode(self.store, self.gross, self.tip.hash, list(self.factories)), self._encodings

    def _write(self, path: Path, payload: bytes, encoding: int) -> None:
        # A background write still running when the collector stops and writes its last state must not
        # land after it: the newest encoding wins, whichever thread finishes last.
        with self._write_lock:
            if encoding > self._written_encoding:
                checkpoint.write(path, payload)
                self._written_encoding = encoding
                self.stats.checkpoints_written += 1


def _position(entry: dict[str, Any]) -> tuple[int, int]:
    return int(entry["blockNumber"], 16), int(entry["logIndex"], 16)
