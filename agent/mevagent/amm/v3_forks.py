"""The Uniswap V3 fork table (v3_forks.yml): which Swap event each fork's pools emit, and its fee tiers."""

from functools import cache
from importlib.resources import files
from typing import Annotated

import yaml
from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field

# The syncer decodes amount0, amount1, sqrtPriceX96, liquidity and tick from the first five data words,
# so a fork's Swap must start with Uniswap's fields; it may add fields after them.
_UNISWAP_SWAP_PREFIX = "Swap(address,address,int256,int256,uint160,uint128,int24"


class V3Fork(BaseModel):
    """One entry of v3_forks.yml."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    swap_event: Annotated[str, Field(pattern=r"^Swap\([a-z0-9,]+\)$")]
    swap_callback: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]*$")]
    fee_tiers: Annotated[
        dict[Annotated[int, Field(gt=0, lt=1_000_000)], Annotated[int, Field(gt=0, le=16384)]], Field(min_length=1)
    ]

    @property
    def swap_topic(self) -> str:
        return "0x" + keccak(text=self.swap_event).hex()


@cache
def v3_forks() -> dict[str, V3Fork]:
    """The V3 fork table shipped in v3_forks.yml, validated once per process."""
    raw = yaml.safe_load(files("mevagent.amm").joinpath("v3_forks.yml").read_text(encoding="utf-8"))
    forks = {name: V3Fork.model_validate(entry) for name, entry in raw.items()}
    for name, fork in forks.items():
        fields = fork.swap_event.removesuffix(")")
        if fields != _UNISWAP_SWAP_PREFIX and not fields.startswith(_UNISWAP_SWAP_PREFIX + ","):
            raise ValueError(f"v3_forks.yml: {name}: swap_event {fork.swap_event} does not start with Uniswap's fields")
    return forks
