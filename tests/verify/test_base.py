"""Base: packages, users, directories and every managed file exactly as rendered from the plan."""

from __future__ import annotations

import hashlib

from mevfleet.engine.base import directories
from mevfleet.render import host_files


def test_packages_installed(host, plan):
    missing = [p for p in plan.packages if not host.package(p).is_installed]
    assert not missing, f"packages not installed: {missing}"


def test_service_users(host, plan):
    for user in plan.users:
        u = host.user(user.name)
        assert u.exists, user.name
        assert u.home == user.home
        assert u.shell == "/usr/sbin/nologin", f"{user.name} can log in"


def test_directories(host, plan):
    for path, mode, owner in directories(plan):
        d = host.file(path)
        assert d.is_directory, path
        assert (d.user, d.group, f"{d.mode:04o}") == (owner, owner, mode), path


def test_managed_files_match_plan(host, plan, facts):
    for f in host_files(plan, facts):
        remote = host.file(f.path)
        assert remote.exists, f.path
        assert remote.sha256sum == hashlib.sha256(f.content.encode()).hexdigest(), f"{f.path} differs from plan"
        assert (remote.user, remote.group, f"{remote.mode:04o}") == (f.owner, f.group, f.mode), f.path
