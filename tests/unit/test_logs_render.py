"""Log shipping as rendered from the plan, for both shippers.

journal-remote (the devnet's): the uploader's and receivers' units parsed as systemd unit files and
checked against the plan (each host's own port, stunnel service naming it, journal-remote instance and
output file; its port open to its address only; a dropped host's all gone; retrying forever); the
receiver template and the vacuum unit and timer checked by systemd-analyze. It runs for real in
tests/integration/test_monitoring.py and tests/verify/test_logs.py.

Alloy and Loki (production's): neither can be downloaded here, so neither `alloy fmt` nor
`loki -verify-config` runs. Instead the River config is tokenised and checked for balanced blocks,
closed strings, the components it must declare, references only to components it declares, and one
Loki endpoint per monitoring host; Loki's YAML is loaded into a pydantic model of the keys that decide
where it listens, where it stores and how long it keeps logs.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
import shutil
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from mevfleet import INVENTORY_DIR
from mevfleet.catalog import load_catalog
from mevfleet.desired import OWNED_GLOBS
from mevfleet.errors import InventoryError
from mevfleet.inventory import load_inventory
from mevfleet.model import FleetPlan, HostPlan
from mevfleet.monitoring import (
    ALLOY_CONFIG,
    JOURNAL_REMOTE_OUTPUT,
    LOG_RETENTION_DAYS,
    SHIPPED_LOGS,
    STUNNEL_CONFIG,
    log_shipper,
    port,
    shipper_packages,
    shipper_units,
)
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, ManagedFile, host_files

from .systemd_units import verify_problems

DEVNET = compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml"))
PRODUCTION = compile_plan(load_inventory(INVENTORY_DIR / "production.example.yml"))
UPLOAD = "/etc/systemd/journal-upload.conf.d/90-mevfleet.conf"
UPLOAD_SERVICE = "/etc/systemd/system/systemd-journal-upload.service.d/90-mevfleet.conf"
RECEIVER = "/etc/systemd/system/mevfleet-journal-remote@.service"
RECEIVERS = "/etc/systemd/system/mevfleet-journal-remote.target"
RANGES = load_catalog().fleet.monitoring["journal-remote"].ports


def _instance(host: str) -> str:
    return f"/etc/systemd/system/mevfleet-journal-remote@{host}.service.d/90-mevfleet.conf"


VACUUM = "/etc/systemd/system/mevfleet-journal-remote-vacuum"


def _files(plan: HostPlan) -> dict[str, ManagedFile]:
    return {f.path: f for f in host_files(plan, HostFacts())}


def _unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as section -> key -> values in order (keys repeat; an empty value resets)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"key outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def _effective(values: list[str]) -> list[str]:
    """What systemd keeps of a list setting: everything after the last empty assignment."""
    last_reset = max((i for i, v in enumerate(values) if v == ""), default=-1)
    return values[last_reset + 1 :]


def _hosts(fleet: FleetPlan) -> list[HostPlan]:
    return list(fleet.hosts.values())


def test_the_shipper_follows_the_fleet_unless_the_inventory_names_one(tmp_path: Path):
    assert {log_shipper(p) for p in _hosts(DEVNET)} == {"journal-remote"}
    assert {log_shipper(p) for p in _hosts(PRODUCTION)} == {"alloy"}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "fleet: {nodes: mainnet, monitoring: {log_shipper: journal-remote}}\n"
        "hosts: {mon1: {address: 10.0.0.1, roles: [monitoring]}, eth1: {address: 10.0.0.2, chains: [ethereum]}}\n"
    )
    plan = compile_plan(load_inventory(inventory))
    assert {log_shipper(p) for p in _hosts(plan)} == {"journal-remote"}
    assert shipper_packages(plan.hosts["eth1"]) == ["systemd-journal-remote"]
    assert shipper_packages(PRODUCTION.hosts["eth1"]) == []


@pytest.mark.parametrize("plan", _hosts(DEVNET), ids=lambda p: p.name)
def test_every_devnet_host_uploads_its_journal_to_the_first_monitoring_host_and_keeps_retrying(plan: HostPlan):
    files = _files(plan)
    upload = _unit(files[UPLOAD].content)
    # Its own port: the n-th of the catalog's range for the inventory's n-th host.
    port = RANGES["upload"].port + list(DEVNET.hosts).index(plan.name)
    assert upload["Upload"]["URL"] == [f"https://{DEVNET.hosts['mon1'].address}:{port}"]
    # Its certificate and key from the fleet CA: root's files, readable by a group only it (and the TLS
    # front on monitoring hosts) is given.
    assert upload["Upload"]["ServerKeyFile"] == ["/etc/mevfleet/journal/host.key"]
    assert upload["Upload"]["TrustedCertificateFile"] == ["/etc/mevfleet/journal/ca.pem"]
    sandbox_drop_in = files["/etc/systemd/system/systemd-journal-upload.service.d/80-mevfleet-sandbox.conf"].content
    assert "SupplementaryGroups=mevfleet-journal" in sandbox_drop_in
    service = _unit(files[UPLOAD_SERVICE].content)
    assert service["Service"]["Restart"] == ["always"]
    assert service["Unit"]["StartLimitIntervalSec"] == ["0"]  # never gives up while mon1 is away
    assert "systemd-journal-upload.service" in shipper_units(plan)
    assert not [p for p in files if "alloy" in p or "loki" in p]


def _stunnel(text: str) -> dict[str, dict[str, str]]:
    """stunnel's config as section -> option -> value ("" for the global options); no option repeats."""
    sections: dict[str, dict[str, str]] = {"": {}}
    current = sections[""]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert key.strip() not in current, line
        current[key.strip()] = value.strip()
    return sections


