"""Packages, system users, directories: the operations behind steps.Packages, Users and Directories."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import Users
from pyinfra.operations import apt

from ..model import SystemUser
from ..probe import HostState


def install_missing(packages: list[str] | tuple[str, ...], no_recommends: bool = False) -> None:
    installed = host.get_fact(DebPackages)
    missing = [p for p in packages if p not in installed]
    # Refresh the index only when something must be installed, so a no-op run stays a no-op.
    if missing:
        apt.packages(
            name=f"Install {', '.join(missing)}" + (" (without recommends)" if no_recommends else ""),
            packages=missing,
            update=True,
            no_recommends=no_recommends,
            _env={"DEBIAN_FRONTEND": "noninteractive"},
        )


@operation()
def ensure_system_users(users: Iterable[SystemUser]):
    """One locked system user per service, with a private home under /var/lib."""
    existing = host.get_fact(Users)
    for user in users:
        name, home = shlex.quote(user.name), shlex.quote(user.home)
        have = existing.get(user.name)
        if have is None:
            yield (f"useradd --system --user-group --home-dir {home} --create-home --shell /usr/sbin/nologin {name}")
        elif have.get("home") != user.home or have.get("shell") != "/usr/sbin/nologin":
            yield f"usermod --home {home} --shell /usr/sbin/nologin {name}"


@operation()
def ensure_directories(directories: Iterable[tuple[str, str, str]], current: HostState):
    for path, mode, owner in directories:
        have = current.dirs.get(path)
        if have is None:
            yield f"install -d -m {mode} -o {owner} -g {owner} {shlex.quote(path)}"
        elif (have.mode, have.owner, have.group) != (mode, owner, owner):
            yield f"chown {owner}:{owner} {shlex.quote(path)} && chmod {mode} {shlex.quote(path)}"
