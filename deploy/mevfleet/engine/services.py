"""Time sync, log retention and SSH hardening: files plus the one restart each needs when they change."""

from __future__ import annotations

from pyinfra.operations import server, systemd

from ..render import ManagedFile
from .facts import HostState
from .files import ensure_files


def ensure_time_sync(files: list[ManagedFile], current: HostState) -> None:
    changed = ensure_files(name="chrony configuration", files=files, current=current)
    systemd.daemon_reload(name="Reload units (chrony)", _if=changed.did_change)
    systemd.service(name="chrony running", service="chrony.service", enabled=True, running=True)
    systemd.service(
        name="Restart chrony for its new config",
        service="chrony.service",
        restarted=True,
        _if=changed.did_change,
    )


def ensure_log_retention(journald: list[ManagedFile], logrotate: list[ManagedFile], current: HostState) -> None:
    changed = ensure_files(name="journald retention", files=journald, current=current)
    systemd.service(
        name="Restart journald for its new config",
        service="systemd-journald.service",
        restarted=True,
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


def ensure_exporters_running(units: list[str]) -> None:
    for unit in units:
        systemd.service(name=f"{unit} running", service=unit, enabled=True, running=True)
