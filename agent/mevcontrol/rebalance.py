"""The rebalancing planner: when the fleet's inventory of an asset skews across chains, which bridge moves
how much from where to where.

Holdings come from the agents' `inventory` events (mevagent.crosschain.inventory: an inventory account's
`balanceOf` of its pairs' tokens, the latest per chain and account, summed per token). Targets are per token
(`<chain>:<symbol>` of the registry, whole units), so Circle's USDC and a bridged USDC.e are planned as two
tokens of one asset, joined only by the bridges between them. Per asset:

- a token is **short** when it holds less than `target * (1 - band)`, **long** when it holds more than its
  target; a short token is filled up to its target from the long ones, the most short first, each time from
  the source whose cheapest route costs least per unit moved (then the longest one), never taking a source
  below its own target;
- a route is the registry's cheapest of any use (rollup withdrawals with a challenge period included: a plan
  can wait for them, a trade cannot) that fills within `max_bridge_time`, never through a bridge the bridge
  monitor finds unhealthy, `preferred_bridges` first among equal costs;
- a move worth less than `min_move_usd`, or whose fee is more than `max_fee_bps` of what it moves, is not
  planned (named, with the reason); so is a short token no long one can reach.

The plan is advice for an operator, not an order: nothing here signs or sends (moving inventory across a
bridge is a transfer out of reach for the bridge's time, which the operator decides). `GET :8906/rebalance/plan`
serves it; a token whose holdings no agent reported is named as unreported and planned as neither short nor long.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Annotated, Any

from pydantic import Field

from mevagent.bus.events import InventoryBalances
from mevagent.config import Strict
from mevagent.crosschain.registry import Registry, Route, TokenId

WEEK_S = 7 * 86_400.0
Units = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class RebalanceConfig(Strict):
    """control.yml `crosschain.rebalance:`."""

    targets: dict[TokenId, Units] = Field(min_length=1)  # whole units wanted on each token's chain
    band: Annotated[Decimal, Field(gt=0, lt=1, allow_inf_nan=False)] = Decimal("0.2")
    max_bridge_time: Annotated[float, Field(gt=0, le=86_400 * 14, allow_inf_nan=False)] = WEEK_S
    min_move_usd: Units = Decimal(100)
    max_fee_bps: Annotated[Decimal, Field(ge=0, le=10_000, allow_inf_nan=False)] = Decimal(50)


@dataclass(frozen=True, slots=True)
class Move:
    asset: str
    src: str  # token ids
    dst: str
    amount: int  # base units of src (the same decimals on both ends: checked when the plan is made)
    amount_usd: Decimal
    bridge: str
    fee_usd: Decimal
    fill_s: float
    challenge_period: bool

    def as_json(self) -> dict[str, Any]:
        return {"asset": self.asset, "from": self.src, "to": self.dst, "amount": str(self.amount),
                "amount_usd": str(self.amount_usd), "bridge": self.bridge, "fee_usd": str(self.fee_usd),
                "fill_s": self.fill_s, "challenge_period": self.challenge_period}  # fmt: skip


@dataclass
class Plan:
    moves: list[Move] = field(default_factory=list)
    holdings: list[dict[str, Any]] = field(default_factory=list)  # per target token: held, target, state
    not_planned: list[dict[str, str]] = field(default_factory=list)  # {"token", "reason"}

    def as_json(self) -> dict[str, Any]:
        return {"moves": [m.as_json() for m in self.moves], "holdings": self.holdings, "not_planned": self.not_planned}


class InventoryBook:
    """The latest balances each (chain, account) reported; a token's holding is their sum over accounts."""

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], InventoryBalances] = {}

    def absorb(self, event: InventoryBalances) -> None:
        key = (event.chain, event.account)
        known = self._latest.get(key)
        if known is None or event.block >= known.block:  # a late event of an older block changes nothing
            self._latest[key] = event

    def held(self, chain: str, address: str) -> int | None:
        """Base units held on `chain` of the token at `address`; None if no account reported that token."""
        values = [e.balances[address] for (c, _), e in self._latest.items() if c == chain and address in e.balances]
        return sum(values) if values else None

    def accounts(self) -> int:
        return len(self._latest)


