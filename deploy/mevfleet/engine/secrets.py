"""Secrets on the host: made there when absent (never seen by the control machine), or copied from the
control machine without showing them. Judged from the one-command probe like every file."""

from __future__ import annotations

import os
import posixpath
import shlex
from collections.abc import Iterable
from io import StringIO
from pathlib import Path

from pyinfra.api import FileUploadCommand, operation

from ..monitoring import CopiedSecret, Secret
from ..probe import HostState
from .files import sha256


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
