"""The control plane's slice of the plan (deploy/mevfleet/control.py): on the first monitoring host only,
its config accepted by mevcontrol's own model, PostgreSQL on loopback with SCRAM and sized to the host's
memory, no secret in any rendered file, each agent's Redis ACL user checked against a real redis-server
(it may append events and read its own command stream, nothing else), the control machine's secrets
made once and owner-only."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
import yaml
from mevcontrol.config import ControlConfig, load_control_config
from mevcontrol.service import redis_from_config

from mevagent.bus.link import redis_client
from mevagent.config import BusConfig
from mevfleet import INVENTORY_DIR
from mevfleet.control import (
    AGENT_BUS_CA,
    CONFIG,
    CONTROL_BUS_CA,
    REDIS_ACL,
    REDIS_TLS_CA,
    REDIS_TLS_CERT,
    REDIS_TLS_KEY,
    agent_copies,
    agent_secrets,
    config_document,
    control_copies,
    parse_agent_metrics,
    postgres_settings,
    redis_acl,
    secrets_script,
    write_acl,
)
from mevfleet.errors import InventoryError
from mevfleet.fleetca import ensure_host
from mevfleet.inventory import load_inventory, parse_inventory
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files
from testbed.services import free_port

DEVNET = compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml"))
PRODUCTION = compile_plan(load_inventory(INVENTORY_DIR / "production.example.yml"))


def _files(plan) -> dict[str, str]:
    return {f.path: f.content for f in host_files(plan, HostFacts(container=True))}


def test_only_the_first_monitoring_host_runs_it_and_it_knows_every_agent():
    for fleet in (DEVNET, PRODUCTION):
        hosts = [name for name, plan in fleet.hosts.items() if plan.control is not None]
        assert hosts == ["mon1"]
        control = fleet.hosts["mon1"].control
        agents = {name: plan.agent for name, plan in fleet.hosts.items() if plan.agent is not None}
        assert {a.name for a in control.agents} == set(agents)
        for a in control.agents:
            assert a.api_url == f"http://{agents[a.name].api_control_bind}:{agents[a.name].api_port}"
    text = "hosts: {b: {chains: [base], address: 10.0.0.9}}"
    assert all(p.control is None for p in compile_plan(parse_inventory(text, "f.yml")).hosts.values())


def test_rendered_config_is_what_mevcontrol_accepts(tmp_path):
    control = DEVNET.hosts["mon1"].control
    document = yaml.safe_load(_files(DEVNET.hosts["mon1"])[CONFIG])
    assert document == config_document(control)
    secret = tmp_path / "secret"
    secret.write_text("x" * 64)
    secret.chmod(0o600)
    operators = tmp_path / "operators.yml"
    operators.write_text("- {name: operator1, role: operator, token_sha256: " + "a" * 64 + "}\n")
    document["redis_password_file"] = document["postgres_dsn_file"] = document["listen"]["tls_key_file"] = str(secret)
    document["operators_file"] = str(operators)
    for agent in document["agents"]:
        agent["token_file"] = str(secret)
    path = tmp_path / "control.yml"
    path.write_text(yaml.safe_dump(document))
    config = load_control_config(path)
    assert [o.name for o in config.operators] == ["operator1"]
    assert config.listen.bind == "172.30.87.10" and config.listen.tls_cert_file is not None
    assert config.lease_ttl_s == 15.0 and len(config.agents) == 8  # every node host, sol1 too
    # The cross-chain engine answers at :8906 (detection from the shipped registry; legs need `execution:`).
    assert config.listen.bridges_port == 8906 and config.crosschain is not None
    assert config.crosschain.execution is None and config.crosschain.registry_file is None


def test_bad_fleet_limits_are_refused_naming_the_field():
    text = "fleet: {control: {limits: {daily_limit_usd: -5}}}\nhosts: {m: {roles: [monitoring], address: 10.0.0.2}}"
    with pytest.raises(InventoryError) as exc:
        compile_plan(parse_inventory(text, "f.yml"))
    assert "fleet.control.limits" in str(exc.value)


@pytest.mark.parametrize(
    ("crosschain", "named"),
    [
        ("{min_profit_usd: -1}", "fleet.control.crosschain.min_profit_usd"),
        ("{watch: [{bridge: nope}]}", "fleet.control.crosschain.watch.0"),
        ("{registry_file: /srv/tokens.yml}", "fleet.control.crosschain.registry_file: the control host uses"),
        ("{no_such_setting: 1}", "fleet.control.crosschain.no_such_setting"),
    ],
)
def test_bad_crosschain_settings_are_refused_naming_the_field(crosschain, named):
    text = f"fleet: {{control: {{crosschain: {crosschain}}}}}\nhosts: {{m: {{roles: [monitoring], address: 10.0.0.2}}}}"
    with pytest.raises(InventoryError) as exc:
        compile_plan(parse_inventory(text, "f.yml"))
    assert named in str(exc.value)


def test_crosschain_settings_reach_the_control_planes_config():
    text = (
        "fleet: {control: {crosschain: {min_profit_usd: 5, max_bridge_time: 900}}}\n"
        "hosts: {m: {roles: [monitoring], address: 10.0.0.2}}"
    )
    control = compile_plan(parse_inventory(text, "f.yml")).hosts["m"].control
    assert config_document(control)["crosschain"] == {"min_profit_usd": 5, "max_bridge_time": 900}
    assert config_document(control)["listen"]["bridges_port"] == 8906


def test_postgresql_loopback_scram_and_sized_to_memory():
    files = _files(DEVNET.hosts["mon1"])
    conf = files["/etc/postgresql/15/main/conf.d/90-mevfleet.conf"]
    assert "listen_addresses = '127.0.0.1'" in conf and "password_encryption = scram-sha-256" in conf
    hba = [line.split() for line in files["/etc/postgresql/15/main/pg_hba.conf"].splitlines() if line[:1] not in "#"]
    assert [r for r in hba if r] == [
        ["local", "all", "postgres", "peer"],
        ["host", "mevfleet", "mevcontrol", "127.0.0.1/32", "scram-sha-256"],
    ]
    small, large, huge = postgres_settings(4), postgres_settings(64), postgres_settings(512)
    assert small["shared_buffers"] == "1024MB" and large["shared_buffers"] == "8192MB" == huge["shared_buffers"]
    assert small["effective_cache_size"] == "3072MB" and huge["maintenance_work_mem"] == "2048MB"
    assert postgres_settings(None) == small  # unknown memory: sized for 4 GiB


def test_no_secret_and_no_private_key_in_any_rendered_file(tmp_path):
    made = agent_secrets(tmp_path, "eth1")
    tokens = {made.api_token.read_text().strip(), made.redis_password.read_text().strip()}
    for plan in DEVNET.hosts.values():
        for path, content in _files(plan).items():
            assert "PRIVATE KEY" not in content and "postgresql://" not in content, path
            assert not any(t in content for t in tokens), path
    script = secrets_script(DEVNET.hosts["mon1"].control, "/etc/redis/mevfleet-auth.conf")
    # Made on the host and handed to psql on its standard input (printf is the shell's: never an argv).
    assert "pw=$(od -An -N32 -tx1 /dev/urandom" in script and '"$pw" | runuser -u postgres -- psql' in script


def test_agent_secrets_made_once_owner_only_and_kept(tmp_path):
    first = agent_secrets(tmp_path, "arb1")
    token = first.api_token.read_text()
    again = agent_secrets(tmp_path, "arb1")
    assert again.api_token.read_text() == token and len(token.strip()) == 64
    for path in (first.api_token, first.redis_password):
        assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "agents").stat().st_mode & 0o777 == 0o700


def test_control_status_reads_the_control_planes_agent_metrics():
    body = (
        'mevcontrol_agent_heartbeat_age_seconds{agent="a"} 0.4\n'
        'mevcontrol_agent_lease_expires_in_seconds{agent="a"} 12.0\n'
        'mevcontrol_agent_heartbeat_age_seconds{agent="b"} 30.0\n'
        'mevcontrol_agent_lease_expires_in_seconds{agent="b"} -3.0\n'
    )
    a, b, c = parse_agent_metrics(body, ["a", "b", "c"])
    assert a.connected and not b.connected and not c.connected and c.heartbeat_age_s is None


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server (deploy/bootstrap.sh) is not installed")
def test_each_agent_acl_user_appends_events_and_reads_only_its_own_commands(tmp_path):
    made = {name: agent_secrets(tmp_path, name) for name in ("eth1", "arb1")}
    (tmp_path / "acl.conf").write_text(redis_acl(made))
    port = free_port()
    (tmp_path / "redis.conf").write_text(
        f'port {port}\nbind 127.0.0.1\nrequirepass admin-{port}\nsave ""\ndir {tmp_path}\n'
        f"include {tmp_path / 'acl.conf'}\n"
    )
    server = subprocess.Popen(["redis-server", str(tmp_path / "redis.conf")], stdout=subprocess.DEVNULL)
    try:
        eth1 = redis.Redis(port=port, username="eth1", password=made["eth1"].redis_password.read_text().strip())
        deadline = time.monotonic() + 10
        while True:
            try:
                assert eth1.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert eth1.xadd("mev:events", {"e": "{}"}) and eth1.xadd("mev:events:durable", {"e": "{}"})
        assert eth1.xadd("mev:prices", {"e": "{}"})
        assert eth1.xread({"mev:commands:eth1": "0"}, count=1) == []
        for refused in (
            lambda: eth1.xread({"mev:commands:arb1": "0"}),  # another agent's commands
            lambda: eth1.xadd("mev:commands:arb1", {"e": "{}"}),  # driving another agent
            lambda: eth1.xadd("mev:commands:eth1", {"e": "{}"}),  # forging its own commands
            lambda: eth1.xrange("mev:events"),  # reading the fleet's events
            lambda: eth1.config_get("*"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                refused()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port, username="arb1", password=made["eth1"].redis_password.read_text().strip()).ping()
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert REDIS_ACL.startswith("/etc/redis/")


def test_ports_and_scrape_job_of_the_control_plane():
    plan = DEVNET.hosts["mon1"]
    assert any(t.job == "mevcontrol" and t.target == "172.30.87.10:9908" for t in plan.scrape_targets)
    (rule,) = [r for r in plan.firewall.rules if "mevcontrol.metrics" in r.comment]
    assert rule.sources == ("172.30.87.10/32",)
    (bridges,) = [r for r in plan.firewall.rules if "mevcontrol.bridges" in r.comment]
    assert bridges.sources == ("172.30.87.1/32",), "the operator's allowlist only"
    assert Path(INVENTORY_DIR / "devnet.yml").is_file()


def test_the_bus_is_tls_only_and_every_client_checks_the_fleet_ca():
    mon1 = DEVNET.hosts["mon1"]
    settings = dict(
        line.split(" ", 1)
        for line in _files(mon1)["/etc/redis/redis.conf"].splitlines()
        if line and not line.startswith("#")
    )
    assert settings["port"] == "0" and settings["tls-port"] == "6379" and settings["tls-auth-clients"] == "no"
    assert (settings["tls-cert-file"], settings["tls-key-file"]) == (REDIS_TLS_CERT, REDIS_TLS_KEY)
    assert mon1.control.redis_url == "rediss://172.30.87.10:6379/0"
    assert config_document(mon1.control)["redis_tls_ca_file"] == CONTROL_BUS_CA
    for name, plan in DEVNET.hosts.items():
        if plan.agent is None:
            continue
        bus = yaml.safe_load(_files(plan)[plan.agent.config_path])["bus"]
        assert bus["redis_url"] == "rediss://172.30.87.10:6379/0" and bus["tls_ca_file"] == AGENT_BUS_CA, name
    # Another monitoring host carries no bus: its Redis keeps its plain port (nobody is its client).
    assert all(
        "tls-port" not in _files(p).get("/etc/redis/redis.conf", "")
        for p in PRODUCTION.hosts.values()
        if p.control is None
    )


def test_the_deploy_copies_the_fleet_ca_and_redis_certificate(tmp_path):
    mon1 = DEVNET.hosts["mon1"]
    tls = ensure_host(tmp_path, "devnet", "mon1", mon1.listen_address)
    agents = {a.name: agent_secrets(tmp_path, a.name) for a in mon1.control.agents}
    copies = {c.path: c for c in control_copies(mon1, agents, write_acl(tmp_path, agents), tls)}
    for path, source, owner in (
        (REDIS_TLS_CERT, tls.cert, "redis"),
        (REDIS_TLS_KEY, tls.key, "redis"),
        (REDIS_TLS_CA, tls.ca, "redis"),
        (CONTROL_BUS_CA, tls.ca, "mevcontrol"),
    ):
        assert (copies[path].source, copies[path].owner, copies[path].mode) == (str(source), owner, "0600"), path
    assert {copies[p].service for p in (REDIS_TLS_CERT, REDIS_TLS_KEY, REDIS_TLS_CA)} == {"redis"}  # restarts Redis
    agent = {c.path: c for c in agent_copies(agents["eth1"], tls.ca)}
    assert agent[AGENT_BUS_CA].source == str(tls.ca) and agent[AGENT_BUS_CA].service == "agent"


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server (deploy/bootstrap.sh) is not installed")
def test_redis_with_the_rendered_tls_lines_serves_the_agents_and_the_control_plane_over_tls_only(tmp_path):
    """Debian's redis-server with the TLS lines the deploy renders, a certificate from the fleet CA: the
    agent's and the control plane's own clients connect with the fleet CA; a plain client, a client
    trusting another CA and one dialling an address the certificate does not name are refused."""
    tls = ensure_host(tmp_path / "ca", "test", "mon1", "127.0.0.1")
    other = ensure_host(tmp_path / "other", "other", "mon1", "127.0.0.1")
    made = agent_secrets(tmp_path, "eth1")
    (tmp_path / "acl.conf").write_text(redis_acl({"eth1": made}))
    port = free_port()
    rendered = _files(DEVNET.hosts["mon1"])["/etc/redis/redis.conf"]
    files = {REDIS_TLS_CERT: tls.cert, REDIS_TLS_KEY: tls.key, REDIS_TLS_CA: tls.ca, "6379": str(port)}
    lines = [line for line in rendered.splitlines() if line.startswith(("port ", "tls-"))]
    for placeholder, real in files.items():
        lines = [line.replace(placeholder, str(real)) for line in lines]
    (tmp_path / "redis.conf").write_text(
        "\n".join(lines) + f'\nbind 127.0.0.1\nrequirepass admin-{port}\nsave ""\ndir {tmp_path}\n'
        f"include {tmp_path / 'acl.conf'}\n"
    )
    password = tmp_path / "eth1.password"
    password.write_text(made.redis_password.read_text())
    password.chmod(0o600)
    admin = tmp_path / "admin.password"
    admin.write_text(f"admin-{port}\n")
    admin.chmod(0o600)

    def agent(url: str, ca: Path) -> BusConfig:
        return BusConfig(agent="eth1", redis_url=url, username="eth1", password_file=password, tls_ca_file=ca)

    def control(ca: Path) -> ControlConfig:
        return ControlConfig(
            redis_url=f"rediss://127.0.0.1:{port}/0",
            redis_password_file=admin,
            redis_tls_ca_file=ca,
            postgres_dsn_file=admin,
            operators=[{"name": "o", "role": "operator", "token_sha256": "a" * 64}],
        )

    async def ping(client) -> bool:
        try:
            return await client.ping()
        finally:
            await client.aclose()

    server = subprocess.Popen(["redis-server", str(tmp_path / "redis.conf")], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                assert asyncio.run(ping(redis_client(agent(f"rediss://127.0.0.1:{port}/0", tls.ca))))
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert asyncio.run(ping(redis_from_config(control(tls.ca))))
        for refused in (
            redis_client(agent(f"redis://127.0.0.1:{port}/0", tls.ca)),  # no plain port
            redis_client(agent(f"rediss://127.0.0.1:{port}/0", other.ca)),  # another CA's trust
            redis_client(agent(f"rediss://localhost:{port}/0", tls.ca)),  # a name the certificate lacks
            redis_from_config(control(other.ca)),
        ):
            with pytest.raises(redis.ConnectionError):
                asyncio.run(ping(refused))
    finally:
        server.terminate()
        server.wait(timeout=10)
