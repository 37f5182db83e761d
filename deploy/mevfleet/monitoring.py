"""What the monitoring host runs and how every host ships its logs. Planned here from the fleet's service
registry (scrape_targets, log_senders, loki_push_urls: the monitoring slice of each host plan), then
derived from the host plan: scrape jobs, listen addresses, rule files, Grafana and Loki, Alertmanager
receivers, the log shipper.

render.py turns this into files; the engine (steps.CheckedFiles, declared in steps()) validates them on the host before
any service reads them; the verify suite reads the same helpers to know what to expect.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from . import REPO_ROOT, sandbox
from .catalog import Catalog
from .errors import Problem
from .inventory import Host, Inventory
from .model import FileSpec, HostPlan, LogSender, PortBinding, Removal, ScrapeTarget, ServicePlan
from .registry import bind_host, listen_ip

if TYPE_CHECKING:
    from .render import HostFacts
    from .steps import Given, Step

RULES_DIR = REPO_ROOT / "dashboards" / "rules"
DASHBOARDS_DIR = REPO_ROOT / "dashboards" / "generated"
HOST_RULES_DIR = "/etc/prometheus/rules"
# Scrape cadence per kind of job: the agent and the nodes move every block, hosts move slowly.
SCRAPE_INTERVALS = {"mevagent": "1s", "node_exporter": "15s", "prometheus": "15s"}
CHAIN_SCRAPE_INTERVAL = "5s"
# Prometheus evaluates rules this often; alert `for:` durations in dashboards/rules assume it.
EVALUATION_INTERVAL = "15s"

# The bus's memory cap; beyond it Redis refuses writes (noeviction: an evicted stream would lose events).
REDIS_MAXMEMORY = "1gb"

# Secrets generated on the host on first deploy (steps.GeneratedSecrets), never in the repo, never defaulted.
REDIS_AUTH = "/etc/redis/mevfleet-auth.conf"
GRAFANA_ADMIN_PASSWORD = "/etc/grafana/admin-password"

# Copies of the operator's receiver secrets (inventory fleet.monitoring.receivers), owned by root and readable
# by one group that only Alertmanager (its own dynamic user) is given (SupplementaryGroups=). Not systemd
# credentials: LoadCredential= gives non-root services nothing they can read inside containers (systemd 252).
RECEIVER_SECRETS_DIR = "/etc/prometheus/receivers"
RECEIVERS_GROUP = "mevfleet-receivers"
ALERTMANAGER_STATE = "/var/lib/alertmanager"
# Where Grafana's file provider finds the generated dashboards.
GRAFANA_DASHBOARDS = "/etc/grafana/dashboards/mevfleet"
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"
# The datasource uids the generated dashboards name (dashboards/build.py).
PROMETHEUS_UID = "mevfleet-prometheus"
LOKI_UID = "mevfleet-loki"

# Logs are kept as long everywhere: the hosts' journald and logrotate, Loki, the received journals.
LOG_RETENTION_DAYS = 7
SHIPPED_LOGS = "/var/log/mevfleet/*.log"
JOURNAL_REMOTE_OUTPUT = "/var/log/journal/remote"
# journal-upload -> journal-remote over HTTPS with a certificate per host from the fleet's CA (fleetca.py):
# copies owned by root, readable by one group given only to the uploader and the TLS front.
JOURNAL_TLS_DIR = "/etc/mevfleet/journal"
JOURNAL_TLS = {"journal-ca": "ca.pem", "journal-cert": "host.pem", "journal-key": "host.key"}
JOURNAL_TLS_GROUP = "mevfleet-journal"
# The TLS front of journal-remote on monitoring hosts (stunnel: it requires and checks client certificates):
# one stunnel service (a section of its config) per sending host, each on that host's port, accepting only
# a certificate naming that host, handing over to a journal-remote of that host's own on loopback
# (mevfleet-journal-remote@<host>.service, grouped by a target that starts and stops them all).
JOURNAL_TLS_FRONT = "stunnel@journal-remote.service"
STUNNEL_CONFIG = "/etc/stunnel/journal-remote.conf"
JOURNAL_RECEIVERS = "mevfleet-journal-remote.target"
JOURNAL_RECEIVER_UNIT = "/etc/systemd/system/mevfleet-journal-remote@.service"
JOURNAL_RECEIVERS_PATH = f"/etc/systemd/system/{JOURNAL_RECEIVERS}"
# Each instance's drop-in (its loopback port); a dropped host's is stale (desired.OWNED_GLOBS).
JOURNAL_RECEIVER_DROP_INS = "/etc/systemd/system/mevfleet-journal-remote@*.service.d/90-mevfleet.conf"
# The one shared receiver this replaced (Debian's socket-activated journal-remote, files per peer address).
SHARED_RECEIVER_UNITS = ("systemd-journal-remote.socket", "systemd-journal-remote.service")
SHARED_RECEIVER_OWN = (
    "/etc/systemd/system/systemd-journal-remote.socket.d/90-mevfleet.conf",
    "/etc/systemd/system/systemd-journal-remote.service.d/90-mevfleet.conf",
    sandbox.path("systemd-journal-remote.service"),
)
ALLOY_CONFIG = "/etc/alloy/config.alloy"
ALLOY_LISTEN = "127.0.0.1:12345"
LOKI_DATA = "/var/lib/loki"
# Debian node_exporter's textfile directory (its collector reads every *.prom file there).
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"


class Secret(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    owner: str
    service: str  # the service that reads it (restarted when the secret is first generated)
    template: str  # printf format with one %s for the random token


class CopiedSecret(BaseModel):
    """An operator's secret file on the control machine, copied to the host 0600 (never rendered or diffed)."""

    model_config = ConfigDict(frozen=True)

    source: str
    path: str
    owner: str
    service: str
    group: str = ""  # the group that may read it (mode 0640); empty: the owner alone (0600)

    @property
    def mode(self) -> str:
        return "0640" if self.group else "0600"

    @property
    def file_group(self) -> str:
        return self.group or self.owner


class ScrapeJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    interval: str
    path: str
    targets: tuple[ScrapeTarget, ...]


def is_monitoring(plan: HostPlan) -> bool:
    return "monitoring" in plan.roles


def log_shipper(plan: HostPlan) -> str:
    return plan.monitoring.log_shipper or "alloy"


def loki_push_urls(monitoring: list[Host], services: dict[str, list[ServicePlan]]) -> tuple[str, ...]:
    """Where Alloy pushes: each monitoring host's Loki, at the port that host's plan gives it (planned only
    where Alloy ships, so a journal-remote fleet gets none)."""
    return tuple(
        f"http://{m.address}:{p.port}/loki/api/v1/push"
        for m in monitoring
        for s in services[m.name]
        if s.service == "loki" and s.chain is None
        for p in s.ports
        if p.name == "http"
    )


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


def scrape_targets(inventory: Inventory, services: dict[str, list[ServicePlan]]) -> list[ScrapeTarget]:
    """Every scraped port of every host's registry, for the monitoring hosts' Prometheus: one job per
    chain unit or fleet service, at its port's interval or its kind's."""
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


def shipper_packages(plan: HostPlan) -> list[str]:
    """Debian packages the log shipper needs (Alloy and Loki come from Grafana's repository, see docs/monitoring.md)."""
    wanted = plan.monitoring_addresses and log_shipper(plan) == "journal-remote"
    if not wanted:
        return []
    return ["systemd-journal-remote", *(["stunnel4"] if is_monitoring(plan) else [])]


def shipper_units(plan: HostPlan) -> list[str]:
    """The units that ship (and, on monitoring hosts, receive) logs: enabled and running on every host."""
    if not plan.monitoring_addresses:
        return []  # a fleet without a monitoring host has nowhere to ship to
    if log_shipper(plan) == "journal-remote":
        receive = [JOURNAL_RECEIVERS, JOURNAL_TLS_FRONT, "mevfleet-journal-remote-vacuum.timer"]
        return ["systemd-journal-upload.service", *(receive if is_monitoring(plan) else [])]
    return ["alloy.service", *(["loki.service", "grafana-server.service"] if is_monitoring(plan) else [])]