def test_the_monitoring_host_receives_each_host_on_its_own_port_certificate_and_journal():
    plan = DEVNET.hosts["mon1"]
    files = _files(plan)
    front = _stunnel(files[STUNNEL_CONFIG].content)
    assert set(front) - {""} == set(DEVNET.hosts)  # one stunnel service per sending host, monitoring included
    template = _unit(files[RECEIVER].content)
    exec_start = template["Service"]["ExecStart"]
    assert exec_start == [
        "/lib/systemd/systemd-journal-remote --listen-http=${LISTEN} --split-mode=none"
        f" --output={JOURNAL_REMOTE_OUTPUT}/remote-%i.journal"
    ]
    assert template["Unit"]["PartOf"] == ["mevfleet-journal-remote.target"]
    assert template["Service"]["User"] == ["systemd-journal-remote"]
    wants = _unit(files[RECEIVERS].content)["Unit"]["Wants"]
    assert wants == [f"mevfleet-journal-remote@{h}.service" for h in DEVNET.hosts]
    ports = set()
    for n, host in enumerate(DEVNET.hosts):
        upload, local = RANGES["upload"].port + n, RANGES["local"].port + n
        ports.add(upload)
        service = front[host]
        # On the private address at the host's own port; a certificate of the fleet CA naming that host.
        assert service["accept"] == f"{plan.address}:{upload}"
        assert service["checkHost"] == host
        assert service["requireCert"] == service["verifyChain"] == "yes"
        assert service["CAfile"] == "/etc/mevfleet/journal/ca.pem"
        # Handed to the host's own journal-remote on loopback, which files everything under its name.
        assert service["connect"] == f"127.0.0.1:{local}"
        assert _unit(files[_instance(host)].content)["Service"]["Environment"] == [f"LISTEN=127.0.0.1:{local}"]
        # Its port open to its address only.
        (rule,) = [r for r in plan.firewall.rules if str(upload) in r.ports]
        assert rule.ports == (str(upload),) and rule.protocol == "tcp"
        assert rule.sources == (f"{DEVNET.hosts[host].listen_address}/32",)
    assert len(ports) == len(DEVNET.hosts)
    assert {p for r in plan.firewall.rules for spec in r.ports for p in [int(spec.split("-")[0])]} & set(
        range(RANGES["local"].port, (RANGES["local"].port_end or 0) + 1)
    ) == set()  # the receivers' loopback ports are opened to no one
    assert set(shipper_units(plan)) >= {
        "mevfleet-journal-remote.target",
        "stunnel@journal-remote.service",
        "mevfleet-journal-remote-vacuum.timer",
    }
    # Node hosts receive nothing and know only their own port.
    eth1 = DEVNET.hosts["eth1"]
    assert [s.name for s in eth1.log_senders] == ["eth1"]
    assert not [p for p in _files(eth1) if "stunnel" in p or "mevfleet-journal-remote@" in p]


