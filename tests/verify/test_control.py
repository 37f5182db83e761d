"""The fleet control plane, as the plan says: PostgreSQL on loopback with SCRAM and the schema at Alembic's
head, mevcontrol hardened and running as its own user, its operator URLs over TLS only and refusing
anyone without a token, the bus (Redis) answering TLS only with the fleet CA's certificate, every planned
agent heartbeating with a fresh risk lease, secrets owner-only; on agent hosts, the agent's bus password
and the fleet CA, and its API on the address the control host reaches."""

from __future__ import annotations

import re
import socket
import ssl
import time

import pytest

from mevfleet.control import (
    AGENT_BUS_CA,
    AGENT_REDIS_PASSWORD,
    CONFIG,
    CONTROL_BUS_CA,
    DATABASE,
    POSTGRES_DSN,
    POSTGRES_UNIT,
    REDIS_TLS_CA,
    REDIS_TLS_KEY,
    TLS_KEY,
    UNIT,
    USER,
    operator_token,
)
from mevfleet.fleetca import ca_dir
from mevfleet.model import HostPlan
from mevfleet.monitoring import REDIS_AUTH, redis_cli

MAX_EXPOSURE = 2.0
# A control plane (re)started by the deploy needs a heartbeat round and a lease round to see every agent.
CONNECTED_WITHIN_S = 60
HEARTBEAT_FRESH_S = 10.0


@pytest.fixture
def control(plan: HostPlan):
    if plan.control is None:
        pytest.skip(f"{plan.name} runs no control plane")
    return plan.control


def _metrics(host, control) -> dict[tuple[str, str], float]:
    body = host.check_output(f"curl -sf -m 10 http://{control.bind}:{control.metrics_port}/metrics")
    found = {}
    for name, agent, value in re.findall(r'^(mevcontrol_agent_\w+)\{agent="([^"]+)"\} (\S+)$', body, re.M):
        found[(name, agent)] = float(value)
    return found


def test_units_running_hardened_as_their_own_users(host, control):
    assert host.service(UNIT).is_running and host.service(UNIT).is_enabled
    assert host.service(POSTGRES_UNIT).is_running
    pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    assert host.check_output(f"ps -o user= -p {pid}").strip() == USER
    out = host.check_output(f"systemd-analyze security --no-pager {UNIT} | tail -n 1")
    score = float(re.search(r"([0-9.]+)", out.split(":", 1)[1]).group(1))
    assert score <= MAX_EXPOSURE, out


def _listening_once_up(host, ports: tuple[int, ...]) -> set[str]:
    """The listening sockets, once each of `ports` has one: a mevcontrol the deploy has just (re)started is
    active before it has connected to PostgreSQL and Redis and bound its listeners, more so on a loaded host."""
    deadline = time.monotonic() + CONNECTED_WITHIN_S
    while True:
        sockets = {line.split()[3] for line in host.run("ss -Hltn").stdout.splitlines()}
        bound = {s.rsplit(":", 1)[1] for s in sockets}
        if all(str(port) in bound for port in ports) or time.monotonic() > deadline:
            return sockets
        time.sleep(1)


def test_listening_only_where_planned(host, plan: HostPlan, control):
    ports = (
        control.risk_port,
        control.dashboard_port,
        control.relays_port,
        control.flashloans_port,
        control.bridges_port,
        control.metrics_port,
    )
    sockets = _listening_once_up(host, ports)
    for port in ports:
        assert {s for s in sockets if s.rsplit(":", 1)[1] == str(port)} == {f"{control.bind}:{port}"}, port
    assert {s for s in sockets if s.rsplit(":", 1)[1] == str(control.postgres_port)} == {
        f"127.0.0.1:{control.postgres_port}"
    }, "PostgreSQL listens on loopback only"


def test_postgresql_scram_on_loopback_and_schema_migrated(host, control):
    def sql(query: str) -> str:
        return host.check_output(f"runuser -u postgres -- psql -X -tA -d {DATABASE} -c {query!r}").strip()

    assert sql("SHOW password_encryption") == "scram-sha-256"
    assert sql("SHOW listen_addresses") == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-z_]+", sql("SELECT version_num FROM alembic_version")), "no Alembic revision"
    assert sql("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'mevcontrol'") == "t"
    query = "SELECT type, database, user_name, address, auth_method FROM pg_hba_file_rules"
    hba = host.check_output(f"runuser -u postgres -- psql -X -tA -c {query!r}")
    rules = {tuple(line.split("|")) for line in hba.splitlines() if line}
    assert rules == {
        ("local", "{all}", "{postgres}", "", "peer"),
        ("host", "{mevfleet}", "{mevcontrol}", "127.0.0.1", "scram-sha-256"),
    }