def own_sender(plan: HostPlan) -> LogSender:
    """This host's ports as a log sender (journal-remote fleets)."""
    return next(s for s in plan.log_senders if s.name == plan.name)


def receiver_unit(sender: LogSender) -> str:
    """The journal-remote instance that receives one sending host's journal on a monitoring host."""
    return f"mevfleet-journal-remote@{sender.name}.service"


def received_journal(sender: LogSender) -> str:
    return f"{JOURNAL_REMOTE_OUTPUT}/remote-{sender.name}.journal"


def port(plan: HostPlan, service: str, name: str) -> PortBinding:
    for s in plan.services:
        if s.service == service and s.chain is None:
            for p in s.ports:
                if p.name == name:
                    return p
    raise KeyError(f"{plan.name}: no port {service}.{name} in the plan")


def listen(plan: HostPlan, service: str, name: str) -> str:
    binding = port(plan, service, name)
    return f"{bind_host(plan, binding)}:{binding.port}"


def scrape_jobs(plan: HostPlan) -> list[ScrapeJob]:
    """plan.scrape_targets grouped by job; a job keeps the first interval and path it was given."""
    jobs: dict[str, list[ScrapeTarget]] = {}
    for target in plan.scrape_targets:
        if target.target.startswith("127.0.0.1:") and target.host != plan.name:
            continue  # another monitoring host's loopback port: only its own Prometheus reaches it
        jobs.setdefault(target.job, []).append(target)
    return [
        ScrapeJob(name=name, interval=targets[0].interval, path=targets[0].path, targets=tuple(targets))
        for name, targets in jobs.items()
    ]


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def secrets(plan: HostPlan) -> list[Secret]:
    if not is_monitoring(plan):
        return []
    # Grafana's password only where Grafana is planned (alloy fleets): elsewhere there is no grafana user.
    grafana = [Secret(path=GRAFANA_ADMIN_PASSWORD, owner="grafana", service="grafana", template="%s\n")]
    return [
        Secret(path=REDIS_AUTH, owner="redis", service="redis", template="requirepass %s\n"),
        *(grafana if log_shipper(plan) == "alloy" else []),
    ]


def receiver_secrets(plan: HostPlan) -> list[CopiedSecret]:
    if not is_monitoring(plan):
        return []
    return [
        CopiedSecret(
            source=source,
            path=f"{RECEIVER_SECRETS_DIR}/{i}-{receiver.type}-{field.removesuffix('_file')}",
            owner="root",
            service="alertmanager",
            group=RECEIVERS_GROUP,
        )
        for i, receiver in enumerate(plan.monitoring.receivers)
        for field, source in receiver.secret_files().items()
    ]