def test_a_host_dropped_from_the_fleet_loses_its_service_port_and_receiver(tmp_path: Path):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text((INVENTORY_DIR / "devnet.yml").read_text())
    doc = yaml.safe_load(inventory.read_text())
    del doc["hosts"]["arb1"]
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    smaller = compile_plan(load_inventory(inventory)).hosts["mon1"]
    files = _files(smaller)
    assert "arb1" not in _stunnel(files[STUNNEL_CONFIG].content)
    assert "arb1" not in files[RECEIVERS].content
    assert _instance("arb1") not in files
    assert not [r for r in smaller.firewall.rules if "arb1" in r.comment]
    # Its receiver's drop-in is a file the deploy owns by pattern: on the host it is stale and removed,
    # and restarting the receivers' target (stop, start) stops its instance.
    assert any(fnmatch.fnmatch(_instance("arb1"), g) for g in OWNED_GLOBS)
    # The hosts after it move down one port (inventory order), uploader and receiver together.
    assert _stunnel(files[STUNNEL_CONFIG].content)["op1"]["accept"].endswith(f":{RANGES['upload'].port + 2}")


def test_a_fleet_larger_than_the_ports_is_refused(tmp_path: Path):
    room = (RANGES["upload"].port_end or 0) - RANGES["upload"].port + 1
    hosts = ", ".join(f"h{i}: {{address: 10.0.0.{i + 2}, chains: [ethereum]}}" for i in range(room))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "fleet: {nodes: devnet, monitoring: {log_shipper: journal-remote}}\n"
        f"hosts: {{mon1: {{address: 10.0.0.1, roles: [monitoring]}}, {hosts}}}\n"
    )
    with pytest.raises(InventoryError, match=f"h{room - 1}.*journal-remote: its ports serve {room} hosts"):
        compile_plan(load_inventory(inventory))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_receiver_template_its_instance_and_target(tmp_path: Path):
    files = _files(DEVNET.hosts["mon1"])
    units = {"mevfleet-journal-remote@.service": files[RECEIVER].content,
             "mevfleet-journal-remote.target": files[RECEIVERS].content}  # fmt: skip
    # This machine may lack the systemd-journal-remote package (the hosts have it): only that is forgiven.
    missing = "Command /lib/systemd/systemd-journal-remote is not executable"
    problems = verify_problems(tmp_path, units, "mevfleet-journal-remote@eth1.service", forgiven=missing)
    assert not problems, problems
    assert "Wants=mevfleet-journal-remote@eth1.service" in files[RECEIVERS].content


