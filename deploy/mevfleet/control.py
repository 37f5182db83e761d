"""The fleet control plane on its host (the first monitoring host): PostgreSQL, mevcontrol, their secrets.

What the plan holds (ControlPlan, pure data, planned by control_plan from the fleet's host plans) and
what it renders: PostgreSQL's tuning (scaled to the host's memory) and client authentication, mevcontrol's
config and its hardened unit; steps() says how the engine applies them; `tests/verify/test_control.py`
checks them.

Secrets, never in the repository, a log or a command line:
- made on the control host: the PostgreSQL password (inside /etc/mevcontrol/postgres.dsn, 0600), each
  operator's token (/etc/mevcontrol/operators/<name>.token, 0600 root; the config lists only their
  SHA-256 in operators.yml), the control plane's copy of the Redis password;
- made on the control machine beside the fleet CA (fleetca.ca_dir, 0700): each agent's API token and
  Redis password (agent_secrets). The agent host gets its two as 0600 files; the control host gets the
  API token (to call that agent) and Redis only a hash of the password (an ACL user per agent that may
  append events and read its own command stream, nothing else).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # model.py imports this module's models: the rest is imported where it is used
    from .catalog import Catalog
    from .fleetca import HostCredentials
    from .inventory import Host, Inventory
    from .model import FileSpec, HostPlan, Removal, ServicePlan
    from .monitoring import CopiedSecret
    from .render import HostFacts
    from .steps import Given, Step

USER = "mevcontrol"
CONFIG_DIR = "/etc/mevcontrol"
CONFIG = f"{CONFIG_DIR}/control.yml"
# Read by mevcontrol (and by backups: pg_dump as `postgres` over the local socket needs no password).
POSTGRES_DSN = f"{CONFIG_DIR}/postgres.dsn"
REDIS_PASSWORD = f"{CONFIG_DIR}/redis.password"
OPERATORS_FILE = f"{CONFIG_DIR}/operators.yml"
OPERATOR_TOKENS = f"{CONFIG_DIR}/operators"
AGENT_TOKENS = f"{CONFIG_DIR}/agents"
TLS_CERT = f"{CONFIG_DIR}/tls.crt"
TLS_KEY = f"{CONFIG_DIR}/tls.key"
RELEASE_ROOT = "/opt/mevfleet/mevcontrol"
UNIT = "mevcontrol.service"
UNIT_FILE = f"/etc/systemd/system/{UNIT}"
DATABASE = "mevfleet"
DB_ROLE = "mevcontrol"
POSTGRES_MAJOR = "15"
POSTGRES_UNIT = f"postgresql@{POSTGRES_MAJOR}-main.service"
POSTGRES_ETC = f"/etc/postgresql/{POSTGRES_MAJOR}/main"
POSTGRES_DATA = f"/var/lib/postgresql/{POSTGRES_MAJOR}/main"
POSTGRES_BIN = f"/usr/lib/postgresql/{POSTGRES_MAJOR}/bin"
# Redis ACL users of the agents (a hash per agent's password), included by redis.conf on the control host.
REDIS_ACL = "/etc/redis/mevfleet-acl/agents.conf"
# On each agent host (the agent's config names them).
AGENT_REDIS_PASSWORD = "/etc/mevagent/redis.password"
# The bus speaks TLS only (redis.conf: `port 0`, `tls-port`): Redis's certificate is the control host's
# one from the fleet CA (fleetca.ensure_host, the same as the API's), and every bus client checks it
# against the fleet CA (a public certificate, copied beside each client's other bus files).
REDIS_TLS_DIR = "/etc/redis/tls"
REDIS_TLS_CERT = f"{REDIS_TLS_DIR}/redis.crt"
REDIS_TLS_KEY = f"{REDIS_TLS_DIR}/redis.key"
REDIS_TLS_CA = f"{REDIS_TLS_DIR}/ca.pem"
AGENT_BUS_CA = "/etc/mevagent/bus-ca.pem"
CONTROL_BUS_CA = f"{CONFIG_DIR}/bus-ca.pem"
# Sized for a host whose memory the inventory does not give (hardware.memory_gib).
DEFAULT_MEMORY_GIB = 4.0
MAX_CONNECTIONS = 50


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ControlAgent(Frozen):
    name: str
    api_url: str  # the agent's API on its private address (opened to the control host only)
    token_file: str  # on the control host


class ControlOperator(Frozen):
    name: str
    role: str


class ControlPlan(Frozen):
    version: str  # hash of the agent bundle's sources (mevagent + mevcontrol) and pyproject
    bind: str
    risk_port: int
    dashboard_port: int
    relays_port: int
    flashloans_port: int
    bridges_port: int
    metrics_port: int
    redis_url: str
    postgres_port: int
    postgres_settings: dict[str, str]  # postgresql.conf lines (conf.d), scaled to the host's memory
    operators: tuple[ControlOperator, ...]
    agents: tuple[ControlAgent, ...]
    live_chains: tuple[str, ...]
    lease_ttl_s: float
    limits: dict[str, float]
    ceilings: dict[str, float]
    crosschain: dict[str, Any] = {}  # mevcontrol.crosschain.CrossChainConfig


def postgres_settings(memory_gib: float | None) -> dict[str, str]:
    """The usual sizing rules of PostgreSQL's documentation ("Resource Consumption"): shared_buffers a
    quarter of memory (at most 8 GiB), effective_cache_size three quarters, maintenance_work_mem 1/16
    (at most 2 GiB), work_mem a share of what is left per connection; SSD costs; no JIT (short OLTP
    statements pay its compile time and gain nothing)."""
    mib = int((memory_gib or DEFAULT_MEMORY_GIB) * 1024)
    shared = min(mib // 4, 8192)
    return {
        "listen_addresses": "'127.0.0.1'",
        "password_encryption": "scram-sha-256",
        "max_connections": str(MAX_CONNECTIONS),
        "shared_buffers": f"{shared}MB",
        "effective_cache_size": f"{mib * 3 // 4}MB",
        "maintenance_work_mem": f"{min(mib // 16, 2048)}MB",
        "work_mem": f"{max(4, min((mib - shared) // (MAX_CONNECTIONS * 4), 64))}MB",
        "wal_buffers": "16MB",
        "checkpoint_completion_target": "0.9",
        "max_wal_size": "2GB",
        "random_page_cost": "1.1",
        "effective_io_concurrency": "200",
        "jit": "off",
    }


def control_plan(host: Host, plans: dict[str, HostPlan], inventory: Inventory, version: str) -> ControlPlan:
    """The control plane on its host: its listeners from the plan's ports, every agent of the fleet (its
    limits are judged by the control plane's own models after planning: inputs.judge)."""
    settings = inventory.fleet.control
    plan = plans[host.name]
    ports = {p.name: p for s in plan.services if s.service == "mevcontrol" for p in s.ports}
    postgres = next(p for s in plan.services if s.service == "postgresql" for p in s.ports)
    agents = tuple(
        ControlAgent(
            name=name,
            api_url=f"http://{p.agent.api_control_bind}:{p.agent.api_port}",
            token_file=f"/etc/mevcontrol/agents/{name}.token",
        )
        for name, p in plans.items()
        if p.agent is not None and p.agent.api_control_bind is not None
    )
    return ControlPlan(
        version=version,
        bind=plan.listen_address,
        risk_port=ports["risk"].port,
        dashboard_port=ports["dashboard"].port,
        relays_port=ports["relays"].port,
        flashloans_port=ports["flashloans"].port,
        bridges_port=ports["bridges"].port,
        metrics_port=ports["metrics"].port,
        # TLS like every bus client (Redis has no plain port): its certificate names the host's address.
        redis_url=f"rediss://{plan.listen_address}:{_port_of_service(plan, 'redis')}/0",
        postgres_port=postgres.port,
        postgres_settings=postgres_settings(host.hardware.memory_gib) | {"port": str(postgres.port)},
        operators=tuple(ControlOperator(name=o.name, role=o.role) for o in settings.operators),
        agents=agents,
        live_chains=tuple(inventory.fleet.agent.live),
        lease_ttl_s=settings.lease_ttl_s,
        limits=dict(settings.limits),
        ceilings=dict(settings.ceilings),
        crosschain=dict(settings.crosschain),
    )


