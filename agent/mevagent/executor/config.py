"""Per-chain execution settings. Dry-run unless `live: true` is written for that chain.

Validated before anything starts: an unknown field, a live chain without a contract or key, a live
bundle chain without builders or a sequencer chain without its endpoint is an error naming the field.
A dry-run chain needs no builder: dry-run never signs, so it never sends anything anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mevagent.config import ChainConfig
from mevagent.crosschain.venues import LegVenue

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
    # Whether it answers eth_callBundle: live mode then simulates the signed bundle there before sending.
    call_bundle: bool = False


class ChainExecution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: str = Field(min_length=1)
    chain_id: int = Field(gt=0)
    live: bool = False
    # The co-located node over HTTP; None when the agent hands the executor its own node client (IPC).
    rpc_url: str | None = Field(default=None, pattern=r"^https?://")
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
    # A chain that stops making blocks must not hold an execution forever: past this, the fate of the
    # transaction is unknown, so its nonce is re-read from the node rather than reused.
    inclusion_timeout_s: float = Field(default=120.0, gt=0)
    wrapped_native: str | None = None
    # The chain's Uniswap V2 Router02: cross-chain inventory legs swap through it from the key's own
    # inventory (mevagent.crosschain.legs), the router approved once for the tokens traded; None: no legs.
    swap_router: str | None = None
    # The chain's Uniswap V3 SwapRouter (v3-periphery's, `exactInputSingle` with a deadline): legs on V3 pools
    # swap through it; each leg checks that the router's factory maps (tokens, fee) to the leg's pool.
    v3_swap_router: str | None = None
    # Per pool, the router its legs go through and its V3 fee tier (mevagent.crosschain.venues): SwapRouter02 too.
    leg_venues: tuple[LegVenue, ...] = ()

    _check_contract = field_validator("contract", "wrapped_native", "swap_router", "v3_swap_router")(_address)

    @model_validator(mode="after")
    def _complete(self) -> ChainExecution:
        if self.live and self.contract is None:
            raise ValueError("contract: required when live is true (deploy it with python -m mevagent.executor.deploy)")
        if self.live and self.key_file is None:
            raise ValueError("key_file: required when live is true")
        if self.submission == "bundle":
            if self.live and not self.builders:
                raise ValueError("builders: a live bundle chain needs at least one builder endpoint")
            if self.live and self.identity_key_file is None:
                raise ValueError("identity_key_file: required to sign X-Flashbots-Signature on a live bundle chain")
            names = [b.name for b in self.builders]
            if len(set(names)) != len(names):
                raise ValueError("builders: endpoint names must be unique")
        elif self.sequencer_url is None:
            raise ValueError("sequencer_url: required when submission is sequencer")
        return self


def from_chain_config(
    chain: ChainConfig,
    *,
    contract: str | None,
    wrapped_native: str | None = None,
    target_blocks: int = 3,
    rpc_url: str | None = None,
) -> ChainExecution:
    """The executor's settings for a chain of the agent's config (mevagent.config.ChainConfig).

    Its `bundle` endpoints become the builders; its first `private_tx` endpoint, on a chain without
    builders, the sequencer path. The contract address comes from the deploy command's output.
    """
    bundle = tuple(
        BuilderEndpoint(name=e.name, url=e.url, timeout_ms=e.timeout_ms) for e in chain.endpoints if e.kind == "bundle"
    )
    private = [e.url for e in chain.endpoints if e.kind == "private_tx"]
    return ChainExecution(
        chain=chain.name,
        chain_id=chain.chain_id,
        live=chain.live,
        rpc_url=rpc_url,
        contract=contract,
        key_file=chain.signing_key_file,
        identity_key_file=chain.searcher_key_file,
        submission="bundle" if bundle or not private else "sequencer",
        builders=bundle,
        sequencer_url=private[0] if private and not bundle else None,
        target_blocks=target_blocks,
        wrapped_native=wrapped_native,
        swap_router=chain.swap_router,
        v3_swap_router=chain.v3_swap_router,
        leg_venues=chain.leg_venues,
    )
