"""The agent's engine: queues with explicit policies, the collector → strategy → executor pipeline, controls."""

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
from mevagent.engine.pipeline import Engine, EngineLimits
from mevagent.engine.queues import CoalescingQueue, ControlQueue, DropOldestQueue
from mevagent.engine.recent import RecentOpportunities
from mevagent.engine.settings import LiveSettings

__all__ = [
    "CoalescingQueue",
    "Command",
    "ControlQueue",
    "DropOldestQueue",
    "EmergencyResume",
    "EmergencyStop",
    "Engine",
    "EngineLimits",
    "LiveSettings",
    "PauseStrategy",
    "RecentOpportunities",
    "ResumeStrategy",
    "SetChainLimits",
    "SetRiskLimits",
    "apply_command",
]