def _port_of_service(plan: HostPlan, service: str) -> int:
    return next(p.port for s in plan.services if s.service == service and s.chain is None for p in s.ports)


def release_dir(control: ControlPlan) -> str:
    return f"{RELEASE_ROOT}/{control.version}"


def executable(control: ControlPlan) -> str:
    return f"{RELEASE_ROOT}/current/venv/bin/mevcontrol"


def operator_token(name: str) -> str:
    return f"{OPERATOR_TOKENS}/{name}.token"


def agent_token(name: str) -> str:
    return f"{AGENT_TOKENS}/{name}.token"


def config_document(control: ControlPlan) -> dict[str, Any]:
    """mevcontrol's control.yml (mevcontrol.config.ControlConfig): no secret, only paths to them."""
    return {
        "redis_url": control.redis_url,
        "redis_password_file": REDIS_PASSWORD,
        "redis_tls_ca_file": CONTROL_BUS_CA,
        "postgres_dsn_file": POSTGRES_DSN,
        "listen": {
            "bind": control.bind,
            "risk_port": control.risk_port,
            "dashboard_port": control.dashboard_port,
            "relays_port": control.relays_port,
            "flashloans_port": control.flashloans_port,
            "bridges_port": control.bridges_port,
            "metrics_port": control.metrics_port,
            "tls_cert_file": TLS_CERT,
            "tls_key_file": TLS_KEY,
        },
        # Their token hashes are written on the host, next to the tokens (secrets_script).
        "operators": [],
        "operators_file": OPERATORS_FILE,
        "agents": [a.model_dump() for a in control.agents],
        **({"limits": control.limits} if control.limits else {}),
        **({"ceilings": control.ceilings} if control.ceilings else {}),
        "live_chains": list(control.live_chains),
        "lease_ttl_s": control.lease_ttl_s,
        # Always on: detection (and the bridge monitor) from the shipped registry; legs only with `execution:`.
        "crosschain": control.crosschain,
    }


