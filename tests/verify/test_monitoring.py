"""The monitoring host: Prometheus, Alertmanager and Redis running as planned, listening only where the
plan says, Prometheus scraping exactly the plan's targets with the fleet's rules loaded, Redis refusing
anyone without the password generated on the host, the inventory's receiver secrets copied owner-only
and identical to the operator's files."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
from pathlib import Path

import pytest

from mevfleet.model import HostPlan
from mevfleet.monitoring import REDIS_AUTH, listen, receiver_secrets, redis_cli, rule_files, secrets

UNITS = ("prometheus", "prometheus-alertmanager", "redis-server")
# A freshly restarted Prometheus has not scraped every target yet: how long node_exporter may take.
FIRST_SCRAPE_S = 30


@pytest.fixture
def mon(host, plan: HostPlan):
    if "monitoring" not in plan.roles:
        pytest.skip(f"{plan.name} is not a monitoring host")
    return host


def _api(host, plan: HostPlan, path: str) -> dict:
    url = f"http://{listen(plan, 'prometheus', 'web')}{path}"
    out = host.run(f"curl -fsS -m 10 {shlex.quote(url)}")
    assert out.rc == 0, f"{url}: {out.stderr}"
    return json.loads(out.stdout)["data"]


def test_services_running_and_enabled(mon):
    for unit in UNITS:
        service = mon.service(unit)
        assert service.is_running and service.is_enabled, unit


def test_listening_only_on_planned_addresses(mon, plan: HostPlan):
    sockets = {line.split()[3] for line in mon.run("ss -Hltn").stdout.splitlines()}
    for service in ("prometheus", "alertmanager"):
        address = listen(plan, service, "web")
        port = address.rsplit(":", 1)[1]
        assert address in sockets, f"{service} does not listen on {address}"
        assert {s for s in sockets if s.rsplit(":", 1)[1] == port} == {address}, f"{service} also listens elsewhere"
    redis = {s for s in sockets if s.endswith(":6379")}
    assert redis == {f"{plan.address}:6379", "127.0.0.1:6379"}
    # Alertmanager's gossip port is off (one Alertmanager per monitoring host).
    assert not [s for s in sockets if s.endswith(":9094")]


def test_secrets_generated_on_the_host_owner_only(mon, plan: HostPlan):
    for secret in secrets(plan):
        f = mon.file(secret.path)
        assert f.exists and f.size > 32, secret.path
        assert (f.mode, f.user, f.group) == (0o600, secret.owner, secret.owner), secret.path


def test_receiver_secrets_copied_owner_only_and_current(mon, plan: HostPlan):
    for copy in receiver_secrets(plan):
        f = mon.file(copy.path)
        assert f.exists, copy.path
        assert (f"{f.mode:04o}", f.user, f.group) == (copy.mode, copy.owner, copy.file_group), copy.path
        # Compared by digest, so the secret itself never travels into a test report.
        local = hashlib.sha256(Path(os.path.expanduser(copy.source)).read_bytes()).hexdigest()
        assert f.sha256sum == local, f"{copy.path} differs from {copy.source}: re-run the deploy"


def test_redis_refuses_without_the_password_and_answers_with_it(mon, plan: HostPlan):
    cli = redis_cli(plan)  # TLS where the host carries the bus (test_control.test_the_bus_answers_tls_only)
    anonymous = mon.run(f"{cli} ping").stdout
    assert "NOAUTH" in anonymous
    # The bus keeps what it acknowledged: no eviction, an append-only file fsynced every second.
    for key, value in (("maxmemory-policy", "noeviction"), ("appendonly", "yes"), ("appendfsync", "everysec")):
        authed = mon.run(f"REDISCLI_AUTH=$(cut -d' ' -f2 {REDIS_AUTH}) {cli} config get {key}").stdout.split()
        assert authed == [key, value]


def test_prometheus_loaded_the_fleet_rules(mon, plan: HostPlan):
    groups = _api(mon, plan, "/api/v1/rules")["groups"]
    assert {g["file"].rsplit("/", 1)[1] for g in groups} == {f.name for f in rule_files()}
    assert all(g["rules"] for g in groups)


def test_prometheus_scrapes_exactly_the_planned_targets_and_every_host_is_up(mon, plan: HostPlan):
    planned = {(t.job, t.target) for t in plan.scrape_targets}
    deadline = time.monotonic() + FIRST_SCRAPE_S
    while True:
        active = _api(mon, plan, "/api/v1/targets?state=active")["activeTargets"]
        health = {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in active}
        hosts_down = [k for k, h in health.items() if k[0] == "node_exporter" and h != "up"]
        if not hosts_down or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert set(health) == planned
    assert not hosts_down, f"node_exporter not up: {hosts_down}"


def test_alertmanager_receives_from_prometheus(mon, plan: HostPlan):
    managers = _api(mon, plan, "/api/v1/alertmanagers")["activeAlertmanagers"]
    assert [m["url"] for m in managers] == [f"http://{listen(plan, 'alertmanager', 'web')}/api/v2/alerts"]
