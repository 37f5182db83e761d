"""Monitoring on real test hosts: a monitoring host and two node hosts deployed by the real engine; the
real Prometheus on the monitoring host scrapes every node_exporter, HostDown fires in Prometheus and
reaches Alertmanager (inhibiting the host's other alerts) when a host's node_exporter stops, and
resolves when it is back.

The fleet is a 3-host slice of the devnet inventory on its own network, so it neither disturbs nor is
disturbed by `make devnet` or the other integration fleets.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from types import ModuleType
from typing import Any

import docker
import docker.errors
import pytest
import yaml

from mevfleet.devnet import Harness, TestHost
from mevfleet.devnet.fleet import isolated_devnet
from mevfleet.engine.run import run_deploy
from mevfleet.inventory import load_inventory
from mevfleet.monitoring import DASHBOARDS_DIR, listen
from mevfleet.plan import compile_plan

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("monitoring")]

NETWORK = "mevfleet-mon"
SUBNET = "172.30.92.0/24"
HOSTS = ("mon-mon1", "mon-eth1", "mon-sol1")
# Bounds from the rules and the scrape plan: node_exporter is scraped every 15 s, rules run every 15 s,
# HostDown waits 30 s; resolving takes one scrape and one evaluation.
FIRE_WITHIN_S = 90
RESOLVE_WITHIN_S = 60


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    try:
        docker.from_env().ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"Docker engine unreachable ({exc}); `make test` starts it through deploy/bootstrap.sh")
    state_dir = tmp_path_factory.mktemp("monitoring")
    path = isolated_devnet("mon", NETWORK, SUBNET, state_dir)
    doc = yaml.safe_load(path.read_text())
    doc["hosts"] = {name: spec for name, spec in doc["hosts"].items() if name in HOSTS}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    inventory = load_inventory(path)
    plan = compile_plan(inventory)
    harness = Harness(network=NETWORK, subnet=SUBNET, state_dir=state_dir)
    harness.down()
    harness.up([TestHost(h.name, h.address) for h in inventory.hosts.values()])
    result = run_deploy(plan, inventory, out=lambda _: None)
    assert not result.failed, result.failed
    yield plan, harness
    harness.down()


def _get(url: str) -> Any:
    # This machine is the fleet's operator (the network's gateway is on the allowlist).
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait(what: str, within_s: float, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within_s} s")
        time.sleep(2)


def _exec(host: str, command: str) -> None:
    container = docker.from_env().containers.get(TestHost(host, "").container_name)
    code, out = container.exec_run(["sh", "-c", command])
    assert code == 0, out.decode()


@pytest.fixture(scope="module")
def apis(fleet):
    plan, _ = fleet
    mon = plan.hosts["mon-mon1"]
    return f"http://{listen(mon, 'prometheus', 'web')}", f"http://{listen(mon, 'alertmanager', 'web')}"


def _host_down(prometheus: str, host: str) -> list[dict]:
    alerts = _get(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == "HostDown" and a["labels"]["host"] == host]


def test_every_node_exporter_is_scraped_and_up(fleet, apis):
    plan, _ = fleet
    prometheus, _ = apis
    expected = {t.host for t in plan.hosts["mon-mon1"].scrape_targets if t.job == "node_exporter"}
    assert expected == set(HOSTS)

    def up() -> set[str]:
        result = _get(f"{prometheus}/api/v1/query?query=up%7Bjob%3D%22node_exporter%22%7D%3D%3D1")["data"]["result"]
        hosts = {r["metric"]["host"] for r in result}
        return hosts if hosts == expected else set()

    _wait("every node_exporter up", 60, up)


def test_host_down_fires_inhibits_and_resolves(apis):
    prometheus, alertmanager = apis
    _exec("mon-eth1", "systemctl stop prometheus-node-exporter.service")
    try:
        firing = _wait(
            "HostDown firing for mon-eth1",
            FIRE_WITHIN_S,
            lambda: [a for a in _host_down(prometheus, "mon-eth1") if a["state"] == "firing"],
        )
        assert firing[0]["labels"]["severity"] == "critical"
        assert not _host_down(prometheus, "mon-sol1")

        def in_alertmanager() -> list[dict]:
            alerts = _get(f"{alertmanager}/api/v2/alerts?filter=host%3D%22mon-eth1%22")
            names = {a["labels"]["alertname"] for a in alerts}
            return alerts if "HostDown" in names and "ScrapeTargetDown" in names else []

        # The host's agent and chain client cannot be scraped either (not deployed yet): HostDown
        # inhibits those alerts on this host, and only on this host.
        alerts = _wait("HostDown and ScrapeTargetDown in Alertmanager", 60, in_alertmanager)
        others = [a for a in alerts if a["labels"]["alertname"] != "HostDown"]
        assert all(a["status"]["inhibitedBy"] for a in others), others
        sol = _get(f"{alertmanager}/api/v2/alerts?filter=host%3D%22mon-sol1%22")
        assert sol and not any(a["status"]["inhibitedBy"] for a in sol), sol
    finally:
        _exec("mon-eth1", "systemctl start prometheus-node-exporter.service")
    _wait("HostDown resolved", RESOLVE_WITHIN_S, lambda: not _host_down(prometheus, "mon-eth1") or None)


def _dashboards() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS_DIR.parent / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_dashboard_query_runs_and_host_queries_return_data(apis):
    prometheus, _ = apis
    build = _dashboards()
    empty = []
    for uid in build.DASHBOARDS:
        for expr in build.queries(build.build(uid)):
            # Prometheus answers 400 with the parser's message for a query it cannot parse.
            answer = _get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
            assert answer["status"] == "success", (uid, expr, answer)
            # Agent series and alerts do not exist on this fleet (no agent runs yet); host series must.
            if "mev_" not in expr and "ALERTS" not in expr and not answer["data"]["result"]:
                empty.append((uid, expr))
    assert not empty, f"no data for: {empty}"
