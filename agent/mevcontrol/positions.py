"""Cross-chain positions: the engine's opportunities carried out as two inventory legs, tracked as one position.

When execution is configured (`crosschain.execution`), the service hands each opportunity the engine finds
to the `PositionBook`. Before any leg is sent, the pair's exposure (both legs' notional) is added to the
fleet's exposure (the agents' snapshots plus every open position) and held against the fleet limits; a
refusal is recorded, nothing is sent, and the pair is left alone for `REFUSAL_BACKOFF_S`. Otherwise the
position's record and both legs' commands are committed in one statement (none is sent if the history does not
take them: the position fails), then each leg goes in one Redis pipeline as a `crosschain_leg` command to the
agent of its chain (`execution.agents`), where that
agent's own risk gate and dry-run default apply before anything is signed (mevagent.crosschain.legs); the
agents answer with durable `crosschain_leg` events, which reach the book after the ingest committed them.

- both legs landed: the position is closed and its realized P&L is exact, per token in base units (quote:
  what the sell leg paid minus what the buy leg spent; base: what the buy leg got minus what the sell leg
  sold), valued at the configured USD prices; both simulated (dry-run chains): `dry_run`, the same figures
  as the simulations gave them, nothing moved;
- one leg landed and the other refused, failed, reverted, only simulated (its chain is not live) or not
  answered by its deadline plus `settle_s`: the unwind policy runs: `sell_back` swaps what the landed
  leg got back on the same pool, at most `unwind.max_slippage_bps` below its expected output; `hold`
  keeps it while every held position fits within `unwind.max_open_usd` and the fleet limits, for at most
  `unwind.hold_s`, then sells it back;
- neither landed (and not both simulated): failed, nothing to unwind. An unwind that does not land leaves the
  position `stuck`: its exposure stays counted until an operator closes it;
- a leg counted as timed out that lands after all (signed before its deadline, included late): with the
  other leg held, the pair is whole and closed; otherwise its output is sold back too (the position reopens
  as `unwinding`), so each landed leg is offset by its own unwind (`unwind_buy`, `unwind_sell`).

Every step is recorded (table crosschain_positions, one JSON record per position, rewritten at each step;
each write numbered, so one that commits after a later one is dropped rather than put an earlier state back).
An open position's exposure (legs in flight, a filled leg not yet unwound) counts in the fleet exposure
(/exposure/current) and in the limits the lease loop and the next position are held against.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import Field

from mevagent.amm.arbitrage import cycle_amounts
from mevagent.amm.errors import Revert
from mevagent.amm.v2 import get_amount_out
from mevagent.amm.v3 import simulate_swap
from mevagent.bus.events import Command, CrossChainLegCommand, CrossChainLegResult, new_id
from mevagent.config import Name, Strict
from mevagent.crosschain.quote import v3_hop

if TYPE_CHECKING:
    from mevcontrol.crosschain import CrossChainEngine, Opportunity, PoolQuote

log = logging.getLogger(__name__)

Bps = Annotated[int, Field(ge=0, le=5_000)]
Seconds = Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]
FILLED = ("landed", "dry_run")
STATES = ("refused", "in_flight", "closed", "dry_run", "failed", "held", "unwinding", "unwound", "stuck")
OPEN_POSITIONS = ("in_flight", "held", "unwinding", "stuck")  # their exposure counts; restored after a restart
# A pair the fleet limits refused is not considered again for this long: neither asked against the limits
# nor recorded. The engine reports an open gap on every price update of its pools (many a second), and a
# breached limit rarely clears within seconds.
REFUSAL_BACKOFF_S = 60.0
KEEP = 1_000  # finished positions kept in memory for the API


class UnwindPolicy(Strict):
    """What happens to a filled leg whose other leg did not fill."""

    action: Literal["sell_back", "hold"] = "sell_back"
    max_slippage_bps: Bps = 100  # below the unwind swap's expected output (its min_out)
    hold_s: Seconds = 300.0  # hold: sold back after this at the latest
    max_open_usd: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)] = Decimal(0)  # hold: all held, USD


class ExecutionConfig(Strict):
    """`crosschain.execution`: present, the engine's opportunities are executed (by the agents' own rules)."""

    agents: dict[Name, Name] = Field(min_length=1)  # chain -> the agent that carries its legs
    leg_timeout_s: Seconds = 30.0  # a leg is not signed after this (its command's deadline)
    settle_s: Seconds = 15.0  # after the deadline, how long its result is waited for before it counts as failed
    max_slippage_bps: Bps = 50  # each leg's min_out below its expected output
    max_positions: Annotated[int, Field(ge=1, le=1_000)] = 1  # positions in flight at once
    unwind: UnwindPolicy = UnwindPolicy()


class Fleet(Protocol):
    """What the book needs of the control plane (mevcontrol.service.Control)."""

    def refusal(self, adding_usd: Decimal) -> str: ...  # "" if `adding_usd` more exposure fits the limits

    async def send(self, agent: str, command: Command) -> None: ...

    async def record_position(self, record: dict[str, Any], version: int) -> None: ...  # Position.as_json()

    # The position's first record and its legs' commands committed together, then the legs sent; NotRecorded:
    # the history did not take them and nothing was sent.
    async def open_position(
        self, record: dict[str, Any], version: int, commands: list[CrossChainLegCommand]
    ) -> None: ...


class NotRecorded(Exception):
    """The history (PostgreSQL) did not take a position's legs: none of them was sent."""


