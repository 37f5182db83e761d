"""The risk lease: live signing needs a fresh grant from the fleet control plane.

The control plane sends a `LeaseGrant` to every agent while every fleet-wide limit holds (and no
emergency stop is engaged). A grant lets the agent sign live, on the chains it names, for `ttl_s`
seconds after it arrived. When the control plane, the bus or the control host is gone, no grant
arrives and the lease runs out: the risk gate then refuses every live execution (dry-run continues),
until grants arrive again. The clock is the agent's monotonic clock; a grant that spent longer than
its TTL in transit (by the sender's wall clock) extends nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mevagent.bus.events import LeaseGrant


class RiskLease:
    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self._monotonic = monotonic
        self._wallclock = wallclock
        self._lock = threading.Lock()
        self._expires = float("-inf")
        self._chains: frozenset[str] = frozenset()
        self.grants = 0

    def grant(self, grant: LeaseGrant) -> bool:
        """Take `grant`; False (and nothing changes) when it had already expired in transit."""
        age = max(0.0, self._wallclock() - grant.at)
        remaining = grant.ttl_s - age
        if remaining <= 0:
            return False
        with self._lock:
            self._expires = self._monotonic() + remaining
            self._chains = frozenset(grant.chains)
            self.grants += 1
        return True

    def revoke(self) -> None:
        with self._lock:
            self._expires = float("-inf")

    def expires_in(self) -> float:
        return self._expires - self._monotonic()

    def fresh(self) -> bool:
        return self.expires_in() > 0

    def refusal(self, chain: str) -> str:
        """Why live signing on `chain` is not allowed now; "" when it is."""
        with self._lock:
            left = self._expires - self._monotonic()
            chains = self._chains
        if left == float("-inf"):
            return "no lease from the fleet control plane yet"
        if left <= 0:
            return f"the lease from the fleet control plane expired {-left:.1f} s ago"
        if chain not in chains:
            return f"the lease does not allow live trading on {chain}"
        return ""
