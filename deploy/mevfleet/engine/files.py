"""ensure_files: upload only the managed files whose content, mode or owner differ from the plan."""

from __future__ import annotations

import hashlib
import posixpath
import shlex
from collections.abc import Iterable
from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation
from pyinfra.operations import server

from ..probe import HostState
from ..render import ManagedFile


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def differs(file: ManagedFile, current: HostState) -> bool:
    have = current.files.get(file.path)
    return have is None or (have.sha256, have.mode, have.owner, have.group) != (
        sha256(file.content),
        file.mode,
        file.owner,
        file.group,
    )


@operation()
def ensure_files(files: Iterable[ManagedFile], current: HostState):
    """Make every file match; a no-op when the one-command ManagedState fact shows they already do."""
    for file in files:
        have = current.files.get(file.path)
        digest = sha256(file.content)
        path = shlex.quote(file.path)
        if have is None or have.sha256 != digest:
            yield f"mkdir -p {shlex.quote(posixpath.dirname(file.path))}"
            yield FileUploadCommand(
                StringIO(file.content),
                file.path,
                remote_temp_filename=host.get_temp_filename(file.path + digest),
            )
        elif (have.mode, have.owner, have.group) == (file.mode, file.owner, file.group):
            continue
        yield f"chown {file.owner}:{file.group} {path} && chmod {file.mode} {path}"


@operation()
def remove_files(paths: Iterable[str]):
    """Remove files mevfleet wrote earlier that the plan no longer has (e.g. a chain moved away)."""
    for path in paths:
        yield f"rm -f {shlex.quote(path)}"


def ensure_files_then(name: str, files: Iterable[ManagedFile], current: HostState, then: str, commands: list[str]):
    """Files, then the commands that make their reader pick them up, run only when a file changed."""
    changed = ensure_files(name=name, files=files, current=current)
    server.shell(name=then, commands=commands, _if=changed.did_change)
    return changed