def test_secrets_owner_only_and_never_in_the_config(host, control):
    for path, owner in (
        (POSTGRES_DSN, USER),
        (TLS_KEY, USER),
        *((operator_token(o.name), "root") for o in control.operators),
    ):
        f = host.file(path)
        assert f.exists and f.size >= 32 and (f.mode, f.user) == (0o600, owner), path
    for agent in control.agents:
        f = host.file(agent.token_file)
        assert (f.mode, f.user) == (0o600, USER), agent.token_file
    config = host.file(CONFIG).content_string
    assert "postgresql://" not in config and "requirepass" not in config


def test_operator_urls_only_over_tls_and_only_with_a_token(host, control):
    base = f"https://{control.bind}:{control.risk_port}"
    status = host.run(f"curl -sk -o /dev/null -w '%{{http_code}}' -m 10 -X POST {base}/emergency/stop")
    assert status.stdout == "401", "an emergency stop without a token must be refused"
    status = host.run(f"curl -sk -o /dev/null -w '%{{http_code}}' -m 10 {base}/exposure/current")
    assert status.stdout == "401"
    plain = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' -m 10 http://{control.bind}:{control.risk_port}/health")
    assert plain.stdout in ("000", "400"), "plain HTTP must not be served"


def test_certificate_is_the_fleet_cas(fleet, plan: HostPlan, control):
    """From this machine (the operator's): the API's certificate chains to the fleet CA and names the host."""
    inventory, _ = fleet
    ca = ca_dir(inventory.fleet.name) / "ca.pem"
    if not ca.is_file():
        pytest.skip(f"the fleet CA is not on this machine ({ca}): run verify where the deploy ran")
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with (
            socket.create_connection((control.bind, control.risk_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=plan.name) as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    except (TimeoutError, ConnectionRefusedError) as exc:
        pytest.skip(f"{control.bind}:{control.risk_port} unreachable from here ({exc}): not on the operator allowlist")


def test_every_agent_connected_with_a_fresh_lease(host, control):
    deadline = time.monotonic() + CONNECTED_WITHIN_S
    while True:
        metrics = _metrics(host, control)
        stale = {
            a.name: (
                metrics.get(("mevcontrol_agent_heartbeat_age_seconds", a.name)),
                metrics.get(("mevcontrol_agent_lease_expires_in_seconds", a.name)),
            )
            for a in control.agents
        }
        stale = {n: v for n, v in stale.items() if v[0] is None or v[0] > HEARTBEAT_FRESH_S or not (v[1] or 0) > 0}
        if not stale or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not stale, f"agents without a recent heartbeat or a fresh lease (age s, lease left s): {stale}"


def test_redis_has_one_acl_user_per_agent(host, plan: HostPlan, control):
    users = host.check_output(f"REDISCLI_AUTH=$(cut -d' ' -f2 {REDIS_AUTH}) {redis_cli(plan)} ACL USERS").split()
    assert set(users) == {"default", *(a.name for a in control.agents)}


def test_the_bus_answers_tls_only(host, fleet, plan: HostPlan, control):
    """Redis has no plain port: a plain client gets no answer on any address, a TLS client checking the
    certificate against the fleet CA is asked for its password; Redis's key is its own user's alone."""
    port = int(control.redis_url.rsplit(":", 1)[1].split("/", 1)[0])
    assert control.redis_url.startswith("rediss://")
    for address in (plan.listen_address, "127.0.0.1"):
        plain = host.run(f"timeout 10 redis-cli -h {address} -p {port} ping")
        assert "PONG" not in plain.stdout and "NOAUTH" not in plain.stdout, (address, plain.stdout)
    tls = host.run(f"timeout 10 {redis_cli(plan)} -p {port} ping")
    assert "NOAUTH" in tls.stdout, tls.stdout + tls.stderr
    inventory, _ = fleet
    ca = ca_dir(inventory.fleet.name) / "ca.pem"
    if ca.is_file():  # the CA redis-cli checked against is the fleet CA of the machine that deployed
        assert host.file(REDIS_TLS_CA).content_string.strip() == ca.read_text().strip()
    key = host.file(REDIS_TLS_KEY)
    assert (key.mode, key.user) == (0o600, "redis")
    assert host.file(CONTROL_BUS_CA).exists


def test_agent_holds_its_bus_password_and_serves_the_control_host(host, plan: HostPlan):
    agent = plan.agent
    if agent is None or agent.api_control_bind is None:
        pytest.skip("no agent on this host, or no control plane in the fleet")
    f = host.file(AGENT_REDIS_PASSWORD)
    assert f.exists and (f.mode, f.user) == (0o600, agent.user)
    ca = host.file(AGENT_BUS_CA)  # the bus is TLS only: the agent checks Redis's certificate against it
    assert ca.exists and (ca.mode, ca.user) == (0o600, agent.user) and "BEGIN CERTIFICATE" in ca.content_string
    status = host.run(
        f"curl -s -o /dev/null -w '%{{http_code}}' -m 10 http://{agent.api_control_bind}:{agent.api_port}/health"
    )
    assert status.stdout == "200"
