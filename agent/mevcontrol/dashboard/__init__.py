"""The operators' web page on the :8080 listener (same TLS, same operators, same rate limit).

`attach(app, ops)` adds to the dashboard listener's app: the page and its assets (public: they hold no
data), the login that exchanges an operator token for a session cookie, the views as JSON, the live
stream (SSE), and the page's controls, which are the operator API's own handlers under
`/dashboard/act/` (the same validation, four-eyes and audit log; the API's guard refuses a viewer).
See docs/dashboard.md.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from mevagent.api.app import Refused, refused_by, single_query
from mevagent.api.app import read_body as body_of
from mevcontrol import api
from mevcontrol.dashboard import views
from mevcontrol.dashboard.live import Hub, stream
from mevcontrol.dashboard.sessions import (
    ALIVE_CHECK_S,
    COOKIE,
    SESSION_KEY,
    Sessions,
    clear_cookie,
    same_origin,
    security_headers,
    session_middleware,
    set_cookie,
)
from mevcontrol.operations import Operations, audit

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
COMPETITION = "/api/analytics/competition"
SANDWICHES = "/api/analytics/sandwiches"


class LoginBody(BaseModel):
    model_config = {"extra": "forbid"}

    token: str = Field(min_length=16, max_length=256)


@dataclass
class Dashboard:
    ops: Operations
    sessions: Sessions
    hub: Hub
    agent_risk: views.AgentRisk
    tasks: list[Any]

    async def compute(self, name: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        """View `name` for `query` (the live push uses each view's default query)."""
        fn, model = VIEWS[name]
        try:
            parsed = model.model_validate(query or {})
        except ValidationError as exc:
            raise refused_by(exc) from None
        if name in ("risk", "health"):  # these also show what each agent's own API answers
            return await fn(self.ops, self.agent_risk)
        return await fn(self.ops, parsed)


VIEWS: dict[str, tuple[Callable[..., Awaitable[dict[str, Any]]], type[BaseModel]]] = {
    "pnl": (views.pnl, views.PnlQuery),
    "strategy": (views.strategy, views.HoursQuery),
    "risk": (views.risk, views.NoQuery),
    "health": (views.health, views.NoQuery),
    "feed": (views.feed, views.NoQuery),
    "stuck": (views.stuck, views.HoursQuery),
    "audit": (views.audit, views.NoQuery),
    "positions": (views.positions, views.NoQuery),  # only where cross-chain execution is configured
    "bridges": (views.bridges, views.NoQuery),  # only where the cross-chain engine runs
}
DASH: web.AppKey[Dashboard] = web.AppKey("dashboard", Dashboard)
PAGE: web.AppKey[bytes] = web.AppKey("dashboard_page", bytes)
PUBLIC = {("GET", "/"), ("GET", "/dashboard/"), ("POST", "/dashboard/login")}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, default=str), status=status, content_type="application/json")


async def root(_: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "/dashboard/"})


def versioned_page() -> bytes:
    """index.html with each asset's URL carrying its content hash (`?v=`): the browser keeps the assets
    (immutable: sessions.security_headers) and asks again only when a deploy changed one; the page itself is
    never kept."""
    html = (STATIC / "index.html").read_text()
    for ref in re.findall(r'(?:src|href)="/dashboard/static/([^"?]+)"', html):
        path = STATIC / ref
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            html = html.replace(f'"/dashboard/static/{ref}"', f'"/dashboard/static/{ref}?v={digest}"')
    return html.encode()


