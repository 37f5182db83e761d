"""A Solana chain's section of the agent's config (`chains[].solana`): the pools it tracks, the block-engine
regions it sends bundles to, the token accounts its cycles use.

A chain with this section is a Solana chain: its node is Solana JSON-RPC at the chain's `http_url` with its
WebSocket at `ws_url`; its state is the pool book kept from account subscriptions (mevagent.solana.node);
the `solana_arb` strategy plug-in searches it and sends through the `solana_bundle` route.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from solders.pubkey import Pubkey

WRAPPED_SOL = "So11111111111111111111111111111111111111112"


def _pubkey(value: str) -> str:
    Pubkey.from_string(value)  # ValueError on anything that is not a 32-byte base58 key
    return value


Base58Key = Annotated[str, Field(pattern=r"^[1-9A-HJ-NP-Za-km-z]{32,44}$"), AfterValidator(_pubkey)]
PoolKind = Literal["raydium_amm_v4", "raydium_cpmm", "raydium_clmm", "orca_whirlpool", "meteora_dlmm"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SolanaPool(_Strict):
    kind: PoolKind
    address: Base58Key


class UsdPeg(_Strict):
    """The stablecoin's check: its mid price in a second USD token (`reference_mint`), read from one of the
    chain's `pools` pairing the two. While it stays within `tolerance_bps` of 1 the stablecoin is taken at 1
    USD; beyond, there is no SOL price (a depeg must not silently inflate or deflate SOL's value)."""

    pool: Base58Key  # one of `pools`, e.g. a USDC/USDT pool
    reference_mint: Base58Key
    reference_decimals: Annotated[int, Field(ge=0, le=18)]
    tolerance_bps: Annotated[int, Field(gt=0, le=5_000)] = 100
    # The stablecoin amount quoted both ways (its units): small against the pool, large against rounding.
    probe_units: Annotated[int, Field(gt=0, le=10**24)] = 10_000_000


class SolUsdPool(_Strict):
    """SOL valued at the mid price of one of the chain's `pools` that pairs the base mint with a USD stablecoin
    (taken at 1 USD per whole token): read when used, so SOL is valued at the price the chain trades it."""

    address: Base58Key  # one of `pools`
    usd_mint: Base58Key
    usd_decimals: Annotated[int, Field(ge=0, le=18)]
    # The base-mint amount quoted both ways to read the mid price (mevagent.solana.price): small against the
    # pool's depth (its impact cancels to first order) yet large enough that integer rounding is negligible.
    probe_lamports: Annotated[int, Field(gt=0, le=1_000_000_000_000)] = 10_000_000
    peg: UsdPeg | None = None  # without it the stablecoin is taken at exactly 1 USD


class BlockEngineRegion(_Strict):
    """One Jito block-engine region: its bundles endpoint, the per-IP rate it allows, the timeout per call."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")]  # .../api/v1/bundles
    rps: Annotated[float, Field(gt=0, le=1_000, allow_inf_nan=False)] = 1.0  # Jito's default per-IP limit
    timeout_ms: Annotated[int, Field(gt=0, le=10_000)] = 2_000


class SolanaChainConfig(_Strict):
    pools: tuple[SolanaPool, ...] = Field(min_length=1)
    base_mint: Base58Key = WRAPPED_SOL  # cycles start and end in it; valued in USD by one of the two below
    # USD per SOL for the risk gate's limits and the profit floor: a fixed figure (`sol_usd`) or the mid price
    # of a pool of `pools` read at the time of use (`sol_usd_pool`); exactly one.
    sol_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    sol_usd_pool: SolUsdPool | None = None
    block_engines: tuple[BlockEngineRegion, ...] = ()
    # mint -> our token account for it: every mint a cycle passes through needs one to be executed.
    token_accounts: dict[Base58Key, Base58Key] = Field(default_factory=dict)
    lookup_tables: tuple[Base58Key, ...] = ()  # address lookup tables read at start and used by every build
    # Keep our own lookup tables for the cycles executed (mevagent.solana.tables): created and extended only
    # when the chain is live (a table locks rent); otherwise planned and logged.
    own_lookup_tables: bool = False
    # The router refuses an opportunity computed this many slots before the node's slot (EVM: any later
    # block). Slots are 400 ms; the executor's last-leg minimum output still rules out a loss.
    max_slot_lag: Annotated[int, Field(ge=0, le=150)] = 4
    intermediate_slippage_bps: Annotated[int, Field(ge=0, le=5_000)] = 0
    status_timeout_s: Annotated[float, Field(gt=0, le=120, allow_inf_nan=False)] = 10.0

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        addresses = [p.address for p in self.pools]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"pools: an address is listed twice: {sorted(addresses)}")
        names = [r.name for r in self.block_engines]
        if len(set(names)) != len(names):
            raise ValueError(f"block_engines: a region name is listed twice: {sorted(names)}")
        return self

    @model_validator(mode="after")
    def _one_sol_price(self) -> Self:
        if (self.sol_usd is None) == (self.sol_usd_pool is None):
            raise ValueError(
                "give exactly one of sol_usd (a fixed USD per SOL) or sol_usd_pool (a pool of `pools` pairing "
                "base_mint with a USD mint)"
            )
        source = self.sol_usd_pool
        if source is not None:
            if source.address not in {p.address for p in self.pools}:
                raise ValueError(f"sol_usd_pool.address {source.address} is not one of pools")
            if source.usd_mint == self.base_mint:
                raise ValueError("sol_usd_pool.usd_mint is the base mint: SOL cannot be priced in itself")
            peg = source.peg
            if peg is not None:
                if peg.pool not in {p.address for p in self.pools}:
                    raise ValueError(f"sol_usd_pool.peg.pool {peg.pool} is not one of pools")
                if peg.reference_mint in (source.usd_mint, self.base_mint):
                    raise ValueError(
                        "sol_usd_pool.peg.reference_mint must be a USD token other than usd_mint and base_mint"
                    )
                if peg.pool == source.address:
                    raise ValueError("sol_usd_pool.peg.pool is sol_usd_pool.address: a stablecoin checked by itself")
        return self
