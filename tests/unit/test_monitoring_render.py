"""Monitoring-host files as rendered from the plan, checked by the tools that read them (promtool,
amtool) and against the plan: every scrape target, listen addresses per exposure, Redis tuning, the
inventory's Alertmanager receivers (amtool on the result, secrets only as *_file paths) and no secret
in any rendered file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mevfleet import INVENTORY_DIR, sandbox
from mevfleet.control import REDIS_ACL
from mevfleet.errors import InventoryError
from mevfleet.inventory import load_inventory
from mevfleet.model import HostPlan
from mevfleet.monitoring import (
    HOST_RULES_DIR,
    RECEIVER_SECRETS_DIR,
    RECEIVERS_GROUP,
    REDIS_AUTH,
    RULES_DIR,
    listen,
    receiver_secrets,
)
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, ManagedFile, host_files

FLEETS = {
    name: compile_plan(load_inventory(INVENTORY_DIR / f"{name}.yml")) for name in ("devnet", "production.example")
}
MONITORING = [
    pytest.param(plan, id=f"{fleet}-{plan.name}")
    for fleet, fp in FLEETS.items()
    for plan in fp.hosts.values()
    if "monitoring" in plan.roles
]
PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")


def _files(plan: HostPlan, container: bool = False) -> dict[str, ManagedFile]:
    return {f.path: f for f in host_files(plan, HostFacts(container=container))}


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)")
@pytest.mark.parametrize("plan", MONITORING)
def test_promtool_accepts_the_rendered_config_with_the_rules_it_loads(tmp_path: Path, plan: HostPlan):
    config = _files(plan)["/etc/prometheus/prometheus.yml"].content
    # Point rule_files at this checkout's rules (the host has them in /etc/prometheus/rules).
    (tmp_path / "prometheus.yml").write_text(config.replace(HOST_RULES_DIR, str(RULES_DIR)))
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (Debian package `prometheus-alertmanager`)")
@pytest.mark.parametrize("plan", MONITORING)
def test_amtool_accepts_the_rendered_alertmanager_config(tmp_path: Path, plan: HostPlan):
    (tmp_path / "alertmanager.yml").write_text(_files(plan)["/etc/prometheus/alertmanager.yml"].content)
    result = subprocess.run(
        [AMTOOL, "check-config", str(tmp_path / "alertmanager.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("plan", MONITORING)
def test_every_planned_scrape_target_is_scraped_once_with_its_interval_and_labels(plan: HostPlan):
    config = yaml.safe_load(_files(plan)["/etc/prometheus/prometheus.yml"].content)
    scraped = {
        (job["job_name"], target, job["scrape_interval"], group["labels"]["host"], group["labels"].get("chain"))
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    planned = {(t.job, t.target, t.interval, t.host, t.chain) for t in plan.scrape_targets}
    assert scraped == planned
    assert len(scraped) == len(plan.scrape_targets)
    assert {j["job_name"]: j["scrape_interval"] for j in config["scrape_configs"]}["mevagent"] == "1s"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        listen(plan, "alertmanager", "web")
    ]


@pytest.mark.parametrize("plan", MONITORING)
def test_web_ui_and_apis_listen_on_the_private_address_only(plan: HostPlan):
    files = _files(plan)
    prometheus = files["/etc/default/prometheus"].content
    alertmanager = files["/etc/default/prometheus-alertmanager"].content
    assert f"--web.listen-address={plan.address}:9090" in prometheus
    assert f"--web.listen-address={plan.address}:9093" in alertmanager
    # Alertmanager's gossip port would otherwise listen on every interface.
    assert "--cluster.listen-address= " in alertmanager
    args = [line for line in (prometheus + alertmanager).splitlines() if line.startswith("ARGS=")]
    assert len(args) == 2
    assert not [a for a in args if "0.0.0.0" in a]


@pytest.mark.parametrize("plan", MONITORING)
def test_redis_is_tuned_bound_and_password_protected_without_the_password_in_the_file(plan: HostPlan):
    conf = _files(plan)["/etc/redis/redis.conf"]
    lines = [line for line in conf.content.splitlines() if line and not line.startswith("#")]
    settings = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines}
    assert settings["bind"] == f"{plan.address} 127.0.0.1"
    assert settings["protected-mode"] == "yes"
    # The bus must not lose what it acknowledged: no eviction, the append-only file fsynced every second.
    assert settings["maxmemory-policy"] == "noeviction"
    assert (settings["appendonly"], settings["appendfsync"]) == ("yes", "everysec")
    assert settings["tcp-keepalive"] == "60"
    assert settings["maxmemory"]
    includes = [line.split(" ", 1)[1] for line in lines if line.startswith("include ")]
    assert includes[0] == REDIS_AUTH
    # The control host also includes its agents' ACL users (hashes only); other monitoring hosts do not.
    assert includes[1:] == ([REDIS_ACL] if plan.control else [])
    assert "requirepass" not in settings
    assert (conf.mode, conf.owner) == ("0640", "redis")


def test_only_monitoring_hosts_get_monitoring_files_and_only_containers_the_redis_drop_in():
    fleet = FLEETS["devnet"]
    # Every host runs node_exporter (its address and sandbox); nothing else of the monitoring stack.
    assert not [
        p for p in _files(fleet.hosts["eth1"]) if ("prometheus" in p or "redis" in p) and "node-exporter" not in p
    ]
    dropin = "/etc/systemd/system/redis-server.service.d/90-mevfleet-container.conf"
    assert dropin in _files(fleet.hosts["mon1"], container=True)
    assert dropin not in _files(fleet.hosts["mon1"])


def test_rule_files_land_on_the_host_verbatim():
    files = _files(FLEETS["devnet"].hosts["mon1"])
    for rules in RULES_DIR.glob("*.yml"):
        assert files[f"{HOST_RULES_DIR}/{rules.name}"].content == rules.read_text()


RECEIVERS = """
fleet:
  monitoring:
    receivers:
      - {type: webhook, url: "https://hooks.example.net/mevfleet", bearer_token_file: %(dir)s/webhook-token}
      - {type: slack, api_url_file: %(dir)s/slack-url, channel: "#mev-alerts", severities: [critical, warning]}
      - {type: pagerduty, routing_key_file: %(dir)s/pagerduty-key, severities: [critical]}
      - type: email
        to: ops@example.net
        sender: alerts@example.net
        smarthost: smtp.example.net:587
        auth_username: alerts
        auth_password_file: %(dir)s/smtp-password
        severities: [warning]
