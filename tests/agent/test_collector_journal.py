"""The agent's journal says when it loses its node and when it has it back (one line each), on a real
anvil stopped and started on the same IPC path."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from testbed.evm import Chain
from testbed.pools import IpcAnvil, Pools, deploy_pools

from .test_collector import caught_up, collector_for, until


@pytest.fixture(scope="module")
def pools(node: IpcAnvil) -> Pools:
    return deploy_pools(Chain(node.w3), random.Random(78))


def test_losing_and_regaining_the_node_is_logged_once_each(node: IpcAnvil, pools: Pools, caplog) -> None:
    caplog.set_level(logging.INFO, logger="mevagent.collectors.evm")

    async def scenario() -> None:
        collector = collector_for(node, pools)

        async def emit(item: object) -> None:
            return None

        task = asyncio.create_task(collector.run(emit))
        try:
            await caught_up(collector, node)
            await asyncio.to_thread(node.stop)
            await until("the collector to notice", lambda: collector.stats.disconnects >= 1)
            await asyncio.to_thread(node.start)
            await caught_up(collector, node)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "mevagent.collectors.evm"]
    assert len([m for m in lines if "connected to the node at" in m]) == 1, lines
    lost = [r for r in caplog.records if "lost the node" in r.getMessage()]
    back = [r for r in caplog.records if "node back at" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING, lines
    assert len(back) == 1 and back[0].levelno == logging.WARNING, lines