def control_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    """PostgreSQL's tuning and client authentication, mevcontrol's config and unit."""
    import yaml

    from .model import FileSpec

    control = plan.control
    if control is None:
        return []
    postgres = {"owner": "postgres", "group": "postgres"}
    return [
        FileSpec(
            path=f"{POSTGRES_ETC}/conf.d/90-mevfleet.conf",
            concern="postgresql",
            template="control/postgresql.conf.j2",
            context={"settings": control.postgres_settings, "port": control.postgres_port},
            **postgres,
        ),
        FileSpec(
            path=f"{POSTGRES_ETC}/pg_hba.conf",
            concern="postgresql",
            template="control/pg_hba.conf.j2",
            context={"database": DATABASE, "role": DB_ROLE},
            mode="0640",
            **postgres,
        ),
        FileSpec(
            path=CONFIG,
            concern="control",
            content="# Managed by mevfleet (deploy/mevfleet/control.py): the fleet control plane's config.\n"
            + yaml.safe_dump(config_document(control), sort_keys=False),
            mode="0640",
            group=USER,
        ),
        FileSpec(
            path=UNIT_FILE,
            concern="control",
            template="control/mevcontrol.service.j2",
            context={"control": control, "executable": executable(control), "config": CONFIG, "user": USER},
        ),
    ]


# --- secrets -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentSecrets:
    api_token: Path
    redis_password: Path


def _write_new_secret(path: Path) -> None:
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
    os.replace(path.with_suffix(".tmp"), path)


