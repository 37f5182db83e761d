"""The release mechanism (release.py) as pyinfra operations: one for a wheelhouse venv, one for the switch."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation

from ..agent import AgentBuildError
from ..probe import HostState
from ..release import Release, WheelRelease


@operation()
def ensure_wheel_release(release: WheelRelease, current: HostState):
    """Upload the wheelhouse and build the venv, after the host has checked its sha256 and its Python."""
    if release.installed(current):
        return
    try:
        local, upload, script = release.prepare()
    except AgentBuildError as exc:
        yield f"echo {shlex.quote(str(exc))} >&2; exit 1"
        return
    yield f"mkdir -p {shlex.quote(upload.rsplit('/', 1)[0])}"
    yield FileUploadCommand(str(local), upload, remote_temp_filename=host.get_temp_filename(upload))
    yield f"sh -c {shlex.quote(script)}"


@operation()
def ensure_switched(release: Release, current: HostState):
    """`current` -> the release, the old target kept as `previous`."""
    if not release.switched(current):
        yield f"sh -c {shlex.quote(release.switch_script())}"
