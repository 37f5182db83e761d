"""Monitoring on real test hosts: a monitoring host and two node hosts deployed by the real engine; the
real Prometheus on the monitoring host scrapes every node_exporter, HostDown fires in Prometheus and
reaches Alertmanager (inhibiting the host's other alerts) when a host's node_exporter stops, and
resolves when it is back. Every host ships its journal (systemd-journal-upload, the devnet's log
shipper) to a systemd-journal-remote of its own on the monitoring host, behind a stunnel service that
takes only its certificate: a line logged on a node host is read back there, in that host's own file;
the node host presenting the monitoring host's certificate on its own port is refused; and the verify
suite's monitoring and log checks pass over SSH.

The fleet is a 3-host slice of the devnet inventory on its own network, so it neither disturbs nor is
disturbed by `make devnet` or the other integration fleets.
"""

from __future__ import annotations

import base64
import http.server
import importlib.util
import ipaddress
import json
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import docker
import docker.errors
import pytest
import yaml

from mevfleet import REPO_ROOT
from mevfleet.devnet import TestHost
from mevfleet.devnet.fleet import hosts_up, isolated_devnet, wait_until
from mevfleet.engine.run import run_deploy
from mevfleet.inventory import load_inventory
from mevfleet.model import FleetPlan
from mevfleet.monitoring import (
    DASHBOARDS_DIR,
    JOURNAL_REMOTE_OUTPUT,
    JOURNAL_TLS_DIR,
    listen,
    own_sender,
    received_journal,
)
from mevfleet.plan import compile_plan

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("monitoring")]

NETWORK = "mevfleet-mon"
SUBNET = "172.30.92.0/24"
HOSTS = ("mon-mon1", "mon-eth1", "mon-sol1")
# Bounds from the rules and the scrape plan: node_exporter is scraped every 15 s, rules run every 15 s,
# HostDown waits 30 s; resolving takes one scrape and one evaluation.
FIRE_WITHIN_S = 90
RESOLVE_WITHIN_S = 60
# journal-upload follows the journal and sends as entries come; allow for a restart after a failed try
# (RestartSec=10s in templates/logs/journal-upload-service.conf.j2).
SHIPPED_WITHIN_S = 45


class Webhook:
    """Alertmanager's webhook receiver stand-in: records each POST (headers and JSON body) it gets."""

    def __init__(self, address: str):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((address, 0), Handler)
        self.url = f"http://{address}:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Fleet(NamedTuple):
    plan: FleetPlan
    path: Path
    webhook: Webhook
    token: str


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("monitoring")
    path = isolated_devnet("mon", NETWORK, SUBNET, state_dir, hosts=HOSTS)
    with hosts_up(path, NETWORK, SUBNET, state_dir):
        # The critical route notifies a webhook on this machine (the network's gateway, there once the hosts
        # are up) with a bearer token from a 0600 file: the deploy copies it to the monitoring host,
        # Alertmanager reads it from there.
        webhook = Webhook(str(next(ipaddress.ip_network(SUBNET).hosts())))
        token = secrets.token_hex(16)
        token_file = state_dir / "webhook-token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        receiver = {"type": "webhook", "url": webhook.url, "bearer_token_file": str(token_file)}
        doc = yaml.safe_load(path.read_text())
        doc["fleet"]["monitoring"] = {"receivers": [{**receiver, "severities": ["critical"]}]}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        inventory = load_inventory(path)
        plan = compile_plan(inventory)
        result = run_deploy(plan, inventory, out=lambda _: None)
        assert not result.failed, result.failed
        yield Fleet(plan, path, webhook, token)
        webhook.server.shutdown()


def _get(url: str) -> Any:
    # This machine is the fleet's operator (the network's gateway is on the allowlist).
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _exec(host: str, command: str) -> str:
    container = docker.from_env().containers.get(TestHost(host, "").container_name)
    code, out = container.exec_run(["sh", "-c", command])
    assert code == 0, out.decode()
    return out.decode()


@pytest.fixture(scope="module")
def apis(fleet):
    mon = fleet.plan.hosts["mon-mon1"]
    return f"http://{listen(mon, 'prometheus', 'web')}", f"http://{listen(mon, 'alertmanager', 'web')}"


PROBE = "InhibitionProbe"


