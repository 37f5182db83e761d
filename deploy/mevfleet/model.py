"""The host plan's types: what a host gets, as data (plan.py composes them, each concern planning its
slice from the inventory and the catalog). Every engine (pyinfra, Ansible) and the verify suite read these
and nothing else."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .catalog import Catalog, Exposure, HealthCheck, NpmBundle, Protocol
from .control import ControlPlan
from .inventory import Monitoring


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PortBinding(Frozen):
    key: str  # <chain or "fleet">.<service>.<name>: the name inventory overrides use
    service: str
    name: str
    port: int
    port_end: int | None = None
    protocols: tuple[Protocol, ...]
    exposure: Exposure
    scrape: str | None = None
    scrape_interval: str | None = None

    def span(self) -> range:
        return range(self.port, (self.port_end or self.port) + 1)

    @property
    def bind_address(self) -> str:
        # Anything not meant for the internet or the fleet binds to loopback; the firewall is the second
        # line, not the first.
        return "127.0.0.1" if self.exposure == "loopback" else "0.0.0.0"


class ServicePlan(Frozen):
    unit: str
    service: str
    chain: str | None
    user: str
    package: str | None
    ports: tuple[PortBinding, ...]
    bus_client: bool = False


class SystemUser(Frozen):
    name: str
    home: str


class SysctlFile(Frozen):
    concern: str
    path: str
    values: dict[str, str]
    notes: dict[str, str] = {}


class CpuPlan(Frozen):
    cpus: int
    node_cores: str
    agent_cores: str
    shared: bool  # True when the host is too small to give the agent cores of its own


class FirewallRule(Frozen):
    comment: str
    protocol: Protocol
    ports: tuple[str, ...]  # "30303" or "8000-8020"
    sources: tuple[str, ...] | None  # None: from anywhere


class LogSender(Frozen):
    """A host whose journal the monitoring hosts receive on ports of its own (journal-remote fleets): the
    n-th host of the inventory gets the n-th port of the catalog's `journal-remote` ranges."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$")  # a host name: a stunnel section, a unit instance
    address: str  # the IP it uploads from (its listen IP): the only source its port is open to
    upload: int = Field(ge=1, le=65535)  # its TLS port on the monitoring hosts' private address
    local: int = Field(ge=1, le=65535)  # its own journal-remote on the monitoring hosts' loopback


class FirewallPlan(Frozen):
    ssh_port: int
    ssh_sources: tuple[str, ...] | None
    ssh_rate_per_minute: int = 30
    rules: tuple[FirewallRule, ...]


class ScrapeTarget(Frozen):
    job: str
    target: str
    path: str
    interval: str
    host: str
    chain: str | None


class TimePlan(Frozen):
    servers: tuple[str, ...]  # upstream or fleet-internal NTP servers
    serve_networks: tuple[str, ...]  # who may query this host (monitoring hosts serve the fleet)


class ArtifactPlan(Frozen):
    url: str | None = None
    path: str | None = None  # a file on the control machine (inventory pin)
    sha256: str | None = None
    image: str | None = None
    digest: str | None = None
    npm: NpmBundle | None = None  # built on the control machine (nodes/npm.py); sha256 is its recipe id
    pinned_by: Literal["catalog", "inventory"]

    @property
    def filename(self) -> str:
        return (self.path or self.url or "artifact").rstrip("/").rsplit("/", 1)[-1]


class JwtPlan(Frozen):
    """One engine-API secret shared by a client pair: one copy per service user, identical, 0600."""

    chain: str
    copies: tuple[tuple[str, str], ...]  # (path, owner) per service of the pair
    units: tuple[str, ...]  # restarted when the secret is first made or repaired


class NodePlan(Frozen):
    """A node client on a host: what to install, how to start it, how to tell it is healthy."""

    unit: str  # the systemd unit name without ".service"; also the ServicePlan's unit
    chain: str
    chain_id: int
    service: str
    client: str
    runtime: Literal["binary", "container", "agent"]
    version: str
    artifact: ArtifactPlan
    user: str
    data_dir: str
    config_dir: str
    # Releases are shared by every unit of the client on the host and never change once unpacked; each
    # unit has its own `current` link, so one chain can be upgraded while another on the box stays.
    release_dir: str  # /opt/mevfleet/<client>/<version>
    link: str  # /opt/mevfleet/<unit>/current -> release_dir
    previous_link: str  # /opt/mevfleet/<unit>/previous -> the release before the last switch
    executable: str | None  # under `link`, for binary clients
    args: tuple[str, ...]
    ipc: str | None
    rpc_url: str | None  # where the health check asks, from the host itself
    health: HealthCheck | None
    sync_method: str | None
    after: tuple[str, ...]  # units that must be up first
    nofile: int
    memlock: int
    jwt: str | None
    start: bool  # False: rendered and checked, not installed or started (see skip_reason)
    # What the renderer and the node operations need of the client's catalog entry, resolved at plan time
    # from the catalog the plan read (with real devnet clients swapped in), so neither reads a catalog.
    unit_template: str  # under templates/: the client's own unit template, else its runtime's
    config_templates: dict[str, str]  # file under config_dir -> its template under templates/
    simulator: bool  # a devnet stand-in (anvil, the Solana simulator), not a real client: status says so
    skip_reason: str | None = None
    beacon_url: str | None = None  # a consensus client's beacon API, from the host itself
    # The chain's other consensus clients on this host (their beacon APIs): its P2P peers, asked for their
    # ENRs at each start, so a restarted node range-syncs from one that kept the chain moving.
    beacon_peers: tuple[str, ...] = ()
    # A devnet beacon node that takes its genesis time from this one's API (the chain's first beacon node
    # makes it): both must start from the same genesis state.
    genesis_from: str | None = None


