"""The control API (aiohttp): read the agent's state, change its limits, pause strategies, stop everything.

Loopback by default (config.ApiConfig.bind). Every POST needs the bearer token; GETs do not, so a
health checker needs no secret. A bad payload is a 400 naming the field, and it is refused before
anything changes: payloads are validated, then merged and validated again as a whole, and only then
applied. Risk changes go through `apply` (the engine's never-dropping control queue in the agent; the
gate directly when there is no engine), so they are ordered with every other control command.

`ROUTES` is the single table both the router and the OpenAPI document are built from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from mevagent import __version__
from mevagent.api.auth import Token, bearer_auth
from mevagent.api.models import (
    ChainLimitsPatch,
    ChangedResponse,
    EmergencyStopRequest,
    Empty,
    EndpointStatusEntry,
    ErrorResponse,
    ExposureResponse,
    GasPatch,
    HealthResponse,
    MevBoostStatusEntry,
    OpportunitiesQuery,
    OpportunitiesResponse,
    ProfitPatch,
    ReadyCheck,
    ReadyResponse,
    RelaysResponse,
    RiskPatch,
    StatsResponse,
)
from mevagent.api.providers import ProviderSource, ProvidersStatusResponse, providers_status
from mevagent.api.readiness import ReadinessCheck, run_check
from mevagent.config import GWEI, ApiConfig, StrategyConfig
from mevagent.engine.commands import (
    Command,
    EmergencyResume,
    EmergencyStop,
    PauseStrategy,
    ResumeStrategy,
    SetChainLimits,
    SetRiskLimits,
    apply_command,
)
from mevagent.engine.recent import RecentOpportunities
from mevagent.engine.settings import LiveSettings
from mevagent.metrics import CONTENT_TYPE, AgentMetrics
from mevagent.risk.gate import ChainLimits, RiskGate

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
M = TypeVar("M", bound=BaseModel)


class EndpointStatusProvider(Protocol):
    """What the executor keeps per builder/relay endpoint (executor.bundles.RelayStatus has this shape)."""

    def snapshot(self) -> list[dict[str, Any]]: ...


class MevBoostStatusProvider(Protocol):
    """A chain's mev-boost status checks (executor.mevboost.MevBoostStatus has this shape)."""

    def snapshot(self) -> dict[str, Any]: ...


@dataclass(slots=True)
class ControlPlane:
    """Everything the API reads and changes."""

    gate: RiskGate
    settings: LiveSettings
    metrics: AgentMetrics
    token: Token = field(repr=False)
    recent: RecentOpportunities
    apply: Callable[[Command], Awaitable[None]] | None = None
    engine_stats: Callable[[], Mapping[str, Any]] | None = None
    relays: Sequence[EndpointStatusProvider] = ()
    mev_boost: Sequence[MevBoostStatusProvider] = ()  # one per chain with mev-boost configured
    readiness: Sequence[ReadinessCheck] = ()
    providers: Sequence[ProviderSource] = ()  # flashloan monitors, one per chain with lending markets
    started: float = field(default_factory=time.monotonic)

    async def command(self, command: Command) -> None:
        if self.apply is not None:
            await self.apply(command)
        else:
            apply_command(self.gate, command)


PLANE: web.AppKey[ControlPlane] = web.AppKey("plane", ControlPlane)


# ---- answers ----------------------------------------------------------------------------------------


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=model.__pydantic_serializer__.to_json(model), status=status, content_type="application/json"
    )


def error(status: int, message: str, fields: Iterable[str] = ()) -> web.Response:
    return _json(ErrorResponse(error=message, fields=list(fields)), status)


