"""Consecutive-failure circuit breaker with half-open probing (one chain's executions).

closed --N consecutive failures--> open --cool-down elapsed--> half-open: exactly one execution (the
probe) may go; its success closes the breaker, its failure opens it again for another cool-down.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(slots=True)
class CircuitBreaker:
    threshold: int
    cooldown_s: float
    failures: int = 0
    state: BreakerState = BreakerState.CLOSED
    opened_at: float = 0.0
    probe_in_flight: bool = False

    def refusal(self, now: float) -> str:
        """Why an execution may not start now ("" when it may); moves open → half-open when the cool-down is over."""
        if self.state is BreakerState.OPEN:
            remaining = self.opened_at + self.cooldown_s - now
            if remaining > 0:
                return (
                    f"open after {self.failures} consecutive failures (limit {self.threshold}); "
                    f"half-open in {remaining:.1f} s"
                )
            self.state = BreakerState.HALF_OPEN
            self.probe_in_flight = False
        if self.state is BreakerState.HALF_OPEN and self.probe_in_flight:
            return "half-open: the probe execution is still in flight"
        return ""

    def admit(self) -> bool:
        """Called once the execution is allowed; True when it is the half-open probe."""
        if self.state is BreakerState.HALF_OPEN:
            self.probe_in_flight = True
            return True
        return False

    def success(self, probe: bool) -> None:
        if self.state is BreakerState.CLOSED or probe:
            self.state = BreakerState.CLOSED
            self.failures = 0
            self.probe_in_flight = False

    def failure(self, probe: bool, now: float) -> None:
        self.failures += 1
        if probe or (self.state is BreakerState.CLOSED and self.failures >= self.threshold):
            self.state = BreakerState.OPEN
            self.opened_at = now
            self.probe_in_flight = False