def _post_probes(alertmanager: str, hosts: tuple[str, ...]) -> None:
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 300))
    alerts = [{"labels": {"alertname": PROBE, "host": h, "severity": "warning"}, "endsAt": ends} for h in hosts]
    request = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _host_down(prometheus: str, host: str) -> list[dict]:
    alerts = _get(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == "HostDown" and a["labels"]["host"] == host]


def test_every_node_exporter_is_scraped_and_up(fleet, apis):
    prometheus, _ = apis
    expected = {t.host for t in fleet.plan.hosts["mon-mon1"].scrape_targets if t.job == "node_exporter"}
    assert expected == set(HOSTS)

    def up() -> set[str]:
        result = _get(f"{prometheus}/api/v1/query?query=up%7Bjob%3D%22node_exporter%22%7D%3D%3D1")["data"]["result"]
        hosts = {r["metric"]["host"] for r in result}
        return hosts if hosts == expected else set()

    wait_until("every node_exporter up", 60, up)


def test_host_down_fires_inhibits_notifies_the_webhook_and_resolves(fleet, apis):
    prometheus, alertmanager = apis
    _exec("mon-eth1", "systemctl stop prometheus-node-exporter.service")
    try:
        firing = wait_until(
            "HostDown firing for mon-eth1",
            FIRE_WITHIN_S,
            lambda: [a for a in _host_down(prometheus, "mon-eth1") if a["state"] == "firing"],
        )
        assert firing[0]["labels"]["severity"] == "critical"
        assert not _host_down(prometheus, "mon-sol1")

        # Which other alerts a host has depends on what else runs there (agent, node); a probe alert
        # posted for each host makes the check independent of that. HostDown inhibits every other
        # alert of its host (the probe and any real one), and only of its host.
        _post_probes(alertmanager, ("mon-eth1", "mon-sol1"))

        def in_alertmanager() -> list[dict]:
            alerts = _get(f"{alertmanager}/api/v2/alerts?filter=host%3D%22mon-eth1%22")
            names = {a["labels"]["alertname"] for a in alerts}
            return alerts if {"HostDown", PROBE} <= names else []

        alerts = wait_until("HostDown and the probe in Alertmanager", 60, in_alertmanager)
        others = [a for a in alerts if a["labels"]["alertname"] != "HostDown"]
        assert all(a["status"]["inhibitedBy"] for a in others), others
        sol = _get(f"{alertmanager}/api/v2/alerts?filter=host%3D%22mon-sol1%22")
        assert sol and not any(a["status"]["inhibitedBy"] for a in sol), sol

        def notified() -> list[dict]:
            return [
                (headers, body)
                for headers, body in fleet.webhook.received
                if any(a["labels"].get("alertname") == "HostDown" for a in body["alerts"])
            ]

        # HostDown is critical: its route waits 10 s, then POSTs with the token read from the copied file.
        headers, body = wait_until("HostDown at the inventory's webhook", 60, notified)[0]
        assert headers.get("Authorization") == f"Bearer {fleet.token}"
        assert body["receiver"] == "operators-critical" and body["status"] == "firing"
        assert {a["labels"]["host"] for a in body["alerts"]} == {"mon-eth1"}
    finally:
        _exec("mon-eth1", "systemctl start prometheus-node-exporter.service")
    wait_until("HostDown resolved", RESOLVE_WITHIN_S, lambda: not _host_down(prometheus, "mon-eth1") or None)


def _dashboards() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS_DIR.parent / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_dashboard_query_runs_and_host_queries_return_data(fleet, apis):
    prometheus, _ = apis
    build = _dashboards()
    # The devnet's anvil stand-ins export no metrics, so no scrape target carries a chain label there.
    chains_scraped = any(t.chain for t in fleet.plan.hosts["mon-mon1"].scrape_targets)
    empty = []
    for uid in build.DASHBOARDS:
        for expr in build.queries(build.build(uid)):
            # Prometheus answers 400 with the parser's message for a query it cannot parse.
            answer = _get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
            assert answer["status"] == "success", (uid, expr, answer)
            # Agent series and alerts need a live agent and a firing rule; chain series a chain target; the
            # control plane's cross-chain position series exist only where `crosschain.execution` is set.
            expected = (
                "mev_" not in expr
                and "ALERTS" not in expr
                and "mevcontrol_crosschain_" not in expr
                and (chains_scraped or "chain!=" not in expr)
            )
            if expected and not answer["data"]["result"]:
                empty.append((uid, expr))
    assert not empty, f"no data for: {empty}"


