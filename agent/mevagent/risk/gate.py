"""The risk gate: the executor calls `check` immediately before signing, so no strategy can bypass it.

Every limit holds *before* outcomes are known. An allowed opportunity reserves its notional (position,
per-chain, per-token and total exposure) and its worst-case loss, and the loss limits (daily loss per
chain and global, trailing drawdown) count reserved worst cases as if they had already been lost. The
worst case of an atomic arbitrage is its gas and builder payment: the contract reverts unless it ends
with at least the start balance plus the minimum profit, and the slippage check below refuses any
opportunity whose profit would not pay for its gas after the configured slippage. An outcome worse
than that (a gas price spike on a non-bundle path) is booked as it is and blocks everything until the
budget has room again.

State that must survive a restart lives in `state_dir`, written atomically with fsync:
`control.json` (emergency stop, paused strategies: human decisions) and `ledger.json` (the UTC day's
net per chain, equity and its peak: otherwise a restart would reset the daily loss). A file that cannot
be read engages the emergency stop (fail closed).

One event loop owns the gate; every method is synchronous, so no await can interleave a check with a
record. The lock makes calls from other threads (an API server in its own thread) safe too.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mevagent.config import GWEI, AgentConfig, RiskLimits
from mevagent.core import Decision, Opportunity, Outcome, Status
from mevagent.metrics import AgentMetrics
from mevagent.risk.breaker import BreakerState, CircuitBreaker
from mevagent.risk.durable import read_json, write_json

log = logging.getLogger(__name__)

CONTROL_FILE = "control.json"
LEDGER_FILE = "ledger.json"


class LeaseCheck(Protocol):
    """The fleet's risk lease (mevagent.bus.lease.RiskLease): why live signing is refused now, or ""."""

    def refusal(self, chain: str) -> str: ...


@dataclass(frozen=True, slots=True)
class ChainLimits:
    """What the gate enforces per chain besides `RiskLimits` (None: the `RiskLimits` value)."""

    max_gas_price_wei: int
    max_chain_exposure_usd: float | None = None
    max_daily_loss_usd: float | None = None


@dataclass(slots=True)
class _Reservation:
    chain: str
    token: str
    notional_usd: float
    worst_loss_usd: float
    probe: bool


@dataclass(slots=True)
class _Exposure:
    total: float = 0.0
    worst_loss: float = 0.0  # sum of reserved worst-case losses
    chain: dict[str, float] = field(default_factory=dict)
    chain_worst_loss: dict[str, float] = field(default_factory=dict)
    token: dict[tuple[str, str], float] = field(default_factory=dict)


def _utc_day(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).date().isoformat()


def _add(table: dict[Any, float], key: Any, amount: float) -> None:
    value = table.get(key, 0.0) + amount
    # Float residue after releasing everything must not look like exposure.
    if abs(value) < 1e-9:
        table.pop(key, None)
    else:
        table[key] = value


