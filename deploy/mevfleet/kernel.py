"""The kernel concern: sysctl.d files (one per concern of the tuning profile), limits, and the boot-time
tuning unit (THP, CPU governor, hugepages). engine/kernel.py applies them and says what a container defers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import FileSpec, HostPlan

if TYPE_CHECKING:
    from .render import HostFacts


def kernel_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    """sysctl.d files (concern "sysctl": applied live where the host may), limits (re-executing systemd
    reads them) and the tuning script with its unit (concern "kernel")."""
    return [
        *(
            FileSpec(path=f.path, concern="sysctl", template="kernel/sysctl.conf.j2", context={"file": f})
            for f in plan.sysctl_files
        ),
        FileSpec(path="/etc/security/limits.d/90-mevfleet.conf", concern="limits", template="kernel/limits.conf.j2"),
        FileSpec(
            path="/etc/systemd/system.conf.d/90-mevfleet-limits.conf",
            concern="limits",
            template="kernel/systemd-limits.conf.j2",
        ),
        FileSpec(
            path="/usr/local/sbin/mevfleet-kernel-tuning",
            concern="kernel",
            template="kernel/mevfleet-kernel-tuning.sh.j2",
            mode="0755",
        ),
        FileSpec(
            path="/etc/systemd/system/mevfleet-kernel-tuning.service",
            concern="kernel",
            template="kernel/mevfleet-kernel-tuning.service.j2",
        ),
    ]
