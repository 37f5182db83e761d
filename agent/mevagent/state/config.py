"""Where the state syncer finds its pools and how it keeps them, validated before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from mevagent.amm.v2 import fork_fees
from mevagent.amm.v3_forks import v3_forks

Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$"), AfterValidator(str.lower)]
ForkName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class FactoryConfig(BaseModel):
    """A factory whose pools are tracked: every pair/pool it created, and every one it creates later."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["v2", "v3"]
    address: Address
    # v2: a key of amm/forks.yml, which gives the swap fee (or where each pair keeps its own). v3: a key
    # of amm/v3_forks.yml, which gives the Swap event its pools emit; each pool's fee is its own.
    fork: ForkName
    # Where the PoolCreated scan starts (v3): the factory's deployment block saves scanning history.
    from_block: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _known_fork(self) -> Self:
        # Per-pool fees (Camelot, BiSwap) are read from each pair, so every fork of the tables is taken.
        known = sorted(fork_fees() if self.kind == "v2" else v3_forks())
        if self.fork not in known:
            table = "amm/forks.yml" if self.kind == "v2" else "amm/v3_forks.yml"
            raise ValueError(f"fork: {self.fork!r} is not in {table} ({self.kind} forks: {', '.join(known)})")
        return self


class SyncConfig(BaseModel):
    """How one chain's pool store is discovered, kept exact, checkpointed and reconciled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    factories: Annotated[tuple[FactoryConfig, ...], Field(min_length=1)]
    checkpoint_path: Path | None = None
    checkpoint_every_blocks: Annotated[int, Field(ge=1)] = 100
    # Blocks of undo kept for reorgs (amms-rs keeps 30). A deeper reorg rebuilds the store from the node.
    reorg_depth: Annotated[int, Field(ge=1, le=4096)] = 64
    # Pools compared with the node after each block: None = all, 0 = never, n = the next n in turn.
    reconcile_per_block: Annotated[int, Field(ge=0)] | None = None
    # V3 tickBitmap words whose ticks are compared with the node after each block, walking the pools in
    # turn (0 = never). A pool at spacing 60 is 116 words, at spacing 1 it is 6933.
    reconcile_tick_words: Annotated[int, Field(ge=0, le=100_000)] = 64
    log_chunk_blocks: Annotated[int, Field(ge=1, le=100_000)] = 2000
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 1000

    @model_validator(mode="after")
    def _distinct_factories(self) -> Self:
        addresses = [f.address for f in self.factories]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"factories: an address is listed twice: {sorted(addresses)}")
        return self
