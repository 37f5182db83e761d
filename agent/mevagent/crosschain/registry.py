"""The token registry and the bridge catalog, loaded from tokens.yml and bridges.yml and validated whole.

Tokens are named `<chain>:<symbol>`. Two tokens of the same asset on two chains are comparable only through
a bridge route between them (its fee and time are the cost of treating one as the other); a bridged copy
and the issued token on the same chain (USDC.e and USDC) are two tokens, never one.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from eth_utils import is_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

TokenId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9.]{1,16}$")]
ChainName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainEntry(Frozen):
    chain_id: int = Field(ge=0)
    native: str = Field(min_length=1, max_length=16)


class Token(Frozen):
    id: TokenId = ""  # filled from its key
    asset: str = Field(pattern=r"^[a-z][a-z0-9]{0,15}$")
    variant: Literal["native", "wrapped", "issued", "bridged"]
    address: str = Field(min_length=1, max_length=64)  # "native" for the chain's own coin
    decimals: int = Field(ge=0, le=36)
    issuer: str = ""
    via: str = ""  # bridged: the bridge (or custodian) that backs it
    of: TokenId | None = None  # bridged: the token it is a copy of

    @property
    def chain(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def symbol(self) -> str:
        return self.id.split(":", 1)[1]


class Fee(Frozen):
    fee_bps: Decimal = Field(ge=0, le=10_000)
    fixed_usd: Decimal = Field(ge=0)


class RouteEntry(Frozen):
    from_: TokenId = Field(alias="from")
    to: TokenId
    fill_s: Seconds
    challenge_period: bool = False
    # This direction's own stuck bound, over the bridge's: a rollup withdrawal waits out a challenge
    # period of days where a deposit the other way takes minutes.
    stuck_s: Seconds | None = None


class BridgeEntry(Frozen):
    kind: Literal["intent", "liquidity_pool", "burn_mint", "canonical"]
    use: Literal["trade", "rebalance"]
    why: str = Field(min_length=1)
    fee: Fee
    fill_s: Seconds | None = None  # the mesh's typical fill time
    mesh: tuple[tuple[TokenId, ...], ...] = ()
    routes: tuple[RouteEntry, ...] = ()
    # The bridge monitor (mevcontrol.bridge_monitor): which of the bridges' event shapes it decodes, the
    # bridge's own numbering of the chains its events carry (CCTP domains, LayerZero endpoint ids) and how
    # long a transfer may stay unfilled before it is stuck (unset: the control plane's stuck_after_s; a
    # route's own `stuck_s` wins).
    events: Literal["across", "cctp", "stargate_v2", "op_stack"] | None = None
    chain_ids: dict[ChainName, int] = {}
    stuck_s: Seconds | None = None

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.mesh and self.fill_s is None:
            raise ValueError("mesh: needs the bridge's fill_s")
        if not self.mesh and not self.routes:
            raise ValueError("a bridge needs a mesh or routes")
        return self


class Route(Frozen):
    """One direction of one bridge between two tokens of the same asset."""

    bridge: str
    src: TokenId
    dst: TokenId
    fill_s: float
    fee: Fee
    use: Literal["trade", "rebalance"]
    challenge_period: bool = False
    stuck_s: float | None = None

    def cost_usd(self, amount_usd: Decimal) -> Decimal:
        return self.fee.fixed_usd + amount_usd * self.fee.fee_bps / 10_000


class Catalog(Frozen):
    chains: dict[ChainName, ChainEntry]
    tokens: dict[TokenId, Token]
    left_out: dict[str, str] = {}
    bridges: dict[ChainName, BridgeEntry] = {}
    not_used: dict[ChainName, str] = {}

    @model_validator(mode="before")
    @classmethod
    def _ids(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("tokens"), dict):
            tokens = {k: {**v, "id": k} if isinstance(v, dict) else v for k, v in data["tokens"].items()}
            data = {**data, "tokens": tokens}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        seen: dict[tuple[str, str], str] = {}
        for tid, token in self.tokens.items():
            if token.chain not in self.chains:
                raise ValueError(f"tokens.{tid}: chain {token.chain} is not under chains")
            if token.address != "native":
                if token.address.startswith("0x") and not is_checksum_address(token.address):
                    raise ValueError(f"tokens.{tid}: {token.address} is not an EIP-55 (checksummed) address")
                key = (token.chain, token.address.lower())
                if key in seen:
                    raise ValueError(f"tokens.{tid}: the same address as {seen[key]}")
                seen[key] = tid
            if token.variant == "bridged":
                if not token.via or token.via not in {*self.bridges, *self.not_used}:
                    raise ValueError(f"tokens.{tid}: bridged via {token.via or '(nothing)'}, not a known bridge")
                if token.of is not None and (token.of not in self.tokens or self.tokens[token.of].asset != token.asset):
                    raise ValueError(f"tokens.{tid}: of {token.of} is not a token of asset {token.asset}")
            elif token.via or token.of:
                raise ValueError(f"tokens.{tid}: only a bridged token has via/of")
        for name, bridge in self.bridges.items():
            for route in _expand(name, bridge):
                for end in (route.src, route.dst):
                    if end not in self.tokens:
                        raise ValueError(f"bridges.{name}: {end} is not in tokens")
                if self.tokens[route.src].asset != self.tokens[route.dst].asset:
                    raise ValueError(f"bridges.{name}: {route.src} and {route.dst} are not the same asset")
                if self.tokens[route.src].chain == self.tokens[route.dst].chain:
                    raise ValueError(f"bridges.{name}: {route.src} and {route.dst} are on the same chain")
            unknown = set(bridge.chain_ids) - set(self.chains)
            if unknown:
                raise ValueError(f"bridges.{name}.chain_ids: {sorted(unknown)} not under chains")
            if len(set(bridge.chain_ids.values())) != len(bridge.chain_ids):
                raise ValueError(f"bridges.{name}.chain_ids: two chains with the same id")
            if bridge.events in ("cctp", "stargate_v2") and not bridge.chain_ids:
                raise ValueError(f"bridges.{name}: {bridge.events} events name chains by chain_ids, none given")
            # An OP Stack messenger pair joins one L1 and one L2: the monitor takes a transfer's destination
            # as the other end.
            ends = {self.tokens[end].chain for route in _expand(name, bridge) for end in (route.src, route.dst)}
            if bridge.events == "op_stack" and len(ends) != 2:
                raise ValueError(f"bridges.{name}: op_stack events join two chains, its routes reach {sorted(ends)}")
        both = set(self.bridges) & set(self.not_used)
        if both:
            raise ValueError(f"bridges and not_used both name {sorted(both)}")
        return self


def _expand(name: str, bridge: BridgeEntry) -> list[Route]:
    out: list[Route] = []
    for group in bridge.mesh:
        assert bridge.fill_s is not None
        for src in group:
            for dst in group:
                if src != dst:
                    route = Route(bridge=name, src=src, dst=dst, fill_s=bridge.fill_s, fee=bridge.fee, use=bridge.use,
                                  stuck_s=bridge.stuck_s)  # fmt: skip
                    out.append(route)
    for r in bridge.routes:
        out.append(
            Route(bridge=name, src=r.from_, dst=r.to, fill_s=r.fill_s, fee=bridge.fee, use=bridge.use,
                  challenge_period=r.challenge_period, stuck_s=bridge.stuck_s if r.stuck_s is None else r.stuck_s)
        )  # fmt: skip
    return out


class RegistryError(ValueError):
    """The registry's YAML is malformed or contradicts itself (the message names the entry)."""


