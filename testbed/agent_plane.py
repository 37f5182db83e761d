"""The agent's control API state (`mevagent.api.ControlPlane`) built from a config the way `mevagent run`
builds it, for tests that serve its routes without an engine."""

from __future__ import annotations

from typing import Any

from mevagent.api import ControlPlane, Token
from mevagent.config import AgentConfig
from mevagent.engine import LiveSettings, RecentOpportunities
from mevagent.metrics import AgentMetrics
from mevagent.risk import RiskGate


def control_plane(config: AgentConfig, metrics: AgentMetrics | None = None, **kwargs: Any) -> ControlPlane:
    metrics = metrics or AgentMetrics()
    return ControlPlane(
        gate=RiskGate.from_config(config, metrics),
        settings=LiveSettings.from_config(config),
        metrics=metrics,
        token=Token.from_file(config.api.token_file),
        recent=RecentOpportunities(5),
        **kwargs,
    )