def agent_secrets(directory: Path, agent: str) -> AgentSecrets:
    """The agent's API token and Redis password on the control machine (made once, 0600, kept)."""
    root = directory / "agents"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    root.chmod(0o700)
    made = AgentSecrets(api_token=root / f"{agent}.api-token", redis_password=root / f"{agent}.redis-password")
    for path in (made.api_token, made.redis_password):
        if not path.is_file() or not path.read_text().strip():
            _write_new_secret(path)
    return made


def redis_acl(agents: dict[str, AgentSecrets]) -> str:
    """One Redis ACL user per agent: append to the event streams, read its own command stream; its
    password only as a SHA-256 (Redis ACL `#<hash>`)."""
    from mevagent.bus.events import BEST_EFFORT_STREAM, DURABLE_STREAM, PRICE_STREAM, command_stream

    lines = ["# Managed by mevfleet (deploy/mevfleet/control.py): the agents' bus users (no secret here)."]
    for name in sorted(agents):
        digest = hashlib.sha256(agents[name].redis_password.read_text().strip().encode()).hexdigest()
        lines.append(
            # XADD's key is read-write in Redis' key specs, so the event streams need both.
            f"user {name} on #{digest} resetkeys ~{BEST_EFFORT_STREAM} ~{DURABLE_STREAM} ~{PRICE_STREAM} "
            f"%R~{command_stream(name)} resetchannels -@all "
            "+ping +hello +auth +client|setname +xadd +xread"
        )
    return "\n".join(lines) + "\n"


def agent_copies(secrets_of: AgentSecrets, ca: Path) -> list[CopiedSecret]:
    """An agent host's own API token and Redis password, and the fleet CA its bus client checks Redis's
    certificate against (owner mevagent, 0600)."""
    from .agent import AGENT_USER
    from .monitoring import CopiedSecret

    return [
        CopiedSecret(
            source=str(secrets_of.api_token), path=f"/etc/{AGENT_USER}/api.token", owner=AGENT_USER, service="agent"
        ),
        CopiedSecret(
            source=str(secrets_of.redis_password), path=AGENT_REDIS_PASSWORD, owner=AGENT_USER, service="agent"
        ),
        CopiedSecret(source=str(ca), path=AGENT_BUS_CA, owner=AGENT_USER, service="agent"),
    ]


def control_copies(
    plan: HostPlan, agents: dict[str, AgentSecrets], acl: Path, tls: HostCredentials
) -> list[CopiedSecret]:
    """The control host's copies: each agent's API token, the API certificate and key, the fleet CA for
    its bus client; Redis's ACL file, its certificate and key (the host's) and the fleet CA."""
    from .monitoring import CopiedSecret

    control = plan.control
    if control is None:
        return []
    return [
        *(
            CopiedSecret(source=str(agents[a.name].api_token), path=a.token_file, owner=USER, service="control")
            for a in control.agents
        ),
        CopiedSecret(source=str(tls.cert), path=TLS_CERT, owner=USER, service="control"),
        CopiedSecret(source=str(tls.key), path=TLS_KEY, owner=USER, service="control"),
        CopiedSecret(source=str(tls.ca), path=CONTROL_BUS_CA, owner=USER, service="control"),
        CopiedSecret(source=str(acl), path=REDIS_ACL, owner="root", group="redis", service="redis"),
        *(
            CopiedSecret(source=str(source), path=path, owner="redis", service="redis")
            for source, path in ((tls.cert, REDIS_TLS_CERT), (tls.key, REDIS_TLS_KEY), (tls.ca, REDIS_TLS_CA))
        ),
    ]


def write_acl(directory: Path, agents: dict[str, AgentSecrets]) -> Path:
    path = directory / "agents" / "redis-acl.conf"
    content = redis_acl(agents)
    if not path.is_file() or path.read_text() != content:
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(content)
        os.replace(path.with_suffix(".tmp"), path)
    return path


# --- made on the control host --------------------------------------------------------------------------


