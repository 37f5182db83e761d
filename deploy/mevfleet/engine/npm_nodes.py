"""JavaScript node clients (npm bundles, nodes/npm.py): built on the control machine, uploaded, checked.

The same contract as a binary release (engine/nodes.py): nothing running is touched until the host has
checked the upload's sha256; the release's marker (the bundle's recipe id) is written last.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation

from ..model import NodePlan
from ..nodes import release_ok
from ..nodes.artifacts import ArtifactError, file_sha256
from ..nodes.npm import build, incoming_path, install_script
from ..probe import HostState


@operation()
def ensure_bundle(node: NodePlan, current: HostState):

    if release_ok(node, current) or node.artifact.npm is None:
        return
    try:
        local = build(node.artifact.npm)
    except ArtifactError as exc:
        yield f"echo {shlex.quote(f'{node.client} {node.version}: {exc}')} >&2; exit 1"
        return
    sha = file_sha256(local)
    incoming = incoming_path(node, sha)
    yield f"mkdir -p {shlex.quote(incoming.rsplit('/', 1)[0])}"
    yield FileUploadCommand(str(local), incoming, remote_temp_filename=host.get_temp_filename(incoming))
    yield f"sh -c {shlex.quote(install_script(node, sha))}"
