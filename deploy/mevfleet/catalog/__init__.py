"""The catalog: chains, fleet services and tuning as typed data loaded from the YAML beside this file."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CATALOG_DIR = Path(__file__).parent

Exposure = Literal["public", "fleet", "monitoring", "operator", "loopback", "ssh"]
Protocol = Literal["tcp", "udp"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortSpec(Strict):
    port: int = Field(ge=1, le=65535)
    port_end: int | None = Field(default=None, ge=1, le=65535)
    protocols: tuple[Protocol, ...] = ("tcp",)
    exposure: Exposure
    scrape: str | None = None
    scrape_interval: str | None = None

    @model_validator(mode="after")
    def _range_ordered(self) -> PortSpec:
        if self.port_end is not None and self.port_end < self.port:
            raise ValueError(f"port_end {self.port_end} is below port {self.port}")
        return self


class ServiceSpec(Strict):
    user: str
    package: str | None = None
    ports: dict[str, PortSpec] = {}


class Limits(Strict):
    nofile: int = Field(default=65536, ge=1024)
    memlock: int = Field(default=67108864, ge=0, description="bytes")


class ChainSpec(Strict):
    chain_id: int
    port_shift: int = Field(ge=0)
    sysctls: dict[str, int | str] = {}
    limits: Limits = Limits()
    services: dict[str, ServiceSpec]


class SysctlKey(Strict):
    type: Literal["int", "ints", "str"]
    namespaced: bool
    locks_at: str | None = None


class SysctlConcern(Strict):
    order: int = Field(ge=0, le=99)
    values: dict[str, int | str]


class Profile(Strict):
    sysctl_concerns: dict[str, SysctlConcern]
    hugepages: int = Field(ge=0)
    thp: Literal["always", "madvise", "never"]
    cpu_governor: str
    limits: Limits


class Tuning(Strict):
    known_sysctls: dict[str, SysctlKey]
    profiles: dict[str, Profile]


class FleetServices(Strict):
    base_packages: tuple[str, ...]
    every_host: dict[str, ServiceSpec]
    node_host: dict[str, ServiceSpec]
    monitoring: dict[str, ServiceSpec]


class Catalog(Strict):
    chains: dict[str, ChainSpec]
    fleet: FleetServices
    tuning: Tuning

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        # Catalog bugs must fail loudly at load time, not as odd host plans.
        for profile_name, profile in self.tuning.profiles.items():
            for concern in profile.sysctl_concerns.values():
                for key in concern.values:
                    if key not in self.tuning.known_sysctls:
                        raise ValueError(f"profile {profile_name}: sysctl {key} is not in known_sysctls")
        for chain_name, chain in self.chains.items():
            for key in chain.sysctls:
                if key not in self.tuning.known_sysctls:
                    raise ValueError(f"chain {chain_name}: sysctl {key} is not in known_sysctls")
        return self


def _read(name: str) -> dict:
    return yaml.safe_load((CATALOG_DIR / name).read_text())


@cache
def load_catalog() -> Catalog:
    return Catalog(
        chains=_read("chains.yml"),
        fleet=_read("fleet.yml"),
        tuning=_read("tuning.yml"),
    )
