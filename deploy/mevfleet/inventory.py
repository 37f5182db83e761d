"""Inventory: the fleet as YAML, validated into typed hosts before anything is touched.

Merge order for every host setting: `defaults` < each of the host's `groups` (in the order listed) <
the host's own entry. Every problem found is reported at once, naming the file, the host and the field.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from .catalog import RELAY_URL, Catalog, RelayTimeouts, load_catalog
from .errors import InventoryError, Problem
from .shapes import (
    HUGEPAGES_MAX,
    SYSCTL_WORD,
    Address,
    ArtifactFile,
    ControlPath,
    CpuGovernor,
    Email,
    HostName,
    HttpUrl,
    ImageRef,
    IPAddress,
    Name,
    Port,
    SmartHost,
    Text,
    UserName,
    Version,
    WsUrl,
    control_character,
)

Role = Literal["monitoring"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ssh(Strict):
    user: UserName = "root"
    port: Port = 22
    key: ControlPath | None = None
    # Strict host-key checking: unknown hosts are accepted once and pinned; changed keys are refused.
    strict_host_keys: bool = True
    # A known_hosts file of the fleet's own (the devnet harness writes one from its hosts' keys).
    known_hosts: ControlPath | None = None


class Hardware(Strict):
    cpus: int | None = Field(default=None, ge=1, le=4096)
    memory_gib: float | None = Field(default=None, gt=0, le=65536)


class HostSettings(Strict):
    """Everything a host may set; groups and defaults use the same shape (all optional)."""

    # How the deploy reaches the host (SSH): an IP address or a DNS name.
    address: Address | None = None
    # The IP the host's fleet- and monitoring-facing services listen on; unset: `address` when it is an
    # IP. Never 0.0.0.0: a host named by DNS name without it keeps those services on loopback.
    listen_address: IPAddress | None = None
    ssh: Ssh | None = None
    chains: list[Name] | None = None
    roles: list[Role] | None = None
    hardware: Hardware | None = None
    tuning: Name | None = None
    hugepages: int | None = Field(default=None, ge=0, le=HUGEPAGES_MAX)
    thp: Literal["always", "madvise", "never"] | None = None
    cpu_governor: CpuGovernor | None = None
    # Whether the host may change kernel-global settings. Unset: the deploy asks the host, and a
    # container (which shares its machine's kernel) may not. Set true only for hosts that look like
    # containers but own their kernel (some VM sandboxes report "docker").
    owns_kernel: bool | None = None
    # Strict: YAML 1.1 reads `yes` as true, which must not become sysctl value 1 unnoticed.
    sysctls: dict[Name, StrictInt | StrictStr] | None = None
    ports: dict[Name, Port] | None = None
    secrets: dict[Name, ControlPath] | None = None
    # Node client version per <chain>.<service> (catalog default otherwise), e.g. {arbitrum.anvil: 1.7.0}.
    versions: dict[Name, Version] | None = None


class HostEntry(HostSettings):
    groups: list[Name] = []


Severity = Literal["critical", "warning"]


class _Receiver(Strict):
    # Which of the routes (dashboards/rules severities) notify this receiver.
    severities: list[Severity] = ["critical", "warning"]

    def secret_files(self) -> dict[str, str]:
        """Alertmanager *_file field -> file on the control machine (uploaded 0600 to the monitoring host)."""
        return {k: v for k, v in self.model_dump(include=SECRET_FIELDS).items() if v}


class WebhookReceiver(_Receiver):
    type: Literal["webhook"]
    url: HttpUrl
    bearer_token_file: ControlPath | None = None  # sent as `Authorization: Bearer`, read from the file


class SlackReceiver(_Receiver):
    type: Literal["slack"]
    api_url_file: ControlPath  # the incoming-webhook URL is the credential
    channel: Text


class PagerDutyReceiver(_Receiver):
    type: Literal["pagerduty"]
    routing_key_file: ControlPath  # Events API v2 integration key


class EmailReceiver(_Receiver):
    type: Literal["email"]
    to: Email
    sender: Email  # Alertmanager's `from`
    smarthost: SmartHost
    auth_username: Text | None = None
    auth_password_file: ControlPath | None = None


_RECEIVER_TYPES = {"webhook", "slack", "pagerduty", "email"}
SECRET_FIELDS = {"bearer_token_file", "api_url_file", "routing_key_file", "auth_password_file"}
Receiver = Annotated[WebhookReceiver | SlackReceiver | PagerDutyReceiver | EmailReceiver, Field(discriminator="type")]


class Monitoring(Strict):
    # Every host ships its journal and /var/log/mevfleet: `alloy` (Grafana Alloy -> Loki, Grafana's apt
    # packages) or `journal-remote` (Debian's systemd-journal-upload -> systemd-journal-remote on the
    # monitoring host). Unset: alloy for `nodes: mainnet`, journal-remote for `nodes: devnet`.
    log_shipper: Literal["alloy", "journal-remote"] | None = None
    # Alertmanager notifications; none: alerts stay in the Alertmanager UI and API only.
    receivers: list[Receiver] = []
    # Prometheus's admin API (`--web.enable-admin-api`: TSDB snapshots for `mevfleet backup`, but also
    # series deletion) on one listener with the rest of Prometheus: when on, Prometheus listens on
    # loopback only (Grafana beside it; operators through Grafana or an SSH tunnel), see docs/aws.md.
    prometheus_admin_api: bool = False


class AgentSettings(Strict):
    """The searcher agent's settings for the whole fleet. The values are checked against the agent's own
    config models (mevagent.config) when the plan is compiled, so a bad limit stops the deploy before any
    host is touched."""

    # Chains on which the agent may sign and send. Every other chain is dry-run: it simulates and records
    # what it would have earned, and sends nothing.
    live: list[Name] = []
    max_gas_price_gwei: dict[Name, float] = {}  # per chain; the catalog's otherwise
    endpoints: dict[Name, list[dict[str, Any]]] = {}  # chain -> builders/relays/private RPCs to submit to
    risk: dict[str, Any] = {}  # mevagent.config.RiskLimits
    strategies: dict[str, dict[str, Any]] = {}  # name -> mevagent.config.StrategyConfig
    gas: dict[str, Any] = {}  # mevagent.config.GasSettings
    profit: dict[str, Any] = {}  # mevagent.config.ProfitSettings
    engine: dict[str, Any] = {}  # mevagent.config.EngineSettings
    analytics: dict[str, Any] = {}  # mevagent.config.AnalyticsConfig (the detector is off unless present)
    # Per chain, the rest of the agent's chain settings (mevagent.config.ChainConfig): on an EVM chain the
    # factories and base tokens it watches, its executor contract, wrapped native token, swap router, pricing,
    # lending and Venus markets; on Solana its `solana:` section (pools, sol_usd, block-engine regions, token
    # accounts); per-chain limits. What the plan sets itself (inputs.PLANNED_CHAIN_KEYS) is refused here.
    chains: dict[Name, dict[str, Any]] = {}


class ControlOperator(Strict):
    name: Name
    role: Literal["operator", "viewer"]


class ControlSettings(Strict):
    """The fleet control plane (mevcontrol) on the first monitoring host (docs/control-plane.md)."""

    # Each operator's token is made on the control host (/etc/mevcontrol/operators/<name>.token, 0600).
    # Two operators by default: resuming after an emergency stop and going live need a second one.
    operators: list[ControlOperator] = [
        ControlOperator(name="operator1", role="operator"),
        ControlOperator(name="operator2", role="operator"),
        ControlOperator(name="viewer", role="viewer"),
    ]
    lease_ttl_s: Annotated[float, Field(ge=1, le=600, allow_inf_nan=False)] = 15.0
    limits: dict[str, float] = {}  # mevcontrol FleetLimits (checked with its model when the plan compiles)
    ceilings: dict[str, float] = {}
    # The cross-chain engine (mevcontrol.crosschain.CrossChainConfig, docs/crosschain.md), always on at :8906:
    # price gaps and the bridge monitor from the shipped registry; `execution:` sends legs through the agents.
    crosschain: dict[str, Any] = {}


class Fleet(Strict):
    name: Name = "fleet"
    private_networks: list[str] = []
    operator_allowlist: list[str] = []
    # Who may open SSH. Empty means anywhere (rate limited), which is what keeps operators from being
    # locked out when their address changes.
    ssh_sources: list[str] = []
    # Upstream NTP for the monitoring host(s); node hosts follow the monitoring hosts, then these.
    time_sources: list[Address] = []
    # What node hosts run: the catalog's mainnet clients, or the devnet stand-ins (anvil per EVM chain).
    nodes: Literal["mainnet", "devnet"] = "mainnet"
    # The L1 the L2 nodes (op-node, Nitro, heimdall) read when the fleet has no Ethereum host of its own.
    l1_rpc: HttpUrl | None = None
    l1_beacon: HttpUrl | None = None
    # MEV-Boost relay URLs (https://0x<pubkey>@host), copied from each relay's own documentation.
    # Unset: the catalog's checked list (catalog/relays.yml); [] runs mev-boost with no relay.
    mev_boost_relays: list[Annotated[str, Field(pattern=RELAY_URL)]] | None = None
    # Per-request timeouts mev-boost gives each relay; unset: the catalog's (mev-boost's defaults).
    mev_boost_timeouts: RelayTimeouts | None = None
    # Pre-confirmation streams per chain (Base Flashblocks), replacing the catalog's; null turns one off.
    flashblocks_ws: dict[Name, WsUrl | None] = {}
    # Chains whose devnet runs real clients (catalog devnet_clients: the Ethereum pair) instead of anvil.
    real_clients: list[Name] = []
    agent: AgentSettings = AgentSettings()
    monitoring: Monitoring = Monitoring()
    control: ControlSettings = ControlSettings()

    @field_validator("private_networks", "operator_allowlist", "ssh_sources")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(v, strict=False)) for v in value]

    @model_validator(mode="after")
    def _log_shipper(self) -> Fleet:
        # Alloy and Loki come from Grafana's apt repository, which a devnet cannot reach.
        if self.monitoring.log_shipper is None:
            shipper = "alloy" if self.nodes == "mainnet" else "journal-remote"
            self.monitoring = self.monitoring.model_copy(update={"log_shipper": shipper})
        return self


class Devnet(Strict):
    network: Name = "mevfleet-devnet"
    subnet: str = "172.30.87.0/24"

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str) -> str:
        return str(ipaddress.ip_network(value))


class ArtifactPin(Strict):
    """An operator's pin for one client version: where to get it and the checksum they verified.

    `path` is a file on the control machine (an artifact fetched or built by the operator); `url` an
    internal mirror or the upstream. Either way the deploy uploads it and checks sha256 on the host.
    """

    url: HttpUrl | None = None
    path: ArtifactFile | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    image: ImageRef | None = None
    digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")


class InventoryFile(Strict):
    fleet: Fleet = Fleet()
    devnet: Devnet | None = None
    # client -> version -> pin; overrides (field by field) the catalog's artifact for that version.
    artifacts: dict[Name, dict[Version, ArtifactPin]] = {}
    defaults: HostSettings = HostSettings()
    groups: dict[Name, HostSettings] = {}
    hosts: dict[HostName, HostEntry]


# Sections validated one at a time (_sections), with the same types as InventoryFile's fields.
_ARTIFACTS = TypeAdapter(InventoryFile.model_fields["artifacts"].annotation)
_GROUP = TypeAdapter(InventoryFile.model_fields["groups"].annotation)
_HOST = TypeAdapter(InventoryFile.model_fields["hosts"].annotation)


class Host(BaseModel):
    """A host with every setting resolved."""

    model_config = ConfigDict(frozen=True)

    name: str
    address: str
    listen_address: str | None = None
    ssh: Ssh
    chains: tuple[str, ...]
    roles: tuple[Role, ...]
    groups: tuple[str, ...]
    hardware: Hardware
    tuning: str
    hugepages: int | None
    thp: str | None
    cpu_governor: str | None
    owns_kernel: bool | None
    sysctls: dict[str, int | str]
    ports: dict[str, int]
    secrets: dict[str, str]
    versions: dict[str, str] = {}


class Inventory(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    fleet: Fleet
    devnet: Devnet | None
    artifacts: dict[str, dict[str, ArtifactPin]] = {}
    hosts: dict[str, Host]
    rollout_path: str | None = None  # the rollout file merged into host versions (upgrade/rollback)

    def monitoring_hosts(self) -> list[Host]:
        return [h for h in self.hosts.values() if "monitoring" in h.roles]


class _DuplicateKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a duplicated host must be an error instead."""


