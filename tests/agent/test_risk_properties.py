"""Risk properties (hypothesis, rule-based): under any stream of opportunities, outcomes, controls, clock
moves and restarts, no limit is ever exceeded, and stop/pause/breaker refusals always hold.

The model below keeps its own books from what it fed the gate (never the gate's internals): the
positions in flight, and the money each settled outcome moved, per chain and UTC day. Outcomes are
what the chain can produce: a landed arbitrage pays at least its output minus the slippage the
contract accepts, a revert costs at most the gas the opportunity priced, a failed bundle costs nothing.
"""

import datetime as dt
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, multiple, precondition, rule

from mevagent.config import GWEI, RiskLimits
from mevagent.core import Outcome, Status
from mevagent.risk import BreakerState, ChainLimits, RiskGate

from .test_risk_gate import USDC, WETH, Clock, opp

EPS = 1e-6
# Every limit can bind: the chains' caps add up to more than the total, the per-chain daily losses to
# more than the global one, and the drawdown is only a little above one day's loss.
LIMITS = RiskLimits(
    max_position_size_usd=1_000,
    max_total_exposure_usd=1_800,
    max_chain_exposure_usd=1_500,
    max_token_exposure_usd=1_200,
    max_daily_loss_usd=300,
    max_daily_loss_per_chain_usd=200,
    max_drawdown_usd=350,
    max_slippage_bps=50,
    max_consecutive_failures=5,
    circuit_breaker_cooldown_s=60,
)
CHAINS = {"ethereum": ChainLimits(100 * GWEI), "arbitrum": ChainLimits(2 * GWEI, max_chain_exposure_usd=800)}
TOKENS = (WETH, USDC, "0x" + "cc" * 20)
STRATEGIES = ("dex_arb", "liquidations")


def _day(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).date().isoformat()


