"""GET /providers/status: every flashloan provider the agent follows, per chain (mevagent.lending.monitor).

The shape of the flashloan monitor's answer: per provider its chain, fee, health, last update and the
liquidity it can lend per token. Token amounts are decimal strings in the token's smallest unit (they
exceed what a JSON number carries exactly).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from pydantic import BaseModel, Field


class ProviderSource(Protocol):
    """What the API reads (mevagent.lending.monitor.FlashMonitor has this shape)."""

    def status(self) -> list[dict[str, Any]]: ...


class TokenLiquidity(BaseModel):
    token: str = Field(description="the token's address, lower case")
    available: str = Field(description="what the provider can lend now, in the token's smallest unit")


class ProviderStatus(BaseModel):
    chain: str
    provider: str = Field(description="its name in the chain's config (lending[].name or flash_providers[].name)")
    protocol: str
    pool: str | None = Field(description="the contract that lends (None until loaded)")
    fee_bps: int | float | None = Field(
        description="the fee in basis points of the amount (fractional for a V2 flash swap or a Balancer percentage)"
    )
    healthy: bool
    detail: str
    last_update_block: int | None = Field(description="the last block whose logs were applied")
    last_update_age_s: float | None = Field(description="seconds since the last successful poll of the node")
    liquidity: list[TokenLiquidity]


class ProvidersStatusResponse(BaseModel):
    providers: list[ProviderStatus]


def providers_status(sources: Iterable[ProviderSource]) -> ProvidersStatusResponse:
    return ProvidersStatusResponse(
        providers=[ProviderStatus.model_validate(s) for src in sources for s in src.status()]
    )
