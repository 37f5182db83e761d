"""Render every file a host gets from templates/, for both engines (byte-identical by construction)."""

from __future__ import annotations

import ipaddress
import shlex
from functools import cache

import jinja2
from pydantic import BaseModel, ConfigDict

from . import TEMPLATES_DIR
from .model import HostPlan
from .monitoring import monitoring_files
from .shapes import control_character

# Concerns: each names the files that share one post-change action in the engines.
Concern = str

# Debian node_exporter's textfile directory (its collector reads every *.prom file there).
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
# chrony's own view of time, written there by a timer on every host (templates/time): how often, in step
# with node_exporter's 15 s scrape.
CHRONY_METRICS_SCRIPT = "/usr/local/sbin/mevfleet-chrony-metrics"
CHRONY_METRICS_UNIT = "mevfleet-chrony-metrics.service"
CHRONY_METRICS_TIMER = "mevfleet-chrony-metrics.timer"
CHRONY_METRICS_EVERY_S = 15


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


class RenderError(ValueError):
    """A value that would leave its line or its quoting; the inventory's shapes (shapes.py) refuse such
    values first, so this is the second line of defence and names the template."""


class Block(str):
    """Text rendered as several lines on purpose (a YAML document dumped by yaml.safe_dump)."""


def _one_line(value: object) -> object:
    # Every {{ expression }} of every template passes here: a value may not end its line.
    if isinstance(value, str) and not isinstance(value, Block):
        bad = control_character(value)
        if bad:
            raise RenderError(f"{value!r} contains the control character {bad}")
    return value


def _shell_word(value: object) -> str:
    """One shell word, whatever the value holds (for templates of scripts)."""
    return shlex.quote(str(value))


def _unit_words(value: object) -> str:
    """Words of a systemd command line: systemd expands % specifiers and $ variables and reads quotes
    and backslashes itself, so those are escaped or refused (the inventory's shapes never let them in)."""
    text = str(value)
    for bad in ('"', "'", "\\"):
        if bad in text:
            raise RenderError(f"{text!r}: {bad} has no safe meaning on a unit's command line")
    if ";" in text.split():
        raise RenderError(f"{text!r}: a lone ';' would separate commands on a unit's command line")
    return text.replace("%", "%%").replace("$", "$$")


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=_one_line,
    )
    env.filters["sh"] = _shell_word
    env.filters["unit_words"] = _unit_words
    env.tests["v4"] = lambda net: ipaddress.ip_network(net, strict=False).version == 4
    env.tests["v6"] = lambda net: ipaddress.ip_network(net, strict=False).version == 6
    return env


def render(template: str, **context: object) -> str:
    try:
        return _env().get_template(template).render(**context)
    except RenderError as exc:
        raise RenderError(f"{template}: {exc}") from None


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
        # chrony's measured offsets for Prometheus (node_exporter's textfile collector, every host has one).
        file(
            CHRONY_METRICS_SCRIPT,
            "time/mevfleet-chrony-metrics.sh.j2",
            "time",
            mode="0755",
            textfile_dir=TEXTFILE_DIR,
        ),
        file(
            f"/etc/systemd/system/{CHRONY_METRICS_UNIT}",
            "time/mevfleet-chrony-metrics.service.j2",
            "time",
            textfile_dir=TEXTFILE_DIR,
        ),
        file(
            f"/etc/systemd/system/{CHRONY_METRICS_TIMER}",
            "time/mevfleet-chrony-metrics.timer.j2",
            "time",
            every_s=CHRONY_METRICS_EVERY_S,
        ),
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
    from .control import control_files

    for spec in [*monitoring_files(plan, facts.container), *control_files(plan)]:
        content = spec.content if spec.template is None else render(spec.template, plan=plan, **spec.context)
        files.append(
            ManagedFile(**spec.model_dump(include={"path", "concern", "mode", "owner", "group"}), content=content)
        )
    from .agent import agent_files

    for path, template, context, mode, group in agent_files(plan):
        content = render(template, **context)
        files.append(ManagedFile(path=path, content=content, mode=mode, group=group, concern="agent"))
    return files
