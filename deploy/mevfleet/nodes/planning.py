"""The nodes' slice of the host plan: which client runs each of a host's chain services, at which version
and artifact, with which flags (the catalog's argument templates filled from the plan's ports and
addresses), its JWT pair, its parent chain's URLs, its health check; and the node units an earlier plan
may have left (removed_units). Reads the catalog, the inventory and the service registry only.
"""

from __future__ import annotations

from typing import Literal

import jinja2

from ..catalog import Catalog, ChainSpec, ClientSpec
from ..errors import Problem
from ..inventory import Host, Inventory
from ..model import ArtifactPlan, FleetPlan, HostPlan, JwtPlan, NodePlan, RemovedUnit, ServicePlan
from ..registry import bind_host, host_services, listen_ip

OPT = "/opt/mevfleet"
NODE_CONFIG = "/etc/mevfleet/nodes"
# The catalog's argument templates (clients.yml `args`, `ipc`) are strings, not files; an unknown name in
# one fails planning rather than rendering empty.
_ARGS = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


def flashblocks(host: Host, inventory: Inventory, catalog: Catalog) -> dict[str, str]:
    """The pre-confirmation stream of each of the host's chains that has one (the catalog's, unless the
    inventory's fleet.flashblocks_ws names another)."""
    streams = {c: catalog.chains[c].flashblocks_ws for c in host.chains}
    streams.update({c: url for c, url in inventory.fleet.flashblocks_ws.items() if c in host.chains})
    return {c: url for c, url in streams.items() if url}


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


def node_plans(
    host: Host, plan: HostPlan, inventory: Inventory, catalog: Catalog, problems: list[Problem], agent_version: str
) -> tuple[list[NodePlan], list[JwtPlan]]:
    """A node per chain service of the host that has a client (the chain's stand-in on a devnet), and the
    engine-API secret each client pair shares; unknown versions and version keys naming no node on the host
    go to `problems`."""
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
            peer_binds = {s.service: {p.name: bind_host(plan, p) for p in s.ports} for s in services}
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
                "bind": {p.name: bind_host(plan, p) for p in service.ports},
                # Loopback too, for the co-located agent and health checks (clients that bind several).
                "binds": {p.name: sorted({"127.0.0.1", bind_host(plan, p)}) for p in service.ports},
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
            rpc_host = "127.0.0.1" if rpc is None or bind_host(plan, rpc) == "0.0.0.0" else bind_host(plan, rpc)
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
                        (f"http://{bind_host(plan, p)}:{p.port}" for p in service.ports if p.name == "beacon-api"), None
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
    for s in host_services(host, catalog, "", problems):
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