def alertmanager_receivers(plan: HostPlan) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Alertmanager receiver name -> integration type -> integrations (secrets as paths on the host)."""
    copies = iter(receiver_secrets(plan))
    kinds = ("webhook", "slack", "pagerduty", "email")
    by_route: dict[str, dict[str, list[dict[str, Any]]]] = {
        route: {kind: [] for kind in kinds} for route in ("operators", "operators-critical")
    }
    for receiver in plan.monitoring.receivers:
        view = {
            **receiver.model_dump(),
            "secrets": {field: next(copies).path for field in receiver.secret_files()},
        }
        for severity in dict.fromkeys(receiver.severities):
            route = "operators-critical" if severity == "critical" else "operators"
            by_route[route][receiver.type].append(view)
    return by_route


def monitoring_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    """Monitoring-host services, every host's exporter and log shipper, and the sandbox of each Debian unit
    among them (concerns name the service each restarts)."""
    return [
        *_monitoring_host_files(plan, facts.container),
        *exporter_files(plan),
        *log_shipper_files(plan),
        *sandbox_files(plan),
    ]


def exporter_files(plan: HostPlan) -> list[FileSpec]:
    """node_exporter listens on the host's own address only (Debian's default is every interface)."""
    if not any(s.package == "prometheus-node-exporter" for s in plan.services):
        return []
    return [
        FileSpec(
            path="/etc/default/prometheus-node-exporter",
            concern="node_exporter",
            template="monitoring/node-exporter-default.j2",
            context={"listen": listen(plan, "node_exporter", "metrics")},
        )
    ]


def ships_journals(plan: HostPlan) -> bool:
    return bool(plan.monitoring_addresses) and log_shipper(plan) == "journal-remote"


def journal_tls_copies(plan: HostPlan, ca: str, cert: str, key: str) -> list[CopiedSecret]:
    """The host's certificate, key and the fleet CA (files on the control machine) as copies to the host."""
    sources = {"journal-ca": ca, "journal-cert": cert, "journal-key": key}
    return [
        CopiedSecret(
            source=sources[name],
            path=f"{JOURNAL_TLS_DIR}/{file}",
            owner="root",
            service="journal",
            group=JOURNAL_TLS_GROUP,
        )
        for name, file in JOURNAL_TLS.items()
    ]


def sandbox_files(plan: HostPlan) -> list[FileSpec]:
    shipper = ships_journals(plan)
    extra: dict[str, dict[str, str | list[str]]] = {
        # The group exists once a receiver secret was copied (engine/secrets.py makes it then).
        "prometheus-alertmanager.service": {"SupplementaryGroups": RECEIVERS_GROUP} if receiver_secrets(plan) else {},
        "systemd-journal-upload.service": {"SupplementaryGroups": JOURNAL_TLS_GROUP},
        JOURNAL_TLS_FRONT: {"SupplementaryGroups": JOURNAL_TLS_GROUP},
    }
    return [
        FileSpec(
            path=sandbox.path(unit),
            concern=sandbox.CONCERNS[unit],
            content=sandbox.drop_in(unit, plan.name, extra.get(unit)),
        )
        for unit in sandbox.sandboxed_units(plan, shipper, is_monitoring(plan))
    ]


def _monitoring_host_files(plan: HostPlan, container: bool) -> list[FileSpec]:
    """Prometheus, Alertmanager, Redis and Grafana on monitoring hosts, Loki where Alloy ships to it."""
    if not is_monitoring(plan):
        return []
    redis_container = FileSpec(
        path="/etc/systemd/system/redis-server.service.d/90-mevfleet-container.conf",
        concern="redis",
        template="monitoring/redis-container.conf.j2",
    )
    prometheus = listen(plan, "prometheus", "web")
    alertmanager = listen(plan, "alertmanager", "web")
    redis = port(plan, "redis", "redis")
    return [
        FileSpec(
            path="/etc/prometheus/prometheus.yml",
            concern="prometheus",
            template="monitoring/prometheus.yml.j2",
            context={
                "jobs": scrape_jobs(plan),
                "alertmanager": alertmanager,
                "rules_dir": HOST_RULES_DIR,
                "evaluation_interval": EVALUATION_INTERVAL,
            },
        ),
        *(
            FileSpec(path=f"{HOST_RULES_DIR}/{rules.name}", concern="prometheus", content=rules.read_text())
            for rules in rule_files()
        ),
        FileSpec(
            path="/etc/default/prometheus",
            concern="prometheus",
            template="monitoring/prometheus-default.j2",
            context={"listen": prometheus, "admin_api": plan.monitoring.prometheus_admin_api},
        ),
        FileSpec(
            path="/etc/prometheus/alertmanager.yml",
            concern="alertmanager",
            template="monitoring/alertmanager.yml.j2",
            context={"receivers": alertmanager_receivers(plan)},
        ),
        FileSpec(
            path="/etc/default/prometheus-alertmanager",
            concern="alertmanager",
            template="monitoring/alertmanager-default.j2",
            context={"listen": alertmanager, "storage": ALERTMANAGER_STATE},
        ),
        FileSpec(
            path="/etc/redis/redis.conf",
            concern="redis",
            template="monitoring/redis.conf.j2",
            context={
                "bind": bind_host(plan, redis),
                "port": redis.port,
                "maxmemory": REDIS_MAXMEMORY,
                "auth": REDIS_AUTH,
                "acl": _redis_acl(plan),
                "tls": _redis_tls(plan),
            },
            mode="0640",
            owner="redis",
            group="redis",
        ),
        *([redis_container] if container else []),
        # Grafana comes with Alloy and Loki (Grafana's apt repository): planned only on alloy fleets.
        *(grafana_files(plan) if log_shipper(plan) == "alloy" else []),
        *loki_files(plan),
    ]