class RemovedUnit(Frozen):
    """A node unit an earlier plan may have put on the host and this one does not: a chain the inventory no
    longer gives the host, or a client its chain no longer runs there (a stand-in replaced by real clients).
    The engines stop, disable and remove its unit, drop-ins, config dir and release links; its data dir and
    service user are kept (a chain added back resyncs from its own data, and no data is lost by a typo)."""

    unit: str
    unit_file: str
    dropins: str  # /etc/systemd/system/<unit>.service.d
    config_dir: str
    link_dir: str  # /opt/mevfleet/<unit>: its current/previous links (shared releases stay)


class Removal(Frozen):
    """What a deploy takes off a host when the plan no longer has it there: a node unit (RemovedUnit), the
    searcher agent, the monitoring services, the control plane. Built per concern (nodes, agent.py,
    monitoring.py, control.py) and gathered by mevfleet.desired, which keeps anything planned out of it.

    Both engines run the same script (desired.removal_script) when the one-command probe finds any of its
    `markers` on the host: `units` stopped and disabled in order, then `paths` removed (unit files,
    drop-ins, configs, secrets, release links). Markers are paths only mevfleet creates (its own files, not
    a package's config it rewrote), so a service an operator runs by hand on a host mevfleet never gave it
    is never touched; no markers means every path is one. Data and state directories, keys, releases and
    service users are never in `paths`; `kept` names them in the task, so the log says what stayed."""

    concern: str
    name: str
    units: tuple[str, ...]
    paths: tuple[str, ...]
    kept: str
    markers: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _markers_are_removed_paths(self) -> Removal:
        if not set(self.markers) <= set(self.paths):
            raise ValueError(f"{self.name}: markers not among the removed paths: {set(self.markers) - set(self.paths)}")
        return self

    @property
    def evidence(self) -> tuple[str, ...]:
        """What the probe asks about: any of these on the host means the removal is due."""
        return self.markers or self.paths

    @property
    def task(self) -> str:
        return f"{self.name} removed (no longer planned; {self.kept} kept)"


HostKeyChecking = Literal["yes", "accept-new", "no"]


class SshPlan(Frozen):
    """How the control machine reaches the host over SSH: everything a connection needs, planned once by the
    ssh concern (mevfleet.ssh.ssh_plan) from the inventory's `address` and `ssh:`, and turned into each
    client's settings by mevfleet.sshclient (pyinfra, Ansible, testinfra, status/upgrade/rollback). Paths
    are kept as the inventory writes them (`~` is the control machine's, expanded when connecting), so the
    plan reads no environment; a key is named by its file, never held."""

    address: str  # what SSH dials: an IP address or a DNS name
    port: int = Field(ge=1, le=65535)
    user: str  # not root: every command runs through sudo (pyinfra _sudo, Ansible become, testinfra sudo)
    key: str | None  # private key file on the control machine; None: the user's own keys in ~/.ssh
    # OpenSSH's StrictHostKeyChecking, decided once (mevfleet.ssh): "yes" the host's key must be in
    # known_hosts; "accept-new" an unknown key is pinned there, a changed one refused; "no" an unknown key
    # is let in with a warning and not pinned, a changed one still refused.
    host_key_checking: HostKeyChecking
    known_hosts: str  # the fleet's own file (host_key_checking "yes") or the user's ~/.ssh/known_hosts

    @property
    def sudo(self) -> bool:
        return self.user != "root"


