"""Render every file a host gets from templates/, for both engines (byte-identical by construction)."""

from __future__ import annotations

import ipaddress
import shlex
from functools import cache

import jinja2
from pydantic import BaseModel, ConfigDict

from . import TEMPLATES_DIR
from .model import FileSpec, HostPlan
from .shapes import control_character

# Concerns: each names the files that share one post-change action in the engines.
Concern = str

PLAN_FILE = "/etc/mevfleet/host-plan.json"


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
    """Every file mevfleet manages on the host, in apply order: the plan itself, then each concern's
    declared files (model.FileSpec), all rendered the same way."""
    # The concern modules use this module's helpers (Block, HostFacts): imported here, not at the top.
    from .agent import agent_files
    from .control import control_files
    from .firewall import firewall_files
    from .hardening import hardening_files
    from .kernel import kernel_files
    from .logs import logs_files
    from .monitoring import monitoring_files
    from .nodes import node_files
    from .ssh import ssh_files
    from .timesync import time_files

    # The host's copy leaves out where the control machine keeps its key and known_hosts (its own paths).
    content = plan.model_dump_json(indent=2, exclude={"ssh": {"key", "known_hosts"}}) + "\n"
    declared = [FileSpec(path=PLAN_FILE, concern="plan", content=content)]
    for concern_files in (
        kernel_files,
        time_files,
        logs_files,
        ssh_files,
        firewall_files,
        hardening_files,
        node_files,
        monitoring_files,
        control_files,
        agent_files,
    ):
        declared += concern_files(plan, facts)
    return [managed(spec, plan, facts) for spec in declared]


def managed(spec: FileSpec, plan: HostPlan, facts: HostFacts) -> ManagedFile:
    """A declared file as it lands on the host: its template rendered with the host's plan and facts and
    the spec's context, or its verbatim content."""
    content = spec.content if spec.template is None else render(spec.template, plan=plan, facts=facts, **spec.context)
    assert content is not None  # FileSpec holds a template or content
    return ManagedFile(
        path=spec.path, content=content, mode=spec.mode, owner=spec.owner, group=spec.group, concern=spec.concern
    )
