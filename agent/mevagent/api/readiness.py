"""What /ready asks: is the node synced and is the pool state fresh? 503 until every check says yes.

Checks are small async callables returning (ok, detail), so the agent wires in whatever it has: its
node client's `call` for `node_synced`, the pool syncer's `StateFreshness` for `state_fresh`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

CheckFn = Callable[[], Awaitable[tuple[bool, str]]]
RpcCall = Callable[[str, Sequence[Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    name: str
    check: CheckFn
    chain: str | None = None  # when set, the result is exported as mev_agent_ready{chain}
    timeout_s: float = 2.0


async def run_check(check: ReadinessCheck) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(check.timeout_s):
            return await check.check()
    except TimeoutError:
        return False, f"no answer within {check.timeout_s:g} s"
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


def node_synced(call: RpcCall, max_head_age_s: float, wallclock: Callable[[], float] = time.time) -> CheckFn:
    """The node says it is not syncing and its latest block is at most `max_head_age_s` old."""

    async def check() -> tuple[bool, str]:
        syncing = await call("eth_syncing", [])
        if syncing not in (False, None):
            return False, "node is syncing"
        block = await call("eth_getBlockByNumber", ["latest", False])
        number, timestamp = int(block["number"], 16), int(block["timestamp"], 16)
        age = wallclock() - timestamp
        if age > max_head_age_s:
            return False, f"head {number} is {age:.1f} s old (limit {max_head_age_s:g} s)"
        return True, f"head {number}, {max(age, 0.0):.1f} s old"

    return check


class StateFreshness:
    """The pool store's last reconcile with the node; the syncer calls `mark` after each one."""

    def __init__(self, max_age_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._monotonic = monotonic
        self.block: int | None = None
        self._at: float | None = None

    def mark(self, block: int) -> None:
        self.block = block
        self._at = self._monotonic()

    def age(self) -> float | None:
        return None if self._at is None else self._monotonic() - self._at

    async def check(self) -> tuple[bool, str]:
        age = self.age()
        if age is None:
            return False, "pool state not loaded yet"
        if age > self.max_age_s:
            return False, f"pool state of block {self.block} is {age:.1f} s old (limit {self.max_age_s:g} s)"
        return True, f"pool state of block {self.block}, {age:.1f} s old"
