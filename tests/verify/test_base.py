"""Base: packages, users, directories and every managed file exactly as rendered from the plan."""

from __future__ import annotations

import hashlib

from mevfleet import space
from mevfleet.desired import directories
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


def test_filesystems_have_room(host, plan):
    """Below DiskAlmostFull's threshold the deploy refuses the host (mevfleet.space): verify names it first."""
    filesystems = space.parse(host.run(space.probe_command(space.write_paths(plan))).stdout.splitlines())
    assert filesystems, "df answered for none of the paths the deploy writes to"
    full = space.short_of_room(filesystems)
    assert not full, "short of room: " + "; ".join(fs.describe() for fs in full)


def test_directories(host, plan):
    for path, mode, owner in directories(plan):
        d = host.file(path)
        assert d.is_directory, path
        assert (d.user, d.group, f"{d.mode:04o}") == (owner, owner, mode), path


def test_managed_files_match_plan(host, plan, facts):
    # Every file is checked and every difference reported, not only the first: one verify run lists all
    # the drift a deploy will repair.
    wrong = file_differences(host, host_files(plan, facts))
    assert not wrong, "\n".join(wrong)


def file_differences(host, files) -> list[str]:
    wrong = []
    for f in files:
        remote = host.file(f.path)
        if not remote.exists:
            wrong.append(f"{f.path}: missing")
            continue
        if remote.sha256sum != hashlib.sha256(f.content.encode()).hexdigest():
            wrong.append(f"{f.path}: content differs from plan")
        owner = (remote.user, remote.group, f"{remote.mode:04o}")
        if owner != (f.owner, f.group, f.mode):
            wrong.append(f"{f.path}: {':'.join(owner[:2])} {owner[2]}, planned {f.owner}:{f.group} {f.mode}")
    return wrong
