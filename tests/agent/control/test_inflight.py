"""mevcontrol.inflight.InFlight: the one sharing of reads in flight behind coalesced, SharedStuck and SharedNewest."""

from __future__ import annotations

import asyncio

import pytest
from mevcontrol.inflight import InFlight


def test_concurrent_askers_share_one_read_and_the_key_is_forgotten_after() -> None:
    async def run() -> None:
        shared: InFlight[str, int] = InFlight()
        gate = asyncio.Event()
        calls = 0

        async def read() -> int:
            nonlocal calls
            calls += 1
            await gate.wait()
            return calls

        waiters = [asyncio.ensure_future(shared.share("k", read)) for _ in range(20)]
        await asyncio.sleep(0)
        assert [k for k, _ in shared.running()] == ["k"]
        gate.set()
        assert await asyncio.gather(*waiters) == [1] * 20
        assert calls == 1 and shared.started == 1 and list(shared.running()) == []
        # Ended reads are not kept: the next asker reads again.
        assert await shared.share("k", read) == 2 and shared.started == 2

    asyncio.run(run())


def test_a_leaving_asker_does_not_cancel_the_others_answer() -> None:
    async def run() -> None:
        shared: InFlight[str, str] = InFlight()
        gate = asyncio.Event()

        async def read() -> str:
            await gate.wait()
            return "rows"

        first = asyncio.ensure_future(shared.share("k", read))
        second = asyncio.ensure_future(shared.share("k", read))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        gate.set()
        assert await second == "rows"
        assert first.cancelled() and shared.started == 1

    asyncio.run(run())


def test_an_error_reaches_every_asker_and_the_next_one_reads_again() -> None:
    async def run() -> None:
        shared: InFlight[str, int] = InFlight()
        gate = asyncio.Event()

        async def failing() -> int:
            await gate.wait()
            raise ConnectionError("database went away")

        waiters = [asyncio.ensure_future(shared.share("k", failing)) for _ in range(3)]
        await asyncio.sleep(0)
        gate.set()
        for result in await asyncio.gather(*waiters, return_exceptions=True):
            assert isinstance(result, ConnectionError)

        async def ok() -> int:
            return 7

        assert await shared.share("k", ok) == 7 and shared.started == 2

    asyncio.run(run())


@pytest.mark.parametrize("keys", [("a", "b"), (("x", 1), ("x", 2))])
def test_different_keys_read_separately(keys: tuple) -> None:
    async def run() -> None:
        shared: InFlight = InFlight()

        async def read_of(key):
            await asyncio.sleep(0)
            return key

        assert await asyncio.gather(*(shared.share(k, lambda k=k: read_of(k)) for k in keys)) == list(keys)
        assert shared.started == len(keys)

    asyncio.run(run())