def _redis_acl(plan: HostPlan) -> str | None:
    """The agents' bus users, on the host whose Redis the control plane and the agents use."""
    from .control import REDIS_ACL

    return REDIS_ACL if plan.control is not None else None


def _redis_tls(plan: HostPlan) -> dict[str, str] | None:
    """The bus (the control host's Redis) speaks TLS only, with the host's certificate from the fleet CA
    (engine/run.fleet_copies copies it). A monitoring host without the control plane carries no bus."""
    from .control import REDIS_TLS_CA, REDIS_TLS_CERT, REDIS_TLS_KEY

    if plan.control is None:
        return None
    return {"cert": REDIS_TLS_CERT, "key": REDIS_TLS_KEY, "ca": REDIS_TLS_CA}


def redis_cli(plan: HostPlan) -> str:
    """redis-cli reaching this host's Redis as its clients do (for checks on the host): TLS to the listen
    address with the fleet CA where the host carries the bus, else the plain port."""
    from .control import REDIS_TLS_CA

    if _redis_tls(plan) is None:
        return f"redis-cli -h {bind_host(plan, port(plan, 'redis', 'redis'))}"
    return f"redis-cli --tls --cacert {REDIS_TLS_CA} -h {plan.listen_address}"


def grafana_files(plan: HostPlan) -> list[FileSpec]:
    """grafana.ini, provisioned datasources and dashboards: rendered on every monitoring host, read where
    Grafana is installed (Grafana's apt repository; the deploy restarts it only there)."""
    web = port(plan, "grafana", "web")
    loki = listen(plan, "loki", "http") if log_shipper(plan) == "alloy" else None
    readable = {"mode": "0640", "owner": "root", "group": "grafana"}
    return [
        FileSpec(
            path="/etc/grafana/grafana.ini",
            concern="grafana",
            template="monitoring/grafana.ini.j2",
            context={
                "listen_address": bind_host(plan, web),
                "listen_port": web.port,
                "admin_password": GRAFANA_ADMIN_PASSWORD,
                "admin_password_ref": f"$__file{{{GRAFANA_ADMIN_PASSWORD}}}",
                "provisioning": GRAFANA_PROVISIONING,
            },
            **readable,
        ),
        FileSpec(
            path=f"{GRAFANA_PROVISIONING}/datasources/mevfleet.yml",
            concern="grafana",
            template="monitoring/grafana-datasources.yml.j2",
            context={
                "prometheus": listen(plan, "prometheus", "web"),
                "prometheus_uid": PROMETHEUS_UID,
                "loki": loki,
                "loki_uid": LOKI_UID,
            },
            **readable,
        ),
        FileSpec(
            path=f"{GRAFANA_PROVISIONING}/dashboards/mevfleet.yml",
            concern="grafana",
            template="monitoring/grafana-dashboards.yml.j2",
            context={"path": GRAFANA_DASHBOARDS},
            **readable,
        ),
        *(
            FileSpec(path=f"{GRAFANA_DASHBOARDS}/{d.name}", concern="grafana", content=d.read_text())
            for d in dashboard_files()
        ),
    ]


