"""mev-boost's own status, as the agent beside it sees it: the builder API's status route, polled on a task of
its own.

The agent never submits through mev-boost (its bundles go to the builders directly, executor.bundles), so
what the operator needs from it is whether the beacon node on this host would get bids: mev-boost started
with `-relay-check` answers `GET /eth/v1/builder/status` with 200 when at least one of its relays answered
their own status route, and 503 when none did (the builder API's status route; without `-relay-check` it
answers 200 whenever it runs). One check at a time, each bounded by the configured timeout, one every
`poll_s`: the engine never awaits any of it, and a slow or absent mev-boost costs nothing but this task.

mev-boost's Prometheus metrics are not read: the deploy does not start its metrics listener, and its own
per-relay figures are counted only when a beacon node asks it for something.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from mevagent.config import MevBoostConfig

if TYPE_CHECKING:
    from mevagent.metrics import AgentMetrics

log = logging.getLogger(__name__)

STATUS_PATH = "/eth/v1/builder/status"
Status = Literal["unchecked", "ok", "no_relays", "error", "timeout"]


@dataclass(slots=True)
class MevBoostStatus:
    """The figures /relays/status shows for one chain's mev-boost (`mev_boost`)."""

    chain: str
    url: str  # the status route asked
    status: Status = "unchecked"  # ok: 200; no_relays: 503 (no relay answered mev-boost); error; timeout
    http_status: int | None = None  # the last answer's code; None after a timeout or a refused connection
    latency_s: float | None = None  # the last check's round trip (up to the timeout when it timed out)
    last_at: float | None = None  # unix time the last check ended
    last_ok_at: float | None = None  # unix time of the last 200
    last_error: str = ""  # what mev-boost or the connection said when the check failed
    checks: int = 0
    failures: int = 0  # every check that was not a 200 in time
    consecutive_failures: int = 0  # since the last 200 (the alert's input)

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)


class MevBoostProbe:
    """Asks mev-boost its status every `poll_s`, one check at a time, each bounded by `timeout_ms`."""

    def __init__(self, chain: str, config: MevBoostConfig, metrics: AgentMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.status = MevBoostStatus(chain, config.url + STATUS_PATH)

    async def check(self, session: aiohttp.ClientSession) -> MevBoostStatus:
        """One status request, recorded (and exported) whatever it ends with."""
        timeout_s = self.config.timeout_ms / 1000
        started = time.perf_counter()
        code: int | None = None
        error = ""
        try:
            async with asyncio.timeout(timeout_s), session.get(self.status.url) as response:
                code = response.status
                if code != 200:
                    # mev-boost's error answers are {"code": 503, "message": "all relays are unavailable"}.
                    error = (await response.content.read(200)).decode(errors="replace")
            result: Status = "ok" if code == 200 else "no_relays" if code == 503 else "error"
        except TimeoutError:
            result, error = "timeout", f"no answer in {timeout_s:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            result, error = "error", f"{type(exc).__name__}: {exc}"[:200]
        self._record(result, code, time.perf_counter() - started, error)
        return self.status

    def _record(self, result: Status, code: int | None, latency_s: float, error: str) -> None:
        status = self.status
        status.status, status.http_status, status.latency_s = result, code, latency_s
        status.last_at = time.time()
        status.last_error = error
        status.checks += 1
        if result == "ok":
            status.last_ok_at = status.last_at
            status.consecutive_failures = 0
        else:
            status.failures += 1
            status.consecutive_failures += 1
        if self.metrics is not None:
            self.metrics.mev_boost(status.chain, result, latency_s, status.consecutive_failures)

    async def run(self) -> None:
        """Checks until cancelled; the next one starts `poll_s` after the last one started (at once if that one
        took longer, which its timeout bounds)."""
        # One connection is all a check at a time needs; the session lives and dies with this task.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            while True:
                started = time.monotonic()
                before = self.status.status
                try:
                    await self.check(session)
                except Exception:  # never let a surprise end the probe: the next slot asks again
                    log.exception("%s: mev-boost status check failed unexpectedly", self.status.chain)
                if self.status.status != before:
                    log.info("%s: mev-boost %s (%s)", self.status.chain, self.status.status,
                             self.status.last_error or f"HTTP {self.status.http_status}")  # fmt: skip
                await asyncio.sleep(max(0.0, self.config.poll_s - (time.monotonic() - started)))
