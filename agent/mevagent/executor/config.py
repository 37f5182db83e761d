"""Per-chain execution settings. Dry-run unless `live: true` is written for that chain.

Validated before anything starts: an unknown field, a live chain without a contract or key, a bundle
chain without builders or a sequencer chain without its endpoint is an error naming the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _address(value: str | None) -> str | None:
    if value is not None and not _ADDRESS.match(value):
        raise ValueError("must be a 0x-prefixed 20-byte hex address")
    return None if value is None else value.lower()


class BuilderEndpoint(BaseModel):
    """One builder or relay that takes eth_sendBundle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")
    timeout_ms: int = Field(default=500, gt=0, le=10_000)
    # Whether it answers eth_callBundle, which dry-run then prefers to a plain eth_call.
    call_bundle: bool = False


class ChainExecution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: str = Field(min_length=1)
    chain_id: int = Field(gt=0)
    live: bool = False
    rpc_url: str = Field(pattern=r"^https?://")  # the co-located node
    contract: str | None = None  # the deployed ArbExecutor
    key_file: Path | None = None  # owner of the contract; signs transactions
    identity_key_file: Path | None = None  # signs X-Flashbots-Signature only
    submission: Literal["bundle", "sequencer"] = "bundle"
    builders: tuple[BuilderEndpoint, ...] = ()
    sequencer_url: str | None = Field(default=None, pattern=r"^https?://")
    target_blocks: int = Field(default=3, ge=1, le=25)  # bundles for N+1 .. N+target_blocks
    min_profit_wei: int = Field(default=1, ge=0)  # floor of what the contract must keep
    priority_fee_wei: int = Field(default=0, ge=0)
    eip1559: bool = True
    receipt_poll_ms: int = Field(default=200, gt=0)
    wrapped_native: str | None = None

    _check_contract = field_validator("contract", "wrapped_native")(_address)

    @model_validator(mode="after")
    def _complete(self) -> ChainExecution:
        if self.live and self.contract is None:
            raise ValueError("contract: required when live is true (deploy it with python -m mevagent.executor.deploy)")
        if self.live and self.key_file is None:
            raise ValueError("key_file: required when live is true")
        if self.submission == "bundle":
            if not self.builders:
                raise ValueError("builders: a bundle chain needs at least one builder endpoint")
            if self.live and self.identity_key_file is None:
                raise ValueError("identity_key_file: required to sign X-Flashbots-Signature on a live bundle chain")
            names = [b.name for b in self.builders]
            if len(set(names)) != len(names):
                raise ValueError("builders: endpoint names must be unique")
        elif self.sequencer_url is None:
            raise ValueError("sequencer_url: required when submission is sequencer")
        return self
