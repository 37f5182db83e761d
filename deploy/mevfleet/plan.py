"""The host plan: one pure function from (inventory, catalog) to a typed, engine-neutral plan per host.

plan_fleet is that function: it reads no file, imports neither the agent nor the control plane, and
takes everything it needs besides the inventory as data (PlanInputs: the catalog and the release
versions). compile_plan gathers those inputs (mevfleet.inputs), plans, and has the agent's and control
plane's own models judge the result.

Ports, firewall openings and scrape targets all derive from one service registry (the catalog's chain
and fleet services resolved for each host), so no list is kept twice. Engines (pyinfra, Ansible) and the
testinfra verify suite read this plan and nothing else.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal
from urllib.parse import urlsplit

import jinja2

from .catalog import (
    Catalog,
    ChainSpec,
    ClientSpec,
    Exposure,
    ServiceSpec,
)
from .control import ControlAgent, ControlOperator, ControlPlan, postgres_settings
from .errors import InventoryError, Problem
from .inputs import SVM_SECTION
from .inventory import AgentSettings, Host, Inventory
from .model import (
    AgentChainPlan,
    AgentPlan,
    ArtifactPlan,
    CpuPlan,
    FirewallPlan,
    FirewallRule,
    FleetPlan,
    HostPlan,
    JwtPlan,
    LogSender,
    NodePlan,
    PlanInputs,
    PortBinding,
    RemovedUnit,
    ScrapeTarget,
    ServicePlan,
    SysctlFile,
    SystemUser,
    TimePlan,
)
from .monitoring import loki_push_urls

# Scrape cadence per kind of job: the agent and the nodes move every block, hosts move slowly.
SCRAPE_INTERVALS = {"mevagent": "1s", "node_exporter": "15s", "prometheus": "15s"}
CHAIN_SCRAPE_INTERVAL = "5s"
HUGEPAGE_BYTES = 2 * 1024 * 1024


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
    from .nodes.pair import real_client_problems, with_real_clients

    declared = inputs.catalog
    catalog = with_real_clients(declared, inventory)
    problems: list[Problem] = real_client_problems(inventory, catalog)
    services = {
        name: _loopback_admin_api(
            _services(host, catalog, inventory.path, problems, inventory.fleet.nodes, _present(inventory, name)),
            inventory.fleet.monitoring.prometheus_admin_api,
        )
        for name, host in inventory.hosts.items()
    }
    monitoring = inventory.monitoring_hosts()
    for host in monitoring:
        if not _is_ip(host.address):
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
        nodes, jwts = _nodes(host, plan, inventory, catalog, problems, inputs.agent_version)
        plan = plan.model_copy(
            update={"nodes": tuple(nodes), "jwts": tuple(jwts), "remove": removed_units(plan, nodes, declared)}
        )
        plans[name] = plan.model_copy(update={"agent": _agent(host, plan, inventory, catalog, inputs.agent_version)})
    control = control_host(inventory)
    if control is not None:
        plans[control] = plans[control].model_copy(
            update={"control": _control(inventory.hosts[control], plans, inventory, inputs.control_version)}
        )
    return FleetPlan(inventory=inventory.path, hosts=plans), problems


def log_senders(inventory: Inventory, catalog: Catalog, problems: list[Problem]) -> tuple[LogSender, ...]:
    """Every host of a journal-remote fleet with a monitoring host, in inventory order, each with the n-th
    port of the catalog's `journal-remote` ranges (a fleet larger than the ranges is a problem)."""
    shipper = inventory.fleet.monitoring.log_shipper or "alloy"
    if shipper != "journal-remote" or not inventory.monitoring_hosts():
        return ()
    ports = catalog.fleet.monitoring["journal-remote"].ports
    upload, local = ports["upload"], ports["local"]
    room = min((upload.port_end or upload.port) - upload.port, (local.port_end or local.port) - local.port) + 1
    senders = []
    for n, (name, host) in enumerate(inventory.hosts.items()):
        ip = listen_ip(host)
        if n >= room:
            problems.append(Problem(inventory.path, name, "journal-remote", f"its ports serve {room} hosts"))
        elif ip is not None:  # a host without an IP is reported by plan_fleet already
            senders.append(LogSender(name=name, address=ip, upload=upload.port + n, local=local.port + n))
    return tuple(senders)


def listen_ip(host: Host) -> str | None:
    """The IP a host's fleet-facing services listen on, or None for a host known only by DNS name."""
    return host.listen_address or (host.address if _is_ip(host.address) else None)


def _is_ip(value: str) -> bool:
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


def _present(inventory: Inventory, host: str | None = None) -> frozenset[str]:
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


