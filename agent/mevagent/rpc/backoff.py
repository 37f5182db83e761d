"""How long to wait before the next reconnect attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with equal jitter: attempt n waits between d/2 and d, d = min(cap, base·2^n).

    Half the delay is fixed so a flapping node is not hammered; the other half is random so agents
    that lost the same node do not reconnect in lockstep.
    """

    base: float = 0.05
    cap: float = 5.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={self.base} cap={self.cap}")

    def next(self) -> float:
        delay = min(self.cap, self.base * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        return delay / 2 + self.rng.uniform(0, delay / 2)

    def reset(self) -> None:
        self.attempt = 0