hosts:
  mon1: {address: 10.0.0.1, roles: [monitoring]}
  eth1: {address: 10.0.0.2, chains: [ethereum]}
"""
SECRETS = {
    "webhook-token": "tok-3f1c",
    "slack-url": "https://hooks.slack.invalid/T0/B0/x9",
    "pagerduty-key": "pd-77aa",
    "smtp-password": "pw-5e2b",
}


def _receiver_fleet(tmp_path: Path, mode: int = 0o600):
    for name, value in SECRETS.items():
        (tmp_path / name).write_text(value + "\n")
        (tmp_path / name).chmod(mode)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(RECEIVERS % {"dir": tmp_path})
    return compile_plan(load_inventory(inventory))


@pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (Debian package `prometheus-alertmanager`)")
def test_every_receiver_type_renders_a_config_amtool_accepts_with_secrets_only_as_files(tmp_path: Path):
    fleet = _receiver_fleet(tmp_path)
    mon = fleet.hosts["mon1"]
    config = _files(mon)["/etc/prometheus/alertmanager.yml"].content
    (tmp_path / "alertmanager.yml").write_text(config)
    result = subprocess.run(
        [AMTOOL, "check-config", str(tmp_path / "alertmanager.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    receivers = {r["name"]: r for r in yaml.safe_load(config)["receivers"]}
    critical, warning = receivers["operators-critical"], receivers["operators"]
    # Severities pick the route: PagerDuty pages on critical only, email gets warnings only.
    assert "pagerduty_configs" in critical and "pagerduty_configs" not in warning
    assert "email_configs" in warning and "email_configs" not in critical
    assert {"webhook_configs", "slack_configs"} <= critical.keys() & warning.keys()
    copies = {c.source.rsplit("/", 1)[1]: c.path for c in receiver_secrets(mon)}
    assert critical["slack_configs"][0]["api_url_file"] == copies["slack-url"]
    assert critical["pagerduty_configs"][0]["routing_key_file"] == copies["pagerduty-key"]
    assert warning["email_configs"][0]["auth_password_file"] == copies["smtp-password"]
    assert warning["webhook_configs"][0]["http_config"]["authorization"]["credentials_file"] == copies["webhook-token"]
    assert all(c.path.startswith(RECEIVER_SECRETS_DIR + "/") for c in receiver_secrets(mon))
    # root's, readable by a group only Alertmanager (its own dynamic user) is given.
    assert {(c.owner, c.group, c.mode) for c in receiver_secrets(mon)} == {("root", RECEIVERS_GROUP, "0640")}
    drop_in = _files(mon)[sandbox.path("prometheus-alertmanager.service")].content
    assert f"SupplementaryGroups={RECEIVERS_GROUP}" in drop_in
    assert receiver_secrets(fleet.hosts["eth1"]) == []
    # Not one secret value in any file the deploy renders (and --dry would diff), on any host.
    rendered = "".join(f.content for plan in fleet.hosts.values() for f in host_files(plan, HostFacts()))
    assert not [name for name, value in SECRETS.items() if value in rendered]


def test_a_receiver_secret_readable_by_others_or_an_unknown_type_is_refused_naming_the_field(tmp_path: Path):
    with pytest.raises(InventoryError) as error:
        _receiver_fleet(tmp_path, mode=0o644)
    message = str(error.value)
    for field in ("receivers.0.bearer_token_file", "receivers.1.api_url_file", "receivers.3.auth_password_file"):
        assert f"fleet.monitoring.{field}" in message, message
    inventory = tmp_path / "bad.yml"
    inventory.write_text(
        "fleet: {monitoring: {receivers: [{type: sms, to: '+1'}]}}\nhosts: {a: {roles: [monitoring]}}\n"
    )
    with pytest.raises(InventoryError, match=r"fleet\.monitoring\.receivers\.0"):
        load_inventory(inventory)


def test_no_receiver_keeps_the_two_routes_without_integrations():
    receivers = yaml.safe_load(_files(FLEETS["devnet"].hosts["mon1"])["/etc/prometheus/alertmanager.yml"].content)[
        "receivers"
    ]
    assert receivers == [{"name": "operators"}, {"name": "operators-critical"}]