class RiskMachine(RuleBasedStateMachine):
    in_flight = Bundle("in_flight")

    def __init__(self) -> None:
        super().__init__()
        # tmpfs when there is one: the gate fsyncs every outcome, and the disk is not what is tested here.
        shm = Path("/dev/shm")
        self.dir = Path(tempfile.mkdtemp(prefix="risk-", dir=shm if shm.is_dir() else None))
        self.clock = Clock()
        self.gate = RiskGate(LIMITS, CHAINS, self.dir, monotonic=self.clock, wallclock=self.clock)
        self.n = 0
        self.positions: dict[str, object] = {}  # id -> Opportunity allowed and not yet settled
        self.nets: list[tuple[str, str, float]] = []  # (UTC day, chain, net) of every settled outcome
        self.stopped = False
        self.paused: set[str] = set()

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(
        target=in_flight,
        chain=st.sampled_from(sorted(CHAINS)),
        token=st.sampled_from(TOKENS),
        strategy=st.sampled_from(STRATEGIES),
        notional=st.floats(1, 1_200),
        margin=st.floats(-5, 40),
        gas=st.one_of(st.floats(0, 120), st.sampled_from([0.0, 60.0, 100.0, 120.0])),
        gas_price_share=st.floats(0, 1.2),
    )
    def propose(self, chain, token, strategy, notional, margin, gas, gas_price_share):
        # Profit relative to gas: most opportunities clear the slippage check, so the money limits bind.
        profit = gas + margin
        self.n += 1
        o = opp(
            self.n,
            chain=chain,
            token=token,
            strategy=strategy,
            notional=notional,
            profit=profit,
            gas=gas,
            gas_price_gwei=gas_price_share * CHAINS[chain].max_gas_price_wei / 10**9,
        )
        was_half_open_busy = self.gate.breaker(chain).probe_in_flight
        decision = self.gate.check(o)
        if self.stopped or strategy in self.paused or was_half_open_busy:
            assert not decision.allowed, decision
        if o.gas_price > CHAINS[chain].max_gas_price_wei or notional > LIMITS.max_position_size_usd:
            assert not decision.allowed, decision
        if not decision.allowed:
            assert decision.reason.split(":")[0] in _LIMIT_NAMES, decision.reason
            return multiple()
        self.positions[o.id] = o
        return o

    @rule(
        o=consumes(in_flight),
        status=st.sampled_from([Status.LANDED, Status.REVERTED, Status.FAILED, Status.DRY_RUN]),
        share=st.floats(0, 1),
    )
    def settle(self, o, status, share):
        del self.positions[o.id]
        slippage = (o.notional_usd + o.profit_usd) * LIMITS.max_slippage_bps / 10_000
        if status is Status.LANDED:
            # Anything between the contract's minimum and the predicted profit; gas up to what was priced.
            realized = o.profit_usd - slippage * share
            outcome = Outcome(o, status, realized_profit_usd=realized, gas_cost_usd=o.gas_cost_usd * share)
        elif status is Status.REVERTED:
            outcome = Outcome(o, status, gas_cost_usd=o.gas_cost_usd * share)
        else:
            outcome = Outcome(o, status, realized_profit_usd=o.profit_usd if status is Status.DRY_RUN else 0.0)
        if status is not Status.DRY_RUN:
            self.nets.append((_day(self.clock.t), o.chain, outcome.realized_profit_usd - outcome.gas_cost_usd))
        self.gate.record(outcome)

    @rule(seconds=st.sampled_from([1.0, 30.0, 61.0, 3_600.0, 86_400.0]))
    def wait(self, seconds):
        self.clock.t += seconds

    # One rule for every operator control, so that they are drawn as often as one proposal, not four times.
    @rule(action=st.sampled_from(["stop", "resume", *(f"{a} {s}" for a in ("pause", "resume") for s in STRATEGIES)]))
    def control(self, action):
        if action == "stop":
            self.gate.emergency_stop("property test")
            self.stopped = True
        elif action == "resume":
            self.gate.emergency_resume()
            self.stopped = False
        elif action.startswith("pause "):
            self.gate.pause(action.split()[1])
            self.paused.add(action.split()[1])
        else:
            self.gate.resume(action.split()[1])
            self.paused.discard(action.split()[1])

    @precondition(lambda self: not self.positions)
    @rule()
    def restart(self):
        # Only with nothing in flight: a real restart loses in-flight reservations along with the process.
        self.gate = RiskGate(LIMITS, CHAINS, self.dir, monotonic=self.clock, wallclock=self.clock)
        assert self.gate.emergency_stopped == self.stopped
        assert self.gate.paused == self.paused

    @invariant()
    def exposure_within_limits(self):
        positions = list(self.positions.values())
        assert sum(o.notional_usd for o in positions) <= LIMITS.max_total_exposure_usd + EPS
        for o in positions:
            assert o.notional_usd <= LIMITS.max_position_size_usd
        for chain, limits in CHAINS.items():
            on_chain = [o for o in positions if o.chain == chain]
            cap = limits.max_chain_exposure_usd or LIMITS.max_chain_exposure_usd
            assert sum(o.notional_usd for o in on_chain) <= cap + EPS
            for token in TOKENS:
                in_token = sum(o.notional_usd for o in on_chain if o.token == token)
                assert in_token <= LIMITS.max_token_exposure_usd + EPS

    @invariant()
    def losses_within_limits_even_if_everything_in_flight_reverts(self):
        today = _day(self.clock.t)
        worst = {chain: sum(o.gas_cost_usd for o in self.positions.values() if o.chain == chain) for chain in CHAINS}
        day_total = 0.0
        for chain in CHAINS:
            net = sum(n for d, c, n in self.nets if d == today and c == chain)
            day_total += net
            assert max(0.0, -net) + worst[chain] <= LIMITS.max_daily_loss_per_chain_usd + EPS
        assert max(0.0, -day_total) + sum(worst.values()) <= LIMITS.max_daily_loss_usd + EPS
        equity, peak = 0.0, 0.0
        for _, _, n in self.nets:
            equity += n
            peak = max(peak, equity)
        assert peak - equity + sum(worst.values()) <= LIMITS.max_drawdown_usd + EPS

    @invariant()
    def breaker_opens_only_on_failures(self):
        for chain in CHAINS:
            breaker = self.gate.breaker(chain)
            if breaker.state is BreakerState.OPEN:
                assert breaker.failures >= 1


_LIMIT_NAMES = {
    "emergency_stop",
    "strategy_paused",
    "circuit_breaker",
    "max_gas_price",
    "max_position_size",
    "max_total_exposure",
    "max_chain_exposure",
    "max_token_exposure",
    "max_slippage",
    "max_daily_loss_per_chain",
    "max_daily_loss",
    "max_drawdown",
}

TestRiskProperties = RiskMachine.TestCase
TestRiskProperties.settings = settings(
    max_examples=120, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
