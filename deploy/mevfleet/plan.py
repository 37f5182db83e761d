"""The host plan: one pure function from (inventory, catalog) to a typed, engine-neutral plan per host.

plan_fleet is that function: it reads no file, imports neither the agent nor the control plane, and
takes everything it needs besides the inventory as data (PlanInputs: the catalog and the release
versions). compile_plan gathers those inputs (mevfleet.inputs), plans, and has the agent's and control
plane's own models judge the result.

This module only composes: the service registry (registry.py) resolves each host's services and ports;
each concern plans its own slice from it (base.py, kernel.py, timesync.py, firewall.py, monitoring.py,
nodes/planning.py, agent.py, control.py), so ports, firewall openings and scrape targets derive from one
registry and no list is kept twice. Engines (pyinfra, Ansible) and the testinfra verify suite read the
plan and nothing else.
"""

from __future__ import annotations

from .agent import agent_plan
from .agent import needs_packages as agent_packages
from .base import base_slice
from .catalog import Catalog
from .control import control_plan
from .control import needs_packages as control_packages
from .errors import InventoryError, Problem
from .firewall import firewall_plan
from .inventory import Host, Inventory
from .kernel import kernel_settings
from .model import FleetPlan, HostPlan, LogSender, PlanInputs, ServicePlan
from .monitoring import log_senders, loki_push_urls, scrape_targets
from .nodes.pair import real_client_problems, with_real_clients
from .nodes.planning import flashblocks, node_plans, removed_units
from .registry import control_host, host_services, is_ip, listen_ip, loopback_admin_api, present
from .ssh import ssh_plan
from .timesync import time_plan


def compile_plan(inventory: Inventory, catalog: Catalog | None = None, inputs: PlanInputs | None = None) -> FleetPlan:
    """Resolve every host. Raises InventoryError (naming file, host, field) on any conflict.

    Gathers the inputs (the package's catalog unless one is given, the release versions) unless they are
    handed in, plans (plan_fleet, pure) and has the agent's and control plane's models judge the result."""
    from .inputs import gather, judge

    inputs = inputs or gather(catalog)
    fleet, problems = plan_fleet(inventory, inputs)
    problems += judge(fleet, inventory, inputs.catalog)
    if problems:
        raise InventoryError(problems)
    return fleet


def plan_fleet(inventory: Inventory, inputs: PlanInputs) -> tuple[FleetPlan, list[Problem]]:
    """The pure part: no file read, no other package imported. Raises InventoryError when hosts cannot be
    planned at all (port collisions, addresses); returns the plan with the problems found while planning
    each host, for the caller to report together with its own."""
    declared = inputs.catalog
    catalog = with_real_clients(declared, inventory)
    problems: list[Problem] = real_client_problems(inventory, catalog)
    services = {
        name: loopback_admin_api(
            host_services(host, catalog, inventory.path, problems, inventory.fleet.nodes, present(inventory, name)),
            inventory.fleet.monitoring.prometheus_admin_api,
        )
        for name, host in inventory.hosts.items()
    }
    monitoring = inventory.monitoring_hosts()
    for host in monitoring:
        if not is_ip(host.address):
            problems.append(
                Problem(
                    inventory.path,
                    host.name,
                    "address",
                    "a monitoring host needs an IP address (firewall rules)",
                )
            )
    if monitoring or inventory.fleet.private_networks:
        problems.extend(
            Problem(
                inventory.path,
                host.name,
                "listen_address",
                f"address {host.address!r} is a DNS name and the fleet reaches this host's RPC and metrics: "
                "set listen_address to the host's private IP (services never listen on 0.0.0.0)",
            )
            for host in inventory.hosts.values()
            if listen_ip(host) is None
        )
    if problems:
        raise InventoryError(problems)

    senders = log_senders(inventory, catalog, problems)
    plans = {}
    for name, host in inventory.hosts.items():
        plan = _host_plan(host, services[name], inventory, catalog, services, monitoring, senders)
        nodes, jwts = node_plans(host, plan, inventory, catalog, problems, inputs.agent_version)
        plan = plan.model_copy(
            update={"nodes": tuple(nodes), "jwts": tuple(jwts), "remove": removed_units(plan, nodes, declared)}
        )
        plans[name] = plan.model_copy(
            update={"agent": agent_plan(host, plan, inventory, catalog, inputs.agent_version)}
        )
    control = control_host(inventory)
    if control is not None:
        plans[control] = plans[control].model_copy(
            update={"control": control_plan(inventory.hosts[control], plans, inventory, inputs.control_version)}
        )
    return FleetPlan(inventory=inventory.path, hosts=plans), problems


def _host_plan(
    host: Host,
    services: list[ServicePlan],
    inventory: Inventory,
    catalog: Catalog,
    all_services: dict[str, list[ServicePlan]],
    monitoring: list[Host],
    senders: tuple[LogSender, ...] = (),
) -> HostPlan:
    is_monitoring = "monitoring" in host.roles
    return HostPlan(
        name=host.name,
        address=host.address,
        listen_address=listen_ip(host) or "127.0.0.1",
        roles=host.roles,
        chains=host.chains,
        ssh=ssh_plan(host),
        # packages, users, directories: the base concern's slice, with what other concerns need installed.
        **base_slice(services, catalog, (agent_packages, control_packages)),
        **kernel_settings(host, catalog)._asdict(),
        services=tuple(services),
        firewall=firewall_plan(host, services, inventory, monitoring, all_services, senders),
        scrape_targets=tuple(scrape_targets(inventory, all_services)) if is_monitoring else (),
        time=time_plan(host, inventory, monitoring),
        monitoring_addresses=tuple(m.address for m in monitoring),
        loki_push_urls=loki_push_urls(monitoring, all_services),
        monitoring=inventory.fleet.monitoring,
        log_senders=senders if is_monitoring else tuple(s for s in senders if s.name == host.name),
        flashblocks_ws=flashblocks(host, inventory, catalog),
    )
