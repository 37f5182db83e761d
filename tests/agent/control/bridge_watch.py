"""Running a cross-chain service's bridge watchers against real chains while a relayer thread of the test
fills deposits (test_crosschain_anvil.py: Across; test_bridge_events.py: CCTP and Stargate)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from mevcontrol.crosschain import CrossChainService


async def within(timeout_s: float, done: Callable[[], bool]) -> None:
    """Until `done()` holds (the watchers poll every 0.1 s); TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not done():
            await asyncio.sleep(0.05)


def watch_while(
    service: CrossChainService,
    relayer: threading.Thread,
    stop: threading.Event,
    scenario: Callable[[], Awaitable[None]],
) -> None:
    """The service's watchers and the relayer run while `scenario` does; all stopped after, whatever happened."""

    async def run() -> None:
        tasks = [asyncio.create_task(w.run()) for w in service.watchers]
        try:
            relayer.start()
            await scenario()
        finally:
            stop.set()
            service.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await service.redis.aclose()

    asyncio.run(run())
    relayer.join(10)
