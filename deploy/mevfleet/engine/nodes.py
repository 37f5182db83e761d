"""The node operations behind steps.Jwt, ArtifactInstall and Image (the nodes concern declares them, in
nodes.steps): JWT secrets, verified artifact installs, images pinned by digest.

Everything is judged from the one-command probe (ManagedState): a release is installed when its marker
is missing; a JWT repaired when its copies disagree, and jwt_restarts says which units that restarts.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation

from ..model import JwtPlan, NodePlan
from ..nodes import release_ok
from ..nodes.artifacts import (
    ArtifactError,
    incoming_path,
    install_script,
    local_artifact,
)
from ..nodes.jwt import jwt_script
from ..probe import HostState

# sha256 of zero bytes: an empty JWT file.
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def jwt_ok(jwt: JwtPlan, current: HostState) -> bool:
    """Every copy present, the same non-empty secret (empty copies agree, and no client can use them), 0600."""
    copies = [current.files.get(path) for path, _ in jwt.copies]
    return (
        all(c is not None for c in copies)
        and len({c.sha256 for c in copies if c}) == 1
        and all(c is not None and c.sha256 != EMPTY_SHA256 for c in copies)
        and all(
            c is not None and (c.mode, c.owner, c.group) == ("0600", o, o)
            for c, (_, o) in zip(copies, jwt.copies, strict=True)
        )
    )


def jwt_source(jwt: JwtPlan, current: HostState) -> str | None:
    """The sha256 jwt_script keeps: the one most non-empty copies hold, on a tie the last of them; None
    when there is no secret yet. The script decides on the host by comparing the files; this is the same
    rule on the probe's digests, so the deploy knows what a repair rewrites without reading the secret."""
    held = [s.sha256 for s in (current.files.get(path) for path, _ in jwt.copies) if s is not None]
    existing = [sha for sha in held if sha not in (None, EMPTY_SHA256)]
    best = max((existing.count(sha) for sha in existing), default=0)
    return next((sha for sha in reversed(existing) if existing.count(sha) == best), None)


def jwt_restarts(jwt: JwtPlan, current: HostState) -> tuple[str, ...]:
    """The units the repair must restart: those whose copy jwt_script rewrites or re-owns (every copy that
    differs from jwt_source), or all of them when there is none yet (a new secret).

    Not the whole pair each time: restarting both Ethereum beacon nodes at once stalls the devnet chain
    for good (docs/nodes.md). A beacon node's own copy repaired restarts it alone; when every copy differs,
    the execution client and one beacon node restart, and the other beacon node keeps the chain going."""
    if jwt_ok(jwt, current):
        return ()
    states = [current.files.get(path) for path, _ in jwt.copies]
    source = jwt_source(jwt, current)
    if source is None:
        return jwt.units
    return tuple(
        unit
        for unit, state, (_, owner) in zip(jwt.units, states, jwt.copies, strict=True)
        if state is None or state.sha256 != source or (state.mode, state.owner, state.group) != ("0600", owner, owner)
    )


@operation()
def ensure_jwt(jwt: JwtPlan, current: HostState):
    if not jwt_ok(jwt, current):
        yield f"sh -c {shlex.quote(jwt_script(jwt))}"


@operation()
def ensure_release(node: NodePlan, current: HostState):
    """Upload the artifact and unpack it into its release dir after the host has checked its sha256."""
    if release_ok(node, current):
        return
    try:
        local = local_artifact(node.artifact)
    except ArtifactError as exc:
        yield f"echo {shlex.quote(f'{node.client} {node.version}: {exc}')} >&2; exit 1"
        return
    incoming = incoming_path(node)
    binary = (node.executable or "").removeprefix(node.link + "/")
    yield f"mkdir -p {shlex.quote(incoming.rsplit('/', 1)[0])}"
    yield FileUploadCommand(str(local), incoming, remote_temp_filename=host.get_temp_filename(incoming))
    yield f"sh -c {shlex.quote(install_script(node, binary))}"


@operation()
def ensure_image(node: NodePlan):
    image = shlex.quote(f"{node.artifact.image}@{node.artifact.digest}")
    yield f"docker image inspect {image} >/dev/null 2>&1 || docker pull {image}"
