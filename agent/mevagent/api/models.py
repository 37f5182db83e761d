"""The control API's payloads and answers: pydantic models, so bad input is refused naming the field and the
OpenAPI document is generated from the same classes that validate.

Patches list only what changes; every field is optional, unknown fields are refused, and the patched
result is validated as a whole (config.RiskLimits etc.) before anything is replaced.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mevagent.config import Name

Usd = Annotated[float, Field(gt=0, allow_inf_nan=False)]
UsdOrZero = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RiskPatch(Payload):
    """POST /config/risk: the global risk limits (mevagent.config.RiskLimits)."""

    max_position_size_usd: Usd | None = None
    max_total_exposure_usd: Usd | None = None
    max_chain_exposure_usd: Usd | None = None
    max_token_exposure_usd: Usd | None = None
    max_daily_loss_usd: Usd | None = None
    max_daily_loss_per_chain_usd: Usd | None = None
    max_drawdown_usd: Usd | None = None
    max_slippage_bps: Annotated[float, Field(ge=0, le=5_000, allow_inf_nan=False)] | None = None
    max_consecutive_failures: Annotated[int, Field(ge=1, le=1_000)] | None = None
    circuit_breaker_cooldown_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] | None = None


class GasPatch(Payload):
    """POST /config/gas (mevagent.config.GasSettings)."""

    priority_fee_gwei: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] | None = None
    gas_limit_per_hop: Annotated[int, Field(gt=0, le=5_000_000)] | None = None
    gas_limit_base: Annotated[int, Field(ge=21_000, le=5_000_000)] | None = None
    builder_payment_share: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] | None = None
    target_blocks: Annotated[int, Field(ge=1, le=25)] | None = None


class StrategyProfitPatch(Payload):
    min_profit_bps: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] | None = None
    min_profit_threshold: UsdOrZero | None = None


class ProfitPatch(Payload):
    """POST /config/profit: the daily target and per-strategy minimum profit (by configured strategy name)."""

    daily_profit_target_usd: UsdOrZero | None = None
    # Keyed by configured strategy name: a key of any other shape (NUL, empty, 10 kB) is refused here, not
    # by the database the control plane audits it into (the fuzz found a NUL answered with a 500).
    # (additionalProperties false: the document says so too, not only which keys match the name pattern)
    strategies: dict[Name, StrategyProfitPatch] = Field(
        default_factory=dict, json_schema_extra={"additionalProperties": False}
    )


class ChainLimitsPatch(Payload):
    """POST /limits/set: one chain's limits. null for an exposure or loss limit means "use the global one"."""

    chain: str = Field(min_length=1, max_length=32)
    max_gas_price_gwei: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)] | None = None
    max_chain_exposure_usd: Usd | None = None
    max_daily_loss_usd: Usd | None = None


class EmergencyStopRequest(Payload):
    """POST /emergency/stop. The body may be empty."""

    # No control characters: the reason is logged and published (a NUL or newline would forge or break a line).
    reason: str = Field(
        default="emergency stop through the control API", min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$"
    )


class Empty(Payload):
    """A body that must be empty (or `{}`)."""


class OpportunitiesQuery(Payload):
    since: int = Field(default=0, ge=0, description="only entries with a sequence number above this")
    limit: int = Field(default=100, ge=1, le=1_000, description="at most this many, the newest")


# ---- answers ----------------------------------------------------------------------------------------


class ErrorResponse(BaseModel):
    error: str
    fields: list[str] = Field(default_factory=list, description="the fields the error is about")


class HealthResponse(BaseModel):
    status: Literal["ok"]
    version: str
    uptime_s: float


class ReadyCheck(BaseModel):
    name: str
    ok: bool
    detail: str


class ReadyResponse(BaseModel):
    ready: bool
    checks: list[ReadyCheck]


class OpportunityEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    seq: int
    id: str
    chain: str
    strategy: str
    block: int
    status: str = Field(description="pending, dry_run, landed, reverted, failed, rejected or dropped:<reason>")
    amount_in: str
    amount_out: str
    notional_usd: float
    profit_usd: float
    gas_cost_usd: float
    net_profit_usd: float


class OpportunitiesResponse(BaseModel):
    opportunities: list[OpportunityEntry]


class StatsResponse(BaseModel):
    uptime_s: float
    engine: dict[str, Any]
    risk: dict[str, Any]


class ExposureResponse(BaseModel):
    emergency_stop: dict[str, Any]
    paused_strategies: list[str]
    in_flight: int
    exposure_usd: dict[str, Any]
    day: str
    daily_pnl_usd: dict[str, float]
    equity_usd: float
    peak_equity_usd: float
    drawdown_usd: float
    circuit_breakers: dict[str, dict[str, Any]]
    limits: dict[str, Any]
    chain_limits: dict[str, dict[str, Any]]


class EndpointStatusEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    chain: str
    name: str
    requests: int = 0
    last_status: str = "unused"
    last_latency_s: float | None = None


class MevBoostStatusEntry(BaseModel):
    """One chain's mev-boost as the agent's status checks saw it (mevagent.executor.mevboost.MevBoostStatus)."""

    chain: str
    url: str
    status: Literal["unchecked", "ok", "no_relays", "error", "timeout"]
    http_status: int | None = None
    latency_s: float | None = None
    last_at: float | None = None
    last_ok_at: float | None = None
    last_error: str = ""
    checks: int = 0
    failures: int = 0
    consecutive_failures: int = 0


class RelaysResponse(BaseModel):
    endpoints: list[EndpointStatusEntry]
    # null: no chain of this agent has mev-boost configured; else one entry per chain that has.
    mev_boost: list[MevBoostStatusEntry] | None = None


class ChangedResponse(BaseModel):
    """What a mutating call changed, as it is now."""

    ok: Literal[True] = True
    state: dict[str, Any]
