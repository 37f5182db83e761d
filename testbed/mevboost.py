"""A stand-in for mev-boost's builder API status route, for the agent's mev-boost status checks.

mev-boost's binary cannot be obtained here (it is on none of the registries this machine reaches), so this
small aiohttp server on 127.0.0.1 answers `GET /eth/v1/builder/status` the way the builder API specifies it
and mev-boost started with `-relay-check` implements it: 200 when at least one of its relays answered, 503
with mev-boost's error body (`{"code": 503, "message": "all relays are unavailable"}`) when none did. It can
also answer later than the agent waits (`slow`) or with a code the route never gives (`teapot`); stopped, its
port refuses connections. Nothing else of mev-boost is imitated: the agent asks it nothing else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from aiohttp import web

from mevagent.executor.mevboost import STATUS_PATH

Mode = Literal["ok", "no_relays", "slow", "teapot"]


class StandIn:
    """The status route; `mode` decides the next answers, `asked` and `times` count the requests."""

    def __init__(self, slow_s: float = 2.0) -> None:
        self.mode: Mode = "ok"
        self.slow_s = slow_s  # how late a `slow` answer comes
        self.asked = 0
        self.times: list[float] = []  # time.monotonic() of each request: the agent's check period
        self.url = ""  # http://127.0.0.1:<port>, once started
        self._runner: web.AppRunner | None = None

    async def _status(self, request: web.Request) -> web.Response:
        self.asked += 1
        self.times.append(time.monotonic())
        if self.mode == "slow":
            await asyncio.sleep(self.slow_s)
        if self.mode == "no_relays":
            return web.json_response({"code": 503, "message": "all relays are unavailable"}, status=503)
        if self.mode == "teapot":
            return web.Response(status=418, text="not a status")
        return web.json_response({})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(STATUS_PATH, self._status)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@asynccontextmanager
async def stand_in() -> AsyncIterator[StandIn]:
    server = StandIn()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