def loki_files(plan: HostPlan) -> list[FileSpec]:
    if log_shipper(plan) != "alloy":
        return []
    http = port(plan, "loki", "http")
    return [
        FileSpec(
            path="/etc/loki/config.yml",
            concern="loki",
            template="monitoring/loki.yml.j2",
            context={
                "listen_address": bind_host(plan, http),
                "listen_port": http.port,
                "data": LOKI_DATA,
                "retention": f"{LOG_RETENTION_DAYS * 24}h",
            },
        )
    ]


def log_shipper_files(plan: HostPlan) -> list[FileSpec]:
    """Every host ships its journal and /var/log/mevfleet to the monitoring host(s)."""
    if not plan.monitoring_addresses:
        return []
    if log_shipper(plan) == "alloy":
        return [
            FileSpec(
                path=ALLOY_CONFIG,
                concern="alloy",
                template="logs/config.alloy.j2",
                context={
                    "urls": list(plan.loki_push_urls),
                    "log_glob": SHIPPED_LOGS,
                },
            ),
            FileSpec(
                path="/etc/default/alloy",
                concern="alloy",
                template="logs/alloy-default.j2",
                context={"config": ALLOY_CONFIG, "listen": ALLOY_LISTEN},
            ),
            FileSpec(
                path="/etc/systemd/system/alloy.service.d/90-mevfleet.conf",
                concern="alloy",
                template="logs/alloy-service.conf.j2",
            ),
        ]
    upload = [
        FileSpec(
            path="/etc/systemd/journal-upload.conf.d/90-mevfleet.conf",
            concern="journal-upload",
            template="logs/journal-upload.conf.j2",
            context={
                "url": f"https://{plan.monitoring_addresses[0]}:{own_sender(plan).upload}",
                "tls": JOURNAL_TLS_DIR,
            },
        ),
        FileSpec(
            path="/etc/systemd/system/systemd-journal-upload.service.d/90-mevfleet.conf",
            concern="journal-upload",
            template="logs/journal-upload-service.conf.j2",
        ),
    ]
    if not is_monitoring(plan):
        return upload
    retention = f"{LOG_RETENTION_DAYS}d"
    return [
        *upload,
        FileSpec(
            path=STUNNEL_CONFIG,
            concern="journal-remote",
            template="logs/stunnel-journal-remote.conf.j2",
            context={"accept": plan.listen_address, "senders": plan.log_senders, "tls": JOURNAL_TLS_DIR},
        ),
        FileSpec(
            path=JOURNAL_RECEIVER_UNIT,
            concern="journal-remote",
            template="logs/journal-remote@.service.j2",
            context={"output": JOURNAL_REMOTE_OUTPUT, "target": JOURNAL_RECEIVERS},
        ),
        *(
            FileSpec(
                path=JOURNAL_RECEIVER_DROP_INS.replace("*", sender.name),
                concern="journal-remote",
                template="logs/journal-remote-instance.conf.j2",
                context={"sender": sender, "journal": received_journal(sender)},
            )
            for sender in plan.log_senders
        ),
        FileSpec(
            path=JOURNAL_RECEIVERS_PATH,
            concern="journal-remote",
            template="logs/journal-remote.target.j2",
            context={"units": [receiver_unit(s) for s in plan.log_senders]},
        ),
        FileSpec(
            path="/etc/systemd/system/mevfleet-journal-remote-vacuum.service",
            concern="journal-remote",
            template="logs/journal-remote-vacuum.service.j2",
            context={"output": JOURNAL_REMOTE_OUTPUT, "retention": retention},
        ),
        FileSpec(
            path="/etc/systemd/system/mevfleet-journal-remote-vacuum.timer",
            concern="journal-remote",
            template="logs/journal-remote-vacuum.timer.j2",
        ),
    ]