class Refused(Exception):
    """A request refused before anything changed: becomes a 4xx naming the fields."""

    def __init__(self, status: int, message: str, fields: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.fields = list(fields)


def single_query(request: web.Request) -> dict[str, str]:
    """The query's parameters, each single-valued: one given twice is refused (400 naming it) rather than one
    copy silently used."""
    repeated = sorted({k for k in request.query if len(request.query.getall(k)) > 1})
    if repeated:
        raise Refused(400, f"{', '.join(repeated)}: given more than once", repeated)
    return dict(request.query)


def refused_by(exc: ValidationError, prefix: str = "", whole: Iterable[str] = ()) -> Refused:
    """A 400 from a pydantic error: each field by its dotted path; whole-model errors name `whole`."""
    fields: list[str] = []
    parts: list[str] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        name = f"{prefix}{loc}" if loc else ", ".join(whole) or prefix.rstrip(".") or "body"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        fields.append(name)
        parts.append(f"{name}: {msg}")
    return Refused(400, "; ".join(parts), fields)


# JSON Schema's "integer" is any number with no fraction (6.0 is one; the OpenAPI documents say integer),
# which pydantic's strict mode refuses as a float: such numbers are read as integers (exact below 2**53; a
# float field takes an integer as it is).
_EXACT = 2**53


def _has_integral_float(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer() and abs(value) < _EXACT
    if isinstance(value, dict):
        return any(_has_integral_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_integral_float(v) for v in value)
    return False


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    return value


async def read_body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Refused(400, "body: not JSON", ["body"]) from None
    if not isinstance(data, dict):
        raise Refused(400, f"body: expected a JSON object, got {type(data).__name__}", ["body"])
    if _has_integral_float(data):
        raw = orjson.dumps(_integral_floats_as_ints(data))
    try:
        # Strict, as the OpenAPI schema reads: false is not a number, "5" not an integer (JSON's own
        # types still map: an integer is a number, a string an enum's value).
        return model.model_validate_json(raw if raw.strip() else b"{}", strict=True)
    except ValidationError as exc:
        raise refused_by(exc) from None


@web.middleware
async def _refusals(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    try:
        return await handler(request)
    except Refused as exc:
        return error(exc.status, str(exc), exc.fields)
    except web.HTTPRequestEntityTooLarge:
        return error(413, f"body: larger than {MAX_BODY} bytes", ["body"])
    except OSError as exc:
        # The state directory could not take the change (a full disk): the gate kept what it could keep
        # (an emergency stop holds in memory; a resume does not happen), and the caller is told so.
        log.error("%s %s: state not written: %s", request.method, request.path, exc)
        return error(
            503,
            f"state_dir: not written ({exc.strerror or exc}): GET /exposure/current shows what holds",
            ["state_dir"],
        )


# ---- reads ------------------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    return _json(HealthResponse(status="ok", version=__version__, uptime_s=time.monotonic() - plane.started))


async def ready(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    checks: list[ReadyCheck] = []
    by_chain: dict[str, bool] = {}
    if not plane.readiness:
        checks.append(ReadyCheck(name="configured", ok=False, detail="no readiness checks are configured"))
    for check in plane.readiness:
        ok, detail = await run_check(check)
        checks.append(ReadyCheck(name=check.name, ok=ok, detail=detail))
        if check.chain is not None:
            by_chain[check.chain] = by_chain.get(check.chain, True) and ok
    for chain, ok in by_chain.items():
        plane.metrics.ready(chain, ok)
    is_ready = all(c.ok for c in checks)
    return _json(ReadyResponse(ready=is_ready, checks=checks), 200 if is_ready else 503)


async def opportunities(request: web.Request) -> web.Response:
    try:
        query = OpportunitiesQuery.model_validate(single_query(request))
    except ValidationError as exc:
        raise refused_by(exc) from None
    entries = request.app[PLANE].recent.since(query.since, query.limit)
    return _json(OpportunitiesResponse.model_validate({"opportunities": entries}))


async def stats(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    snap = plane.gate.snapshot()
    risk = {k: snap[k] for k in ("emergency_stop", "paused_strategies", "in_flight", "daily_pnl_usd", "drawdown_usd")}
    risk["circuit_breakers"] = snap["circuit_breakers"]
    engine = dict(plane.engine_stats()) if plane.engine_stats is not None else {}
    return _json(StatsResponse(uptime_s=time.monotonic() - plane.started, engine=engine, risk=risk))


async def exposure(request: web.Request) -> web.Response:
    return _json(ExposureResponse.model_validate(request.app[PLANE].gate.snapshot()))


async def relays(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    entries = [EndpointStatusEntry.model_validate(e) for p in plane.relays for e in p.snapshot()]
    boost = [MevBoostStatusEntry.model_validate(m.snapshot()) for m in plane.mev_boost] or None
    return _json(RelaysResponse(endpoints=entries, mev_boost=boost))


async def providers(request: web.Request) -> web.Response:
    return _json(providers_status(request.app[PLANE].providers))


async def metrics(request: web.Request) -> web.Response:
    body = request.app[PLANE].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    from mevagent.api.openapi import document  # built on first use: nothing on the hot path needs it

    return web.Response(body=orjson.dumps(document()), content_type="application/json")


# ---- changes ----------------------------------------------------------------------------------------


async def config_risk(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    changes = (await read_body(request, RiskPatch)).model_dump(exclude_unset=True)
    try:
        limits = plane.gate.limits.updated(changes)
    except ValidationError as exc:
        raise refused_by(exc, whole=changes) from None
    await plane.command(SetRiskLimits(limits))
    log.info("risk limits changed through the API: %s", changes)
    return _json(ChangedResponse(state={"limits": limits.model_dump()}))


async def config_gas(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    changes = (await read_body(request, GasPatch)).model_dump(exclude_unset=True)
    try:
        gas = plane.settings.gas.updated(changes)
    except ValidationError as exc:
        raise refused_by(exc, whole=changes) from None
    plane.settings.replace(gas=gas)
    log.info("gas settings changed through the API: %s", changes)
    return _json(ChangedResponse(state={"gas": gas.model_dump()}))


async def config_profit(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    patch = await read_body(request, ProfitPatch)
    unknown = sorted(set(patch.strategies) - set(plane.settings.strategies))
    if unknown:
        names = [f"strategies.{n}" for n in unknown]
        raise Refused(400, "; ".join(f"{n}: not a configured strategy" for n in names), names)
    strategies: dict[str, StrategyConfig] = dict(plane.settings.strategies)
    try:
        for name, change in patch.strategies.items():
            strategies[name] = strategies[name].updated(change.model_dump(exclude_unset=True))
    except ValidationError as exc:
        raise refused_by(exc, prefix=f"strategies.{name}.") from None
    profit_changes = patch.model_dump(exclude_unset=True, exclude={"strategies"})
    try:
        profit = plane.settings.profit.updated(profit_changes)
    except ValidationError as exc:
        raise refused_by(exc) from None
    plane.settings.replace(profit=profit, strategies=strategies)
    plane.metrics.daily_profit_target(profit.daily_profit_target_usd)
    log.info("profit settings changed through the API: %s", patch.model_dump(exclude_unset=True))
    return _json(
        ChangedResponse(
            state={
                "profit": profit.model_dump(),
                "strategies": {
                    n: {"min_profit_bps": s.min_profit_bps, "min_profit_threshold": s.min_profit_threshold}
                    for n, s in strategies.items()
                },
            }
        )
    )


async def limits_set(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    patch = await read_body(request, ChainLimitsPatch)
    if patch.chain not in plane.gate.chains:
        raise Refused(400, f"chain: {patch.chain!r} is not a configured chain", ["chain"])
    current = plane.gate.chain_limits(patch.chain)
    given = patch.model_fields_set
    if "max_gas_price_gwei" in given and patch.max_gas_price_gwei is None:
        raise Refused(400, "max_gas_price_gwei: every chain needs a gas price limit", ["max_gas_price_gwei"])
    limits = ChainLimits(
        max_gas_price_wei=int(patch.max_gas_price_gwei * GWEI)
        if patch.max_gas_price_gwei is not None
        else current.max_gas_price_wei,
        max_chain_exposure_usd=patch.max_chain_exposure_usd
        if "max_chain_exposure_usd" in given
        else current.max_chain_exposure_usd,
        max_daily_loss_usd=patch.max_daily_loss_usd if "max_daily_loss_usd" in given else current.max_daily_loss_usd,
    )
    await plane.command(SetChainLimits(patch.chain, limits))
    log.info("limits of %s changed through the API: %s", patch.chain, patch.model_dump(exclude_unset=True))
    return _json(ChangedResponse(state={"chain_limits": plane.gate.snapshot()["chain_limits"][patch.chain]}))


def _strategy(request: web.Request) -> str:
    name = request.match_info["name"]
    if name not in request.app[PLANE].settings.strategies:
        raise Refused(404, f"name: {name!r} is not a configured strategy", ["name"])
    return name


async def strategy_pause(request: web.Request) -> web.Response:
    name = _strategy(request)
    await read_body(request, Empty)
    await request.app[PLANE].command(PauseStrategy(name))
    log.warning("strategy %s paused through the API", name)
    return _json(ChangedResponse(state={"paused_strategies": sorted(request.app[PLANE].gate.paused)}))


async def strategy_resume(request: web.Request) -> web.Response:
    name = _strategy(request)
    await read_body(request, Empty)
    await request.app[PLANE].command(ResumeStrategy(name))
    log.warning("strategy %s resumed through the API", name)
    return _json(ChangedResponse(state={"paused_strategies": sorted(request.app[PLANE].gate.paused)}))


async def emergency_stop(request: web.Request) -> web.Response:
    body = await read_body(request, EmergencyStopRequest)
    plane = request.app[PLANE]
    await plane.command(EmergencyStop(body.reason))
    log.critical("EMERGENCY STOP through the API: %s", body.reason)
    return _json(ChangedResponse(state={"emergency_stop": plane.gate.snapshot()["emergency_stop"]}))


async def emergency_resume(request: web.Request) -> web.Response:
    await read_body(request, Empty)
    plane = request.app[PLANE]
    await plane.command(EmergencyResume())
    log.warning("emergency stop released through the API")
    return _json(ChangedResponse(state={"emergency_stop": plane.gate.snapshot()["emergency_stop"]}))


# ---- the table --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    response: type[BaseModel] | None  # None: not JSON (/metrics)
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    error_statuses: tuple[int, ...] = ()

    @property
    def mutating(self) -> bool:
        return self.method == "POST"


ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", health, "Liveness: the process answers.", HealthResponse),
    Route(
        "GET",
        "/ready",
        ready,
        "Readiness: 200 when the node is synced and the pool state is fresh, 503 until then.",
        ReadyResponse,
        error_statuses=(503,),
    ),
    Route(
        "GET",
        "/opportunities",
        opportunities,
        "Recent opportunities and what became of them (bounded).",
        OpportunitiesResponse,
        query=OpportunitiesQuery,
        error_statuses=(400,),
    ),
    Route("GET", "/stats", stats, "Pipeline counters, queue depths and drops, risk summary.", StatsResponse),
    Route(
        "GET",
        "/exposure/current",
        exposure,
        "In-flight exposure, daily P&L, drawdown, breakers, limits.",
        ExposureResponse,
    ),
    Route(
        "GET",
        "/relays/status",
        relays,
        "Per builder/relay endpoint: requests, last status and latency; mev-boost's status where configured.",
        RelaysResponse,
    ),
    Route(
        "GET",
        "/providers/status",
        providers,
        "Per flashloan provider and chain: liquidity per token, fee, last update, health.",
        ProvidersStatusResponse,
    ),
    Route("GET", "/metrics", metrics, "Prometheus text exposition of every agent metric.", None),
    Route("GET", "/openapi.json", openapi, "This document.", None),
    Route("POST", "/config/risk", config_risk, "Change global risk limits.", ChangedResponse, body=RiskPatch),
    Route("POST", "/config/gas", config_gas, "Change gas settings.", ChangedResponse, body=GasPatch),
    Route(
        "POST",
        "/config/profit",
        config_profit,
        "Change the daily profit target and strategies' minimum profits.",
        ChangedResponse,
        body=ProfitPatch,
    ),
    Route("POST", "/limits/set", limits_set, "Change one chain's limits.", ChangedResponse, body=ChainLimitsPatch),
    Route(
        "POST",
        "/strategies/{name}/pause",
        strategy_pause,
        "Pause one strategy: the risk gate refuses its opportunities (persists across restarts).",
        ChangedResponse,
        body=Empty,
        error_statuses=(404,),
    ),
    Route(
        "POST",
        "/strategies/{name}/resume",
        strategy_resume,
        "Resume a paused strategy.",
        ChangedResponse,
        body=Empty,
        error_statuses=(404,),
    ),
    Route(
        "POST",
        "/emergency/stop",
        emergency_stop,
        "Stop every execution now; persists across restarts until /emergency/resume.",
        ChangedResponse,
        body=EmergencyStopRequest,
    ),
    Route("POST", "/emergency/resume", emergency_resume, "Release the emergency stop.", ChangedResponse, body=Empty),
)


def make_app(plane: ControlPlane) -> web.Application:
    unauthorized = lambda message: error(401, message, ["Authorization"])  # noqa: E731
    app = web.Application(
        middlewares=[bearer_auth(plane.token, _with_challenge(unauthorized)), _refusals], client_max_size=MAX_BODY
    )
    app[PLANE] = plane
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    plane.metrics.daily_profit_target(plane.settings.profit.daily_profit_target_usd)
    return app


def _with_challenge(unauthorized: Callable[[str], web.Response]) -> Callable[[str], web.Response]:
    def respond(message: str) -> web.Response:
        response = unauthorized(message)
        response.headers["WWW-Authenticate"] = 'Bearer realm="mevagent"'
        return response

    return respond


def make_metrics_app(agent_metrics: AgentMetrics) -> web.Application:
    """/metrics alone, for the listener the monitoring host scrapes (no control routes, no token)."""

    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=agent_metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", serve)
    return app


# Request lines and status only: the Authorization header is never in an access log line.
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'


@dataclass(slots=True)
class Servers:
    runners: list[web.AppRunner]

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


async def start_servers(config: ApiConfig, plane: ControlPlane) -> Servers:
    """The control API on config.bind:port (loopback by default) and /metrics on metrics_bind:metrics_port."""
    runners: list[web.AppRunner] = []
    try:
        for app, host, port in (
            (make_app(plane), config.bind, config.port),
            (make_metrics_app(plane.metrics), config.metrics_bind, config.metrics_port),
        ):
            runner = web.AppRunner(app, access_log_format=ACCESS_LOG_FORMAT)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host, port).start()
            if port == config.port and config.control_bind is not None:
                await web.TCPSite(runner, config.control_bind, port).start()  # the control host's way in
    except BaseException:
        for runner in runners:
            await runner.cleanup()
        raise
    return Servers(runners)