def host_secret_files(control: ControlPlan) -> list[str]:
    """The secrets the control host makes itself (probed; the script runs while one is missing)."""
    return [POSTGRES_DSN, REDIS_PASSWORD, OPERATORS_FILE, *(operator_token(o.name) for o in control.operators)]


def _random_hex(target: str) -> str:
    # 32 random bytes as hex, straight into the file (never an argument or an environment variable).
    return f"od -An -N32 -tx1 /dev/urandom | tr -d ' \\n' > {target}"


def secrets_script(control: ControlPlan, redis_auth: str) -> str:
    """Operator tokens (root's, 0600) and their hashes for mevcontrol, the Redis password's copy, the
    PostgreSQL role and database with a password made here (kept in the DSN file, 0600): each made once."""
    import shlex

    q = shlex.quote
    user, dsn = q(USER), q(POSTGRES_DSN)
    lines = [
        "set -e",
        "umask 077",
        f"install -d -m 0750 -o root -g {user} {q(CONFIG_DIR)}",
        f"install -d -m 0700 -o root -g root {q(OPERATOR_TOKENS)}",
        f"if [ ! -s {q(REDIS_PASSWORD)} ]; then "
        f"sed -n 's/^requirepass //p' {q(redis_auth)} > {q(REDIS_PASSWORD + '.tmp')}; "
        f"mv {q(REDIS_PASSWORD + '.tmp')} {q(REDIS_PASSWORD)}; fi",
        f"chown {user}:{user} {q(REDIS_PASSWORD)}",
        f"chmod 0600 {q(REDIS_PASSWORD)}",
    ]
    listing = []
    for operator in control.operators:
        token = q(operator_token(operator.name))
        lines += [
            f"if [ ! -s {token} ]; then {_random_hex(token + '.tmp')}; mv {token}.tmp {token}; fi",
            f"chmod 0600 {token}",
        ]
        listing.append(
            f"printf -- '- {{name: %s, role: %s, token_sha256: %s}}\\n' {q(operator.name)} {q(operator.role)} "
            f"\"$(sha256sum < {token} | cut -d' ' -f1)\""
        )
    ops = q(OPERATORS_FILE)
    lines += [
        f"{{ {'; '.join(listing)}; }} > {ops}.tmp",
        f"chown root:{user} {ops}.tmp",
        f"chmod 0640 {ops}.tmp",
        f"mv {ops}.tmp {ops}",
    ]
    # The role's password travels to psql on its standard input (printf is the shell's own: no argv).
    sql = (
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{DB_ROLE}') THEN "
        f"CREATE ROLE {DB_ROLE} LOGIN; END IF; END $$;\\n"
        f"ALTER ROLE {DB_ROLE} WITH LOGIN PASSWORD '%s';\\n"
        f"SELECT 'CREATE DATABASE {DATABASE} OWNER {DB_ROLE}' "
        f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DATABASE}')\\\\gexec\\n"
    )
    lines += [
        f"if [ ! -s {dsn} ]; then "
        f"pw=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \\n'); "
        f'printf {q(sql)} "$pw" | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres >/dev/null; '
        f"printf 'postgresql://{DB_ROLE}:%s@127.0.0.1:{control.postgres_port}/{DATABASE}\\n' \"$pw\" > {dsn}.tmp; "
        f"mv {dsn}.tmp {dsn}; fi",
        f"chown {user}:{user} {dsn}",
        f"chmod 0600 {dsn}",
    ]
    return "; ".join(lines)


def migrate_command(control: ControlPlan) -> str:
    """The schema to Alembic's head, as the control plane's user (it alone reads the DSN)."""
    return f"runuser -u {USER} -- {RELEASE_ROOT}/current/venv/bin/mevcontrol migrate --config {CONFIG}"


# --- status (mevfleet status) --------------------------------------------------------------------------


class AgentLink(Frozen):
    agent: str
    heartbeat_age_s: float | None
    lease_expires_in_s: float | None

    @property
    def connected(self) -> bool:
        return self.heartbeat_age_s is not None and self.heartbeat_age_s < 10 and (self.lease_expires_in_s or 0) > 0


