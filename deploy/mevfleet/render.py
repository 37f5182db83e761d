"""Render every file a host gets from templates/, for both engines (byte-identical by construction)."""

from __future__ import annotations

import ipaddress
from functools import cache

import jinja2
from pydantic import BaseModel, ConfigDict

from . import TEMPLATES_DIR
from .monitoring import monitoring_files
from .plan import HostPlan

# Concerns: each names the files that share one post-change action in the engines.
Concern = str


class HostFacts(BaseModel):
    """What the plan cannot know and the deploy reads from the host once."""

    model_config = ConfigDict(frozen=True)

    container: bool = False
    proc_sys_writable: bool = True


class ManagedFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    content: str
    mode: str = "0644"
    owner: str = "root"
    group: str = "root"
    concern: Concern


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.tests["v4"] = lambda net: ipaddress.ip_network(net, strict=False).version == 4
    env.tests["v6"] = lambda net: ipaddress.ip_network(net, strict=False).version == 6
    return env


def render(template: str, **context: object) -> str:
    return _env().get_template(template).render(**context)


def host_files(plan: HostPlan, facts: HostFacts) -> list[ManagedFile]:
    """Every file mevfleet manages on the host, in apply order."""

    def file(path: str, template: str, concern: Concern, mode: str = "0644", **extra: object) -> ManagedFile:
        content = render(template, plan=plan, facts=facts, **extra)
        return ManagedFile(path=path, content=content, mode=mode, concern=concern)

    files = [
        ManagedFile(path="/etc/mevfleet/host-plan.json", content=plan.model_dump_json(indent=2) + "\n", concern="plan"),
        *(file(f.path, "kernel/sysctl.conf.j2", "sysctl", file=f) for f in plan.sysctl_files),
        file("/etc/security/limits.d/90-mevfleet.conf", "kernel/limits.conf.j2", "limits"),
        file("/etc/systemd/system.conf.d/90-mevfleet-limits.conf", "kernel/systemd-limits.conf.j2", "limits"),
        file(
            "/usr/local/sbin/mevfleet-kernel-tuning",
            "kernel/mevfleet-kernel-tuning.sh.j2",
            "kernel",
            mode="0755",
        ),
        file(
            "/etc/systemd/system/mevfleet-kernel-tuning.service",
            "kernel/mevfleet-kernel-tuning.service.j2",
            "kernel",
        ),
        file("/etc/chrony/chrony.conf", "time/chrony.conf.j2", "time"),
        file("/etc/default/chrony", "time/chrony-default.j2", "time"),
        file("/etc/systemd/journald.conf.d/90-mevfleet.conf", "logs/journald.conf.j2", "journald"),
        file("/etc/logrotate.d/mevfleet", "logs/logrotate.j2", "logrotate"),
        file("/etc/ssh/sshd_config.d/90-mevfleet.conf", "host/sshd.conf.j2", "ssh", mode="0600"),
        file(
            "/usr/local/sbin/mevfleet-firewall-apply",
            "firewall/firewall-apply.sh.j2",
            "firewall",
            mode="0755",
        ),
        file("/etc/nftables.conf", "firewall/nftables.conf.j2", "firewall", mode="0600"),
        # Host hardening beyond SSH and the firewall (engine/hardening.py applies it).
        *(
            file(path, f"hardening/{template}", "hardening")
            for path, template in (
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
        ),
    ]
    if facts.container:
        files.append(
            file(
                "/etc/systemd/system/chrony.service.d/90-mevfleet-container.conf",
                "time/chrony-container.conf.j2",
                "time",
            )
        )
    from .nodes import node_files  # nodes renders with this module's helpers: import here, not at the top

    files.extend(node_files(plan))
    for spec in monitoring_files(plan, facts.container):
        content = spec.content if spec.template is None else render(spec.template, plan=plan, **spec.context)
        files.append(
            ManagedFile(**spec.model_dump(include={"path", "concern", "mode", "owner", "group"}), content=content)
        )
    from .agent import agent_files

    for path, template, context, mode, group in agent_files(plan):
        content = render(template, **context)
        files.append(ManagedFile(path=path, content=content, mode=mode, group=group, concern="agent"))
    return files
