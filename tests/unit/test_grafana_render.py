"""Grafana's files as rendered for every monitoring host: grafana.ini, provisioned datasources and the
dashboards provider, with the generated dashboards shipped beside them.

Grafana cannot be downloaded here (it comes from Grafana's apt repository) and has no offline config
checker, so nothing starts it: grafana.ini is parsed as INI and the provisioning files as YAML into
pydantic models of the keys that matter (where it listens, anonymous access, the admin password's
source, the datasource uids the dashboards name, where the provider reads dashboards from); each
shipped dashboard loads into grafana-foundation-sdk's Dashboard model.
"""

from __future__ import annotations

import configparser
import json
from typing import Literal

import pytest
import yaml
from grafana_foundation_sdk.models.dashboard import Dashboard
from pydantic import BaseModel, ConfigDict

from mevfleet import INVENTORY_DIR
from mevfleet.inventory import load_inventory
from mevfleet.model import HostPlan
from mevfleet.monitoring import (
    GRAFANA_ADMIN_PASSWORD,
    GRAFANA_DASHBOARDS,
    GRAFANA_PROVISIONING,
    LOKI_UID,
    PROMETHEUS_UID,
    dashboard_files,
    listen,
    log_shipper,
    secrets,
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
    # Grafana is planned where it runs: with Alloy and Loki (test_plan_exposure checks the others).
    if "monitoring" in plan.roles and log_shipper(plan) == "alloy"
]
INI = "/etc/grafana/grafana.ini"
DATASOURCES = f"{GRAFANA_PROVISIONING}/datasources/mevfleet.yml"
PROVIDERS = f"{GRAFANA_PROVISIONING}/dashboards/mevfleet.yml"


class Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Server(Model):
    http_addr: str
    http_port: int


class Security(Model):
    admin_user: str
    admin_password: str


class Switch(Model):
    enabled: bool


class Users(Model):
    allow_sign_up: bool


class GrafanaIni(Model):
    server: Server
    security: Security
    auth_anonymous: Switch
    users: Users


class Datasource(Model):
    name: str
    uid: str
    type: Literal["prometheus", "loki"]
    access: Literal["proxy"]
    url: str
    editable: bool


class Datasources(Model):
    apiVersion: Literal[1]
    datasources: list[Datasource]


class ProviderOptions(Model):
    path: str


class Provider(Model):
    name: str
    type: Literal["file"]
    allowUiUpdates: bool
    disableDeletion: bool
    options: ProviderOptions


class Providers(Model):
    apiVersion: Literal[1]
    providers: list[Provider]


def _files(plan: HostPlan) -> dict[str, ManagedFile]:
    return {f.path: f for f in host_files(plan, HostFacts())}


def _ini(text: str) -> GrafanaIni:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    sections = {name.replace(".", "_"): dict(parser[name]) for name in parser.sections()}
    return GrafanaIni.model_validate(sections)


@pytest.mark.parametrize("plan", MONITORING)
def test_grafana_listens_on_the_private_address_with_no_anonymous_access_and_the_generated_password(plan: HostPlan):
    f = _files(plan)[INI]
    ini = _ini(f.content)
    assert f"{ini.server.http_addr}:{ini.server.http_port}" == listen(plan, "grafana", "web")
    assert ini.server.http_addr == plan.address  # never 0.0.0.0: the firewall admits the operator allowlist
    assert ini.auth_anonymous.enabled is False
    assert ini.users.allow_sign_up is False
    # Grafana reads the password from the secret generated on the host; no value is ever written here.
    assert ini.security.admin_password == f"$__file{{{GRAFANA_ADMIN_PASSWORD}}}"
    secret = next(s for s in secrets(plan) if s.path == GRAFANA_ADMIN_PASSWORD)
    assert (secret.owner, secret.service) == ("grafana", "grafana")
    assert (f.mode, f.owner, f.group) == ("0640", "root", "grafana")


@pytest.mark.parametrize("plan", MONITORING)
def test_datasources_carry_the_uids_the_dashboards_name(plan: HostPlan):
    provisioned = Datasources.model_validate(yaml.safe_load(_files(plan)[DATASOURCES].content))
    by_uid = {d.uid: d for d in provisioned.datasources}
    prometheus = by_uid[PROMETHEUS_UID]
    assert (prometheus.type, prometheus.url) == ("prometheus", f"http://{listen(plan, 'prometheus', 'web')}")
    if log_shipper(plan) == "alloy":
        assert (by_uid[LOKI_UID].type, by_uid[LOKI_UID].url) == ("loki", f"http://{listen(plan, 'loki', 'http')}")
    else:
        assert LOKI_UID not in by_uid  # journal-remote fleets run no Loki
    assert not [d for d in provisioned.datasources if d.editable]
    named = {
        panel["datasource"]["uid"]
        for path in dashboard_files()
        for panel in json.loads(path.read_text())["panels"]
        if "datasource" in panel
    }
    assert named <= set(by_uid)


@pytest.mark.parametrize("plan", MONITORING)
def test_the_provider_reads_the_shipped_dashboards_which_are_the_generated_ones(plan: HostPlan):
    files = _files(plan)
    providers = Providers.model_validate(yaml.safe_load(files[PROVIDERS].content)).providers
    assert [(p.options.path, p.allowUiUpdates, p.disableDeletion) for p in providers] == [
        (GRAFANA_DASHBOARDS, False, True)
    ]
    shipped = {path: f.content for path, f in files.items() if path.startswith(f"{GRAFANA_DASHBOARDS}/")}
    assert shipped == {f"{GRAFANA_DASHBOARDS}/{d.name}": d.read_text() for d in dashboard_files()}
    for content in shipped.values():
        assert Dashboard.from_json(json.loads(content)).uid.startswith("mevfleet-")


def test_only_monitoring_hosts_get_grafana():
    assert not [p for p in _files(FLEETS["production.example"].hosts["eth1"]) if "grafana" in p]
