"""fleet.monitoring.prometheus_admin_api: off by default (Prometheus on the private address, opened to the
operator allowlist, no admin API); on, the admin API is served on loopback only: the listener moves to
127.0.0.1, no firewall rule or security group opens it, and each monitoring host's Prometheus scrapes only
its own loopback listener. (The snapshot through it: tests/unit/test_cloud_backup.py.)"""

from __future__ import annotations

import yaml

from mevfleet.cloud.security_groups import desired_groups
from mevfleet.inventory import parse_inventory
from mevfleet.monitoring import listen, scrape_jobs
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files

INVENTORY = """
fleet:
  name: adm
  private_networks: [10.40.0.0/16]
  operator_allowlist: [198.51.100.7/32]
hosts:
  mon1: {address: 10.40.0.10, roles: [monitoring]}
  mon2: {address: 10.40.0.11, roles: [monitoring]}
  eth1: {address: 10.40.0.12, chains: [ethereum]}
"""


def _fleet(admin_api: bool | None):
    doc = yaml.safe_load(INVENTORY)
    if admin_api is not None:
        doc["fleet"]["monitoring"] = {"prometheus_admin_api": admin_api}
    return compile_plan(parse_inventory(yaml.safe_dump(doc), "adm.yml"))


def _file(plan, path: str) -> str:
    return next(f.content for f in host_files(plan, HostFacts(container=False)) if f.path == path)


def _prometheus_targets(plan) -> list[str]:
    return [t.target for job in scrape_jobs(plan) if job.name == "prometheus" for t in job.targets]


def test_default_keeps_the_admin_api_off_and_prometheus_on_the_private_address():
    fleet = _fleet(None)
    mon1 = fleet.hosts["mon1"]
    assert listen(mon1, "prometheus", "web") == "10.40.0.10:9090"
    assert "--web.enable-admin-api" not in _file(mon1, "/etc/default/prometheus")
    assert any("9090" in r.ports and r.sources == ("198.51.100.7/32",) for r in mon1.firewall.rules)
    monitoring = next(g for g in desired_groups(fleet, "adm") if g.role == "monitoring")
    assert any(r.from_port == 9090 and r.cidr == "198.51.100.7/32" for r in monitoring.rules)
    assert sorted(_prometheus_targets(mon1)) == ["10.40.0.10:9090", "10.40.0.11:9090"]


def test_admin_api_on_is_served_on_loopback_only():
    fleet = _fleet(True)
    for name in ("mon1", "mon2"):
        mon = fleet.hosts[name]
        defaults = _file(mon, "/etc/default/prometheus")
        assert "--web.enable-admin-api" in defaults and "--web.listen-address=127.0.0.1:9090 " in defaults
        assert listen(mon, "prometheus", "web") == "127.0.0.1:9090"
        assert not any("9090" in r.ports for r in mon.firewall.rules)
        # Each Prometheus scrapes its own loopback listener, never another host's "127.0.0.1".
        assert _prometheus_targets(mon) == ["127.0.0.1:9090"]
        assert [t.host for j in scrape_jobs(mon) if j.name == "prometheus" for t in j.targets] == [name]
        # Grafana beside it reads it on loopback.
        assert "127.0.0.1:9090" in _file(mon, "/etc/grafana/provisioning/datasources/mevfleet.yml")
        # Alertmanager stays where it was: only Prometheus's listener moved.
        assert listen(mon, "alertmanager", "web") == f"{mon.address}:9093"
    monitoring = next(g for g in desired_groups(fleet, "adm") if g.role == "monitoring")
    assert not any(r.from_port <= 9090 <= r.to_port for r in monitoring.rules)
    # Nothing changes on the node host.
    assert fleet.hosts["eth1"].firewall == _fleet(False).hosts["eth1"].firewall
