"""Bounded time per host: a host that makes no progress for `bound` seconds is cut off and failed by name.

pyinfra waits on a remote command without a limit, and a host that stops answering (paused, a hung
kernel, a dead link that keeps TCP open) would hold the whole run. This thread watches the time since
each host's last step (a fact read, an operation started or finished) and, past the bound, closes that
host's SSH connection: every wait on it returns at once, its operation fails, and the other hosts go on.
"""

from __future__ import annotations

import os
import threading
import time

from pyinfra.api import BaseStateCallback

# Longer than any single step of a deploy on a loaded machine: a first deploy's apt install of every base
# package took over 5 minutes on a 2-core machine running other fleets at the same time.
DEFAULT_BOUND_S = 900.0


def default_bound() -> float:
    return float(os.environ.get("MEVFLEET_HOST_TIMEOUT", DEFAULT_BOUND_S))


class Watchdog(BaseStateCallback):
    def __init__(self, bound: float):
        self.bound = bound
        self.timed_out: dict[str, str] = {}
        self._last: dict[str, float] = {}
        self._hosts: dict[str, object] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="mevfleet-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def step(self, host) -> None:
        """The host just did something: its clock restarts."""
        with self._lock:
            if host.name not in self.timed_out:
                self._hosts[host.name] = host
                self._last[host.name] = time.monotonic()

    def idle(self, host) -> None:
        """The host has nothing in flight (waiting for others is not hanging)."""
        with self._lock:
            self._last.pop(host.name, None)

    # pyinfra callbacks: every operation start and end on a host is a step.
    def host_connect(self, state, host) -> None:
        self.step(host)

    def operation_host_start(self, state, host, op_hash) -> None:
        self.step(host)

    def operation_host_success(self, state, host, op_hash, retry_count: int = 0) -> None:
        self.step(host)

    def operation_host_error(self, state, host, op_hash, retry_count: int = 0, max_retries: int = 0) -> None:
        self.step(host)

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            now = time.monotonic()
            with self._lock:
                stuck = [name for name, last in self._last.items() if now - last > self.bound]
                for name in stuck:
                    self._last.pop(name)
                    self.timed_out[name] = f"no answer within {self.bound:g} s: cut off, the other hosts went on"
            for name in stuck:
                self._cut_off(self._hosts[name])

    @staticmethod
    def _cut_off(host) -> None:
        client = getattr(host.connector, "client", None)
        if client is not None:
            client.close()  # wakes every wait on this host's channels
