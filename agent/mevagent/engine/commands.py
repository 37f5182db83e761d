"""Control commands: what an operator (API) or the fleet (bus) tells the agent, applied in order, never dropped."""

from __future__ import annotations

from dataclasses import dataclass

from mevagent.config import RiskLimits
from mevagent.risk.gate import ChainLimits, RiskGate


@dataclass(frozen=True, slots=True)
class EmergencyStop:
    reason: str


@dataclass(frozen=True, slots=True)
class EmergencyResume:
    pass


@dataclass(frozen=True, slots=True)
class PauseStrategy:
    name: str


@dataclass(frozen=True, slots=True)
class ResumeStrategy:
    name: str


@dataclass(frozen=True, slots=True)
class SetRiskLimits:
    limits: RiskLimits


@dataclass(frozen=True, slots=True)
class SetChainLimits:
    chain: str
    limits: ChainLimits


Command = EmergencyStop | EmergencyResume | PauseStrategy | ResumeStrategy | SetRiskLimits | SetChainLimits


def apply_command(gate: RiskGate, command: Command) -> None:
    """Apply one command to the risk gate (persisted before it returns where the gate persists it)."""
    match command:
        case EmergencyStop(reason=reason):
            gate.emergency_stop(reason)
        case EmergencyResume():
            gate.emergency_resume()
        case PauseStrategy(name=name):
            gate.pause(name)
        case ResumeStrategy(name=name):
            gate.resume(name)
        case SetRiskLimits(limits=limits):
            gate.update_limits(limits)
        case SetChainLimits(chain=chain, limits=limits):
            gate.update_chain(chain, limits)
        case _:
            raise TypeError(f"not a control command: {type(command).__name__}")