def test_a_node_hosts_journal_arrives_on_the_monitoring_host(fleet):
    marker = f"mevfleet-shipped-{uuid.uuid4().hex}"
    _exec("mon-eth1", f"logger -t mevfleet-it {marker}")

    def received() -> list[dict]:
        out = _exec("mon-mon1", f"journalctl --directory={JOURNAL_REMOTE_OUTPUT} -t mevfleet-it -o json --no-pager")
        entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return [e for e in entries if e.get("MESSAGE") == marker]

    entries = wait_until("a line logged on mon-eth1 in mon-mon1's received journals", SHIPPED_WITHIN_S, received)
    assert {e["_HOSTNAME"] for e in entries} == {"mon-eth1"}
    # Filed under the name its certificate carries, by mon-eth1's own receiver.
    own = received_journal(own_sender(fleet.plan.hosts["mon-eth1"]))
    out = _exec("mon-mon1", f"journalctl --file={own} -t mevfleet-it -o cat --no-pager")
    assert marker in out.splitlines()


def test_a_host_presenting_another_hosts_certificate_on_its_own_port_is_refused(fleet):
    """mon-eth1 holds mon-mon1's certificate and key (valid, of the same fleet CA; copied into it here,
    a throwaway test fleet): presented on mon-eth1's own port, whose firewall lets mon-eth1 in, stunnel
    refuses it (checkHost: the certificate names mon-mon1); mon-eth1's own is taken."""
    port = own_sender(fleet.plan.hosts["mon-eth1"]).upload
    url = f"https://{fleet.plan.hosts['mon-mon1'].address}:{port}/upload"
    for suffix in ("pem", "key"):
        data = base64.b64encode(_exec("mon-mon1", f"cat {JOURNAL_TLS_DIR}/host.{suffix}").encode()).decode()
        _exec("mon-eth1", f"umask 077 && echo {data} | base64 -d > /tmp/other.{suffix}")
    entry = "printf '__REALTIME_TIMESTAMP=%s\\nMESSAGE=mevfleet-it other certificate\\n\\n' \"$(date +%s%6N)\""
    post = (
        f"{entry} | curl -s -o /dev/null -w '%{{http_code}}' -m 10 --cacert {JOURNAL_TLS_DIR}/ca.pem "
        f"-H 'Content-Type: application/vnd.fdo.journal' --data-binary @- {url}"
    )
    try:
        other = _exec("mon-eth1", f"{post} --cert /tmp/other.pem --key /tmp/other.key || true")
        own = _exec("mon-eth1", f"{post} --cert {JOURNAL_TLS_DIR}/host.pem --key {JOURNAL_TLS_DIR}/host.key")
    finally:
        _exec("mon-eth1", "rm -f /tmp/other.pem /tmp/other.key")
    assert own.strip() == "202", own
    assert not other.strip().startswith("2"), f"mon-mon1's certificate on mon-eth1's port: HTTP {other}"


def test_verify_suite_passes_for_monitoring_and_logs(fleet):
    """The operators' checks over SSH: shippers enabled and running on every host, the receiver on the
    private address only, exporters reachable only from the monitoring host (live nftables ruleset)."""
    verify = [REPO_ROOT / "tests" / "verify" / name for name in ("test_logs.py", "test_monitoring.py")]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *map(str, verify),
            "-p",
            "no:cacheprovider",
            "-q",
            f"--inventory={fleet.path}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_a_second_deploy_changes_nothing_in_monitoring_and_logs(fleet):
    """Shippers, receivers, copied secrets and Grafana's files (not installed here) are all no-ops now.

    Scoped to these concerns' operations (a full-fleet no-op run is tests/integration/test_fleet.py's):
    an unrelated failure later in a host's run must not hide, or be blamed on, these."""
    inventory = load_inventory(fleet.path)
    result = run_deploy(compile_plan(inventory), inventory, out=lambda _: None)
    ours = ("journal", "grafana", "loki", "alloy", "receiver", "Monitoring secrets", "prometheus", "alertmanager")
    for name, host in result.hosts.items():
        ops = [op for op in host.ops if any(key in op.name for key in ours)]
        assert any("journal-upload" in op.name for op in ops), f"{name}: {[op.name for op in host.ops]}"
        touched = [(op.name, op.error) for op in ops if op.changed or op.error]
        assert not touched, f"{name}: a no-op re-run changed or failed: {touched}"