def _services(
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


def _loopback_admin_api(plans: list[ServicePlan], admin_api: bool) -> list[ServicePlan]:
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


def _port_ranges(bindings: list[PortBinding]) -> tuple[str, ...]:
    return tuple(
        sorted(
            {f"{b.port}-{b.port_end}" if b.port_end else str(b.port) for b in bindings},
            key=lambda s: int(s.split("-")[0]),
        )
    )


def _firewall(
    host: Host,
    services: list[ServicePlan],
    inventory: Inventory,
    monitoring: list[Host],
    all_services: dict[str, list[ServicePlan]],
    senders: tuple[LogSender, ...] = (),
) -> FirewallPlan:
    fleet = inventory.fleet
    sources: dict[Exposure, tuple[str, ...] | None] = {
        "public": None,
        "fleet": tuple(fleet.private_networks),
        "monitoring": tuple(str(ipaddress.ip_network(m.address)) for m in monitoring),
        "operator": tuple(fleet.operator_allowlist),
        "bus": bus_sources(inventory, all_services),
        "control": tuple(
            str(ipaddress.ip_network(ip))
            for name in [control_host(inventory)]
            if name is not None and (ip := listen_ip(inventory.hosts[name]))
        ),
    }
    rules = []
    for exposure in ("public", "fleet", "monitoring", "operator", "bus", "control"):
        allowed = sources[exposure]
        if allowed == ():
            continue  # nobody is allowed: the default-deny policy covers it
        for proto in ("tcp", "udp"):
            bindings = [p for s in services for p in s.ports if p.exposure == exposure and proto in p.protocols]
            if bindings:
                names = ", ".join(sorted({p.key for p in bindings}))
                rules.append(
                    FirewallRule(
                        comment=f"{exposure}: {names}",
                        protocol=proto,
                        ports=_port_ranges(bindings),
                        sources=allowed,
                    )
                )
    # The `sender` range (journal-remote's uploads): each sender's port open to its address only; the
    # range's other ports stay closed.
    for b in (p for s in services for p in s.ports if p.exposure == "sender"):
        for proto in b.protocols:
            rules += [
                FirewallRule(
                    comment=f"sender: {b.key} of {sender.name}",
                    protocol=proto,
                    ports=(str(sender.upload),),
                    sources=(str(ipaddress.ip_network(sender.address)),),
                )
                for sender in senders
                if sender.upload in b.span()
            ]
    return FirewallPlan(ssh_port=host.ssh.port, ssh_sources=tuple(fleet.ssh_sources) or None, rules=tuple(rules))


def bus_sources(inventory: Inventory, all_services: dict[str, list[ServicePlan]]) -> tuple[str, ...]:
    """The hosts that hold the bus's password (a `bus_client` service runs there), as /32 or /128."""
    return tuple(
        str(ipaddress.ip_network(ip))
        for name, host in inventory.hosts.items()
        if any(s.bus_client for s in all_services.get(name, ())) and (ip := listen_ip(host))
    )


def _sysctl_files(host: Host, catalog: Catalog, nofile: int, hugepages: int) -> list[SysctlFile]:
    profile = catalog.tuning.profiles[host.tuning]
    owner: dict[str, str] = {}
    values: dict[str, dict[str, int | str]] = {}
    notes: dict[str, dict[str, str]] = {}
    for concern, spec in profile.sysctl_concerns.items():
        values[concern] = dict(spec.values)
        notes[concern] = {}
        owner.update({key: concern for key in spec.values})

    def raise_to(key: str, value: int | str, why: str, concern_if_new: str) -> None:
        concern = owner.setdefault(key, concern_if_new)
        bucket = values.setdefault(concern, {})
        notes.setdefault(concern, {})
        current = bucket.get(key)
        if current is None or _bigger(value, current):
            bucket[key] = value
            notes[concern][key] = why

    for chain in host.chains:
        for key, value in catalog.chains[chain].sysctls.items():
            raise_to(key, value, f"{chain} client docs", f"chain-{chain}")
    # fs.nr_open caps every process's open-file limit: it must not sit below the plan's nofile.
    if "fs.nr_open" in owner and int(values[owner["fs.nr_open"]]["fs.nr_open"]) < nofile:
        raise_to("fs.nr_open", nofile, "at least the host's nofile limit", "limits")
    values.setdefault("hugepages", {})["vm.nr_hugepages"] = hugepages
    owner["vm.nr_hugepages"] = "hugepages"
    for key, value in host.sysctls.items():
        concern = owner.setdefault(key, "overrides")
        values.setdefault(concern, {})[key] = value
        notes.setdefault(concern, {})[key] = "inventory override"

    orders = {c: s.order for c, s in profile.sysctl_concerns.items()}
    files = []
    for concern, bucket in values.items():
        if not bucket:
            continue
        order = orders.get(concern, 50 if concern.startswith("chain-") else 60 if concern == "overrides" else 45)
        files.append(
            SysctlFile(
                concern=concern,
                path=f"/etc/sysctl.d/{order:02d}-mevfleet-{concern}.conf",
                values={k: _sysctl_text(v) for k, v in sorted(bucket.items())},
                notes=dict(sorted(notes.get(concern, {}).items())),
            )
        )
    return sorted(files, key=lambda f: f.path)


def _sysctl_text(value: int | str) -> str:
    return " ".join(str(value).split())


def _bigger(new: int | str, old: int | str) -> bool:
    if isinstance(new, int) and isinstance(old, int):
        return new > old
    try:
        return [int(x) for x in str(new).split()] > [int(x) for x in str(old).split()]
    except ValueError:
        return str(new) != str(old)


def _cpu_plan(host: Host) -> CpuPlan | None:
    cpus = host.hardware.cpus
    if cpus is None:
        return None
    if cpus < 4:
        # Too small to split: the agent takes the last core but shares it with the node.
        last = str(cpus - 1)
        return CpuPlan(cpus=cpus, node_cores=f"0-{cpus - 1}" if cpus > 1 else "0", agent_cores=last, shared=True)
    agent = max(1, cpus // 8)
    node_last = cpus - agent - 1
    agent_cores = str(cpus - 1) if agent == 1 else f"{cpus - agent}-{cpus - 1}"
    return CpuPlan(cpus=cpus, node_cores=f"0-{node_last}", agent_cores=agent_cores, shared=False)


def _scrape_targets(inventory: Inventory, services: dict[str, list[ServicePlan]]) -> list[ScrapeTarget]:
    targets = []
    for name, host in inventory.hosts.items():
        for service in services[name]:
            for p in service.ports:
                if p.scrape is None:
                    continue
                interval = p.scrape_interval or SCRAPE_INTERVALS.get(
                    service.service, CHAIN_SCRAPE_INTERVAL if service.chain else "15s"
                )
                job = service.unit if service.chain else service.service
                # A loopback port is scraped by the Prometheus beside it only (monitoring.scrape_jobs).
                address = "127.0.0.1" if p.exposure == "loopback" else listen_ip(host) or host.address
                targets.append(
                    ScrapeTarget(
                        job=job,
                        target=f"{address}:{p.port}",
                        path=p.scrape,
                        interval=interval,
                        host=name,
                        chain=service.chain,
                    )
                )
    return targets


def _host_plan(
    host: Host,
    services: list[ServicePlan],
    inventory: Inventory,
    catalog: Catalog,
    all_services: dict[str, list[ServicePlan]],
    monitoring: list[Host],
    senders: tuple[LogSender, ...] = (),
) -> HostPlan:
    profile = catalog.tuning.profiles[host.tuning]
    nofile = max([profile.limits.nofile, *(catalog.chains[c].limits.nofile for c in host.chains)])
    memlock = max([profile.limits.memlock, *(catalog.chains[c].limits.memlock for c in host.chains)])
    hugepages = profile.hugepages if host.hugepages is None else host.hugepages
    sysctl_files = _sysctl_files(host, catalog, nofile, hugepages)
    keys = {k for f in sysctl_files for k in f.values}
    namespaced = tuple(sorted(k for k in keys if catalog.tuning.known_sysctls[k].namespaced))

    packages = list(catalog.fleet.base_packages)
    packages += [s.package for s in services if s.package and s.package not in packages]
    # The agent's release, and that of a node run from the agent's bundle, is a venv made from uploaded wheels.
    if any(
        s.service in (AGENT_USER, "mevcontrol") or getattr(catalog.clients.get(s.service), "runtime", "") == "agent"
        for s in services
    ):
        packages.append("python3-venv")
    users = sorted({s.user for s in services if s.package is None and s.user != "root"})
    is_monitoring = "monitoring" in host.roles
    monitoring_ips = tuple(m.address for m in monitoring if m.name != host.name)
    time = TimePlan(
        servers=tuple(inventory.fleet.time_sources)
        if is_monitoring or not monitoring_ips
        else monitoring_ips + tuple(inventory.fleet.time_sources),
        serve_networks=tuple(inventory.fleet.private_networks) if is_monitoring else (),
    )
    return HostPlan(
        name=host.name,
        address=host.address,
        listen_address=listen_ip(host) or "127.0.0.1",
        roles=host.roles,
        chains=host.chains,
        ssh_user=host.ssh.user,
        ssh_port=host.ssh.port,
        packages=tuple(packages),
        users=tuple(SystemUser(name=u, home=f"/var/lib/{u}") for u in users),
        directories=("/etc/mevfleet", "/var/lib/mevfleet", "/var/log/mevfleet", "/opt/mevfleet"),
        nofile=nofile,
        memlock_bytes=memlock,
        sysctl_files=tuple(sysctl_files),
        namespaced_sysctls=namespaced,
        sysctl_locks={k: v.locks_at for k, v in catalog.tuning.known_sysctls.items() if k in keys and v.locks_at},
        hugepages=hugepages,
        thp=host.thp or profile.thp,
        cpu_governor=host.cpu_governor or profile.cpu_governor,
        owns_kernel=host.owns_kernel,
        cpu=_cpu_plan(host),
        services=tuple(services),
        firewall=_firewall(host, services, inventory, monitoring, all_services, senders),
        scrape_targets=tuple(_scrape_targets(inventory, all_services)) if is_monitoring else (),
        time=time,
        monitoring_addresses=tuple(m.address for m in monitoring),
        loki_push_urls=loki_push_urls(monitoring, all_services),
        monitoring=inventory.fleet.monitoring,
        log_senders=senders if is_monitoring else tuple(s for s in senders if s.name == host.name),
        flashblocks_ws=_flashblocks(host, inventory, catalog),
    )


def _flashblocks(host: Host, inventory: Inventory, catalog: Catalog) -> dict[str, str]:
    streams = {c: catalog.chains[c].flashblocks_ws for c in host.chains}
    streams.update({c: url for c, url in inventory.fleet.flashblocks_ws.items() if c in host.chains})
    return {c: url for c, url in streams.items() if url}


OPT = "/opt/mevfleet"
NODE_CONFIG = "/etc/mevfleet/nodes"
_ARGS = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


def _artifact(
    client: str, spec: ClientSpec, version: str, inventory: Inventory
) -> tuple[ArtifactPlan | None, str | None]:
    """The catalog's artifact for a version, overridden field by field by the inventory's pin."""
    base = spec.versions.get(version)
    pin = inventory.artifacts.get(client, {}).get(version)
    if base is None and pin is None:
        known = ", ".join([*spec.versions, *inventory.artifacts.get(client, {})])
        return None, f"unknown version {version!r} of {client} (catalog or inventory artifacts: {known})"
    fields = base.model_dump() if base else {}
    pinned_by: Literal["catalog", "inventory"] = "catalog"
    if pin is not None:
        override = pin.model_dump(exclude_none=True)
        if "path" in override:
            fields["url"] = None  # a local file replaces the download
        fields.update(override)
        pinned_by = "inventory"
    return ArtifactPlan(
        **{k: fields.get(k) for k in ("url", "path", "sha256", "image", "digest", "npm")}, pinned_by=pinned_by
    ), None


def _bind(plan: HostPlan, binding: PortBinding) -> str:
    # Fleet-exposed ports listen on the host's own (private) address, never on every interface; a host
    # known only by DNS name (allowed only where nothing else reaches it) keeps them on loopback.
    if binding.exposure == "loopback":
        return "127.0.0.1"
    return plan.listen_address


def _nodes(
    host: Host, plan: HostPlan, inventory: Inventory, catalog: Catalog, problems: list[Problem], agent_version: str
) -> tuple[list[NodePlan], list[JwtPlan]]:
    nodes: list[NodePlan] = []
    jwts: list[JwtPlan] = []
    relays = (
        inventory.fleet.mev_boost_relays
        if inventory.fleet.mev_boost_relays is not None
        else [r.url for r in catalog.relays.relays]
    )
    by_chain: dict[str, list[ServicePlan]] = {}
    for service in plan.services:
        if service.chain:
            by_chain.setdefault(service.chain, []).append(service)
    for key in host.versions:
        chain, _, name = key.partition(".")
        if not any(s.service == name for s in by_chain.get(chain, [])):
            problems.append(Problem(inventory.path, host.name, f"versions.{key}", "no such node on this host"))
    for chain, services in by_chain.items():
        chain_spec = catalog.chains[chain]
        devnet = inventory.fleet.nodes == "devnet"
        for service in services:
            client = (
                service.service
                if devnet and chain_spec.stand_in
                else catalog.chains[chain].services[service.service].client
            )
            if client is None:
                continue
            spec = catalog.clients[client]
            version = host.versions.get(f"{chain}.{service.service}", spec.version)
            artifact, error = _artifact(client, spec, version, inventory)
            if spec.runtime == "agent":
                # Shipped in the agent's release: its version and its install are the agent's.
                version, artifact, error = agent_version, ArtifactPlan(pinned_by="catalog"), None
            if artifact is None:
                problems.append(Problem(inventory.path, host.name, f"versions.{chain}.{service.service}", error or ""))
                continue
            unit = service.unit
            data_dir = f"/var/lib/{service.user}"
            peers = {s.service: {p.name: p.port for p in s.ports} for s in services}
            peer_binds = {s.service: {p.name: _bind(plan, p) for p in s.ports} for s in services}
            jwt = f"{data_dir}/jwt.hex" if service.service in chain_spec.jwt else None
            l1_rpc, l1_beacon = _parent_urls(chain_spec, inventory, catalog)
            context = {
                "unit": unit,
                "chain": chain,
                "chain_id": chain_spec.chain_id,
                "block_time": chain_spec.block_time,
                "data_dir": data_dir,
                "config_dir": f"{NODE_CONFIG}/{unit}",
                "host_address": plan.address,
                "port": {p.name: p.port for p in service.ports},
                "port_end": {p.name: p.port_end for p in service.ports},
                "bind": {p.name: _bind(plan, p) for p in service.ports},
                # Loopback too, for the co-located agent and health checks (clients that bind several).
                "binds": {p.name: sorted({"127.0.0.1", _bind(plan, p)}) for p in service.ports},
                "peer": peers,
                "peer_bind": peer_binds,  # where each service of the chain on this host listens
                "jwt": jwt,
                "l1_rpc": l1_rpc,
                "l1_beacon": l1_beacon,
                "op_stack": chain_spec.op_stack,
                "relays": relays,
                "relay_timeouts": (inventory.fleet.mev_boost_timeouts or catalog.relays.timeouts).model_dump(),
                "nofile": catalog.chains[chain].limits.nofile,
            }
            context["ipc"] = _ARGS.from_string(spec.ipc).render(context) if spec.ipc else None
            args = tuple(a for a in (" ".join(_ARGS.from_string(t).render(context).split()) for t in spec.args) if a)
            rpc = next((p for p in service.ports if p.name in ("rpc", "http")), None)
            rpc_host = "127.0.0.1" if rpc is None or _bind(plan, rpc) == "0.0.0.0" else _bind(plan, rpc)
            skip = None
            nodes.append(
                NodePlan(
                    unit=unit,
                    chain=chain,
                    chain_id=chain_spec.chain_id,
                    service=service.service,
                    client=client,
                    runtime=spec.runtime,
                    version=version,
                    artifact=artifact,
                    user=service.user,
                    data_dir=data_dir,
                    config_dir=context["config_dir"],
                    release_dir=f"{OPT}/{spec.release or client}/{version}",
                    link=f"{OPT}/{unit}/current",
                    previous_link=f"{OPT}/{unit}/previous",
                    # An agent-runtime client's release is a venv of the agent's wheels: its programs are in bin/.
                    executable=(
                        f"{OPT}/{unit}/current/{'venv/bin/' if spec.runtime == 'agent' else ''}{spec.binary}"
                        if spec.binary
                        else None
                    ),
                    args=args,
                    ipc=context["ipc"],
                    rpc_url=f"http://{rpc_host}:{rpc.port}{spec.rpc_path}" if rpc else None,
                    health=spec.health,
                    sync_method=spec.sync.method if spec.sync else None,
                    after=tuple(f"{chain}-{a}" for a in spec.after if a in peers),
                    nofile=catalog.chains[chain].limits.nofile,
                    memlock=catalog.chains[chain].limits.memlock,
                    jwt=jwt,
                    start=skip is None,
                    skip_reason=skip,
                    unit_template=f"nodes/{spec.unit_template}"
                    if spec.unit_template
                    else "nodes/binary.service.j2"
                    if spec.runtime in ("binary", "agent")
                    else "nodes/container.service.j2",
                    config_templates={name: f"nodes/{source}" for name, source in spec.config_files.items()},
                    simulator=spec.simulator,
                    beacon_url=next(
                        (f"http://{_bind(plan, p)}:{p.port}" for p in service.ports if p.name == "beacon-api"), None
                    ),
                )
            )
        beacons = [i for i, n in enumerate(nodes) if n.chain == chain and n.beacon_url]
        for i in beacons if len(beacons) > 1 else ():
            first = nodes[beacons[0]].beacon_url
            others = tuple(nodes[j].beacon_url or "" for j in beacons if j != i)
            nodes[i] = nodes[i].model_copy(
                update={"beacon_peers": others, "genesis_from": None if i == beacons[0] else first}
            )
        pair = [n for n in nodes if n.chain == chain and n.jwt]
        if len(pair) > 1:
            jwts.append(
                JwtPlan(
                    chain=chain, copies=tuple((n.jwt or "", n.user) for n in pair), units=tuple(n.unit for n in pair)
                )
            )
    return nodes, jwts


def _parent_urls(chain: ChainSpec, inventory: Inventory, catalog: Catalog) -> tuple[str, str]:
    """The JSON-RPC and beacon URLs of a chain's parent (catalog `parent`): the inventory's fleet.l1_rpc /
    fleet.l1_beacon, else the node of the fleet's first host running the parent chain; "" when neither."""
    if chain.parent is None:
        return "", ""
    name = chain.parent.chain
    host = next((h for h in inventory.hosts.values() if name in h.chains), None)
    served = catalog.chains[name].serves_children
    urls = []
    for given, ref in (
        (inventory.fleet.l1_rpc, served and served.rpc),
        (inventory.fleet.l1_beacon, served and served.beacon),
    ):
        if given or host is None or not ref:
            urls.append(given or "")
            continue
        service, _, port = ref.partition(".")
        urls.append(f"http://{listen_ip(host) or host.address}:{_port_of(host, name, service, port, catalog)}")
    return urls[0], urls[1]


def removed_units(plan: HostPlan, nodes: list[NodePlan], catalog: Catalog) -> tuple[RemovedUnit, ...]:
    """Every node unit the catalog could have put on a host (each chain's services, stand-in and devnet
    clients) that this plan does not run: what a deploy removes if an earlier plan left it there."""
    planned = {n.unit for n in nodes} | {s.unit for s in plan.services}
    possible = []
    for chain, spec in catalog.chains.items():
        services = [*spec.services, *(spec.devnet_clients.services if spec.devnet_clients else ())]
        possible += [f"{chain}-{s}" for s in services]
        possible += [f"{chain}-{spec.stand_in.client}"] if spec.stand_in else []
    return tuple(
        RemovedUnit(
            unit=unit,
            unit_file=f"/etc/systemd/system/{unit}.service",
            dropins=f"/etc/systemd/system/{unit}.service.d",
            config_dir=f"{NODE_CONFIG}/{unit}",
            link_dir=f"{OPT}/{unit}",
        )
        for unit in dict.fromkeys(possible)
        if unit not in planned
    )


def _port_of(host: Host, chain: str, service: str, name: str, catalog: Catalog) -> int:
    """A port of another host's plan (the fleet's parent-chain node), without compiling that host twice."""
    problems: list[Problem] = []
    for s in _services(host, catalog, "", problems):
        if s.chain == chain:
            for p in s.ports:
                if p.key == f"{chain}.{service}.{name}":
                    return p.port
    spec = catalog.chains[chain].services.get(service)
    return spec.ports[name].port if spec else 0  # a devnet running real clients has no Erigon to point at


def unpinned_artifacts(fleet: FleetPlan, hosts: list[str] | None = None) -> list[Problem]:
    """Artifacts the deploy would install without a checksum: refused before any host is touched."""
    problems = []
    for name, plan in fleet.hosts.items():
        if hosts and name not in hosts:
            continue
        for node in plan.nodes:
            if not node.start:
                continue
            a = node.artifact
            field = f"artifacts.{node.client}.{node.version}"
            if node.runtime == "container" and not a.digest:
                problems.append(
                    Problem(
                        fleet.inventory,
                        name,
                        f"{field}.digest",
                        f"image {a.image} is not pinned by digest; pin it in the inventory: "
                        f"artifacts: {{{node.client}: {{{node.version}: {{image: ..., digest: sha256:...}}}}}}",
                    )
                )
            elif node.runtime == "binary" and not a.sha256:
                problems.append(
                    Problem(
                        fleet.inventory,
                        name,
                        f"{field}.sha256",
                        f"{a.url or a.path} has no sha256 (deploy/mevfleet/catalog/clients.yml does not know it); "
                        f"pin it in the inventory after checking the release's checksums or signature: "
                        f"artifacts: {{{node.client}: {{{node.version}: {{url or path: ..., sha256: ...}}}}}}",
                    )
                )
    return problems


AGENT_USER = "mevagent"
AGENT_ETC = f"/etc/{AGENT_USER}"  # config, API token, bus secrets; keys/ below it
AGENT_ROOT = f"{OPT}/{AGENT_USER}"  # releases, each a venv, behind `current`
AGENT_STATE = f"/var/lib/{AGENT_USER}"


def _agent(host: Host, plan: HostPlan, inventory: Inventory, catalog: Catalog, version: str) -> AgentPlan | None:
    from .nodes.pair import execution_service

    service = next((s for s in plan.services if s.service == AGENT_USER), None)
    if service is None:
        return None
    devnet = inventory.fleet.nodes == "devnet"
    chains = []
    for chain in plan.chains:
        spec = catalog.chains[chain]
        # The execution node: the stand-in on the devnet, else the service that serves the chain's RPC.
        wanted = execution_service(spec, devnet)
        if wanted is None:
            continue
        node = next((n for n in plan.nodes if n.chain == chain and n.service == wanted and n.rpc_url), None)
        if node is None or node.rpc_url is None:
            continue
        client = catalog.clients[node.client]
        ws = next((p for p in plan.ports() if p.key.startswith(f"{chain}.") and p.name == client.ws_port), None)
        rpc = urlsplit(node.rpc_url)
        # A WebSocket port of its own (`ws`; Agave's `pubsub`), else one port for both (anvil, Erigon,
        # AvalancheGo, the Solana simulator) at the client's ws_path.
        ws_url = f"ws://{rpc.hostname}:{ws.port}" if ws else f"ws://{rpc.netloc}{client.ws_path}"
        solana = spec.vm == "svm"
        chains.append(
            AgentChainPlan(
                chain=chain,
                chain_id=spec.chain_id,
                vm=spec.vm,
                node_unit=node.unit,
                ipc=None if solana else node.ipc,
                rpc_url=node.rpc_url,
                ws_url=ws_url.rstrip("/") if client.subscriptions else None,
                # Solana JSON-RPC is always HTTP (its WebSocket carries subscriptions only).
                http_url=node.rpc_url if solana or not client.subscriptions else None,
                beacon_url=next((n.beacon_url for n in plan.nodes if n.chain == chain and n.beacon_url), None),
                flashblocks_ws=plan.flashblocks_ws.get(chain),
                block_engine_url=f"http://{rpc.netloc}{client.block_engine_path}" if client.block_engine_path else None,
                live=chain in inventory.fleet.agent.live,
            )
        )
    api = next(p for p in service.ports if p.name == "api")
    metrics = next(p for p in service.ports if p.name == "metrics")
    agent = AgentPlan(
        user=service.user,
        version=version,
        release_root=AGENT_ROOT,
        config_path=f"{AGENT_ETC}/agent.yml",
        state_dir=AGENT_STATE,
        token_file=f"{AGENT_ETC}/api.token",
        keys_dir=f"{AGENT_ETC}/keys",
        api_bind="127.0.0.1",
        api_port=api.port,
        api_control_bind=_bind(plan, api) if api.exposure == "control" else None,
        metrics_bind=_bind(plan, metrics),
        metrics_port=metrics.port,
        cpu_affinity=plan.cpu.agent_cores if plan.cpu else None,
        node_groups=tuple(sorted({n.user for n in plan.nodes if any(c.node_unit == n.unit for c in chains)})),
        chains=tuple(chains),
        config={},
    )
    # Judged by the agent's own models after planning (inputs.judge): the plan does not import the agent.
    config = agent_config(agent, inventory, catalog) | _bus_config(host, agent, inventory, catalog)
    return agent.model_copy(update={"config": config})


def agent_config(agent: AgentPlan, inventory: Inventory, catalog: Catalog) -> dict[str, Any]:
    """The agent's config file for this host: its chains from the plan, everything else from the inventory."""
    settings = inventory.fleet.agent
    config: dict[str, Any] = {
        "state_dir": agent.state_dir,
        "api": {
            "bind": agent.api_bind,
            "port": agent.api_port,
            "token_file": agent.token_file,
            "metrics_bind": agent.metrics_bind,
            "metrics_port": agent.metrics_port,
            **({"control_bind": agent.api_control_bind} if agent.api_control_bind else {}),
        },
        "chains": [_chain_config(c, agent, settings, catalog) for c in agent.chains],
    }
    for section in ("risk", "strategies", "gas", "profit", "engine", "analytics"):
        value = getattr(settings, section)
        if value:
            config[section] = value
    return config


def _chain_config(c: AgentChainPlan, agent: AgentPlan, settings: AgentSettings, catalog: Catalog) -> dict[str, Any]:
    """One chain of the agent's config: the inventory's settings for it first, the plan's own keys win (and
    inputs.judge refuses an inventory that tries to set them)."""
    config: dict[str, Any] = {
        **settings.chains.get(c.chain, {}),
        "name": c.chain,
        "chain_id": c.chain_id,
        **({"ipc_path": c.ipc} if c.ipc else {}),
        **({"ws_url": c.ws_url} if c.ws_url else {}),
        **({"http_url": c.http_url} if c.http_url else {}),
        **({"beacon_url": c.beacon_url} if c.beacon_url else {}),
        "live": c.live,
        "max_gas_price_gwei": settings.max_gas_price_gwei.get(c.chain, catalog.chains[c.chain].max_gas_price_gwei),
    }
    if c.vm == "svm":
        # Always a `solana:` section (the agent takes a chain without one for an EVM chain): pools, sol_usd
        # and block-engine regions from the inventory, unless the node on this host serves the block engine.
        given = settings.chains.get(c.chain, {}).get(SVM_SECTION)
        section: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
        if c.block_engine_url:  # the node on this host serves the block engine: the agent sends there only
            section["block_engines"] = [{"name": c.node_unit, "url": c.block_engine_url}]
        # Only a live chain signs: the payer's keypair is a file the operator installs (docs/agent.md).
        key = {"signing_key_file": f"{agent.keys_dir}/{c.chain}.json"} if c.live else {}
        return config | {SVM_SECTION: section} | key
    return config | {
        "endpoints": settings.endpoints.get(c.chain, []),
        # Only live chains sign: their keys are files the operator installs (docs/agent.md).
        **(
            {
                "signing_key_file": f"{agent.keys_dir}/{c.chain}.key",
                "searcher_key_file": f"{agent.keys_dir}/{c.chain}-searcher.key",
            }
            if c.live
            else {}
        ),
    }


def _bus_config(host: Host, agent: AgentPlan, inventory: Inventory, catalog: Catalog) -> dict[str, Any]:
    """The agent's `bus:` section in a fleet with a control plane: the control host's Redis (TLS only,
    its certificate checked against the fleet CA) as this agent's own ACL user, and where the control
    plane reaches this agent's API."""
    from .control import AGENT_BUS_CA, AGENT_REDIS_PASSWORD

    control = control_host(inventory)
    if control is None or agent.api_control_bind is None:
        return {}
    redis = catalog.fleet.monitoring["redis"].ports["redis"].port
    return {
        "bus": {
            "agent": host.name,
            "redis_url": f"rediss://{listen_ip(inventory.hosts[control])}:{redis}/0",
            "username": host.name,
            "password_file": AGENT_REDIS_PASSWORD,
            "tls_ca_file": AGENT_BUS_CA,
            "lease_required": True,
            "api_url": f"http://{agent.api_control_bind}:{agent.api_port}",
        }
    }


def _control(host: Host, plans: dict[str, HostPlan], inventory: Inventory, version: str) -> ControlPlan:
    """The control plane on its host: its listeners from the plan's ports, every agent of the fleet (its
    limits are judged by the control plane's own models after planning: inputs.judge)."""
    settings = inventory.fleet.control
    plan = plans[host.name]
    ports = {p.name: p for s in plan.services if s.service == "mevcontrol" for p in s.ports}
    postgres = next(p for s in plan.services if s.service == "postgresql" for p in s.ports)
    agents = tuple(
        ControlAgent(
            name=name,
            api_url=f"http://{p.agent.api_control_bind}:{p.agent.api_port}",
            token_file=f"/etc/mevcontrol/agents/{name}.token",
        )
        for name, p in plans.items()
        if p.agent is not None and p.agent.api_control_bind is not None
    )
    return ControlPlan(
        version=version,
        bind=plan.listen_address,
        risk_port=ports["risk"].port,
        dashboard_port=ports["dashboard"].port,
        relays_port=ports["relays"].port,
        flashloans_port=ports["flashloans"].port,
        bridges_port=ports["bridges"].port,
        metrics_port=ports["metrics"].port,
        # TLS like every bus client (Redis has no plain port): its certificate names the host's address.
        redis_url=f"rediss://{plan.listen_address}:{_port_of_service(plan, 'redis')}/0",
        postgres_port=postgres.port,
        postgres_settings=postgres_settings(host.hardware.memory_gib) | {"port": str(postgres.port)},
        operators=tuple(ControlOperator(name=o.name, role=o.role) for o in settings.operators),
        agents=agents,
        live_chains=tuple(inventory.fleet.agent.live),
        lease_ttl_s=settings.lease_ttl_s,
        limits=dict(settings.limits),
        ceilings=dict(settings.ceilings),
        crosschain=dict(settings.crosschain),
    )


def _port_of_service(plan: HostPlan, service: str) -> int:
    return next(p.port for s in plan.services if s.service == service and s.chain is None for p in s.ports)
