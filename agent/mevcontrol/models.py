"""Request bodies and queries of the operator API (pydantic: a bad one is a 400 naming the field)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from mevagent.api.models import RiskPatch


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _iso_day(value: object) -> object:
    # pydantic's lax date also takes a number (or a numeric string) as a Unix time: "2.2e-309" would be
    # read as 1970-01-01. A query's day is text, and only YYYY-MM-DD is a day.
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("a UTC day as YYYY-MM-DD")
    if not isinstance(value, str | dt.date):
        raise ValueError("a UTC day as YYYY-MM-DD")
    return value


IsoDay = Annotated[dt.date, BeforeValidator(_iso_day)]


def _limits_schema(schema: dict[str, Any]) -> None:
    """FleetLimitsPatch's document: at least one limit, none null (the null branch pydantic writes for an
    optional field is left out: a null is refused, naming the field)."""
    schema["minProperties"] = 1
    for prop in schema["properties"].values():
        branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
        if branches:
            prop.update(branches[0])
        prop.pop("default", None)


class FleetLimitsPatch(Body):
    """POST :8908/config/risk: the fleet-wide limits (above the inventory's ceiling: four-eyes). At least one,
    none null (a fleet limit cannot be removed): the document says so, as the server reads it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_limits_schema)

    max_total_exposure_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    daily_limit_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    consecutive_losses: Annotated[int, Field(ge=1, le=10_000)] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:  # absent is None; a given null is refused, naming the field
        if value is None:
            raise ValueError("a limit, not null (leave it out to keep it)")
        return value


class AgentLimits(Body):
    """POST :8908/limits/set: every agent's own risk limits (sent on the bus; each agent validates the whole)."""

    changes: RiskPatch = Field(json_schema_extra={"minProperties": 1})


class StopBody(Body):
    # No control characters: the reason is audited in PostgreSQL (a NUL there would fail the stop with a 500).
    reason: str = Field(
        default="fleet emergency stop through the control plane",
        min_length=1,
        max_length=500,
        pattern=r"^[^\x00-\x1f\x7f]*$",
    )


class EnableBody(Body):
    """POST :8080/api/strategies/enable: live trading on a chain (enabling: four-eyes; disabling: at once)."""

    chain: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    live: bool


class StuckActionBody(Body):
    """POST :8080/api/transactions/stuck/{tx}/replace or /cancel: the fee bump the owning agent applies."""

    # Nodes replace a pending transaction only for at least +10 % on both fee caps.
    bump_percent: Annotated[float, Field(ge=10, le=200, allow_inf_nan=False)] = 12.5


class NoBody(Body):
    pass


class UnwindBody(Body):
    """POST :8906/positions/{id}/unwind: sell a stuck position's open legs back again, at most this far below
    the expected output (None: the configured unwind.max_slippage_bps)."""

    max_slippage_bps: Annotated[int, Field(ge=0, le=5_000)] | None = None


class DailyQuery(Body):
    day: IsoDay | None = None  # UTC; today when absent
    format: Literal["json", "csv"] = "json"


# The widest window the window routes accept (31 days), in hours; the warmer's widest (mevcontrol.warm).
WINDOW_HOURS = 24 * 31


class WindowQuery(Body):
    hours: Annotated[int, Field(ge=1, le=WINDOW_HOURS)] = 24


class Error(BaseModel):
    error: str
    fields: list[str] = []


class CompetitionQuery(Body):
    """GET :8080/api/analytics/competition: opportunities found in the last `hours` that we did not land."""

    hours: Annotated[int, Field(ge=1, le=24 * 31)] = 24
    blocks: Annotated[int, Field(ge=1, le=100)] = 3  # how many blocks after the one it was found in
    chain: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    limit: Annotated[int, Field(ge=1, le=5000)] = 500


class SandwichesQuery(Body):
    """GET :8080/api/analytics/sandwiches: the detector's sandwichable swaps of the last `hours`, who took them."""

    hours: Annotated[int, Field(ge=1, le=24 * 31)] = 24
    chain: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    limit: Annotated[int, Field(ge=1, le=5000)] = 500
