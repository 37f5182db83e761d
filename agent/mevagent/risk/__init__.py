"""The risk gate the executor asks before it signs anything (`mevagent.core.RiskCheck`)."""

from mevagent.risk.breaker import BreakerState, CircuitBreaker
from mevagent.risk.gate import ChainLimits, RiskGate

__all__ = ["BreakerState", "ChainLimits", "CircuitBreaker", "RiskGate"]
