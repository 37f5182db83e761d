"""Artifacts on the control machine, and the host-side script that installs one release.

The deploy uploads every artifact from the control machine (hosts need no internet and no mirror
credentials): an inventory `path` is used as is; a `url` is downloaded once into a cache keyed by the
pinned sha256 and checked before it is cached. The host checks the sha256 again before unpacking, so a
file corrupted anywhere on the way never becomes a release.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import tempfile
import urllib.request
from pathlib import Path

from ..model import ArtifactPlan, NodePlan

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mevfleet" / "artifacts"
MARKER = ".mevfleet-sha256"  # written last into a release dir: its presence means "verified and complete"
DOWNLOAD_TIMEOUT_S = 120


class ArtifactError(RuntimeError):
    pass


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_artifact(artifact: ArtifactPlan) -> Path:
    """The artifact as a file on the control machine (downloaded into the cache when needed)."""
    if artifact.path:
        path = Path(os.path.expanduser(artifact.path))
        if not path.is_file():
            raise ArtifactError(f"artifact file {path} does not exist on the control machine")
        return path
    if not artifact.url or not artifact.sha256:
        raise ArtifactError("artifact has no url/path or no sha256 (unpinned)")
    cached = CACHE / artifact.sha256 / artifact.filename
    if cached.is_file():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False) as tmp:
        try:
            with urllib.request.urlopen(artifact.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                for block in iter(lambda: response.read(1 << 20), b""):
                    tmp.write(block)
        except OSError as exc:
            os.unlink(tmp.name)
            raise ArtifactError(f"cannot download {artifact.url}: {exc}") from exc
    got = file_sha256(Path(tmp.name))
    if got != artifact.sha256:
        os.unlink(tmp.name)
        raise ArtifactError(f"{artifact.url}: sha256 {got}, pinned {artifact.sha256}: not cached, not deployed")
    os.replace(tmp.name, cached)
    return cached


def incoming_path(node: NodePlan) -> str:
    return f"{node.release_dir.rsplit('/', 1)[0]}/.incoming/{node.artifact.sha256}-{node.artifact.filename}"


def install_script(node: NodePlan, binary: str) -> str:
    """Check the uploaded file's sha256 on the host, then unpack it into a new release directory.

    Nothing that is running is touched: a mismatch removes the upload and fails, leaving `current` (and
    the unit) as they were. The release appears under its final name only once complete.
    """
    q = shlex.quote
    incoming, release, want = incoming_path(node), node.release_dir, node.artifact.sha256 or ""
    name = node.artifact.filename
    if name.endswith((".tar.gz", ".tgz")):
        unpack = f"tar -xzf {q(incoming)} -C {q(release + '.tmp')}"
    elif name.endswith(".tar.bz2"):
        unpack = f"tar -xjf {q(incoming)} -C {q(release + '.tmp')}"
    else:  # a bare executable (bsc's geth_linux)
        unpack = f"cp {q(incoming)} {q(release + '.tmp/' + binary)}"
    what = f"{node.client} {node.version} ({name})"
    return "; ".join(
        [
            "set -e",
            f'got=$(sha256sum < {q(incoming)} | cut -d" " -f1)',
            f'if [ "$got" != {q(want)} ]; then rm -f {q(incoming)}; '
            f'echo "checksum mismatch for {what}: expected {want}, got $got; '
            f'nothing was switched, the running version is untouched" >&2; exit 1; fi',
            f"rm -rf {q(release + '.tmp')}",
            f"mkdir -p {q(release + '.tmp')}",
            unpack,
            f"chmod 0755 {q(release + '.tmp/' + binary)}",
            f"test -x {q(release + '.tmp/' + binary)}",
            f"echo {q(want)} > {q(release + '.tmp/' + MARKER)}",
            f"chown -R root:root {q(release + '.tmp')}",
            f"chmod -R go-w {q(release + '.tmp')}",
            f"rm -rf {q(release)}",
            f"mv {q(release + '.tmp')} {q(release)}",
            f"rm -f {q(incoming)}",
        ]
    )


def switch_script(link: str, previous: str, target: str) -> str:
    """Point `link` at `target` atomically, keeping the old target as `previous` (rollback's way back)."""
    q = shlex.quote
    return (
        f"mkdir -p {q(link.rsplit('/', 1)[0])} && "
        f'if [ -L {q(link)} ] && [ "$(readlink {q(link)})" != {q(target)} ]; then '
        f'ln -sfn "$(readlink {q(link)})" {q(previous + ".tmp")} && '
        f"mv -Tf {q(previous + '.tmp')} {q(previous)}; fi && "
        f"ln -sfn {q(target)} {q(link + '.tmp')} && mv -Tf {q(link + '.tmp')} {q(link)}"
    )
