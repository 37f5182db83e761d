"""Build the devnet test-host image: Debian with systemd as PID 1 and sshd, made from debootstrap.

No container registry is reachable here, so the image is built from nothing: debootstrap a root
filesystem, configure it in a chroot, tar it and import it. The tag carries a hash of the recipe
(this file and image.yml), so a built image is reused until the recipe changes.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import docker
import docker.errors
import yaml
from pydantic import BaseModel, ConfigDict, field_validator

log = logging.getLogger(__name__)

IMAGE_REPOSITORY = "mevfleet-testhost"
_HERE = Path(__file__).resolve().parent
SPEC_PATH = _HERE / "image.yml"
# Everything that decides the image's content; hashed into its tag.
RECIPE_FILES = (SPEC_PATH, _HERE / "image.py")

# What the harness itself needs on every host: systemd as PID 1, sshd to reach it, python3 for the
# deploy engine's facts, the rest for operators poking around.
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "procps",
    "ca-certificates",
    "sudo",
    "python3-minimal",
    "less",
)

# Units masked in the image, each with the reason it cannot run in an unprivileged container.
MASKED_UNITS = {
    # Applies /etc/sysctl.d at boot. Most kernel knobs are not namespaced: if /proc/sys were ever
    # writable in a test host, the deploy's tuning would land on the machine running the harness.
    "systemd-sysctl.service": "would write this machine's kernel settings",
}

# docker import (engine 20.10) accepts no STOPSIGNAL; the harness sets SIGRTMIN+3 per container.
IMAGE_CHANGES = ('CMD ["/sbin/init"]', "ENV container=docker")

SSHD_POLICY = """\
# Test hosts are reached only with the harness key, as root.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
"""

# The image ships no SSH host keys, so that every host generates its own at first boot.
HOST_KEY_UNIT_NAME = "mevfleet-ssh-host-keys.service"
HOST_KEY_UNIT = """\
[Unit]
Description=Generate this host's own SSH host keys (the image ships none)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
RequiredBy=ssh.service
"""

# The caller's PATH (a venv) and locale mean nothing inside the fresh root filesystem.
_CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}

_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


class ImageError(RuntimeError):
    """The test-host image could not be built."""


class ImageSpec(BaseModel):
    """image.yml: where the root filesystem comes from and what is baked into it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str
    mirror: str
    security_mirror: str
    preinstalled: tuple[str, ...]

    @field_validator("preinstalled")
    @classmethod
    def _package_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        # The names end up in debootstrap's comma-separated --include list.
        bad = [name for name in names if not _PACKAGE_NAME.match(name)]
        if bad:
            raise ValueError(f"not Debian package names: {bad}")
        return names

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(BASE_PACKAGES + self.preinstalled))


def load_spec(path: Path = SPEC_PATH) -> ImageSpec:
    return ImageSpec.model_validate(yaml.safe_load(path.read_text()))


def recipe_digest() -> str:
    digest = hashlib.sha256()
    for path in RECIPE_FILES:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def image_tag() -> str:
    return f"{IMAGE_REPOSITORY}:{recipe_digest()}"


def ensure_image(client: docker.DockerClient) -> str:
    """Return the tag of the test-host image for the current recipe, building it only if missing."""
    tag = image_tag()
    if _image_exists(client, tag):
        return tag
    # Two processes (parallel test workers, CLI next to tests) must not both spend minutes building.
    with _build_lock(tag):
        if not _image_exists(client, tag):
            build_image(client, tag, load_spec())
    return tag


def _image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


@contextlib.contextmanager
def _build_lock(tag: str) -> Iterator[None]:
    lock_path = Path(tempfile.gettempdir()) / f"{tag.replace(':', '-')}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_image(client: docker.DockerClient, tag: str, spec: ImageSpec) -> None:
    _require_build_tools()
    started = time.monotonic()
    log.info("building %s from Debian %s (debootstrap, takes minutes)", tag, spec.suite)
    # /var/tmp: the root filesystem is a few hundred MB, more than a tmpfs /tmp may hold.
    with tempfile.TemporaryDirectory(prefix="mevfleet-image-", dir="/var/tmp") as work:
        rootfs = Path(work) / "rootfs"
        tarball = Path(work) / "rootfs.tar"
        debootstrap_rootfs(spec, rootfs)
        log.info("debootstrap done after %.0f s; configuring", time.monotonic() - started)
        configure_rootfs(spec, rootfs)
        pack_rootfs(rootfs, tarball)
        log.info("importing %s (%d MB)", tag, tarball.stat().st_size // 2**20)
        import_rootfs(client, tarball, tag)
    log.info("built %s in %.0f s", tag, time.monotonic() - started)


def _require_build_tools() -> None:
    if os.geteuid() != 0:
        raise ImageError("building the test-host image needs root (debootstrap and chroot)")
    missing = [tool for tool in ("debootstrap", "chroot", "tar") if shutil.which(tool) is None]
    if missing:
        raise ImageError(f"building the test-host image needs {missing} on PATH; run deploy/bootstrap.sh")


def debootstrap_rootfs(spec: ImageSpec, rootfs: Path) -> None:
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(spec.packages)}",
            spec.suite,
            str(rootfs),
            spec.mirror,
        ],
        "debootstrap",
    )