class RiskGate:
    """`mevagent.core.RiskCheck`: see the module doc for what it guarantees."""

    def __init__(
        self,
        limits: RiskLimits,
        chains: Mapping[str, ChainLimits],
        state_dir: Path,
        *,
        metrics: AgentMetrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.RLock()
        self._limits = limits
        self._chains = dict(chains)
        self._state_dir = state_dir
        self._metrics = metrics
        self._monotonic = monotonic
        self._wallclock = wallclock
        self._reserved: dict[str, _Reservation] = {}
        self._exposure = _Exposure()
        self._breakers = {name: self._new_breaker() for name in self._chains}
        self._emergency: dict[str, Any] = {"engaged": False, "reason": "", "at": 0.0}
        self._stop_written = False  # the engaged stop is on disk (a stop while stopped then writes nothing)
        self._paused: set[str] = set()
        self._day = _utc_day(wallclock())
        self._daily: dict[str, float] = {}  # net (profit - gas) per chain since 00:00 UTC
        self._equity = 0.0  # net since the ledger began
        self._peak = 0.0
        self._lease: LeaseCheck | None = None  # require_lease: live chains sign only with a fresh lease
        self._leased_chains: frozenset[str] = frozenset()
        self._load()
        self._publish()

    @classmethod
    def from_config(cls, config: AgentConfig, metrics: AgentMetrics | None = None) -> RiskGate:
        chains = {
            c.name: ChainLimits(c.max_gas_price_wei, c.max_chain_exposure_usd, c.max_daily_loss_usd)
            for c in config.chains
        }
        return cls(config.risk, chains, config.state_dir, metrics=metrics)

    # ---- RiskCheck ----------------------------------------------------------------------------

    def check(self, opportunity: Opportunity, *, unwind: bool = False) -> Decision:
        """`unwind`: a trade that closes an open cross-chain position (mevagent.crosschain.legs): it is expected
        to lose (its profit_usd is the loss it accepts), so the profitability test (max_slippage) does not
        apply; that loss counts as its worst case against the loss limits, with its gas. It needs no fresh
        risk lease (the control plane sent it; leases are withheld while a fleet limit is breached, and an
        open position is part of that exposure); the emergency stop and every other limit apply."""
        with self._lock:
            limit, reason = self._refusal(opportunity, unwind)
            if limit:
                if self._metrics is not None:
                    self._metrics.risk_rejection(opportunity.chain, limit)
                return Decision(False, f"{limit}: {reason}")
            opp = opportunity
            probe = self._breakers[opp.chain].admit()
            worst = self._worst_loss(opp, unwind)
            self._reserved[self._key(opp)] = _Reservation(opp.chain, opp.token, opp.notional_usd, worst, probe)
            ex = self._exposure
            ex.total += opp.notional_usd
            ex.worst_loss += worst
            _add(ex.chain, opp.chain, opp.notional_usd)
            _add(ex.chain_worst_loss, opp.chain, worst)
            _add(ex.token, (opp.chain, opp.token), opp.notional_usd)
            self._publish_chain(opp.chain)
            return Decision(True)

    def check_replacement(self, chain: str, action: str, max_fee_per_gas: int) -> Decision:
        """Whether the agent may re-sign a stuck transaction of its own at the same nonce (asked right
        before signing, like `check`). A `replace` re-sends a trade: the emergency stop, the lease, the
        circuit breaker and the gas cap apply as to any execution. A `cancel` (0 to itself) only spends
        gas and ends the exposure of the stuck trade, so it is allowed under an emergency stop and
        without a fresh lease (the stop withholds leases): only the chain's gas cap applies."""
        with self._lock:
            limit, reason = self._replacement_refusal(chain, action, max_fee_per_gas)
            if limit:
                if self._metrics is not None:
                    self._metrics.risk_rejection(chain, limit)
                return Decision(False, f"{limit}: {reason}")
            return Decision(True)

    def _replacement_refusal(self, chain: str, action: str, max_fee_per_gas: int) -> tuple[str, str]:
        if chain not in self._chains:
            return "chain", f"{chain!r} is not a configured chain"
        if action == "replace":
            if self._emergency["engaged"]:
                return "emergency_stop", f"engaged ({self._emergency['reason'] or 'no reason given'})"
            if self._lease is not None and chain in self._leased_chains:
                refusal = self._lease.refusal(chain)
                if refusal:
                    return "risk_lease", refusal
            refusal = self._breakers[chain].refusal(self._monotonic())
            if refusal:
                return "circuit_breaker", f"{chain} {refusal}"
        cap = self._chains[chain].max_gas_price_wei
        if max_fee_per_gas > cap:
            return "max_gas_price", f"{max_fee_per_gas / GWEI:.3f} > {cap / GWEI:.3f} gwei on {chain}"
        return "", ""

    def record(self, outcome: Outcome) -> None:
        with self._lock:
            opp = outcome.opportunity
            reservation = self._reserved.pop(self._key(opp), None)
            if reservation is None:
                log.warning("risk gate: outcome for %s that holds no reservation; booking it anyway", opp.id or "?")
            else:
                ex = self._exposure
                ex.total = max(0.0, ex.total - reservation.notional_usd)
                ex.worst_loss = max(0.0, ex.worst_loss - reservation.worst_loss_usd)
                _add(ex.chain, reservation.chain, -reservation.notional_usd)
                _add(ex.chain_worst_loss, reservation.chain, -reservation.worst_loss_usd)
                _add(ex.token, (reservation.chain, reservation.token), -reservation.notional_usd)
                if not self._reserved:  # nothing in flight: clear float residue entirely
                    self._exposure = _Exposure()
            probe = reservation.probe if reservation is not None else False
            breaker = self._breakers.get(opp.chain)
            if outcome.status is Status.DRY_RUN:
                # Simulated only: no money moved, but a successful simulation is a healthy pipeline.
                if breaker is not None:
                    breaker.success(probe)
            elif outcome.status in (Status.LANDED, Status.REVERTED, Status.FAILED):
                self._roll_day()
                net = outcome.realized_profit_usd - outcome.gas_cost_usd
                if math.isfinite(net) and net != 0.0:
                    self._daily[opp.chain] = self._daily.get(opp.chain, 0.0) + net
                    self._equity += net
                    self._peak = max(self._peak, self._equity)
                    self._save_ledger()
                if breaker is not None:
                    if outcome.status is Status.LANDED:
                        breaker.success(probe)
                    else:
                        breaker.failure(probe, self._monotonic())
            elif breaker is not None and probe:
                breaker.probe_in_flight = False  # a REJECTED outcome: the probe never ran
            self._publish_chain(opp.chain)
            self._publish_money()

    # ---- controls (the API and the engine's control queue call these) ----------------------------

    def emergency_stop(self, reason: str) -> None:
        """Nothing passes `check` until `emergency_resume`, across restarts too (written before returning).
        A stop while stopped changes nothing and writes nothing: the first stop's reason and time stay (the
        fleet's stop reaches an agent twice at once, by its API and by the bus)."""
        with self._lock:
            if self._emergency["engaged"] and self._stop_written:
                return
            if not self._emergency["engaged"]:  # else stopped in memory only: written now, as it was
                self._emergency = {"engaged": True, "reason": reason, "at": self._wallclock()}
            try:
                self._save_control()
                self._stop_written = True
            except OSError:
                # Still stopped in memory: refusing to stop because a disk is full would be worse.
                log.exception("risk gate: emergency stop engaged but not persisted")
                self._stop_written = False
                raise
            finally:
                self._publish()

    def emergency_resume(self) -> None:
        with self._lock:
            previous = self._emergency
            self._emergency = {"engaged": False, "reason": "", "at": self._wallclock()}
            try:
                self._save_control()
            except OSError:
                self._emergency = previous  # not persisted: a restart would stop again, so stay stopped
                raise
            finally:
                self._publish()

    def pause(self, strategy: str) -> None:
        with self._lock:
            self._set_paused(self._paused | {strategy})

    def resume(self, strategy: str) -> None:
        with self._lock:
            self._set_paused(self._paused - {strategy})

    def update_limits(self, limits: RiskLimits) -> None:
        """Replace the limits (already validated); in-flight reservations stay as they are."""
        with self._lock:
            self._limits = limits
            for breaker in self._breakers.values():
                breaker.threshold = limits.max_consecutive_failures
                breaker.cooldown_s = limits.circuit_breaker_cooldown_s

    def update_chain(self, chain: str, limits: ChainLimits) -> None:
        with self._lock:
            if chain not in self._chains:
                raise KeyError(chain)
            self._chains[chain] = limits

    def require_lease(self, lease: LeaseCheck, live_chains: Iterable[str]) -> None:
        """From now on `check` refuses opportunities on `live_chains` while `lease` is not fresh for them."""
        with self._lock:
            self._lease = lease
            self._leased_chains = frozenset(live_chains)

    # ---- read side --------------------------------------------------------------------------------

    @property
    def limits(self) -> RiskLimits:
        return self._limits

    def chain_limits(self, chain: str) -> ChainLimits:
        return self._chains[chain]

    @property
    def chains(self) -> Iterable[str]:
        return tuple(self._chains)

    @property
    def emergency_stopped(self) -> bool:
        return bool(self._emergency["engaged"])

    @property
    def paused(self) -> frozenset[str]:
        return frozenset(self._paused)

    def breaker(self, chain: str) -> CircuitBreaker:
        return self._breakers[chain]

    def daily_loss(self, chain: str | None = None) -> float:
        """Realized loss plus gas since 00:00 UTC (0 when the day is net positive)."""
        with self._lock:
            self._roll_day()
            net = self._daily.get(chain, 0.0) if chain is not None else sum(self._daily.values())
            return max(0.0, -net)

    def drawdown(self) -> float:
        return self._peak - self._equity

    def snapshot(self) -> dict[str, Any]:
        """Everything an operator needs to see, JSON-ready (GET /exposure/current, /stats)."""
        with self._lock:
            self._roll_day()
            now = self._monotonic()
            return {
                "emergency_stop": dict(self._emergency),
                "paused_strategies": sorted(self._paused),
                "in_flight": len(self._reserved),
                "exposure_usd": {
                    "total": self._exposure.total,
                    "by_chain": dict(sorted(self._exposure.chain.items())),
                    "by_token": {f"{c}:{t}": v for (c, t), v in sorted(self._exposure.token.items())},
                    "reserved_worst_loss": self._exposure.worst_loss,
                },
                "day": self._day,
                "daily_pnl_usd": {"total": sum(self._daily.values()), **dict(sorted(self._daily.items()))},
                "equity_usd": self._equity,
                "peak_equity_usd": self._peak,
                "drawdown_usd": self.drawdown(),
                "circuit_breakers": {
                    name: {
                        "state": b.state.name.lower(),
                        "consecutive_failures": b.failures,
                        "reopens_in_s": max(0.0, b.opened_at + b.cooldown_s - now)
                        if b.state is BreakerState.OPEN
                        else 0.0,
                    }
                    for name, b in sorted(self._breakers.items())
                },
                "limits": self._limits.model_dump(),
                "chain_limits": {
                    name: {
                        "max_gas_price_gwei": c.max_gas_price_wei / GWEI,
                        "max_chain_exposure_usd": self._chain_exposure_limit(name),
                        "max_daily_loss_usd": self._chain_daily_loss_limit(name),
                    }
                    for name, c in sorted(self._chains.items())
                },
            }

    # ---- internals --------------------------------------------------------------------------------

    def _new_breaker(self) -> CircuitBreaker:
        return CircuitBreaker(self._limits.max_consecutive_failures, self._limits.circuit_breaker_cooldown_s)

    @staticmethod
    def _key(opp: Opportunity) -> str:
        # Without an id, the object itself is the identity (the executor passes the same object to record).
        return opp.id or f"object:{id(opp)}"

    @staticmethod
    def _worst_loss(opp: Opportunity, unwind: bool = False) -> float:
        return opp.gas_cost_usd + (max(0.0, -opp.profit_usd) if unwind else 0.0)

    def _chain_exposure_limit(self, chain: str) -> float:
        override = self._chains[chain].max_chain_exposure_usd
        return override if override is not None else self._limits.max_chain_exposure_usd

    def _chain_daily_loss_limit(self, chain: str) -> float:
        override = self._chains[chain].max_daily_loss_usd
        return override if override is not None else self._limits.max_daily_loss_per_chain_usd

    def _refusal(self, opp: Opportunity, unwind: bool = False) -> tuple[str, str]:
        """(limit, numbers) of the first limit `opp` would break; ("", "") when it breaks none."""
        if self._emergency["engaged"]:
            return "emergency_stop", f"engaged ({self._emergency['reason'] or 'no reason given'})"
        if opp.chain not in self._chains:
            return "chain", f"{opp.chain!r} is not a configured chain"
        # An unwind is sent by the control plane itself (so it is there) to reduce an open position: a lease
        # withheld because a fleet limit is breached must not keep that position open (as for a cancel).
        if self._lease is not None and opp.chain in self._leased_chains and not unwind:
            refusal = self._lease.refusal(opp.chain)
            if refusal:
                return "risk_lease", refusal
        if opp.strategy in self._paused:
            return "strategy_paused", f"{opp.strategy} is paused"
        if self._key(opp) in self._reserved:
            return "duplicate", f"opportunity {opp.id} is already in flight"
        for name in ("notional_usd", "profit_usd", "gas_cost_usd"):
            value = getattr(opp, name)
            if not math.isfinite(value) or (value < 0 and name != "profit_usd"):
                return "invalid_opportunity", f"{name} is {value}"
        if opp.gas_price < 0 or opp.amount_in <= 0:
            return "invalid_opportunity", f"gas_price {opp.gas_price}, amount_in {opp.amount_in}"
        refusal = self._breakers[opp.chain].refusal(self._monotonic())
        if refusal:
            return "circuit_breaker", f"{opp.chain} {refusal}"
        chain_limits = self._chains[opp.chain]
        lim = self._limits
        if opp.gas_price > chain_limits.max_gas_price_wei:
            return (
                "max_gas_price",
                f"{opp.gas_price / GWEI:.3f} > {chain_limits.max_gas_price_wei / GWEI:.3f} gwei on {opp.chain}",
            )
        if opp.notional_usd > lim.max_position_size_usd:
            return "max_position_size", f"{opp.notional_usd:.2f} > {lim.max_position_size_usd:.2f} USD"
        ex = self._exposure
        total = ex.total + opp.notional_usd
        if total > lim.max_total_exposure_usd:
            return (
                "max_total_exposure",
                f"{ex.total:.2f} in flight + {opp.notional_usd:.2f} = {total:.2f} > "
                f"{lim.max_total_exposure_usd:.2f} USD",
            )
        chain_now = ex.chain.get(opp.chain, 0.0)
        chain_limit = self._chain_exposure_limit(opp.chain)
        if chain_now + opp.notional_usd > chain_limit:
            return (
                "max_chain_exposure",
                f"{chain_now:.2f} in flight on {opp.chain} + {opp.notional_usd:.2f} = "
                f"{chain_now + opp.notional_usd:.2f} > {chain_limit:.2f} USD",
            )
        token_now = ex.token.get((opp.chain, opp.token), 0.0)
        if token_now + opp.notional_usd > lim.max_token_exposure_usd:
            return (
                "max_token_exposure",
                f"{token_now:.2f} in flight in {opp.token} on {opp.chain} + {opp.notional_usd:.2f} = "
                f"{token_now + opp.notional_usd:.2f} > {lim.max_token_exposure_usd:.2f} USD",
            )
        # The contract may accept an output down to (1 - slippage) of the predicted one: the profit left
        # must still pay the gas, or the worst case is a loss the daily budget did not reserve.
        slippage = (opp.notional_usd + opp.profit_usd) * lim.max_slippage_bps / 10_000
        if not unwind and opp.profit_usd - slippage < opp.gas_cost_usd:
            return (
                "max_slippage",
                f"profit {opp.profit_usd:.4f} - {lim.max_slippage_bps:g} bps slippage {slippage:.4f} "
                f"< gas {opp.gas_cost_usd:.4f} USD",
            )
        worst = self._worst_loss(opp, unwind)
        self._roll_day()
        chain_loss = max(0.0, -self._daily.get(opp.chain, 0.0))
        chain_reserved = ex.chain_worst_loss.get(opp.chain, 0.0)
        chain_loss_limit = self._chain_daily_loss_limit(opp.chain)
        if chain_loss + chain_reserved + worst > chain_loss_limit:
            return (
                "max_daily_loss_per_chain",
                f"{opp.chain} lost {chain_loss:.2f} today + {chain_reserved:.2f} at risk in flight + "
                f"{worst:.2f} = {chain_loss + chain_reserved + worst:.2f} > {chain_loss_limit:.2f} USD",
            )
        day_loss = max(0.0, -sum(self._daily.values()))
        if day_loss + ex.worst_loss + worst > lim.max_daily_loss_usd:
            return (
                "max_daily_loss",
                f"lost {day_loss:.2f} today + {ex.worst_loss:.2f} at risk in flight + {worst:.2f} = "
                f"{day_loss + ex.worst_loss + worst:.2f} > {lim.max_daily_loss_usd:.2f} USD",
            )
        drawdown = self.drawdown()
        if drawdown + ex.worst_loss + worst > lim.max_drawdown_usd:
            return (
                "max_drawdown",
                f"{drawdown:.2f} below peak + {ex.worst_loss:.2f} at risk in flight + {worst:.2f} = "
                f"{drawdown + ex.worst_loss + worst:.2f} > {lim.max_drawdown_usd:.2f} USD",
            )
        return "", ""

    def _roll_day(self) -> None:
        today = _utc_day(self._wallclock())
        if today != self._day:
            self._day = today
            self._daily = {}

    def _set_paused(self, paused: set[str]) -> None:
        previous = self._paused
        self._paused = paused
        try:
            self._save_control()
        except OSError:
            self._paused = previous
            raise
        if self._metrics is not None:
            for name in previous | paused:
                self._metrics.strategy_paused(name, name in paused)

    def _save_control(self) -> None:
        write_json(self._state_dir / CONTROL_FILE, {"emergency_stop": self._emergency, "paused": sorted(self._paused)})

    def _save_ledger(self) -> None:
        data = {"day": self._day, "daily": self._daily, "equity": self._equity, "peak": self._peak}
        try:
            write_json(self._state_dir / LEDGER_FILE, data)
        except OSError:
            # The money moved whatever the disk says: keep going in memory, loudly.
            log.exception("risk gate: ledger not persisted")

    def _load(self) -> None:
        try:
            control = read_json(self._state_dir / CONTROL_FILE)
            if control is not None:
                emergency = control["emergency_stop"]
                self._emergency = {
                    "engaged": bool(emergency["engaged"]),
                    "reason": str(emergency.get("reason", "")),
                    "at": float(emergency.get("at", 0.0)),
                }
                self._stop_written = self._emergency["engaged"]
                self._paused = {str(name) for name in control.get("paused", [])}
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            self._emergency = {
                "engaged": True,
                "reason": f"{CONTROL_FILE} unreadable ({type(exc).__name__}): resume after checking it",
                "at": self._wallclock(),
            }
            log.error("risk gate: %s unreadable, emergency stop engaged", self._state_dir / CONTROL_FILE)
        try:
            ledger = read_json(self._state_dir / LEDGER_FILE)
            if ledger is not None:
                equity, peak = float(ledger["equity"]), float(ledger["peak"])
                daily = {str(k): float(v) for k, v in ledger["daily"].items()}
                if not all(math.isfinite(x) for x in (equity, peak, *daily.values())):
                    raise ValueError("not finite")
                self._equity, self._peak = equity, max(peak, equity)
                if ledger["day"] == self._day:
                    self._daily = daily
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            self._emergency = {
                "engaged": True,
                "reason": f"{LEDGER_FILE} unreadable ({type(exc).__name__}): resume after checking it",
                "at": self._wallclock(),
            }
            log.error("risk gate: %s unreadable, emergency stop engaged", self._state_dir / LEDGER_FILE)

    def _publish_chain(self, chain: str) -> None:
        if self._metrics is None or chain not in self._breakers:
            return
        breaker = self._breakers[chain]
        self._metrics.exposure(chain, self._exposure.chain.get(chain, 0.0))
        self._metrics.consecutive_failures(chain, breaker.failures)
        self._metrics.breaker(chain, int(breaker.state))

    def _publish_money(self) -> None:
        if self._metrics is None:
            return
        for chain in self._chains:
            self._metrics.daily_pnl(chain, self._daily.get(chain, 0.0))
        self._metrics.drawdown(self.drawdown())

    def _publish(self) -> None:
        if self._metrics is None:
            return
        self._metrics.emergency_stop(self.emergency_stopped)
        for chain in self._chains:
            self._publish_chain(chain)
        for name in self._paused:
            self._metrics.strategy_paused(name, True)
        self._publish_money()