class Registry:
    """Lookups over a validated Catalog: a token by id or by (chain, address), bridge routes by ends."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.tokens = catalog.tokens
        self._by_address = {(t.chain, t.address.lower()): t for t in catalog.tokens.values() if t.address != "native"}
        self.natives = {t.chain: t for t in catalog.tokens.values() if t.variant == "native"}
        self.routes: dict[tuple[str, str], list[Route]] = {}
        for name, bridge in catalog.bridges.items():
            for route in _expand(name, bridge):
                self.routes.setdefault((route.src, route.dst), []).append(route)

    def token_at(self, chain: str, address: str) -> Token | None:
        return self._by_address.get((chain, address.lower()))

    def chain_id(self, chain: str) -> int:
        return self.catalog.chains[chain].chain_id

    def wrapped_native(self, chain: str, chain_id: int) -> Token | None:
        """The canonical wrapped native token of `chain` when `chain_id` is that network's (a devnet with
        its own id deploys its own WETH: nothing to compare with)."""
        entry = self.catalog.chains.get(chain)
        if entry is None or entry.chain_id != chain_id:
            return None
        return next((t for t in self.tokens.values() if t.chain == chain and t.variant == "wrapped"), None)

    def cheapest_route(
        self,
        src: str,
        dst: str,
        amount_usd: Decimal,
        *,
        max_time_s: float,
        preferred: tuple[str, ...] = (),
        avoid: frozenset[str] = frozenset(),
        for_trade: bool = True,
    ) -> Route | None:
        """The cheapest route from `src` to `dst` for `amount_usd` that fills within `max_time_s`.

        For a trade (the cost of restoring its inventory) only `use: trade` routes without a challenge
        period count; a rebalancing plan may use any. `preferred` bridges win among equal costs;
        `avoid` (bridges the monitor finds unhealthy) are never chosen."""
        best: tuple[Decimal, int, Route] | None = None
        for route in self.routes.get((src, dst), ()):
            if route.bridge in avoid or route.fill_s > max_time_s:
                continue
            if for_trade and (route.use != "trade" or route.challenge_period):
                continue
            rank = preferred.index(route.bridge) if route.bridge in preferred else len(preferred)
            key = (route.cost_usd(amount_usd), rank, route)
            if best is None or key[:2] < best[:2]:
                best = key
        return None if best is None else best[2]


def load_catalog(tokens: str, bridges: str, origin: str = "") -> Catalog:
    data = {**(yaml.safe_load(tokens) or {}), **(yaml.safe_load(bridges) or {})}
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(f"{origin or 'registry'}: {exc}") from None


@cache
def registry() -> Registry:
    """The registry shipped with the package (tokens.yml + bridges.yml), validated once per process."""
    here = files("mevagent.crosschain")
    tokens, bridges = here.joinpath("tokens.yml").read_text(), here.joinpath("bridges.yml").read_text()
    return Registry(load_catalog(tokens, bridges, "mevagent.crosschain"))


def load_registry(path: Path) -> Registry:
    """A registry of one YAML file holding both parts (a devnet's own tokens and bridges)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RegistryError(f"{path}: {exc}") from None
    return Registry(load_catalog(text, "", str(path)))