def _construct_mapping(loader: _DuplicateKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first defined on line {seen[key] + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node)


_DuplicateKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _field_path(loc: tuple[Any, ...]) -> tuple[str | None, str]:
    """Turn a pydantic error location into (host, dotted field); a mapping's key is named by itself."""
    parts = [str(p) for p in loc if p != "[key]"]
    if len(parts) >= 2 and parts[0] == "hosts":
        return parts[1], ".".join(parts[2:]) or "(name)"
    return None, ".".join(parts) or "(document)"


def _schema_problems(exc: ValidationError, path: str, prefix: tuple[Any, ...] = ()) -> list[Problem]:
    problems = []
    for err in exc.errors():
        # A tagged union (receivers) puts its tag in the location: receivers.0.slack.channel is the
        # receivers.0.channel the operator wrote.
        loc = [
            p
            for i, p in enumerate(err["loc"])
            if not (p in _RECEIVER_TYPES and i and isinstance(err["loc"][i - 1], int))
        ]
        host, field = _field_path((*prefix, *loc))
        problems.append(Problem(path, host, field, err["msg"].removeprefix("Value error, ")))
    return problems


def _control_characters(value: Any, loc: tuple[Any, ...], path: str) -> list[Problem]:
    """Every string of the document, keys included, that holds a control character (a newline ends a
    config line and starts the next): refused wherever it is, whatever the field's own type."""
    problems = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and control_character(key):
                host, field = _field_path((*loc, key))
                problems.append(
                    Problem(path, host, field, f"the name contains the control character {control_character(key)}")
                )
            problems += _control_characters(item, (*loc, key), path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems += _control_characters(item, (*loc, i), path)
    elif isinstance(value, str) and control_character(value):
        host, field = _field_path(loc)
        problems.append(Problem(path, host, field, f"contains the control character {control_character(value)}"))
    return problems


def _validated(model: Any, value: Any, path: str, loc: tuple[Any, ...], problems: list[Problem]) -> Any:
    """One section validated on its own: its problems are recorded and the rest of the document goes on."""
    try:
        return model.validate_python(value) if isinstance(model, TypeAdapter) else model.model_validate(value)
    except ValidationError as exc:
        problems.extend(_schema_problems(exc, path, loc))
        return None


def _salvaged(model: type[BaseModel], value: Any, path: str, loc: tuple[Any, ...], problems: list[Problem]) -> Any:
    """A settings section with its invalid keys left out (each named in problems), so the later checks
    see every setting that is right (fleet networks, defaults) instead of none."""
    whole = _validated(model, value, path, loc, problems)
    if whole is not None or not isinstance(value, dict):
        return whole if whole is not None else model()
    good = {}
    for key, item in value.items():
        try:
            model.model_validate({key: item})
        except ValidationError:
            continue
        good[key] = item
    try:
        return model.model_validate(good)
    except ValidationError:
        return model()


def _sections(raw: dict[str, Any], path: str) -> tuple[InventoryFile, list[Problem]]:
    """The document, section by section (fleet, defaults, each group, each host), so that one section's
    schema error does not hide the other sections' problems. Returns what validated (a host whose own
    entry did not is left out: its later checks wait for the schema's to be fixed) and the problems."""
    problems: list[Problem] = []
    unknown = sorted(set(raw) - set(InventoryFile.model_fields))
    problems += [Problem(path, None, str(key), "Extra inputs are not permitted") for key in unknown]
    fleet = _salvaged(Fleet, raw.get("fleet") or {}, path, ("fleet",), problems)
    devnet = _validated(Devnet, raw["devnet"], path, ("devnet",), problems) if raw.get("devnet") else None
    artifacts = _validated(_ARTIFACTS, raw.get("artifacts") or {}, path, ("artifacts",), problems) or {}
    defaults = _salvaged(HostSettings, raw.get("defaults") or {}, path, ("defaults",), problems)
    groups: dict[str, HostSettings] = {}
    raw_groups = raw.get("groups") or {}
    for name, value in raw_groups.items() if isinstance(raw_groups, dict) else ():
        if _validated(_GROUP, {str(name): {}}, path, ("groups",), problems) is not None:
            groups[str(name)] = _salvaged(HostSettings, value or {}, path, ("groups", name), problems)
    if raw_groups and not isinstance(raw_groups, dict):
        problems.append(Problem(path, None, "groups", "expected a mapping of group name to settings"))
    hosts: dict[str, HostEntry] = {}
    raw_hosts = raw.get("hosts")
    if not isinstance(raw_hosts, dict):
        problems.append(Problem(path, None, "hosts", "expected a mapping of host name to host settings"))
        raw_hosts = {}
    for name, value in raw_hosts.items():
        hosts.update(_validated(_HOST, {str(name): value}, path, ("hosts",), problems) or {})
    doc = InventoryFile.model_construct(
        fleet=fleet, devnet=devnet, artifacts=artifacts, defaults=defaults, groups=groups, hosts=hosts
    )
    return doc, problems


def _unique(problems: list[Problem]) -> list[Problem]:
    """One problem per (file, host, field): the control-character walk and a field's own type may both
    refuse the same value."""
    seen: set[tuple[str, str | None, str]] = set()
    out = []
    for p in problems:
        if (p.file, p.host, p.field) not in seen:
            seen.add((p.file, p.host, p.field))
            out.append(p)
    return out


def _merge(*layers: HostSettings | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer is None:
            continue
        for key, value in layer.model_dump(exclude_none=True).items():
            # Mappings merge key by key, so a host can override one sysctl or one ssh field.
            if key in {"sysctls", "ports", "secrets", "ssh", "hardware", "versions"}:
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    return merged


def parse_inventory(
    text: str, path: str, catalog: Catalog | None = None, rollout: dict[str, dict[str, str]] | None = None
) -> Inventory:
    inventory, problems = inspect_inventory(text, path, catalog, rollout)
    if problems or inventory is None:
        raise InventoryError(problems)
    return inventory


def inspect_inventory(
    text: str, path: str, catalog: Catalog | None = None, rollout: dict[str, dict[str, str]] | None = None
) -> tuple[Inventory | None, list[Problem]]:
    """Every problem of the document at once, and the inventory of the hosts that passed, so the plan's
    own checks can still run on them (mevfleet validate reports everything in one go)."""
    catalog = catalog or load_catalog()
    try:
        raw = yaml.load(text, Loader=_DuplicateKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [Problem(path, None, f"yaml{line}", problem)]
    if not isinstance(raw, dict):
        return None, [Problem(path, None, "(document)", "expected a mapping with a 'hosts' key")]
    problems = _control_characters(raw, (), path)
    doc, schema = _sections(raw, path)
    problems += schema

    hosts: dict[str, Host] = {}
    for name, entry in doc.hosts.items():
        for group in entry.groups:
            if group not in doc.groups:
                problems.append(Problem(path, name, "groups", f"unknown group {group!r}"))
        layers = [doc.defaults, *(doc.groups.get(g) for g in entry.groups), entry]
        merged = _merge(*layers)
        host = Host(
            name=name,
            address=merged.get("address", name),
            listen_address=merged.get("listen_address"),
            ssh=Ssh(**merged.get("ssh", {})),
            chains=tuple(merged.get("chains", ())),
            roles=tuple(merged.get("roles", ())),
            groups=tuple(entry.groups),
            hardware=Hardware(**merged.get("hardware", {})),
            tuning=merged.get("tuning", "default"),
            hugepages=merged.get("hugepages"),
            thp=merged.get("thp"),
            cpu_governor=merged.get("cpu_governor"),
            owns_kernel=merged.get("owns_kernel"),
            sysctls=merged.get("sysctls", {}),
            ports=merged.get("ports", {}),
            secrets=merged.get("secrets", {}),
            # What upgrade/rollback rolled out to this host wins over the inventory's own pins.
            versions={**merged.get("versions", {}), **(rollout or {}).get(name, {})},
        )
        host_problems = _check_host(host, catalog, path)
        problems.extend(host_problems)
        if not host_problems:
            hosts[name] = host

    problems.extend(_check_addresses(hosts, path))
    for i, receiver in enumerate(doc.fleet.monitoring.receivers):
        for field, secret_path in receiver.secret_files().items():
            problem = _secret_problem(secret_path)
            if problem:
                problems.append(Problem(path, None, f"fleet.monitoring.receivers.{i}.{field}", problem))
    problems.extend(
        Problem(path, None, f"fleet.flashblocks_ws.{chain}", f"unknown chain {chain!r}")
        for chain in doc.fleet.flashblocks_ws
        if chain not in catalog.chains
    )
    problems.extend(
        Problem(path, None, f"fleet.agent.live[{i}]", f"not a chain of the catalog: {chain!r}")
        for i, chain in enumerate(doc.fleet.agent.live)
        if chain not in catalog.chains
    )
    problems.extend(
        Problem(path, None, f"fleet.agent.chains.{chain}", f"not a chain of the catalog: {chain!r}")
        for chain in doc.fleet.agent.chains
        if chain not in catalog.chains
    )
    inventory = Inventory(path=path, fleet=doc.fleet, devnet=doc.devnet, artifacts=doc.artifacts, hosts=hosts)
    return inventory, _unique(problems)


def rollout_path(path: str | Path) -> Path:
    """Where upgrade/rollback record the versions they rolled out: beside the inventory, same stem."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rollout.yml")


class Rollout(Strict):
    """Written by `mevfleet upgrade`/`rollback` only: host -> {<chain>.<service>: version}."""

    hosts: dict[HostName, dict[Name, Version]] = {}


def load_rollout(path: str | Path) -> dict[str, dict[str, str]]:
    file = rollout_path(path)
    if not file.exists():
        return {}
    try:
        return Rollout.model_validate(yaml.safe_load(file.read_text()) or {}).hosts
    except (yaml.YAMLError, ValidationError) as exc:
        raise InventoryError([Problem(str(file), None, "(file)", str(exc).splitlines()[0])]) from exc


def load_inventory(path: str | Path, catalog: Catalog | None = None) -> Inventory:
    inventory, problems = inspect_inventory_file(path, catalog)
    if problems or inventory is None:
        raise InventoryError(problems)
    return inventory


def inspect_inventory_file(path: str | Path, catalog: Catalog | None = None) -> tuple[Inventory | None, list[Problem]]:
    """inspect_inventory for a file and the rollout file beside it."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        return None, [Problem(str(path), None, "(file)", exc.strerror or str(exc))]
    try:
        rollout = load_rollout(path)
    except InventoryError as exc:
        return None, exc.problems
    inventory, problems = inspect_inventory(text, str(path), catalog, rollout)
    if inventory is None:
        return None, problems
    unknown = sorted(set(rollout) - set(inventory.hosts) - {p.host for p in problems})
    if unknown:
        problems.append(Problem(str(rollout_path(path)), None, "hosts", f"hosts not in {path}: {', '.join(unknown)}"))
    return inventory.model_copy(update={"rollout_path": str(rollout_path(path))}), problems


def _check_host(host: Host, catalog: Catalog, path: str) -> list[Problem]:
    problems: list[Problem] = []

    def bad(field: str, message: str) -> None:
        problems.append(Problem(path, host.name, field, message))

    known_chains = ", ".join(catalog.chains)
    for i, chain in enumerate(host.chains):
        if chain not in catalog.chains:
            bad(f"chains[{i}]", f"unknown chain {chain!r} (known: {known_chains})")
    if len(set(host.chains)) != len(host.chains):
        bad("chains", "a chain is listed twice")
    if not host.chains and not host.roles:
        bad("chains", "a host needs at least one chain or a role")
    if host.tuning not in catalog.tuning.profiles:
        bad("tuning", f"unknown tuning profile {host.tuning!r} (known: {', '.join(catalog.tuning.profiles)})")

    for key, value in host.sysctls.items():
        spec = catalog.tuning.known_sysctls.get(key)
        if spec is None:
            bad(f"sysctls.{key}", "unknown sysctl (see deploy/mevfleet/catalog/tuning.yml known_sysctls)")
        elif not _sysctl_value_ok(spec.type, value):
            bad(f"sysctls.{key}", f"expected {spec.type}, got {value!r}")

    for key in host.ports:
        if _port_spec(catalog, key) is None:
            bad(f"ports.{key}", "unknown port; write <chain>.<service>.<port>, e.g. ethereum.erigon.rpc")
        elif key.split(".", 1)[0] not in host.chains:
            bad(f"ports.{key}", f"host does not run chain {key.split('.', 1)[0]!r}")

    hugepages = host.hugepages
    if hugepages is None and host.tuning in catalog.tuning.profiles:
        hugepages = catalog.tuning.profiles[host.tuning].hugepages
    if hugepages and host.hardware.memory_gib is not None:
        reserved_gib = hugepages * 2 / 1024
        # Leave at least half the memory to the node and the page cache.
        if reserved_gib > host.hardware.memory_gib / 2:
            bad(
                "hugepages",
                f"{hugepages} x 2 MiB = {reserved_gib:g} GiB is more than half of the host's "
                f"{host.hardware.memory_gib:g} GiB",
            )

    for name, secret_path in host.secrets.items():
        problem = _secret_problem(secret_path)
        if problem:
            bad(f"secrets.{name}", problem)
    return problems


def _sysctl_value_ok(kind: str, value: int | str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "ints":
        parts = str(value).split()
        return bool(parts) and all(p.lstrip("-").isdigit() for p in parts)
    return isinstance(value, str) and SYSCTL_WORD.fullmatch(value) is not None


def _port_spec(catalog: Catalog, key: str):
    parts = key.split(".")
    if len(parts) != 3:
        return None
    chain, service, port = parts
    spec = catalog.chains.get(chain)
    if spec is None:
        return None
    # A devnet's real clients (fleet.real_clients) are the chain's services there: their ports too.
    services = {**(spec.devnet_clients.services if spec.devnet_clients else {}), **spec.services}
    return services[service].ports.get(port) if service in services else None


def _secret_problem(secret_path: str) -> str | None:
    path = Path(os.path.expanduser(secret_path))
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"secret file {path} does not exist"
    except OSError as exc:
        return f"secret file {path}: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return f"secret file {path} is not a regular file"
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        return f"secret file {path} has mode {mode:04o}; group and others must have no access (chmod 600)"
    return None


def _check_addresses(hosts: dict[str, Host], path: str) -> list[Problem]:
    seen: dict[tuple[str, int], str] = {}
    problems = []
    for host in hosts.values():
        key = (host.address, host.ssh.port)
        if key in seen:
            problems.append(
                Problem(path, host.name, "address", f"{host.address}:{host.ssh.port} is also {seen[key]!r}")
            )
        seen[key] = host.name
    return problems