def configure_rootfs(spec: ImageSpec, rootfs: Path) -> None:
    write_apt_sources(spec, rootfs)
    write_sshd_policy(rootfs)
    forget_build_identity(rootfs)
    (rootfs / "etc/systemd/system" / HOST_KEY_UNIT_NAME).write_text(HOST_KEY_UNIT)
    # systemctl works offline in a chroot: it only edits unit symlinks, so nothing is mounted into
    # the root filesystem (and nothing mounted can be swept up by the cleanup of the build dir).
    _chroot(rootfs, ["systemctl", "enable", HOST_KEY_UNIT_NAME], "enable the host key unit")
    _chroot(rootfs, ["systemctl", "mask", *MASKED_UNITS], "mask units")
    drop_package_caches(rootfs)


def write_apt_sources(spec: ImageSpec, rootfs: Path) -> None:
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {spec.mirror} {spec.suite} main\n"
        f"deb {spec.mirror} {spec.suite}-updates main\n"
        f"deb {spec.security_mirror} {spec.suite}-security main\n"
    )


def write_sshd_policy(rootfs: Path) -> None:
    # sshd_config includes sshd_config.d first, and sshd keeps the first value it reads.
    (rootfs / "etc/ssh/sshd_config.d/mevfleet-devnet.conf").write_text(SSHD_POLICY)


def forget_build_identity(rootfs: Path) -> None:
    """Remove what debootstrap generated or copied from the build machine, so each host has its own."""
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    # An empty machine-id makes systemd generate a fresh one at every host's first boot.
    (rootfs / "etc/machine-id").write_text("")
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    dbus_id.unlink(missing_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    # Copied from the build machine by debootstrap; Docker bind-mounts its own into each container.
    (rootfs / "etc/hostname").write_text("localhost\n")
    (rootfs / "etc/resolv.conf").write_text("")


def drop_package_caches(rootfs: Path) -> None:
    # Stale package lists would send the deploy to versions the mirror no longer has; it updates
    # them itself. The .deb files are only debootstrap's downloads.
    _chroot(rootfs, ["apt-get", "clean"], "apt-get clean")
    lists = rootfs / "var/lib/apt/lists"
    for entry in lists.iterdir():
        if entry.is_file():
            entry.unlink()


def pack_rootfs(rootfs: Path, tarball: Path) -> None:
    # xattrs carry file capabilities (e.g. ping's cap_net_raw). /dev is Docker's to populate.
    _run(
        [
            "tar",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--exclude=./dev/*",
            "-C",
            str(rootfs),
            "-cf",
            str(tarball),
            ".",
        ],
        "tar of the root filesystem",
    )


def import_rootfs(client: docker.DockerClient, tarball: Path, tag: str) -> None:
    repository, _, version = tag.partition(":")
    output = client.api.import_image(src=str(tarball), repository=repository, tag=version, changes=list(IMAGE_CHANGES))
    if not _image_exists(client, tag):
        raise ImageError(f"docker import of {tag} failed: {output}")


def _chroot(rootfs: Path, argv: Sequence[str], what: str) -> None:
    _run(["chroot", str(rootfs), *argv], f"{what} (in the image chroot)", env=_CHROOT_ENV)


def _run(argv: Sequence[str], what: str, env: dict[str, str] | None = None) -> None:
    """Run a build step, logging its output at debug level and quoting its tail if it fails."""
    tail: collections.deque[str] = collections.deque(maxlen=25)
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env
    ) as proc:
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            tail.append(line.rstrip())
            log.debug("%s: %s", argv[0], tail[-1])
    if proc.returncode != 0:
        output = "\n".join(tail)
        raise ImageError(f"{what} failed with exit code {proc.returncode}:\n{output}")
