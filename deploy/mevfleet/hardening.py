"""Host hardening, as data both engines and verify read: its files (login.defs, banner, core dumps, PAM,
unattended upgrades...), what becomes private to root, which toolchain binaries become root-only
(dpkg-statoverride), where systemd's manager defaults live."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import FileSpec, HostPlan

if TYPE_CHECKING:
    from .render import HostFacts
    from .steps import Given, Step

# systemd reads its manager defaults only when it (re-)executes.
SYSTEMD_MANAGER_CONF = "/etc/systemd/system.conf.d/"
# path -> the most permissive mode allowed; stricter modes an operator set are left alone.
PRIVATE_TO_ROOT = {
    "/etc/crontab": "0600",
    "/etc/cron.d": "0700",
    "/etc/cron.hourly": "0700",
    "/etc/cron.daily": "0700",
    "/etc/cron.weekly": "0700",
    "/etc/cron.monthly": "0700",
    "/etc/cron.yearly": "0700",
    "/etc/ssh/sshd_config": "0600",
}
# Real files (not the alternatives/symlinks pointing at them) under /usr/bin/<triplet>-: binutils'
# assembler and linkers, and Debian 12's default C and C++ compilers.
TOOLCHAIN = ("as", "ld.bfd", "ld.gold", "gcc-12", "g++-12")
TOOLCHAIN_MODE = "0750"

# path -> template under templates/hardening, all of concern "hardening" (engine/hardening.py applies them).
FILES = (
    ("/etc/login.defs", "login.defs.j2"),
    ("/etc/issue", "banner.j2"),
    ("/etc/issue.net", "banner.j2"),
    ("/etc/security/limits.d/91-mevfleet-hardening.conf", "limits.conf.j2"),
    ("/etc/systemd/system.conf.d/91-mevfleet-hardening.conf", "systemd-core.conf.j2"),
    ("/etc/systemd/coredump.conf.d/90-mevfleet.conf", "coredump.conf.j2"),
    ("/etc/profile.d/mevfleet-hardening.sh", "profile.sh.j2"),
    ("/etc/modprobe.d/mevfleet-hardening.conf", "modprobe.conf.j2"),
    ("/etc/security/pwquality.conf.d/90-mevfleet.conf", "pwquality.conf.j2"),
    ("/etc/apt/apt.conf.d/52mevfleet-unattended-upgrades", "unattended-upgrades.j2"),
    ("/etc/needrestart/conf.d/90-mevfleet.conf", "needrestart.conf.j2"),
    ("/etc/default/debsums", "debsums.j2"),
)


def hardening_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    return [FileSpec(path=path, concern="hardening", template=f"hardening/{template}") for path, template in FILES]


def steps(plan: HostPlan, given: Given) -> tuple[Step, ...]:
    """The hardening files (read afresh by PAM, sshd, apt and the shadow tools on next use; systemd's manager
    defaults only on re-exec), then permissions on files that are not ours to write."""
    from .steps import Files, RootOnly, Select

    return (
        Files(name="Hardening files", files=Select(concern="hardening", exclude_prefixes=(SYSTEMD_MANAGER_CONF,))),
        Files(
            name="No core dumps from services",
            files=Select(concern="hardening", prefixes=(SYSTEMD_MANAGER_CONF,)),
            then_name="Re-execute systemd for DefaultLimitCORE",
            then=("systemctl daemon-reexec",),
        ),
        RootOnly(
            name="Cron, sshd_config and toolchain private to root",
            private=tuple(PRIVATE_TO_ROOT.items()),
            tools=TOOLCHAIN,
            mode=TOOLCHAIN_MODE,
        ),
    )
