"""Monitoring hosts and every host's log shipper: secrets, validated configs, restarts on change.

A config the service would reject must never replace the one it runs: changed files are uploaded beside
their targets, swapped in, checked with the service's own validator, and swapped back if it refuses,
all in one remote step; the service restarts only when that check passed and something changed.
Grafana, Loki and Alloy come from Grafana's apt repository, not Debian: their files are always put in
place, and checked and restarted where the package is installed.
"""

from __future__ import annotations

import os
import posixpath
import shlex
from collections.abc import Iterable
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation
from pyinfra.operations import server

from ..model import HostPlan
from ..monitoring import (
    JOURNAL_RECEIVERS,
    JOURNAL_TLS_FRONT,
    SERVICES,
    UPSTREAM,
    CopiedSecret,
    Secret,
    is_monitoring,
    shipper_packages,
    shipper_units,
)
from ..probe import HostState
from ..render import ManagedFile
from .base import install_missing
from .files import differs, ensure_files_then, sha256
from .units import ensure_unit

NEW = ".mevfleet-new"
PREVIOUS = ".mevfleet-prev"
ABSENT = ".mevfleet-absent"


@operation()
def ensure_secrets(secrets: Iterable[Secret], current: HostState):
    """Generate each missing secret on the host (32 random bytes, hex), owner-only; never overwrite one."""
    for secret in secrets:
        path, owner = shlex.quote(secret.path), shlex.quote(secret.owner)
        have = current.files.get(secret.path)
        if have is None:
            # umask before the file exists, so the secret is never readable by others, even briefly.
            yield (
                f"mkdir -p $(dirname {path}) && (umask 077 && [ -s {path} ] || "
                f"printf {shlex.quote(secret.template)} \"$(od -An -N32 -tx1 /dev/urandom | tr -d ' \\n')\" "
                f"> {path}) && chown {owner}:{owner} {path} && chmod 0600 {path}"
            )
        elif (have.mode, have.owner, have.group) != ("0600", secret.owner, secret.owner):
            yield f"chown {owner}:{owner} {path} && chmod 0600 {path}"


@operation()
def ensure_copied_secrets(copies: Iterable[CopiedSecret], current: HostState):
    """Copy secret files from the control machine (receiver secrets, journal TLS keys) to the host without
    showing them: owner-only, or readable by the one group whose service reads them (0640).

    They land in a directory only root and that group can enter, so the moment between upload and chmod
    exposes nothing; with sudo, pyinfra stages the upload in the SSH user's home, not /tmp.
    """
    commands: list[str | FileUploadCommand] = []
    for copy in copies:
        content = Path(os.path.expanduser(copy.source)).read_text()
        have = current.files.get(copy.path)
        path, owner, group = shlex.quote(copy.path), shlex.quote(copy.owner), shlex.quote(copy.file_group)
        if have is None or have.sha256 != sha256(content):
            commands.append(
                FileUploadCommand(
                    StringIO(content), copy.path, remote_temp_filename=f".mevfleet-secret-{sha256(copy.path)[:12]}"
                )
            )
        elif (have.mode, have.owner, have.group) == (copy.mode, copy.owner, copy.file_group):
            continue
        commands.append(f"chown {owner}:{group} {path} && chmod {copy.mode} {path}")
    if commands:
        for group in sorted({c.group for c in copies if c.group}):
            yield f"getent group {shlex.quote(group)} >/dev/null || groupadd --system {shlex.quote(group)}"
        for directory, group in sorted({(posixpath.dirname(c.path), c.file_group) for c in copies}):
            yield f"install -d -m 0750 -o root -g {shlex.quote(group)} {shlex.quote(directory)}"
        yield from commands


def changed_copies(copies: Iterable[CopiedSecret], current: HostState) -> set[str]:
    """Services whose copied secrets change in this run (they restart to read them)."""
    changed = set()
    for copy in copies:
        have = current.files.get(copy.path)
        if have is None or have.sha256 != sha256(Path(os.path.expanduser(copy.source)).read_text()):
            changed.add(copy.service)
    return changed