# Service -> (the command that validates its installed config, the unit it restarts). promtool also
# checks every rule file the config names. Redis has no config checker; its file is plain key/value
# lines rendered from the plan.
SERVICES: dict[str, tuple[str | None, str]] = {
    "prometheus": ("promtool check config /etc/prometheus/prometheus.yml", "prometheus.service"),
    "alertmanager": ("amtool check-config /etc/prometheus/alertmanager.yml", "prometheus-alertmanager.service"),
    "redis": (None, "redis-server.service"),
    # Grafana has no offline config checker; a provisioning error shows in its log and in verify.
    "grafana": (None, "grafana-server.service"),
    "loki": ("loki -config.file=/etc/loki/config.yml -verify-config", "loki.service"),
    "alloy": ("alloy fmt /etc/alloy/config.alloy >/dev/null", "alloy.service"),
}
# Not Debian packages: configured always, checked and restarted only where the operator installed them.
UPSTREAM = {"grafana", "loki", "alloy"}
CONCERNS = (*SERVICES, "journal-upload", "journal-remote")


def monitoring_units(plan: HostPlan) -> list[str]:
    """The Debian-packaged monitoring services a monitoring host keeps enabled and running."""
    if not is_monitoring(plan):
        return []
    return [unit for service, (_, unit) in SERVICES.items() if service not in UPSTREAM]


# What a monitoring host gets that no other host does, as units and paths (its files, secrets, drop-ins),
# for the host that loses the `monitoring` role (removals below).
MONITORING_HOST_UNITS = (
    "prometheus.service",
    "prometheus-alertmanager.service",
    "redis-server.service",
    "grafana-server.service",
    "loki.service",
    # the journals' receiving side: the TLS front after the receivers (stopping the target stops them all),
    # and the shared receiver they replaced, on a host that loses the role before its next deploy
    JOURNAL_RECEIVERS,
    JOURNAL_TLS_FRONT,
    *SHARED_RECEIVER_UNITS,
    "mevfleet-journal-remote-vacuum.timer",
    "mevfleet-journal-remote-vacuum.service",
)
# Configs a package ships that mevfleet rewrote: removed with the concern, but never taken as a sign that
# mevfleet put the concern there (an operator may run the package by hand on a host it never gave it).
MONITORING_HOST_CONFIGS = (
    "/etc/prometheus/prometheus.yml",
    "/etc/default/prometheus",
    "/etc/prometheus/alertmanager.yml",
    "/etc/default/prometheus-alertmanager",
    "/etc/redis/redis.conf",
    "/etc/grafana/grafana.ini",
    "/etc/loki/config.yml",
)
# Only mevfleet makes these: any of them on a host whose plan lacks the role says mevfleet put it there.
MONITORING_HOST_OWN = (
    HOST_RULES_DIR,
    RECEIVER_SECRETS_DIR,
    REDIS_AUTH,
    "/etc/systemd/system/redis-server.service.d/90-mevfleet-container.conf",
    f"{GRAFANA_PROVISIONING}/datasources/mevfleet.yml",
    f"{GRAFANA_PROVISIONING}/dashboards/mevfleet.yml",
    GRAFANA_DASHBOARDS,
    GRAFANA_ADMIN_PASSWORD,
    STUNNEL_CONFIG,
    JOURNAL_RECEIVER_UNIT,
    JOURNAL_RECEIVERS_PATH,
    "/etc/systemd/system/mevfleet-journal-remote-vacuum.service",
    "/etc/systemd/system/mevfleet-journal-remote-vacuum.timer",
    sandbox.path("prometheus.service"),
    sandbox.path("prometheus-alertmanager.service"),
    sandbox.path(JOURNAL_TLS_FRONT),
    *SHARED_RECEIVER_OWN,
)
MONITORING_HOST_DATA = (
    "/var/lib/prometheus",
    ALERTMANAGER_STATE,
    "/var/lib/redis",
    "/var/lib/grafana",
    LOKI_DATA,
    JOURNAL_REMOTE_OUTPUT,
)
# Every host's log shipping, for a fleet left without a monitoring host to ship to.
SHIPPER_UNITS = ("alloy.service", "systemd-journal-upload.service")
SHIPPER_CONFIGS = (ALLOY_CONFIG, "/etc/default/alloy")
SHIPPER_OWN = (
    "/etc/systemd/system/alloy.service.d/90-mevfleet.conf",
    "/etc/systemd/journal-upload.conf.d/90-mevfleet.conf",
    "/etc/systemd/system/systemd-journal-upload.service.d/90-mevfleet.conf",
    sandbox.path("systemd-journal-upload.service"),
    JOURNAL_TLS_DIR,
)