class RebalancePlanner:
    def __init__(self, config: RebalanceConfig, registry: Registry, usd: dict[str, Decimal]) -> None:
        self.config = config
        self.registry = registry
        self.usd = usd  # per asset, USD per whole unit (crosschain.usd)
        self.book = InventoryBook()
        problems = [f"{t}: not in the token registry" for t in config.targets if t not in registry.tokens]
        problems += [f"{t}: the chain's native coin (no balanceOf to read)" for t in config.targets
                     if t in registry.tokens and registry.tokens[t].address == "native"]  # fmt: skip
        problems += [f"{t}: not an EVM token (no agent reports its balances)" for t in config.targets
                     if t in registry.tokens and registry.tokens[t].address != "native"
                     and not registry.tokens[t].address.startswith("0x")]  # fmt: skip
        problems += [f"{t}: no USD price for asset {registry.tokens[t].asset} (crosschain.usd)" for t in config.targets
                     if t in registry.tokens and registry.tokens[t].asset not in usd]  # fmt: skip
        if problems:
            raise ValueError("crosschain.rebalance.targets: " + "; ".join(problems))

    def assets(self) -> list[str]:
        return sorted({self.registry.tokens[token].asset for token in self.config.targets})

    def plan(self, avoid: frozenset[str] = frozenset(), preferred: tuple[str, ...] = ()) -> Plan:
        plan = Plan()
        by_asset: dict[str, list[str]] = {}
        for token in self.config.targets:
            by_asset.setdefault(self.registry.tokens[token].asset, []).append(token)
        for asset, tokens in sorted(by_asset.items()):
            self._plan_asset(asset, sorted(tokens), plan, avoid, preferred)
        return plan

    def _plan_asset(
        self, asset: str, tokens: list[str], plan: Plan, avoid: frozenset[str], preferred: tuple[str, ...]
    ) -> None:
        short: dict[str, int] = {}  # token → base units below its target
        long: dict[str, int] = {}  # token → base units above its target
        for token_id in tokens:
            token = self.registry.tokens[token_id]
            target = _base_units(self.config.targets[token_id], token.decimals)
            held = self.book.held(token.chain, token.address.lower())
            state = "unreported"
            if held is not None:
                floor = _base_units(self.config.targets[token_id] * (1 - self.config.band), token.decimals)
                state = "short" if held < floor else "long" if held > target else "within band"
                if held < floor:
                    short[token_id] = target - held
                elif held > target:
                    long[token_id] = held - target
            plan.holdings.append({"token": token_id, "asset": asset, "held": None if held is None else str(held),
                                  "target": str(target), "state": state})  # fmt: skip
        for dst in sorted(short, key=lambda t: (-self._whole(t, short[t]), t)):
            self._fill(asset, dst, short[dst], long, plan, avoid, preferred)

    def _fill(
        self, asset: str, dst: str, needed: int, long: dict[str, int], plan: Plan, avoid: frozenset[str],
        preferred: tuple[str, ...],
    ) -> None:  # fmt: skip
        """Moves that bring `dst` up to its target from the long tokens (`long` is drawn down)."""
        unit_usd, config = self.usd[asset], self.config
        while needed > 0:
            choice = self._cheapest_source(dst, needed, long, unit_usd, avoid, preferred)
            if choice is None:
                reason = f"{needed} base units short: no long token of the same decimals reaches it"
                plan.not_planned.append({"token": dst, "reason": reason + " by a healthy route within max_bridge_time"})
                return
            src, route, amount = choice
            amount_usd = self._whole(src, amount) * unit_usd
            fee = route.cost_usd(amount_usd)
            if amount_usd < config.min_move_usd:
                reason = f"a move of {amount_usd:.2f} USD from {src} is below min_move_usd {config.min_move_usd}"
                plan.not_planned.append({"token": dst, "reason": reason})
                return
            if fee * 10_000 > amount_usd * config.max_fee_bps:
                reason = f"{route.bridge} from {src} costs {fee:.2f} USD on {amount_usd:.2f} USD"
                plan.not_planned.append({"token": dst, "reason": f"{reason}, above max_fee_bps {config.max_fee_bps}"})
                return
            cent = Decimal("0.01")
            plan.moves.append(
                Move(asset, src, dst, amount, amount_usd.quantize(cent), route.bridge, fee.quantize(cent),
                     route.fill_s, route.challenge_period)
            )  # fmt: skip
            long[src] -= amount
            if long[src] == 0:
                del long[src]
            needed -= amount

    def _cheapest_source(
        self, dst: str, needed: int, long: dict[str, int], unit_usd: Decimal, avoid: frozenset[str],
        preferred: tuple[str, ...],
    ) -> tuple[str, Route, int] | None:  # fmt: skip
        best: tuple[Decimal, int, str, Route, int] | None = None
        for src, spare in long.items():
            if self.registry.tokens[src].decimals != self.registry.tokens[dst].decimals:
                continue  # the bridge's amounts would need scaling; not planned (docs)
            amount = min(needed, spare)
            amount_usd = self._whole(src, amount) * unit_usd
            route = self.registry.cheapest_route(
                src, dst, amount_usd, max_time_s=self.config.max_bridge_time, preferred=preferred, avoid=avoid,
                for_trade=False,
            )  # fmt: skip
            if route is None:
                continue
            per_unit = route.cost_usd(amount_usd) / max(amount_usd, Decimal("1e-18"))
            key = (per_unit, -spare, src, route, amount)
            if best is None or key[:3] < best[:3]:
                best = key
        return None if best is None else (best[2], best[3], best[4])

    def _whole(self, token: str, base_units: int) -> Decimal:
        return Decimal(base_units).scaleb(-self.registry.tokens[token].decimals)


def _base_units(whole: Decimal, decimals: int) -> int:
    return int((whole.scaleb(decimals)).to_integral_value(rounding=ROUND_FLOOR))