class HostPlan(Frozen):
    name: str
    address: str
    # The IP the host's non-loopback services listen on (inventory listen_address, else address); a host
    # known only by DNS name listens on loopback: never 0.0.0.0 (docs/inventory.md).
    listen_address: str
    roles: tuple[str, ...]
    chains: tuple[str, ...]
    ssh: SshPlan  # how the control machine reaches it (every client reads this, never the inventory)
    packages: tuple[str, ...]
    users: tuple[SystemUser, ...]
    directories: tuple[str, ...]
    nofile: int
    memlock_bytes: int
    sysctl_files: tuple[SysctlFile, ...]
    namespaced_sysctls: tuple[str, ...]
    sysctl_locks: dict[str, str]  # key -> value at which the kernel refuses further changes
    hugepages: int
    thp: Literal["always", "madvise", "never"]
    cpu_governor: str
    owns_kernel: bool | None  # None: ask the host at deploy time
    cpu: CpuPlan | None
    services: tuple[ServicePlan, ...]
    firewall: FirewallPlan
    scrape_targets: tuple[ScrapeTarget, ...]
    time: TimePlan
    # Where this host ships its logs and who may scrape it: every monitoring host of the fleet.
    monitoring_addresses: tuple[str, ...] = ()
    # Alloy fleets: each monitoring host's Loki push endpoint, from that host's planned port.
    loki_push_urls: tuple[str, ...] = ()
    # The fleet's log shipper and Alertmanager receivers (inventory fleet.monitoring, resolved).
    monitoring: Monitoring = Monitoring()
    # journal-remote fleets: the hosts whose journals this host receives (every host, on monitoring hosts),
    # else this host alone (its own upload port); empty on other fleets.
    log_senders: tuple[LogSender, ...] = ()
    # chain -> pre-confirmation stream the co-located agent reads (Base Flashblocks), for chains on this host.
    flashblocks_ws: dict[str, str] = {}
    agent: AgentPlan | None = None
    nodes: tuple[NodePlan, ...] = ()
    jwts: tuple[JwtPlan, ...] = ()
    control: ControlPlan | None = None  # the fleet control plane, on its host (deploy/mevfleet/control.py)
    # What to remove when the plan drops something: node units of chains and clients not planned here.
    remove: tuple[RemovedUnit, ...] = ()

    def sysctls(self) -> dict[str, str]:
        return {k: v for f in self.sysctl_files for k, v in f.values.items()}

    def ports(self) -> list[PortBinding]:
        return [p for s in self.services for p in s.ports]


class MevBoostPlan(Frozen):
    """mev-boost beside a chain's beacon node on the host, as the co-located agent polls its status
    (mevagent.config.MevBoostConfig: these are its fields)."""

    url: str  # its builder API, at the catalog's port
    poll_s: float | None = None  # the chain's block time (once per slot); None: the agent's default
    timeout_ms: int  # mev-boost's getHeader timeout plus 1 s: with -relay-check its answer waits for every relay


class AgentChainPlan(Frozen):
    """One chain the co-located agent searches: where its node is and whether it may send. An EVM chain's
    node is read over IPC, WebSocket or HTTP; a Solana chain's (vm "svm") over its JSON-RPC (`rpc_url`)
    and its PubSub WebSocket (`ws_url`), with bundles to `block_engine_url` where the node serves one."""

    chain: str
    chain_id: int
    vm: Literal["evm", "svm"] = "evm"
    node_unit: str  # the execution node it reads (systemd unit), on this host
    ipc: str | None  # the node's IPC socket: the agent's first choice
    rpc_url: str  # HTTP JSON-RPC on the same node
    ws_url: str | None  # WebSocket on the same node: the fallback when the socket is down
    http_url: str | None = None  # a node without IPC and subscriptions (EthereumJS): polled over HTTP
    beacon_url: str | None = None  # the chain's consensus client on this host (its peer count: the heartbeat)
    mev_boost: MevBoostPlan | None = None  # mev-boost on this host (Ethereum): its status on /relays/status
    flashblocks_ws: str | None
    block_engine_url: str | None = None  # Solana: a Jito block-engine API on this host (the devnet simulator)
    live: bool  # False (default): dry-run, simulate only; True only when the inventory lists the chain


class AgentPlan(Frozen):
    """The searcher agent on a node host: one process for every chain on the host (EVM and Solana)."""

    user: str
    version: str  # hash of the agent's sources and locked dependencies: a new one is a new release
    release_root: str  # /opt/mevfleet/mevagent/<version>/ holds a venv; `current` points at one
    config_path: str
    state_dir: str
    token_file: str  # control API bearer token, generated on the host, 0600
    keys_dir: str  # signing keys, 0600, readable only by the agent; never in the repo or a log
    api_bind: str
    api_port: int
    api_control_bind: str | None = None  # the API also here, for the control host (exposure `control`)
    metrics_bind: str
    metrics_port: int
    cpu_affinity: str | None
    node_groups: tuple[str, ...]  # node users whose IPC socket directories it may enter
    chains: tuple[AgentChainPlan, ...]
    config: dict[str, Any]  # the agent's config file (mevagent.config.AgentConfig), checked at plan time


class FileSpec(BaseModel):
    """A file a concern declares for a host: rendered from a template (which sees the host's `plan` and
    `facts` plus `context`) or given verbatim as `content`. Every concern returns these, and
    render.host_files turns each into a ManagedFile the same way."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    concern: str  # the files that share one post-change action in the engines (a restart, a check)
    template: str | None = None  # under templates/
    context: dict[str, Any] = {}
    content: str | None = None
    mode: str = "0644"
    owner: str = "root"
    group: str = "root"

    @model_validator(mode="after")
    def _template_or_content(self) -> FileSpec:
        if (self.template is None) == (self.content is None):
            raise ValueError(f"{self.path}: a template or verbatim content, exactly one")
        return self


class FleetPlan(Frozen):
    inventory: str
    hosts: dict[str, HostPlan]


class PlanInputs(Frozen):
    """Everything planning reads besides the inventory, handed in as data (mevfleet.inputs.gather)."""

    catalog: Catalog
    agent_version: str  # the agent's release (hash of its sources): its hosts' release directory name
    control_version: str  # the control plane's release, likewise