class ControlStatus(Frozen):
    host: str
    state: str  # mevcontrol.service's ActiveState
    postgres: str
    agents: tuple[AgentLink, ...]

    @property
    def healthy(self) -> bool:
        return self.state == "active" and self.postgres == "active" and all(a.connected for a in self.agents)


def parse_agent_metrics(body: str, agents: list[str]) -> tuple[AgentLink, ...]:
    import re

    values: dict[tuple[str, str], float] = {}
    for name, agent, value in re.findall(r'^mevcontrol_agent_(\w+)\{agent="([^"]+)"\} (\S+)$', body, re.M):
        values[(name, agent)] = float(value)
    return tuple(
        AgentLink(
            agent=a,
            heartbeat_age_s=values.get(("heartbeat_age_seconds", a)),
            lease_expires_in_s=values.get(("lease_expires_in_seconds", a)),
        )
        for a in agents
    )


def control_status(plan: HostPlan) -> ControlStatus | None:
    """Ask the control host (over SSH, as its plan says, like the node status): its units and each agent's
    heartbeat and lease as the control plane's own metrics say."""
    from .nodes.ops import run
    from .sshclient import connect

    control = plan.control
    if control is None:
        return None
    client = connect(plan.ssh)
    try:
        _, states = run(client, f"systemctl show -p ActiveState --value {UNIT} {POSTGRES_UNIT}")
        _, body = run(client, f"curl -s -m 5 http://{control.bind}:{control.metrics_port}/metrics")
    finally:
        client.close()
    state, _, postgres = states.strip().partition("\n")
    return ControlStatus(
        host=plan.name,
        state=state or "unknown",
        postgres=postgres.strip() or "unknown",
        agents=parse_agent_metrics(body, [a.name for a in control.agents]),
    )


# Parses every config file PostgreSQL reads and prints one setting; fails on a bad line or value (it runs
# beside the live server).
POSTGRES_CHECK = (
    f"runuser -u postgres -- {POSTGRES_BIN}/postgres -D {POSTGRES_DATA} "
    f"-c config_file={POSTGRES_ETC}/postgresql.conf -C shared_buffers >/dev/null"
)


def marker(control: ControlPlan) -> str:
    from .nodes.artifacts import MARKER

    return f"{release_dir(control)}/{MARKER}"


def link() -> str:
    return f"{RELEASE_ROOT}/current"


def probe_files(plan: HostPlan) -> list[str]:
    return [marker(plan.control), *host_secret_files(plan.control)] if plan.control else []


def copied_paths(plan: HostPlan) -> list[str]:
    """Where the control machine's copies land on this host (agent_copies, control_copies above)."""
    paths = [AGENT_REDIS_PASSWORD, AGENT_BUS_CA] if plan.agent is not None else []
    if plan.control is not None:
        paths += [a.token_file for a in plan.control.agents]
        paths += [TLS_CERT, TLS_KEY, CONTROL_BUS_CA, REDIS_ACL, REDIS_TLS_CERT, REDIS_TLS_KEY, REDIS_TLS_CA]
    return paths


def probe_links(plan: HostPlan) -> list[str]:
    return [link()] if plan.control else []


def control_units(plan: HostPlan) -> list[str]:
    return ["postgresql.service", POSTGRES_UNIT, UNIT] if plan.control else []