@dataclass
class Leg:
    name: Literal["buy", "sell", "unwind"]
    chain: str
    agent: str
    command: CrossChainLegCommand
    sent_at: float  # time.monotonic()
    status: str = "sent"  # then a CrossChainLegResult status, or "timeout"
    amount_out: int = 0
    amount_in: int = 0
    tx_hash: str | None = None
    reason: str = ""
    agent_received_at: float = 0.0  # the agent's clock: the command reached its leg executor
    agent_sent_at: float | None = None  # the agent's clock: a builder or the sequencer accepted the swap

    @property
    def filled(self) -> bool:
        return self.status in FILLED

    @property
    def open(self) -> bool:
        return self.status == "sent"

    def as_json(self) -> dict[str, Any]:
        c = self.command
        return {
            "leg": self.name, "chain": self.chain, "agent": self.agent, "command_id": c.id, "pool": c.pool,
            "token_in": c.token_in, "token_out": c.token_out, "amount_in": str(c.amount_in),
            "expected_out": str(c.expected_out), "min_out": str(c.min_out), "notional_usd": str(c.notional_usd),
            "status": self.status, "amount_out": str(self.amount_out), "tx_hash": self.tx_hash, "reason": self.reason,
            "filled_in": str(self.amount_in), "command": c.model_dump(mode="json"),
            "agent_received_at": self.agent_received_at, "agent_sent_at": self.agent_sent_at,
        }  # fmt: skip

    @classmethod
    def restore(cls, record: dict[str, Any]) -> Leg:
        """A leg from its record (Leg.as_json), its clock carried over from when its command was made."""
        command = CrossChainLegCommand.model_validate(record["command"])
        sent_at = time.monotonic() - max(0.0, time.time() - command.at)
        return cls(
            record["leg"], record["chain"], record["agent"], command, sent_at, record["status"],
            int(record["amount_out"]), int(record["filled_in"]), record["tx_hash"], record["reason"],
            record["agent_received_at"], record["agent_sent_at"],
        )  # fmt: skip


@dataclass
class Position:
    id: str
    opportunity: dict[str, Any]
    key: tuple[str, str, str, str]
    state: str  # one of STATES
    opened_at: float  # unix seconds
    legs: dict[str, Leg] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)  # what happened, in order (the record's history)
    realized: dict[str, int] = field(default_factory=dict)  # token id -> base units gained (negative: lost)
    realized_usd: Decimal = Decimal(0)
    exposure_usd: Decimal = Decimal(0)  # as of its last step (PositionBook._exposure)
    hold_until: float = 0.0  # time.monotonic()
    closed_at: float | None = None
    version: int = 0  # its record's writes so far: each is numbered as its snapshot is taken (PositionBook._changed)

    def step(self, text: str) -> None:
        self.steps.append(f"{time.time():.3f} {text}")
        log.info("crosschain position %s: %s", self.id, text)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "state": self.state, "opened_at": self.opened_at, "closed_at": self.closed_at,
            "opportunity": self.opportunity, "legs": {k: v.as_json() for k, v in self.legs.items()},
            "steps": self.steps, "realized": {k: str(v) for k, v in self.realized.items()},
            "realized_usd": str(self.realized_usd), "exposure_usd": str(self.exposure_usd),
            "key": list(self.key),
            "hold_until_at": time.time() + self.hold_until - time.monotonic() if self.hold_until else None,
        }  # fmt: skip