@operation()
def ensure_checked_files(
    files: Iterable[ManagedFile],
    current: HostState,
    check: str | None,
    unit: str,
    restart_anyway: bool = False,
    installed_only: bool = False,
):
    """Swap in the changed files, validate, restore on refusal; restart the unit when something changed.

    installed_only: the files are put in place either way; check and restart only if the unit exists.
    """
    changed = [f for f in files if differs(f, current)]
    if not changed and not restart_anyway:
        return
    for f in changed:
        tmp = f.path + NEW
        yield f"mkdir -p {shlex.quote(tmp.rsplit('/', 1)[0])}"
        yield FileUploadCommand(
            StringIO(f.content), tmp, remote_temp_filename=host.get_temp_filename(tmp + sha256(f.content))
        )
        yield f"chown {f.owner}:{f.group} {shlex.quote(tmp)} && chmod {f.mode} {shlex.quote(tmp)}"
    swap, restore, cleanup = [], [], []
    for f in changed:
        path, new, prev, absent = (shlex.quote(f.path + s) for s in ("", NEW, PREVIOUS, ABSENT))
        swap.append(f"if [ -e {path} ]; then cp -p {path} {prev}; else : > {absent}; fi; mv -f {new} {path}")
        restore.append(f"if [ -e {prev} ]; then mv -f {prev} {path}; else rm -f {path}; fi; rm -f {absent}")
        cleanup.append(f"rm -f {prev} {absent}")
    script = "; ".join(swap) if swap else ":"
    checked = ""
    if check:
        refused = f"{'; '.join(restore) or ':'}; echo 'config rejected: the previous one stays' >&2; exit 1"
        checked = f"if ! {check} >&2; then {refused}; fi; "
    # daemon-reload picks up drop-ins; reset-failed lets a unit that gave up on the old config start again.
    u = shlex.quote(unit)
    done = "; ".join(cleanup) or ":"
    restart = f"{checked}{done}; systemctl daemon-reload; systemctl reset-failed {u}; systemctl restart {u}"
    if installed_only:
        script += f"; if systemctl cat {u} >/dev/null 2>&1; then {restart}; else {done}; fi"
    else:
        script += f"; {restart}"
    yield f"sh -c {shlex.quote(script)}"


def ensure_monitoring(
    of: dict[str, list[ManagedFile]],
    secrets: list[Secret],
    current: HostState,
    copies: list[CopiedSecret] | None = None,
) -> None:
    """Secrets first (Redis includes its password file), then each service's files, checked, then restart."""
    copies = copies or []
    new_secrets = {s.service for s in secrets if current.files.get(s.path) is None} | changed_copies(copies, current)
    ensure_secrets(name="Monitoring secrets generated on the host", secrets=secrets, current=current)
    ensure_copied_secrets(
        name="Alert receiver secrets and the bus's TLS files copied to the host", copies=copies, current=current
    )
    for service, (check, unit) in SERVICES.items():
        if of.get(service):
            ensure_checked_files(
                name=f"{service} configuration (checked before restart)",
                files=of[service],
                current=current,
                check=check,
                unit=unit,
                restart_anyway=service in new_secrets,
                installed_only=service in UPSTREAM,
            )


def ensure_log_shipper(
    plan: HostPlan, of: dict[str, list[ManagedFile]], current: HostState, tls: list[CopiedSecret] | None = None
) -> None:
    """journal-remote fleets: Debian's uploader on every host, the receiver on monitoring hosts, each
    restarted when its drop-ins or its certificate change and kept enabled and running. (Alloy is in
    ensure_monitoring.)"""
    packages = shipper_packages(plan)
    install_missing(packages)
    # Certificates first (the services read them at start), restarts for them last (after the configs that
    # name them are in place: on a first deploy a restart before would start stunnel without its config).
    copied = None
    if tls:
        copied = ensure_copied_secrets(
            name="Journal TLS key, certificate and fleet CA (root's, read by the shippers' group)",
            copies=tls,
            current=current,
        )
    if of.get("journal-remote"):
        # Stopping the target stops every receiver (PartOf=), a dropped host's too; starting it starts
        # the planned ones on their new ports.
        ensure_files_then(
            "journal-remote configuration",
            of["journal-remote"],
            current,
            then="Restart the journal receivers and their TLS front on their new config",
            commands=[
                "systemctl daemon-reload",
                f"systemctl stop {JOURNAL_RECEIVERS}",
                f"systemctl start {JOURNAL_RECEIVERS}",
                f"systemctl restart {JOURNAL_TLS_FRONT}",
            ],
        )
    if of.get("journal-upload"):
        ensure_files_then(
            "journal-upload configuration",
            of["journal-upload"],
            current,
            then="Restart journal-upload for its new config",
            commands=["systemctl daemon-reload", "systemctl restart systemd-journal-upload.service"],
        )
    if copied is not None:
        restart = ["systemctl daemon-reload", "systemctl restart systemd-journal-upload.service"]
        if is_monitoring(plan):
            restart[1:1] = [f"systemctl restart {JOURNAL_TLS_FRONT}"]
        server.shell(name="Restart journal shipping for its new certificate", commands=restart, _if=copied.did_change)
    if packages:
        for unit in shipper_units(plan):
            ensure_unit(name=f"{unit} enabled and running", unit=unit, current=current)