def test_received_journals_are_trimmed_to_the_hosts_retention():
    files = _files(DEVNET.hosts["mon1"])
    service = _unit(files[f"{VACUUM}.service"].content)["Service"]
    assert service["ExecStart"] == [
        f"/bin/journalctl --directory={JOURNAL_REMOTE_OUTPUT} --vacuum-time={LOG_RETENTION_DAYS}d"
    ]
    journald = _unit(files["/etc/systemd/journald.conf.d/90-mevfleet.conf"].content)["Journal"]
    assert journald["MaxRetentionSec"] == [f"{LOG_RETENTION_DAYS}day"]
    assert _unit(files[f"{VACUUM}.timer"].content)["Timer"]["OnCalendar"] == ["daily"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_vacuum_unit_and_timer(tmp_path: Path):
    files = _files(DEVNET.hosts["mon1"])
    units = {f"mevfleet-journal-remote-vacuum.{suffix}": files[f"{VACUUM}.{suffix}"].content
             for suffix in ("service", "timer")}  # fmt: skip
    problems = verify_problems(tmp_path, units, "mevfleet-journal-remote-vacuum.timer")
    assert not problems, problems


# --- Alloy (River) ---------------------------------------------------------------------------------

TOKEN = re.compile(r'\s+|//[^\n]*|"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_.]*|[{}\[\](),=]|\S')
COMPONENT = re.compile(r"[a-z_]+(?:\.[a-z_]+)+")
REFERENCE = re.compile(r"\b((?:loki|local|discovery|prometheus)\.[a-z_.]+)\.([a-z_]+)\b")


def _river(text: str) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Tokenise River: (top-level components as (kind, label), every string, every dotted reference)."""
    tokens = [t for t in TOKEN.findall(text) if t.strip() and not t.startswith("//")]
    assert not [t for t in tokens if t.startswith('"') and (len(t) < 2 or not t.endswith('"'))], "unclosed string"
    stack: list[str] = []
    pairs = {"}": "{", "]": "[", ")": "("}
    components = []
    for i, token in enumerate(tokens):
        if token in "{[(":
            if token == "{" and not stack:
                # A top-level block is a component: `kind.name "label" {`.
                kind, label = tokens[i - 2 : i] if i >= 2 else ("", "")
                assert COMPONENT.fullmatch(kind) and label.startswith('"'), f"not a component: {kind} {label} {{"
                components.append((kind, label.strip('"')))
            stack.append(token)
        elif token in pairs:
            assert stack and stack[-1] == pairs[token], f"unbalanced {token!r} at token {i}"
            stack.pop()
    assert not stack, f"unclosed {stack}"
    strings = [t[1:-1] for t in tokens if t.startswith('"')]
    # Dotted names not followed by a label: uses of another component's export, not block headers.
    labelled = {i for i, t in enumerate(tokens[1:]) if t.startswith('"') and tokens[i + 2 : i + 3] == ["{"]}
    references = [t for i, t in enumerate(tokens) if REFERENCE.fullmatch(t) and i not in labelled]
    return components, strings, references


@pytest.mark.parametrize("plan", _hosts(PRODUCTION), ids=lambda p: p.name)
def test_alloy_ships_the_journal_and_mevfleet_logs_to_loki_on_every_monitoring_host(plan: HostPlan):
    """Structural check of config.alloy (alloy itself cannot be downloaded here to run `alloy fmt`)."""
    files = _files(plan)
    components, strings, references = _river(files[ALLOY_CONFIG].content)
    declared = {f"{kind}.{label}" for kind, label in components}
    assert declared == {
        "loki.write.monitoring",
        "loki.relabel.journal",
        "loki.source.journal.system",
        "local.file_match.mevfleet",
        "loki.source.file.mevfleet",
    }
    # Every reference names an export of a component declared here (the pipeline is wired end to end).
    for ref in references:
        component, export = ref.rsplit(".", 1)
        assert component in declared, ref
        assert export in {"receiver", "rules", "targets"}, ref
    assert {"loki.write.monitoring.receiver", "loki.relabel.journal.rules", "local.file_match.mevfleet.targets"} <= set(
        references
    )
    # One endpoint per monitoring host, at the Loki port that host's own plan listens on.
    lokis = [port(m, "loki", "http").port for m in PRODUCTION.hosts.values() if "monitoring" in m.roles]
    pushes = [s for s in strings if s.endswith("/loki/api/v1/push")]
    assert plan.monitoring_addresses and len(lokis) == len(plan.monitoring_addresses)
    assert pushes == [f"http://{a}:{p}/loki/api/v1/push" for a, p in zip(plan.monitoring_addresses, lokis, strict=True)]
    assert SHIPPED_LOGS in strings and plan.name in strings
    default = files["/etc/default/alloy"].content
    assert f'CONFIG_FILE="{ALLOY_CONFIG}"' in default
    assert "--server.http.listen-addr=127.0.0.1:" in default  # Alloy's UI/API stays on loopback
    assert set(shipper_units(plan)) >= {"alloy.service"}
    # Reading the journal and /var/log/mevfleet (root:adm 0640) takes these groups (Alloy's docs).
    dropin = _unit(files["/etc/systemd/system/alloy.service.d/90-mevfleet.conf"].content)
    assert set(dropin["Service"]["SupplementaryGroups"][0].split()) == {"adm", "systemd-journal"}
    assert "create 0640 root adm" in files["/etc/logrotate.d/mevfleet"].content
    assert not [p for p in files if "journal-upload" in p or "journal-remote" in p]


def test_the_river_check_catches_what_alloy_fmt_would_refuse():
    good = _files(PRODUCTION.hosts["eth1"])[ALLOY_CONFIG].content
    for broken in (good.replace("}", "", 1), good.replace('"journal"', '"journal', 1), good + "]\n"):
        with pytest.raises(AssertionError):
            _river(broken)


# --- Loki ------------------------------------------------------------------------------------------


class _Strictish(BaseModel):
    model_config = ConfigDict(extra="allow")


class LokiServer(_Strictish):
    http_listen_address: str
    http_listen_port: int
    grpc_listen_address: str


class LokiFilesystem(_Strictish):
    chunks_directory: str
    rules_directory: str


class LokiStorage(_Strictish):
    filesystem: LokiFilesystem


class LokiCommon(_Strictish):
    path_prefix: str
    replication_factor: int
    storage: LokiStorage


class LokiSchema(_Strictish):
    store: str
    object_store: str
    version: str = Field(alias="schema")


class LokiSchemaConfig(_Strictish):
    configs: list[LokiSchema]


class LokiLimits(_Strictish):
    retention_period: str


class LokiCompactor(_Strictish):
    working_directory: str
    retention_enabled: bool
    delete_request_store: str


class LokiConfig(_Strictish):
    auth_enabled: bool
    server: LokiServer
    common: LokiCommon
    schema_config: LokiSchemaConfig
    limits_config: LokiLimits
    compactor: LokiCompactor


def test_loki_stores_on_the_filesystem_keeps_seven_days_and_listens_on_the_private_address():
    """Structural check of Loki's config (Loki cannot be downloaded here to run -verify-config)."""
    plan = PRODUCTION.hosts["mon1"]
    config = LokiConfig.model_validate(yaml.safe_load(_files(plan)["/etc/loki/config.yml"].content))
    assert (config.server.http_listen_address, config.server.http_listen_port) == (plan.address, 3100)
    assert config.server.grpc_listen_address == "127.0.0.1"
    assert [(s.store, s.object_store, s.version) for s in config.schema_config.configs] == [
        ("tsdb", "filesystem", "v13")
    ]
    assert config.common.replication_factor == 1
    assert config.common.storage.filesystem.chunks_directory.startswith(config.common.path_prefix)
    # Retention is enforced by the compactor; without retention_enabled the period is ignored.
    assert config.limits_config.retention_period == f"{LOG_RETENTION_DAYS * 24}h"
    assert config.compactor.retention_enabled and config.compactor.delete_request_store == "filesystem"
    assert "/etc/loki/config.yml" not in _files(DEVNET.hosts["mon1"])  # journal-remote fleets run no Loki


def test_grafana_stack_units_are_what_verify_expects_on_alloy_fleets():
    assert shipper_units(PRODUCTION.hosts["mon1"]) == ["alloy.service", "loki.service", "grafana-server.service"]
    assert shipper_units(PRODUCTION.hosts["eth1"]) == ["alloy.service"]
    parser = configparser.ConfigParser()
    parser.read_string("[default]\n" + _files(PRODUCTION.hosts["eth1"])["/etc/default/alloy"].content)
    assert parser["default"]["RESTART_ON_UPGRADE"] == "true"