class PositionBook:
    def __init__(self, config: ExecutionConfig, engine: CrossChainEngine, fleet: Fleet) -> None:
        self.config = config
        self.engine = engine
        self.fleet = fleet
        self.positions: OrderedDict[str, Position] = OrderedDict()
        self._by_command: dict[str, tuple[Position, Leg]] = {}
        self._refused_at: dict[tuple[str, str, str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def restore(self, record: dict[str, Any], version: int) -> Position:
        """An open position read back after a restart (its record in crosschain_positions, written `version`
        times): its exposure counts again, its legs' results (committed by the ingest from the durable stream)
        and clocks go on, and its writes are numbered on from there."""
        key = tuple(record["key"])
        position = Position(
            record["id"], record["opportunity"], (key[0], key[1], key[2], key[3]), record["state"],
            record["opened_at"], steps=list(record["steps"]), version=version,
        )  # fmt: skip
        if record.get("hold_until_at") is not None:
            position.hold_until = time.monotonic() + record["hold_until_at"] - time.time()
        for name, data in record["legs"].items():
            leg = Leg.restore(data)
            position.legs[name] = leg
            self._by_command[leg.command.id] = (position, leg)
        self.positions[position.id] = position
        position.step(f"restored after a restart: {position.state}")
        self._changed(position)
        return position

    # ---- exposure ----------------------------------------------------------------------------------------

    def active(self) -> list[Position]:
        return [p for p in self.positions.values() if p.closed_at is None and p.state != "refused"]

    def counts(self) -> dict[str, int]:
        """Positions in memory by state, every state named (0 when none)."""
        out = dict.fromkeys(STATES, 0)
        for position in self.positions.values():
            out[position.state] = out.get(position.state, 0) + 1
        return out

    def exposure(self) -> dict[str, Decimal]:
        """USD per chain of every open position: legs in flight, filled legs not yet unwound."""
        out: dict[str, Decimal] = {}
        for position in self.active():
            for chain, usd in self._exposure(position).items():
                out[chain] = out.get(chain, Decimal(0)) + usd
        return out

    def exposure_total(self) -> Decimal:
        return sum(self.exposure().values(), Decimal(0))

    def _exposure(self, position: Position) -> dict[str, Decimal]:
        if position.state == "in_flight":
            out: dict[str, Decimal] = {}
            for leg in position.legs.values():
                if leg.open or leg.filled:
                    out[leg.chain] = out.get(leg.chain, Decimal(0)) + leg.command.notional_usd
            return out
        if position.state in ("held", "unwinding", "stuck"):
            out = {}
            for leg in self._open_legs(position):
                out[leg.chain] = out.get(leg.chain, Decimal(0)) + self._leg_value(leg)
            return out
        return {}

    # ---- taking an opportunity ---------------------------------------------------------------------------

    def consider(self, opp: Opportunity) -> Position | None:
        """Open a position on `opp` if it fits (see the module doc); the position (refused or in flight)."""
        key = (opp.buy_chain, opp.buy_pool, opp.sell_chain, opp.sell_pool)
        active = self.active()
        if any(p.key == key for p in active) or len(active) >= self.config.max_positions:
            return None
        agents = self.config.agents
        if opp.buy_chain not in agents or opp.sell_chain not in agents:
            return None
        now = time.monotonic()
        refused = self._refused_at.get(key)
        if refused is not None and now - refused < REFUSAL_BACKOFF_S:
            return None
        position = Position(new_id(), opp.as_json(), key, "in_flight", time.time())
        buy, sell = self._leg_commands(position.id, opp)
        adding = buy.notional_usd + sell.notional_usd
        refusal = self.fleet.refusal(adding)
        if refusal:
            self._refused_at[key] = now
            position.state = "refused"
            position.closed_at = time.time()
            position.step(f"refused before any leg: {adding} USD more exposure: {refusal}")
            self._keep(position)
            return position
        for command in (buy, sell):
            leg = Leg(command.leg, command.chain, command.agent, command, now)  # type: ignore[arg-type]
            position.legs[leg.name] = leg
            self._by_command[command.id] = (position, leg)
        position.step(f"both legs sent once this record commits: {adding} USD of exposure counted")
        self._keep(position, sending=(buy, sell))
        return position

    def _leg_commands(self, position_id: str, opp: Opportunity) -> tuple[CrossChainLegCommand, CrossChainLegCommand]:
        reg = self.engine.registry
        base, quote = reg.tokens[opp.base], reg.tokens[opp.quote]
        sell_base, sell_quote = reg.tokens[opp.sell_base], reg.tokens[opp.sell_quote]
        gross_usd = self._value(quote, opp.gross)
        share = gross_usd / 2  # each leg's part of the expected profit, before gas
        buy = self._command(position_id, "buy", opp.buy_chain, opp.buy_pool, quote, base, opp.amount_in,
                            opp.base_amount, self.config.max_slippage_bps, share, opp.buy_v3_fee)  # fmt: skip
        sell = self._command(position_id, "sell", opp.sell_chain, opp.sell_pool, sell_base, sell_quote,
                             opp.base_amount, opp.amount_out, self.config.max_slippage_bps, share,
                             opp.sell_v3_fee)  # fmt: skip
        return buy, sell

    def _command(
        self, position_id: str, leg: str, chain: str, pool: str, token_in: Any, token_out: Any, amount_in: int,
        expected_out: int, slippage_bps: int, profit_usd: Decimal, v3_fee: int | None,
    ) -> CrossChainLegCommand:  # fmt: skip
        native = self.engine.registry.natives[chain]
        return CrossChainLegCommand(
            issued_by="crosschain", agent=self.config.agents[chain], chain=chain, position_id=position_id,
            leg=leg, pool=pool, token_in=token_in.address.lower(), token_out=token_out.address.lower(),
            amount_in=amount_in, expected_out=expected_out,
            min_out=expected_out * (10_000 - slippage_bps) // 10_000, v3_fee=v3_fee,
            gas_limit=self.engine.leg_gas(v3_fee is not None),
            notional_usd=self._value(token_in, amount_in), profit_usd=profit_usd,
            native_usd=_dec(self.engine._usd(native)), deadline=time.time() + self.config.leg_timeout_s,
        )  # fmt: skip

    def _value(self, token: Any, amount: int) -> Decimal:
        return _dec(self.engine._usd(token) * Fraction(amount, 10**token.decimals))

    # ---- what the agents answer ----------------------------------------------------------------------

    def on_events(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, CrossChainLegResult):
                self.on_result(event)

    def on_result(self, result: CrossChainLegResult) -> None:
        found = self._by_command.get(result.command_id)
        if found is None:
            return
        position, leg = found
        late = leg.status == "timeout" and result.status == "landed" and leg.name in ("buy", "sell")
        if not leg.open and not late:
            position.step(f"{leg.name} leg answered {result.status} after it was counted {leg.status}: {result.reason}")
            self._changed(position)
            return
        leg.status, leg.amount_in, leg.amount_out = result.status, result.amount_in, result.amount_out
        leg.tx_hash, leg.reason = result.tx_hash, result.reason
        leg.agent_received_at, leg.agent_sent_at = result.received_at, result.sent_at
        decided = float(position.opportunity["found_at"])
        timing = f"at the agent +{(result.received_at - decided) * 1000:.1f} ms" + (
            f", sent +{(result.sent_at - decided) * 1000:.1f} ms" if result.sent_at is not None else ""
        )
        position.step(f"{leg.name} leg on {leg.chain}: {result.status}{' after its timeout' if late else ''}, "
                      f"{result.amount_out} out ({timing} after the decision): {result.reason}")  # fmt: skip
        if late:
            self._late(position, leg)
        else:
            self._advance(position)

    def check_time(self, now: float | None = None) -> None:
        """Legs past their deadline and `settle_s` count as failed; held positions past `hold_s` are sold back."""
        now = time.monotonic() if now is None else now
        limit = self.config.leg_timeout_s + self.config.settle_s
        for position in self.active():
            for leg in position.legs.values():
                if leg.open and now - leg.sent_at > limit:
                    leg.status, leg.reason = "timeout", f"no answer within {limit:g} s"
                    position.step(f"{leg.name} leg on {leg.chain}: timeout, no answer within {limit:g} s")
                    self._advance(position)
            if position.state == "held" and now >= position.hold_until:
                position.step(f"held {self.config.unwind.hold_s:g} s: sold back")
                for leg in self._open_legs(position):
                    self._sell_back(position, leg)

    async def run(self) -> None:
        while True:
            try:
                self.check_time()
            except Exception:  # a bug in one position must not stop the others' clocks
                log.exception("crosschain positions: the time check failed")
            await asyncio.sleep(0.1)

    # ---- the position's steps ----------------------------------------------------------------------------

    def _advance(self, position: Position) -> None:
        legs = position.legs
        if position.state == "in_flight":
            buy, sell = legs["buy"], legs["sell"]
            if buy.open or sell.open:
                self._changed(position)
                return
            landed = [leg for leg in (buy, sell) if leg.status == "landed"]
            if len(landed) == 2:
                self._close(position, "closed", [buy, sell])
            elif buy.status == sell.status == "dry_run":
                self._close(position, "dry_run", [buy, sell])  # simulated on both chains: nothing moved
            elif landed:
                # The other leg failed, or was only simulated (its chain is not live): the landed one is open.
                self._unwind(position, landed[0])
            else:
                self._close(position, "failed", [])
            return
        unwinds = [leg for name, leg in legs.items() if name.startswith("unwind_")]
        if position.state == "unwinding" and not any(leg.open for leg in unwinds):
            still = self._open_legs(position)
            if not still:
                self._close(position, "unwound", [leg for leg in legs.values() if leg.status == "landed"])
                return
            position.state = "stuck"
            open_usd = {leg.chain: str(self._leg_value(leg)) for leg in still}
            position.step(f"unwind did not land: {open_usd} USD stays open until an operator closes it")
            self._changed(position)

    def _late(self, position: Position, leg: Leg) -> None:
        """A trade leg counted as timed out that landed after all: its output is inventory the position holds."""
        if position.state == "in_flight":
            self._advance(position)  # the other leg is still out: as if it had answered in time
            return
        other = position.legs["sell" if leg.name == "buy" else "buy"]
        if position.state == "held" and other.status == "landed":
            # The held leg was not sold back yet: with this one the pair is whole after all.
            self._close(position, "closed", [position.legs["buy"], position.legs["sell"]])
            return
        position.closed_at = None  # failed, unwound or stuck: this leg's output is open again
        self._sell_back(position, leg)

    def _open_legs(self, position: Position) -> list[Leg]:
        """The trade legs that landed and are not offset by an unwind that landed."""
        out = []
        for name in ("buy", "sell"):
            leg = position.legs.get(name)
            unwind = position.legs.get(f"unwind_{name}")
            if leg is not None and leg.status == "landed" and (unwind is None or unwind.status != "landed"):
                out.append(leg)
        return out

    def _leg_value(self, leg: Leg) -> Decimal:
        return self._value(self._token(leg.chain, leg.command.token_out), leg.amount_out)

    def _unwind(self, position: Position, filled: Leg) -> None:
        policy = self.config.unwind
        if policy.action == "hold":
            value = self._leg_value(filled)
            held = sum((p.exposure_usd for p in self.active() if p.state == "held"), Decimal(0))
            refusal = self.fleet.refusal(Decimal(0))
            if held + value <= policy.max_open_usd and not refusal:
                position.state = "held"
                position.hold_until = time.monotonic() + policy.hold_s
                position.step(f"held: {value} USD on {filled.chain} (held in all {held + value} <= "
                              f"{policy.max_open_usd}) for {policy.hold_s:g} s")  # fmt: skip
                self._changed(position)
                return
            position.step(f"not held: {refusal or f'held in all {held + value} > max_open_usd {policy.max_open_usd}'}")
        self._sell_back(position, filled)

    def stuck(self, position_id: str) -> Position:
        """The `stuck` position `position_id` (KeyError: no such position; ValueError: it is not stuck)."""
        position = self.positions[position_id]
        if position.state != "stuck":
            raise ValueError(f"position {position_id} is {position.state}, not stuck")
        return position

    async def retry_unwind(self, position_id: str, max_slippage_bps: int | None = None) -> list[CrossChainLegCommand]:
        """An operator's retry of a `stuck` position: each open leg sold back again at the pool's price now.
        The unwind commands, once the bus took them all (raises as `stuck`, or what the bus raised: the legs are
        counted as sent then and time out as any unanswered leg)."""
        position = self.stuck(position_id)
        bps = self.config.unwind.max_slippage_bps if max_slippage_bps is None else max_slippage_bps
        legs = self._open_legs(position)
        expected = []
        for leg in legs:  # each priced first: a retry that cannot price a leg leaves no step and sends nothing
            out = self._unwind_out(leg)
            if out is None:
                raise ValueError(f"position {position_id} cannot be unwound now: {self._unpriced(leg)}")
            expected.append(out)
        position.step(f"unwind retried by an operator at {bps} bps")
        commands = [self._unwind_leg(position, leg, bps, out) for leg, out in zip(legs, expected, strict=True)]
        await asyncio.gather(*(self.fleet.send(command.agent, command) for command in commands))
        return commands

    def _sell_back(self, position: Position, filled: Leg) -> None:
        expected = self._unwind_out(filled)
        if expected is None:
            # No min_out can be stated: never sold back blind (a min_out of 0 takes any price). Stuck: its exposure
            # counts, the alert fires and an operator retries once the pool's price is back within what is known.
            position.state = "stuck"
            position.step(f"unwind of the {filled.name} leg not sent: {self._unpriced(filled)}")
            self._changed(position)
            return
        command = self._unwind_leg(position, filled, self.config.unwind.max_slippage_bps, expected)
        self._spawn(self.fleet.send(command.agent, command))

    def _unpriced(self, filled: Leg) -> str:
        """Why `_unwind_out` has no answer for `filled`."""
        if (filled.chain, filled.command.pool) not in self.engine.quotes:
            return f"no price yet for pool {filled.command.pool} on {filled.chain}"
        return (f"selling {filled.amount_out} back on {filled.command.pool} ({filled.chain}) would take the V3 price "
                f"past the ticks its agent published: no output can be predicted")  # fmt: skip

    def _unwind_leg(self, position: Position, filled: Leg, bps: int, expected: int) -> CrossChainLegCommand:
        """The unwind of `filled` paying `expected` (_unwind_out), counted in the position (state `unwinding`,
        recorded): its command, not sent."""
        c = filled.command
        token_in, token_out = self._token(filled.chain, c.token_out), self._token(filled.chain, c.token_in)
        # What the round trip loses in the token the landed leg spent: its accepted loss, for the agent's gate.
        loss = self._value(token_out, expected) - self._value(token_out, filled.amount_in)
        command = self._command(position.id, "unwind", filled.chain, c.pool, token_in, token_out, filled.amount_out,
                                expected, bps, loss, c.v3_fee)  # fmt: skip
        leg = Leg("unwind", filled.chain, command.agent, command, time.monotonic())
        position.legs[f"unwind_{filled.name}"] = leg
        self._by_command[command.id] = (position, leg)
        position.state = "unwinding"
        position.step(f"unwind of the {filled.name} leg sent on {filled.chain}: {filled.amount_out} back for at "
                      f"least {command.min_out} (expected {expected})")  # fmt: skip
        self._changed(position)
        return command

    def _unwind_out(self, filled: Leg) -> int | None:
        """What the pool pays now for the filled leg's output sold back: from the engine's latest state of the
        pool, with the leg's own swap applied when the pool has not been reported since it was sent. None: no
        price for the pool yet (a position restored before its agents reported), or a V3 pool whose sale (or
        the leg's own swap) would go past its published ticks (`_unpriced` says which)."""
        c = filled.command
        quote = self.engine.quotes.get((filled.chain, c.pool))
        if quote is None:
            return None
        e = quote.event
        if e.v3 is not None and quote.v3 is not None:
            return self._unwind_out_v3(filled, quote)
        reserves = {e.base: e.reserve_base, e.quote: e.reserve_quote}
        fees = {e.base: e.fee_base_in, e.quote: e.fee_quote_in}
        if quote.seen <= filled.sent_at:
            reserves[c.token_in] += filled.amount_in
            reserves[c.token_out] -= filled.amount_out
        return get_amount_out(filled.amount_out, reserves[c.token_out], reserves[c.token_in], fees[c.token_out],
                              e.fee_denominator)  # fmt: skip

    def _unwind_out_v3(self, filled: Leg, quote: PoolQuote) -> int | None:
        """`_unwind_out` on a V3 pool: the exact swap over the published ticks (None where it, or the leg's own
        swap applied first when no newer state was reported, would take the price past the published range)."""
        c, e = filled.command, quote.event
        assert e.v3 is not None and quote.v3 is not None
        state = quote.v3
        # The leg bought token_out with token_in; the unwind pays token_out back in.
        leg_zero_for_one = (c.token_in == e.base) == e.v3.base_is_token0
        if quote.seen <= filled.sent_at:
            hop = v3_hop(e.v3, state, leg_zero_for_one)
            try:
                moved = simulate_swap(state, leg_zero_for_one, filled.amount_in, hop.sqrt_price_limit_x96)
            except Revert:
                return None
            if (moved.amount0 if leg_zero_for_one else moved.amount1) != filled.amount_in:
                return None  # the leg's swap alone runs past the published ticks
            state = replace(state, sqrt_price_x96=moved.sqrt_price_x96, tick=moved.tick, liquidity=moved.liquidity)
        amounts = cycle_amounts([v3_hop(e.v3, state, not leg_zero_for_one)], filled.amount_out)
        return None if amounts is None else amounts[-1]

    def _close(self, position: Position, state: str, legs: list[Leg]) -> None:
        """Realized: what `legs` (landed, or both simulated) spent and received, per token in base units."""
        realized: dict[str, int] = {}
        for leg in legs:
            for address, amount in ((leg.command.token_in, -leg.amount_in), (leg.command.token_out, leg.amount_out)):
                token = self._token(leg.chain, address)
                realized[token.id] = realized.get(token.id, 0) + amount
        usd = sum((self._value(self.engine.registry.tokens[t], a) for t, a in realized.items()), Decimal(0))
        position.realized, position.realized_usd = realized, usd
        position.state, position.closed_at = state, time.time()
        position.step(f"{state}: realized {realized} ({usd} USD at the configured prices)")
        self._changed(position)

    def _token(self, chain: str, address: str) -> Any:
        token = self.engine.registry.token_at(chain, address)
        if token is None:
            raise KeyError(f"{chain}: token {address} is not in the registry")
        return token

    def _keep(self, position: Position, sending: tuple[CrossChainLegCommand, ...] = ()) -> None:
        self.positions[position.id] = position
        while len(self.positions) > KEEP:
            oldest = next(iter(self.positions.values()))
            if oldest.closed_at is None:
                break
            self.positions.popitem(last=False)
            for leg in oldest.legs.values():
                self._by_command.pop(leg.command.id, None)
        self._changed(position, sending)

    def _changed(self, position: Position, sending: tuple[CrossChainLegCommand, ...] = ()) -> None:
        """Record the position as it is now. Each write runs as its own task on its own pool connection, so two
        can commit in either order: the snapshot is taken here and numbered, and the store keeps the highest.
        `sending`: legs that go out once this record and their commands are committed (Fleet.open_position)."""
        position.exposure_usd = sum(self._exposure(position).values(), Decimal(0))
        position.version += 1
        if sending:
            self._spawn(self._open(position, position.as_json(), position.version, sending))
        else:
            self._spawn(self.fleet.record_position(position.as_json(), position.version))

    async def _open(
        self, position: Position, record: dict[str, Any], version: int, legs: tuple[CrossChainLegCommand, ...]
    ) -> None:
        try:
            await self.fleet.open_position(record, version, list(legs))
        except NotRecorded as exc:
            for command in legs:
                leg = position.legs[command.leg]
                leg.status, leg.reason = "failed", f"not sent: {exc}"
            position.step(f"no leg sent: the history did not take the position and its legs' commands ({exc})")
            self._close(position, "failed", [])
        except Exception as exc:
            position.step(f"the legs are recorded, but the bus may not have taken them ({type(exc).__name__}: "
                          f"{exc}): they time out unless their agents answer")  # fmt: skip
            self._changed(position)
            raise

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("crosschain positions: %s", task.exception())


def _dec(value: Fraction) -> Decimal:
    return Decimal(value.numerator) / Decimal(value.denominator)
