"""Time sync, log retention and SSH hardening: files plus the one restart each needs when they change."""

from __future__ import annotations

from ..probe import HostState
from ..render import ManagedFile
from ..timesync import CHRONY_METRICS_TIMER
from .files import ensure_files, ensure_files_then
from .units import ensure_unit


def ensure_time_sync(files: list[ManagedFile], current: HostState) -> None:
    # chrony and the timer that exports what it measured (templates/time) restart together.
    ensure_files_then(
        "chrony configuration",
        files,
        current,
        then="Restart chrony for its new config",
        commands=[
            "systemctl daemon-reload",
            "systemctl restart chrony.service",
            f"systemctl restart {CHRONY_METRICS_TIMER}",
        ],
    )
    ensure_unit(name="chrony running", unit="chrony.service", current=current)
    ensure_unit(name="chrony's offsets exported", unit=CHRONY_METRICS_TIMER, current=current)


def ensure_log_retention(journald: list[ManagedFile], logrotate: list[ManagedFile], current: HostState) -> None:
    ensure_files_then(
        "journald retention",
        journald,
        current,
        then="Restart journald for its new config",
        commands=["systemctl restart systemd-journald.service"],
    )
    ensure_files(name="logrotate policy", files=logrotate, current=current)


def ensure_sshd_hardened(files: list[ManagedFile], current: HostState) -> None:
    # A config sshd rejects must never be reloaded: that is how hosts get locked out.
    ensure_files_then(
        "sshd hardening",
        files,
        current,
        then="Check and reload sshd",
        commands=["sshd -t && systemctl reload ssh.service"],
    )


def ensure_exporters_running(units: list[str], files: list[ManagedFile], current: HostState) -> None:
    # Its listen address and sandbox: a change takes effect at once.
    ensure_files_then(
        "node_exporter address and sandbox",
        files,
        current,
        then="Restart node_exporter for its new address or sandbox",
        commands=["systemctl daemon-reload", "systemctl restart prometheus-node-exporter.service"],
    )
    for unit in units:
        ensure_unit(name=f"{unit} running", unit=unit, current=current)
