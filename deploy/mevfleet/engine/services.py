"""Time sync, log retention and SSH hardening: files plus the one restart each needs when they change."""

from __future__ import annotations

from pyinfra.operations import server

from ..render import ManagedFile
from .facts import HostState
from .files import ensure_files
from .units import ensure_unit


def ensure_time_sync(files: list[ManagedFile], current: HostState) -> None:
    changed = ensure_files(name="chrony configuration", files=files, current=current)
    server.shell(
        name="Restart chrony for its new config",
        commands=["systemctl daemon-reload", "systemctl restart chrony.service"],
        _if=changed.did_change,
    )
    ensure_unit(name="chrony running", unit="chrony.service", current=current)


def ensure_log_retention(journald: list[ManagedFile], logrotate: list[ManagedFile], current: HostState) -> None:
    changed = ensure_files(name="journald retention", files=journald, current=current)
    server.shell(
        name="Restart journald for its new config",
        commands=["systemctl restart systemd-journald.service"],
        _if=changed.did_change,
    )
    ensure_files(name="logrotate policy", files=logrotate, current=current)


def ensure_sshd_hardened(files: list[ManagedFile], current: HostState) -> None:
    changed = ensure_files(name="sshd hardening", files=files, current=current)
    # A config sshd rejects must never be reloaded: that is how hosts get locked out.
    server.shell(
        name="Check and reload sshd",
        commands=["sshd -t && systemctl reload ssh.service"],
        _if=changed.did_change,
    )


def ensure_exporters_running(units: list[str], current: HostState) -> None:
    for unit in units:
        ensure_unit(name=f"{unit} running", unit=unit, current=current)