def removals(plan: HostPlan) -> list[Removal]:
    """A host that lost the `monitoring` role: Prometheus, Alertmanager, Redis, Grafana, Loki and the
    journals' receiver stopped and disabled, the files mevfleet wrote for them (their configs included) and
    their secrets removed; their data (TSDB, silences, the bus's streams, received journals) stays, and the
    packages stay installed. A fleet left with no monitoring host also stops shipping logs (its TLS copies
    go; the journal itself stays)."""
    removed = []
    if is_monitoring(plan) and ships_journals(plan):
        # Monitoring hosts deployed before the receivers were per sending host: Debian's journal-remote,
        # its socket and our drop-ins go (the journals it received stay, trimmed by the vacuum timer).
        removed.append(
            Removal(
                concern="journal-remote",
                name="shared journal receiver (replaced by one per sending host)",
                units=SHARED_RECEIVER_UNITS,
                paths=SHARED_RECEIVER_OWN,
                markers=SHARED_RECEIVER_OWN,
                kept=f"received journals in {JOURNAL_REMOTE_OUTPUT}",
            )
        )
    if not is_monitoring(plan):
        removed.append(
            Removal(
                concern="monitoring",
                name="monitoring services",
                units=MONITORING_HOST_UNITS,
                paths=MONITORING_HOST_OWN + MONITORING_HOST_CONFIGS,
                markers=MONITORING_HOST_OWN,
                kept="data in " + ", ".join(MONITORING_HOST_DATA),
            )
        )
    if not plan.monitoring_addresses:
        removed.append(
            Removal(
                concern="monitoring",
                name="log shipping",
                units=SHIPPER_UNITS,
                paths=SHIPPER_OWN + SHIPPER_CONFIGS,
                markers=SHIPPER_OWN,
                kept="the host's own journal",
            )
        )
    return removed


def steps(plan: HostPlan, given: Given) -> tuple[Step, ...]:
    """Secrets first (Redis includes its password file), then each service's files, checked before its
    restart; node_exporter's address and sandbox; the exporters running.

    A config the service would reject must never replace the one it runs (steps.CheckedFiles). Grafana, Loki
    and Alloy come from Grafana's apt repository, not Debian: their files are always put in place, and
    checked and restarted where the package is installed."""
    from .desired import exporter_units
    from .steps import CheckedFiles, CopiedSecrets, CopiesChanged, Files, GeneratedSecrets, SecretsMissing, Select, Unit

    made = secrets(plan)
    copies = (*receiver_secrets(plan), *given.copies_for("redis"))
    checked = [
        CheckedFiles(
            name=f"{service} configuration (checked before restart)",
            files=Select(concern=service),
            check=check,
            unit=unit,
            # A service restarts for a secret made or copied anew, even when its files did not change.
            restart_if=(
                SecretsMissing(paths=tuple(s.path for s in made if s.service == service)),
                CopiesChanged(copies=tuple(c for c in copies if c.service == service)),
            ),
            installed_only=service in UPSTREAM,
            skip_if_none=True,
        )
        for service, (check, unit) in SERVICES.items()
    ]
    return (
        GeneratedSecrets(name="Monitoring secrets generated on the host", secrets=tuple(made)),
        CopiedSecrets(name="Alert receiver secrets and the bus's TLS files copied to the host", copies=copies),
        *checked,
        Files(
            name="node_exporter address and sandbox",
            files=Select(concern="node_exporter"),
            # Its listen address and sandbox: a change takes effect at once.
            then_name="Restart node_exporter for its new address or sandbox",
            then=("systemctl daemon-reload", "systemctl restart prometheus-node-exporter.service"),
        ),
        *(Unit(name=f"{unit} running", unit=unit) for unit in exporter_units(plan)),
    )
