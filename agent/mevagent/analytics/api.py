"""The sandwich detector's HTTP API, compatible with the :8904 engine's read endpoints.

GET only, nothing mutates: `/opportunities` lists recent risk signals (never acted on: there is no
execution path for them), `/stats` the detector's counters, `/api/mempool/stats` the mempool over
the window. Served as its own aiohttp application (bind it to loopback or the fleet network).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from mevagent.analytics.monitor import SandwichMonitor

MONITOR: web.AppKey[SandwichMonitor] = web.AppKey("sandwich_monitor", SandwichMonitor)
MAX_LIMIT = 1000


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


async def opportunities(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        return _json({"error": f"limit: an integer from 1 to {MAX_LIMIT}, got {raw!r}"}, 400)
    monitor = request.app[MONITOR]
    recent = list(monitor.recent)[-int(raw) :][::-1]
    return _json(
        {
            "kind": "sandwich_risk",
            "acted_on": False,
            "opportunities": [_signal(s.model_dump(mode="json")) for s in recent],
        }
    )


def _signal(signal: dict[str, Any]) -> dict[str, Any]:
    risk = signal["risk"]
    for key in ("amount_in", "amount_out", "limit", "max_profit", "frontrun_amount_in", "backrun_amount_in"):
        risk[key] = str(risk[key])  # exact base units: JSON numbers lose precision above 2^53
    risk["victim_amount_out"] = str(risk["victim_amount_out"])
    return signal


async def stats(request: web.Request) -> web.Response:
    return _json(request.app[MONITOR].stats())


async def mempool_stats(request: web.Request) -> web.Response:
    return _json(request.app[MONITOR].mempool_stats())


def make_app(monitor: SandwichMonitor) -> web.Application:
    app = web.Application()
    app[MONITOR] = monitor
    app.router.add_get("/opportunities", opportunities)
    app.router.add_get("/stats", stats)
    app.router.add_get("/api/mempool/stats", mempool_stats)
    return app
