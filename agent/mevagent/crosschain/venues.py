"""Where a cross-chain leg swaps: the chain's leg venues and each router's call (mevagent.crosschain.legs).

A chain's `leg_venues` (agent chain config, also `fleet.agent.chains.<chain>` in the inventory) name, per pool
the legs trade in, the router its legs go through and, for a V3 pool, its fee tier:

- `v2_router02`: Uniswap V2's Router02, `swapExactTokensForTokens(amountIn, amountOutMin, path, to, deadline)`;
- `v3_swap_router`: @uniswap/v3-periphery's SwapRouter, `exactInputSingle` with the deadline in its parameters;
- `swap_router02`: @uniswap/swap-router-contracts' SwapRouter02 (V2 and V3 in one router): `exactInputSingle`
  (V3, no deadline in its parameters) or `swapExactTokensForTokens(amountIn, amountOutMin, path, to)` (V2, none
  either), each wrapped in `multicall(deadline, [call])`, whose deadline check reverts as the other routers' own.

A pool without an entry goes through the chain's `swap_router` (a V2 pair) or `v3_swap_router` (a V3 pool), as
before venues existed. A router kind or a V3 fee tier the agent does not know is refused when the config loads.
"""

from __future__ import annotations

from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ROUTER_KINDS: tuple[str, ...] = ("v2_router02", "v3_swap_router", "swap_router02")
# The fee tiers Uniswap V3's factories enable (100 by governance after launch); a fork's other tiers (2,500 on
# PancakeSwap) belong to routers this module does not drive.
V3_FEE_TIERS = (100, 500, 3000, 10000)

V2_SWAP = keccak(text="swapExactTokensForTokens(uint256,uint256,address[],address,uint256)")[:4]
V3_SWAP = keccak(text="exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))")[:4]
V3_SWAP_PARAMS = "(address,address,uint24,address,uint256,uint256,uint256,uint160)"
# SwapRouter02 (IV2SwapRouter, IV3SwapRouter, IMulticallExtended).
R02_V2_SWAP = keccak(text="swapExactTokensForTokens(uint256,uint256,address[],address)")[:4]
R02_V3_SWAP = keccak(text="exactInputSingle((address,address,uint24,address,uint256,uint256,uint160))")[:4]
R02_V3_SWAP_PARAMS = "(address,address,uint24,address,uint256,uint256,uint160)"
R02_MULTICALL = keccak(text="multicall(uint256,bytes[])")[:4]
FACTORY = keccak(text="factory()")[:4]  # a V3 router's V3 factory (SwapRouter02's too)
FACTORY_V2 = keccak(text="factoryV2()")[:4]  # SwapRouter02's V2 factory
GET_POOL = keccak(text="getPool(address,address,uint24)")[:4]
GET_PAIR = keccak(text="getPair(address,address)")[:4]


class LegVenue(BaseModel):
    """One pool's leg venue: the router its legs swap through and, for a V3 pool, its fee tier."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    pool: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    router: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    kind: str  # one of ROUTER_KINDS (checked below, naming them)
    fee: int | None = None  # the V3 pool's fee tier (millionths); None: a V2 pair

    @field_validator("pool", "router")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("kind")
    @classmethod
    def _known_router(cls, value: str) -> str:
        if value not in ROUTER_KINDS:
            raise ValueError(f"unknown leg router {value!r}: the legs drive {', '.join(ROUTER_KINDS)}")
        return value

    @field_validator("fee")
    @classmethod
    def _known_tier(cls, value: int | None) -> int | None:
        if value is not None and value not in V3_FEE_TIERS:
            tiers = ", ".join(str(t) for t in V3_FEE_TIERS)
            raise ValueError(f"fee {value} is not a Uniswap V3 fee tier ({tiers}, in millionths)")
        return value

    @model_validator(mode="after")
    def _fee_fits_router(self) -> LegVenue:
        if self.kind == "v2_router02" and self.fee is not None:
            raise ValueError(f"pool {self.pool}: v2_router02 swaps V2 pairs only, so no fee tier (got {self.fee})")
        if self.kind == "v3_swap_router" and self.fee is None:
            raise ValueError(f"pool {self.pool}: v3_swap_router swaps V3 pools only: give the pool's fee tier")
        return self

    @property
    def v3(self) -> bool:
        return self.fee is not None

    def describe(self) -> str:
        pool = f"V3 pool of fee {self.fee}" if self.v3 else "V2 pair"
        return f"pool {self.pool} is a {pool} through {self.kind} {self.router}"

    # ---- the call ---------------------------------------------------------------------------------------

    def calldata(self, token_in: str, token_out: str, amount_in: int, min_out: int, to: str, deadline: int) -> bytes:
        """The exact-input swap of `amount_in` for at least `min_out`, paid to `to`, void after `deadline`."""
        tin, tout, me = to_checksum_address(token_in), to_checksum_address(token_out), to_checksum_address(to)
        if self.kind == "v2_router02":
            args = [amount_in, min_out, [tin, tout], me, deadline]
            return V2_SWAP + encode(["uint256", "uint256", "address[]", "address", "uint256"], args)
        if self.kind == "v3_swap_router":
            return V3_SWAP + encode([V3_SWAP_PARAMS], [(tin, tout, self.fee, me, deadline, amount_in, min_out, 0)])
        if self.fee is not None:
            inner = R02_V3_SWAP + encode([R02_V3_SWAP_PARAMS], [(tin, tout, self.fee, me, amount_in, min_out, 0)])
        else:
            inner = R02_V2_SWAP + encode(
                ["uint256", "uint256", "address[]", "address"], [amount_in, min_out, [tin, tout], me]
            )
        return R02_MULTICALL + encode(["uint256", "bytes[]"], [deadline, [inner]])

    def amount_out(self, result: bytes) -> int:
        """What an eth_call of `calldata` says the swap pays."""
        if self.kind == "v2_router02":
            (amounts,) = decode(["uint256[]"], result)
            return int(amounts[-1])
        if self.kind == "swap_router02":
            ((inner, *_),) = decode(["bytes[]"], result)
            result = inner
        return int(decode(["uint256"], result)[0])

    def pool_lookup(self, token_in: str, token_out: str) -> tuple[bytes, bytes]:
        """(the router's call naming its factory, the factory's call naming the pool it swaps tokens in): the
        router finds its pool by (tokens, fee) or its V2 pair by the tokens, never by the leg's pool address."""
        tokens = [to_checksum_address(token_in), to_checksum_address(token_out)]
        if self.fee is not None:
            return FACTORY, GET_POOL + encode(["address", "address", "uint24"], [*tokens, self.fee])
        return FACTORY_V2, GET_PAIR + encode(["address", "address"], tokens)


def default_venue(pool: str, fee: int | None, swap_router: str | None, v3_swap_router: str | None) -> LegVenue | None:
    """A pool without a `leg_venues` entry: a V2 pair through `swap_router`, a V3 pool through `v3_swap_router`
    (the command's fee as the pool has it: the chain's own router, checked against its factory before use)."""
    router = swap_router if fee is None else v3_swap_router
    if router is None:
        return None
    return LegVenue.model_construct(
        pool=pool, router=router, kind="v2_router02" if fee is None else "v3_swap_router", fee=fee
    )


def unique_pools(venues: tuple[Any, ...]) -> None:
    """A pool has one venue: refused naming it when listed twice."""
    pools = [v.pool for v in venues]
    twice = sorted({p for p in pools if pools.count(p) > 1})
    if twice:
        raise ValueError(f"leg_venues: pool {', '.join(twice)} is listed twice (one router per pool)")