def removals(plan: HostPlan) -> list[Removal]:
    """A host that no longer carries the control plane (it lost the `monitoring` role, or another host came
    first): mevcontrol and PostgreSQL stopped and disabled; mevcontrol's unit, config, tokens, TLS copies
    and release links, PostgreSQL's tuning from mevfleet, the sandbox drop-ins and the bus's ACL and TLS
    files on Redis's side go. The history database (PostgreSQL's data dir), the releases and the users stay;
    the packages stay installed."""
    if plan.control is not None:
        return []
    from . import sandbox
    from .model import Removal  # model.py imports this module: imported where used

    # Only the control plane's install makes these (mevcontrol's own names, mevfleet's files beside
    # PostgreSQL's and Redis's): any of them on a host says the plane was there.
    own = (
        UNIT_FILE,
        f"{UNIT_FILE}.d",
        CONFIG_DIR,
        link(),
        f"{RELEASE_ROOT}/previous",
        f"{POSTGRES_ETC}/conf.d/90-mevfleet.conf",
        sandbox.path("postgresql.service"),
        sandbox.path(POSTGRES_UNIT),
        REDIS_ACL.rsplit("/", 1)[0],
    )
    return [
        Removal(
            concern="control",
            name="control plane",
            # mevcontrol first: it holds connections to the database.
            units=(UNIT, POSTGRES_UNIT, "postgresql.service"),
            # Redis's TLS directory is where an operator's own Redis keeps its certificates too: only the
            # plane's three files there go with it (never the directory), and none is a sign of it.
            paths=(*own, REDIS_TLS_CERT, REDIS_TLS_KEY, REDIS_TLS_CA),
            markers=own,
            # pg_hba.conf stays with the cluster: the kept history can still be started and dumped.
            kept=f"the history database in {POSTGRES_DATA} with its pg_hba.conf, releases",
        )
    ]


def needs_packages(services: list[ServicePlan], catalog: Catalog) -> tuple[str, ...]:
    """mevcontrol's release is a venv made from uploaded wheels: the host needs python3-venv."""
    return ("python3-venv",) if any(s.service == "mevcontrol" for s in services) else ()


def steps(plan: HostPlan, given: Given) -> tuple[Step, ...]:
    """PostgreSQL's files (checked, then the cluster restarted), the secrets made on the host and those copied
    from the control machine, the release, the schema, then mevcontrol (restarted when its config, unit,
    release, database or a copied secret changed)."""
    control = plan.control
    if control is None:
        return ()
    # Imported here: steps.py names the release types, and release.py imports this module.
    from .monitoring import REDIS_AUTH
    from .release import control_release
    from .steps import (
        CheckedFiles,
        Command,
        CopiedSecrets,
        CopiesChanged,
        Files,
        FilesChanged,
        FileWant,
        NotSwitched,
        Running,
        SecretScript,
        SecretsMissing,
        Select,
        Switch,
        Unit,
        WheelInstall,
    )

    copies = given.copies_for("control")
    release = control_release(control)
    own = Select(concern="control")
    made = tuple(host_secret_files(control))
    return (
        Unit(name="postgresql enabled and running", unit="postgresql.service"),
        CheckedFiles(
            name="PostgreSQL configuration (checked before restart)",
            files=Select(concern="postgresql"),
            check=POSTGRES_CHECK,
            unit=POSTGRES_UNIT,
        ),
        Unit(name=f"{POSTGRES_UNIT} running", unit=POSTGRES_UNIT, enabled=False),
        SecretScript(
            name="Control plane secrets made on the host (PostgreSQL role and password, operator tokens)",
            script=secrets_script(control, REDIS_AUTH),
            files=tuple(FileWant(path=p, modes=("0600", "0640")) for p in made),
        ),
        CopiedSecrets(
            name="Agent API tokens, the API certificate and the bus's fleet CA for the control plane", copies=copies
        ),
        WheelInstall(name=f"Control plane release {control.version}", release=release),
        Files(name="Control plane config and unit", files=own),
        Switch(name=f"Control plane current -> {control.version}", release=release),
        Command(
            name="Control plane schema migrated (Alembic head)",
            command=migrate_command(control),
            when=(NotSwitched(release=release), SecretsMissing(paths=made), FilesChanged(files=own)),
        ),
        Running(
            name="Control plane running",
            unit=UNIT,
            restart_if=(
                FilesChanged(files=own),
                NotSwitched(release=release),
                SecretsMissing(paths=made),
                CopiesChanged(copies=copies),
            ),
        ),
    )
