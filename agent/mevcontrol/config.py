"""The control plane's configuration (YAML), refused whole and naming the field when anything is wrong.

Secrets are files (0600): the Redis password, the PostgreSQL DSN (it holds the password), each agent's
API token. Operators are listed with the SHA-256 of their token, so this file holds no secret at all.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from mevagent.config import ConfigError, Name, SecretFile, Strict, describe
from mevcontrol.crosschain import CrossChainConfig
from mevcontrol.models import WINDOW_HOURS

Usd = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Port = Annotated[int, Field(gt=0, lt=65_536)]


class OperatorConfig(Strict):
    name: Name
    role: Literal["operator", "viewer"]
    token_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]  # sha256sum of the operator's token file


class AgentEntry(Strict):
    """An agent of the fleet: its control API (reachable from the control host only) and its token."""

    name: Name
    api_url: Annotated[str, Field(pattern=r"^https?://[^\s/]+$")]
    token_file: SecretFile


class FleetLimits(Strict):
    """The limits that span chains and agents (risk.json's names without the units)."""

    max_total_exposure_usd: Usd = 50_000.0  # in flight across the fleet
    daily_limit_usd: Usd = 1_000.0  # the fleet's realized loss (net of gas) since 00:00 UTC
    consecutive_losses: Annotated[int, Field(ge=1, le=10_000)] = 10  # losing executions in a row, fleet-wide


class ListenConfig(Strict):
    bind: str = "127.0.0.1"
    risk_port: Port = 8908
    dashboard_port: Port = 8080
    relays_port: Port = 8900
    flashloans_port: Port = 8903  # the fleet's /providers/status and /opportunities (mevcontrol.flashloans)
    metrics_port: Port = 9908  # Prometheus scrapes it (plain HTTP, no control routes)
    bridges_port: Port = 8906  # the cross-chain engine and bridge monitor (only with `crosschain:`)
    tls_cert_file: Path | None = None
    tls_key_file: SecretFile | None = None

    @field_validator("bind")
    @classmethod
    def _ip(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value

    @model_validator(mode="after")
    def _tls(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_cert_file is None and not ipaddress.ip_address(self.bind).is_loopback:
            raise ValueError(f"bind {self.bind} is not loopback: tls_cert_file and tls_key_file are required")
        return self


class HistoryWarmConfig(Strict):
    """The warmer of the window routes' kept hours (mevcontrol.warm): it reads the closed hours every window of
    1..`hours` hours shares before a dashboard asks, on one pool connection at a time."""

    enabled: bool = True
    hours: Annotated[int, Field(ge=1, le=WINDOW_HOURS)] = WINDOW_HOURS
    # How often it looks for a kept hour that a late row changed (one small read of the change counts).
    interval_s: Annotated[float, Field(ge=0.1, le=3600, allow_inf_nan=False)] = 5.0


class ControlConfig(Strict):
    redis_url: Annotated[str, Field(pattern=r"^(rediss?://[^\s/@]+(:\d+)?(/\d+)?|unix:///\S+)$")]
    redis_password_file: SecretFile | None = None
    redis_tls_ca_file: Path | None = None
    postgres_dsn_file: SecretFile  # one line: postgresql://user:password@host:port/db
    listen: ListenConfig = ListenConfig()
    operators: tuple[OperatorConfig, ...] = Field(min_length=1)
    # More operators, from a YAML list the deploy writes on the control host (their token hashes are
    # only known there: the tokens are made on the host). Merged into `operators` when loading.
    operators_file: Path | None = None
    agents: tuple[AgentEntry, ...] = ()
    limits: FleetLimits = FleetLimits()
    # The inventory's ceilings: raising a limit above one needs a second operator.
    ceilings: FleetLimits = FleetLimits()
    live_chains: tuple[Name, ...] = ()  # chains the fleet may trade live on (changing it: four-eyes)
    lease_ttl_s: Annotated[float, Field(ge=1, le=600, allow_inf_nan=False)] = 15.0
    agent_timeout_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 2.0  # direct calls to agents
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 35  # opportunities and skips (daily partitions)
    rate_limit_per_s: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)] = 50.0  # per token
    approval_ttl_s: Annotated[float, Field(gt=0, le=86_400 * 7, allow_inf_nan=False)] = 3600.0
    stuck_after_blocks: Annotated[int, Field(ge=1, le=10_000)] = 3
    # A node with fewer peers (its execution or beacon node, as its agent's heartbeat says) is marked low.
    min_node_peers: Annotated[int, Field(ge=0, le=10_000)] = 3
    crosschain: CrossChainConfig | None = None  # the cross-chain engine (docs/crosschain.md); absent: off
    history_warm: HistoryWarmConfig = HistoryWarmConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [o.name for o in self.operators]
        if len(set(names)) != len(names):
            raise ValueError(f"operators: names repeat: {sorted(names)}")
        tokens = [o.token_sha256 for o in self.operators]
        if len(set(tokens)) != len(tokens):
            raise ValueError("operators: two operators share a token")
        agents = [a.name for a in self.agents]
        if len(set(agents)) != len(agents):
            raise ValueError(f"agents: names repeat: {sorted(agents)}")
        for field in FleetLimits.model_fields:
            if getattr(self.limits, field) > getattr(self.ceilings, field):
                raise ValueError(f"limits.{field} is above ceilings.{field}")
        return self


def load_control_config(path: Path) -> ControlConfig:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if data.get("operators_file") is not None:
        data = {**data, "operators": [*(data.get("operators") or ()), *_operators_file(path, data)]}
    try:
        return ControlConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe(exc, data)}") from None


def _operators_file(path: Path, data: dict) -> list:
    source = Path(data["operators_file"])
    try:
        listed = yaml.safe_load(source.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: operators_file: {exc}") from None
    if not isinstance(listed, list):
        raise ConfigError(f"{path}: operators_file: {source} must hold a YAML list of operators")
    return listed