async def page(request: web.Request) -> web.Response:
    body = request.app[PAGE]
    return web.Response(body=body, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-store"})


async def login(request: web.Request) -> web.Response:
    """An operator token for a session cookie (the token itself is never stored by the page)."""
    dash = request.app[DASH]
    if not same_origin(request) or request.content_type != "application/json":
        raise Refused(403, "login: only from this page (same origin, JSON)", ["Origin"])
    body = await body_of(request, LoginBody)
    operator = api.Operators(dash.ops.config.operators).who(body.token)
    if operator is None:
        raise Refused(401, "token: not an operator's token", ["token"])
    session_id, session = await dash.sessions.open(operator)
    async with dash.ops.control.pool.acquire() as conn:
        await audit(conn, operator.name, "dashboard_login", "session", None, {"role": operator.role}, "ok")
    response = _json({"operator": operator.name, "role": operator.role, "csrf": session.csrf})
    set_cookie(response, session_id, dash.sessions.ttl_s)
    return response


async def logout(request: web.Request) -> web.Response:
    await request.app[DASH].sessions.close(request.cookies.get(COOKIE))
    response = _json({"logged_out": True})
    clear_cookie(response)
    return response


async def whoami(request: web.Request) -> web.Response:
    """The page's first call: who is logged in, the CSRF token, the views this control plane serves."""
    session = request.get(SESSION_KEY)
    operator = api.operator_of(request)
    competition = any(r.path == COMPETITION for r in api.ROUTES)
    sandwiches = any(r.path == SANDWICHES for r in api.ROUTES)
    ops = request.app[DASH].ops
    optional = {"positions": views.positions_served(ops), "bridges": views.bridges_served(ops)}
    return _json(
        {
            "operator": operator.name,
            "role": operator.role,
            "csrf": session.csrf if session is not None else None,
            "views": [
                *(v for v in VIEWS if optional.get(v, True)),
                *(["competition"] if competition else []),
                *(["sandwiches"] if sandwiches else []),
            ],
            "competition_url": COMPETITION if competition else None,
            "sandwiches_url": SANDWICHES if sandwiches else None,
            "agents": [a.name for a in request.app[DASH].ops.config.agents],
            "server_time": time.time(),
        }
    )


async def view(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in VIEWS:
        raise Refused(404, f"name: no view {name}", ["name"])
    return _json(await request.app[DASH].compute(name, single_query(request)))


async def events(request: web.Request) -> web.StreamResponse:
    dash = request.app[DASH]
    session = request.get(SESSION_KEY)

    async def alive() -> bool:
        return session is None or await dash.sessions.alive(session)

    return await stream(request, dash.hub, alive, ALIVE_CHECK_S)


def acting(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """An operator API handler as a page control: after it, the open pages get the changed views."""

    async def act(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            request.app[DASH].hub.touch("audit", "risk", "stuck", *POSITIONS_OF.get(handler, ()))

    return act


# The page's controls: the operator API's handlers (the :8908 ones are not reachable from the page's origin).
ACTIONS = (
    ("/dashboard/act/emergency/stop", api.emergency_stop),
    ("/dashboard/act/emergency/resume", api.emergency_resume),
    ("/dashboard/act/approvals/{id}/approve", api.approve),
    ("/dashboard/act/strategies/{name}/pause", api.strategy_pause),
    ("/dashboard/act/strategies/{name}/resume", api.strategy_resume),
    ("/dashboard/act/config/risk", api.config_risk),
    ("/dashboard/act/limits/set", api.limits_set),
    ("/dashboard/act/live", api.strategies_enable),
    ("/dashboard/act/transactions/stuck/{tx}/replace", api.transaction_replace),
    ("/dashboard/act/transactions/stuck/{tx}/cancel", api.transaction_cancel),
    ("/dashboard/act/positions/{id}/unwind", api.crosschain_unwind),
)
POSITIONS_OF: dict[Any, tuple[str, ...]] = {api.crosschain_unwind: ("positions",)}


def attach(app: web.Application, ops: Operations) -> Dashboard:
    from mevcontrol.dashboard.vendor import FILES, VENDOR

    missing = [name for files in FILES.values() for name in files if not (VENDOR / Path(name).name).is_file()]
    if missing:
        log.warning("dashboard: %s missing: the page has no charts (python -m mevcontrol.dashboard.vendor)", missing)
    sessions = Sessions(ops.control.pool, ops.config.operators)
    # The position book also moves by its own clock (timeouts, holds), and the bridge monitor and the engine's
    # gaps by their own reads (bridge events, the price stream; not the ingest's): re-sent with risk and audit.
    refresh = (*(("positions",) if views.positions_served(ops) else ()),
               *(("bridges",) if views.bridges_served(ops) else ()))  # fmt: skip
    dash = Dashboard(ops, sessions, Hub(lambda name: dash.compute(name), refresh), views.AgentRisk(ops), [])
    app[DASH] = dash
    app[PAGE] = versioned_page()
    app.middlewares.insert(0, session_middleware(sessions, PUBLIC))
    app.on_response_prepare.append(security_headers)
    ops.control.on_events.append(dash.hub.on_events)

    async def start(_: web.Application) -> None:
        import asyncio

        dash.tasks.append(asyncio.create_task(dash.hub.run(), name="dashboard-push"))
        dash.tasks.append(asyncio.create_task(dash.agent_risk.run(), name="dashboard-agent-risk"))

    async def stop(_: web.Application) -> None:
        dash.hub.close()
        for task in dash.tasks:
            task.cancel()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    router = app.router
    router.add_get("/", root)
    router.add_get("/dashboard/", page)
    router.add_static("/dashboard/static", STATIC, follow_symlinks=False, show_index=False)
    router.add_post("/dashboard/login", login)
    router.add_post("/dashboard/logout", logout)
    router.add_get("/dashboard/session", whoami)
    router.add_get("/dashboard/events", events)
    router.add_get("/dashboard/view/{name}", view)
    for path, handler in ACTIONS:
        router.add_post(path, acting(handler))
    return dash
