"""ensure_files: upload only the managed files whose content, mode or owner differ from the plan.

ensure_checked_files: for a service that would refuse a bad config, changed files are uploaded beside their
targets, swapped in, checked with the service's own validator, and swapped back if it refuses, all in one
remote step; the service restarts only when that check passed and something changed."""

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


NEW = ".mevfleet-new"
PREVIOUS = ".mevfleet-prev"
ABSENT = ".mevfleet-absent"


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
