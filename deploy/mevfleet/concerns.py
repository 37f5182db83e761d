"""The concerns, in the order a deploy applies them: one place, read by the pyinfra engine (engine/host.py)
and checked against the Ansible engine's site playbook (roles/, ansible_engine/playbooks/site.yml) by
tests/unit/test_concerns.py.

Each concern module declares its steps from the host plan (`steps(plan, given)`, mevfleet.steps); the
engine interprets them by kind and names no concern. Order matters where one concern reads what another
sets up: the base concern's users and directories come first and what the plan dropped is removed before
anything planned starts; monitoring comes before logs, so the shippers restart after the services they ship
to; the agent's bus secrets and the control plane's come after the nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from . import agent, base, control, firewall, hardening, kernel, logs, monitoring, nodes, ssh, timesync
from .model import HostPlan
from .steps import Given, Step


class Concern(NamedTuple):
    name: str  # its role in roles/
    steps: Callable[[HostPlan, Given], tuple[Step, ...]]


CONCERNS: tuple[Concern, ...] = (
    Concern("base", base.steps),
    Concern("firewall", firewall.steps),
    Concern("ssh", ssh.steps),
    Concern("hardening", hardening.steps),
    Concern("kernel", kernel.steps),
    Concern("time", timesync.steps),
    Concern("monitoring", monitoring.steps),
    Concern("logs", logs.steps),
    Concern("nodes", nodes.steps),
    Concern("agent", agent.steps),
    Concern("control", control.steps),
)

# After every concern (site.yml's post_tasks): unit files and drop-ins only as planned.
FINALLY: tuple[Step, ...] = base.overrides()
