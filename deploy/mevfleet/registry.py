"""The service registry: every service a host runs with its ports and their exposure, resolved from the
catalog's chain and fleet services and the inventory (overrides, shifts, devnet stand-ins). Ports, firewall
openings, scrape targets and the nodes' and agent's listeners all derive from it, so no list is kept twice.

Also where a host listens (listen_ip, bind_host) and which host runs the control plane: facts every
concern's planning reads. Imports only the catalog, the inventory and the plan's types.
"""

from __future__ import annotations

import ipaddress

from .catalog import Catalog, ServiceSpec
from .errors import Problem
from .inventory import Host, Inventory
from .model import HostPlan, PortBinding, ServicePlan


def listen_ip(host: Host) -> str | None:
    """The IP a host's fleet-facing services listen on, or None for a host known only by DNS name."""
    return host.listen_address or (host.address if is_ip(host.address) else None)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _bindings(prefix: str, service: str, spec: ServiceSpec, shift: int = 0) -> list[PortBinding]:
    return [
        PortBinding(
            key=f"{prefix}.{service}.{name}",
            service=service,
            name=name,
            port=p.port + shift,
            port_end=None if p.port_end is None else p.port_end + shift,
            protocols=p.protocols,
            exposure=p.exposure,
            scrape=p.scrape,
            scrape_interval=p.scrape_interval,
        )
        for name, p in spec.ports.items()
    ]


def _occupied(bindings: list[PortBinding]) -> set[tuple[str, int]]:
    return {(proto, port) for b in bindings for proto in b.protocols for port in b.span()}


def present(inventory: Inventory, host: str | None = None) -> frozenset[str]:
    """What the fleet runs that some services need (catalog `needs`): its log shipper; the control plane
    on the control host (the first monitoring host) and, for the `control` exposure, on every host of a
    fleet that has one."""
    control = control_host(inventory)
    plane = set() if control is None else {"control-plane:fleet", *(["control-plane"] if host == control else [])}
    return frozenset({inventory.fleet.monitoring.log_shipper or "alloy", *plane})


def control_host(inventory: Inventory) -> str | None:
    """The host that runs the fleet's control plane: the first monitoring host (docs/control-plane.md)."""
    monitoring = inventory.monitoring_hosts()
    return monitoring[0].name if monitoring else None


def host_services(
    host: Host,
    catalog: Catalog,
    path: str,
    problems: list[Problem],
    nodes: str = "mainnet",
    present: frozenset[str] = frozenset({"alloy"}),
) -> list[ServicePlan]:
    """The host's service registry: fleet services first, then chains in catalog order."""
    fleet_specs = dict(catalog.fleet.every_host)
    # The searcher agent (node_host services) runs on every host with a chain, EVM or Solana.
    if any(c in catalog.chains for c in host.chains):
        fleet_specs.update(catalog.fleet.node_host)
    if "monitoring" in host.roles:
        fleet_specs.update({k: s for k, s in catalog.fleet.monitoring.items() if s.needs is None or s.needs in present})

    plans: list[ServicePlan] = []
    taken: dict[tuple[str, int], str] = {}
    fleet_has_control = "control-plane:fleet" in present

    def claim(bindings: list[PortBinding]) -> None:
        for b in bindings:
            for proto in b.protocols:
                for port in b.span():
                    owner = taken.get((proto, port))
                    if owner is not None and owner != b.key:
                        problems.append(
                            Problem(
                                path,
                                host.name,
                                f"ports.{b.key}",
                                f"{proto}/{port} is already used by {owner}",
                            )
                        )
                    taken[(proto, port)] = b.key

    for service, spec in fleet_specs.items():
        # sshd listens where the inventory says the host's SSH is, not on the catalog's 22; a `control`
        # port stays on loopback in a fleet without a control plane.
        bindings = [
            b.model_copy(update={"port": host.ssh.port})
            if b.exposure == "ssh"
            else b.model_copy(update={"exposure": "loopback"})
            if b.exposure == "control" and not fleet_has_control
            else b
            for b in _bindings("fleet", service, spec)
        ]
        claim(bindings)
        plans.append(
            ServicePlan(
                unit=service,
                service=service,
                chain=None,
                user=spec.user,
                package=spec.package,
                ports=tuple(bindings),
                bus_client=spec.bus_client,
            )
        )

    for chain, chain_spec in catalog.chains.items():
        if chain not in host.chains:
            continue
        defaults = [b for s, spec in chain_spec.services.items() for b in _bindings(chain, s, spec)]
        shift = chain_spec.port_shift if _occupied(defaults) & set(taken) else 0
        for service, spec in chain_spec.services.items():
            bindings = []
            for b in _bindings(chain, service, spec, shift):
                override = host.ports.get(b.key)
                if override is not None:
                    width = (b.port_end or b.port) - b.port
                    b = b.model_copy(update={"port": override, "port_end": override + width if b.port_end else None})
                    if (b.port_end or b.port) > 65535:
                        problems.append(Problem(path, host.name, f"ports.{b.key}", "port range runs past 65535"))
                bindings.append(b)
            claim(bindings)
            plans.append(
                ServicePlan(
                    unit=f"{chain}-{service}",
                    service=service,
                    chain=chain,
                    user=spec.user,
                    package=spec.package,
                    ports=tuple(bindings),
                )
            )
        stand_in = chain_spec.stand_in
        if nodes == "devnet" and stand_in is not None:
            # The stand-in replaces the chain's services but keeps the planned RPC port (after shifts and
            # overrides) and the RPC service's user, so the agent, firewall and checks see one address.
            rpc_service, _, rpc_port = stand_in.rpc.partition(".")
            ours = [p for p in plans if p.chain == chain]
            source = next(p for p in ours if p.service == rpc_service)
            rpc = next(b for b in source.ports if b.name == rpc_port)
            # anvil serves anvil_*, debug_* and trace_* with no way to turn them off: the fleet never reaches
            # it (the co-located agent and the health check are local).
            private = {"exposure": "loopback"} if catalog.clients[stand_in.client].rpc_loopback_only else {}
            plans = [p for p in plans if p.chain != chain]
            plans.append(
                ServicePlan(
                    unit=f"{chain}-{stand_in.client}",
                    service=stand_in.client,
                    chain=chain,
                    user=source.user,
                    package=None,
                    ports=(
                        rpc.model_copy(update={"service": stand_in.client, "name": "rpc", "scrape": None, **private}),
                    ),
                )
            )
    return plans


def loopback_admin_api(plans: list[ServicePlan], admin_api: bool) -> list[ServicePlan]:
    """Prometheus serves its admin API (snapshots, series deletion) on its one web listener: with the API
    on, that listener moves to loopback, so no firewall or security group opens it to anyone."""
    if not admin_api:
        return plans
    return [
        p.model_copy(update={"ports": tuple(b.model_copy(update={"exposure": "loopback"}) for b in p.ports)})
        if p.service == "prometheus" and p.chain is None
        else p
        for p in plans
    ]


def bind_host(plan: HostPlan, binding: PortBinding) -> str:
    """Where a planned port listens: loopback services on loopback; everything else on the host's own
    (private) address only, never on 0.0.0.0, so a host with a public interface does not serve it there
    (a host known only by DNS name has 127.0.0.1 as its listen address). The firewall is the second line."""
    return "127.0.0.1" if binding.exposure == "loopback" else plan.listen_address
