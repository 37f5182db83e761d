"""Host hardening, as data both engines and verify read: what becomes private to root, which toolchain
binaries become root-only (dpkg-statoverride), where systemd's manager defaults live. The files themselves
are rendered with the other concerns' (render.py, concern "hardening")."""

from __future__ import annotations

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
