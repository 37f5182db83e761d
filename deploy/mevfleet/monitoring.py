"""What the monitoring host runs, derived from the host plan: scrape jobs, listen addresses, rule files.

render.py turns this into files; the engine (engine/monitoring.py) validates them on the host before
any service reads them; the verify suite reads the same helpers to know what to expect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from . import REPO_ROOT
from .plan import HostPlan, PortBinding, ScrapeTarget

RULES_DIR = REPO_ROOT / "dashboards" / "rules"
DASHBOARDS_DIR = REPO_ROOT / "dashboards" / "generated"
HOST_RULES_DIR = "/etc/prometheus/rules"
# Prometheus evaluates rules this often; alert `for:` durations in dashboards/rules assume it.
EVALUATION_INTERVAL = "15s"

# The bus's memory cap; Redis evicts least recently used keys beyond it (allkeys-lru).
REDIS_MAXMEMORY = "1gb"

# Secrets generated on the host on first deploy (engine/monitoring.py), never in the repo, never defaulted.
REDIS_AUTH = "/etc/redis/mevfleet-auth.conf"
GRAFANA_ADMIN_PASSWORD = "/etc/grafana/admin-password"


class Secret(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    owner: str
    service: str  # the service that reads it (restarted when the secret is first generated)
    template: str  # printf format with one %s for the random token


class ScrapeJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    interval: str
    path: str
    targets: tuple[ScrapeTarget, ...]


def is_monitoring(plan: HostPlan) -> bool:
    return "monitoring" in plan.roles


def port(plan: HostPlan, service: str, name: str) -> PortBinding:
    for s in plan.services:
        if s.service == service and s.chain is None:
            for p in s.ports:
                if p.name == name:
                    return p
    raise KeyError(f"{plan.name}: no port {service}.{name} in the plan")


def bind_host(plan: HostPlan, binding: PortBinding) -> str:
    # Loopback services stay on loopback; everything else listens on the host's own (private) address
    # only, never on 0.0.0.0, so a host with a public interface does not serve it there.
    return "127.0.0.1" if binding.exposure == "loopback" else plan.address


def listen(plan: HostPlan, service: str, name: str) -> str:
    binding = port(plan, service, name)
    return f"{bind_host(plan, binding)}:{binding.port}"


def scrape_jobs(plan: HostPlan) -> list[ScrapeJob]:
    """plan.scrape_targets grouped by job; a job keeps the first interval and path it was given."""
    jobs: dict[str, list[ScrapeTarget]] = {}
    for target in plan.scrape_targets:
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
    return [
        Secret(path=REDIS_AUTH, owner="redis", service="redis", template="requirepass %s\n"),
        Secret(path=GRAFANA_ADMIN_PASSWORD, owner="grafana", service="grafana", template="%s\n"),
    ]


class FileSpec(BaseModel):
    """A file render.py renders: from a template with extra context, or verbatim content."""

    model_config = ConfigDict(frozen=True)

    path: str
    concern: str
    template: str | None = None
    context: dict[str, Any] = {}
    content: str | None = None
    mode: str = "0644"
    owner: str = "root"
    group: str = "root"


def monitoring_files(plan: HostPlan, container: bool) -> list[FileSpec]:
    """Prometheus, Alertmanager and Redis on monitoring hosts (concerns name the service each restarts)."""
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
            context={"listen": prometheus},
        ),
        FileSpec(
            path="/etc/prometheus/alertmanager.yml",
            concern="alertmanager",
            template="monitoring/alertmanager.yml.j2",
        ),
        FileSpec(
            path="/etc/default/prometheus-alertmanager",
            concern="alertmanager",
            template="monitoring/alertmanager-default.j2",
            context={"listen": alertmanager},
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
            },
            mode="0640",
            owner="redis",
            group="redis",
        ),
        *([redis_container] if container else []),
    ]
