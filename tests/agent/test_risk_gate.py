"""The risk gate: every limit refuses with its name and numbers; stop, pause and the breaker behave."""

import json
import os
from pathlib import Path

import pytest

from mevagent import metrics_names as names
from mevagent.config import GWEI, RiskLimits
from mevagent.core import Hop, Opportunity, Outcome, Status
from mevagent.metrics import AgentMetrics
from mevagent.risk import BreakerState, ChainLimits, RiskGate
from mevagent.risk.gate import CONTROL_FILE, LEDGER_FILE

WETH = "0x" + "aa" * 20
USDC = "0x" + "bb" * 20
DAY = 86_400.0


class Clock:
    """Both clocks the gate reads, moved by the test: monotonic for the breaker, wall for the UTC day."""

    def __init__(self) -> None:
        self.t = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC

    def __call__(self) -> float:
        return self.t


def opp(
    n: int = 0,
    *,
    chain: str = "ethereum",
    strategy: str = "dex_arb",
    token: str = WETH,
    notional: float = 100.0,
    profit: float = 20.0,
    gas: float = 5.0,
    gas_price_gwei: float = 30.0,
) -> Opportunity:
    return Opportunity(
        chain=chain,
        strategy=strategy,
        block=1,
        hops=(Hop("0x" + "01" * 20, "v2", token, USDC), Hop("0x" + "02" * 20, "v2", USDC, token)),
        amount_in=10**18,
        amount_out=10**18 + 1,
        gas_limit=200_000,
        gas_price=int(gas_price_gwei * GWEI),
        builder_payment=0,
        notional_usd=notional,
        profit_usd=profit,
        gas_cost_usd=gas,
        found_ns=0,
        id=f"opp-{n}",
    )


LIMITS = RiskLimits(
    max_position_size_usd=1_000,
    max_total_exposure_usd=2_500,
    max_chain_exposure_usd=1_500,
    max_token_exposure_usd=1_200,
    max_daily_loss_usd=300,
    max_daily_loss_per_chain_usd=200,
    max_drawdown_usd=400,
    max_slippage_bps=50,
    max_consecutive_failures=5,
    circuit_breaker_cooldown_s=60,
)
CHAINS = {"ethereum": ChainLimits(100 * GWEI), "arbitrum": ChainLimits(2 * GWEI, max_chain_exposure_usd=500)}


def make_gate(state_dir: Path, clock: Clock, metrics: AgentMetrics | None = None, limits: RiskLimits = LIMITS):
    return RiskGate(limits, CHAINS, state_dir, metrics=metrics, monotonic=clock, wallclock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gate(tmp_path: Path, clock: Clock) -> RiskGate:
    return make_gate(tmp_path, clock)


def refused(gate: RiskGate, o: Opportunity) -> str:
    decision = gate.check(o)
    assert not decision.allowed
    return decision.reason


def test_allows_within_limits_and_releases_on_record(gate: RiskGate) -> None:
    o = opp()
    assert gate.check(o).allowed
    assert gate.snapshot()["exposure_usd"]["total"] == 100
    gate.record(Outcome(o, Status.DRY_RUN, realized_profit_usd=20))
    snap = gate.snapshot()
    assert snap["exposure_usd"] == {"total": 0.0, "by_chain": {}, "by_token": {}, "reserved_worst_loss": 0.0}
    assert snap["daily_pnl_usd"]["total"] == 0  # a dry run moves no money


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"notional": 1_000.5}, "max_position_size: 1000.50 > 1000.00 USD"),
        ({"gas_price_gwei": 150}, "max_gas_price: 150.000 > 100.000 gwei on ethereum"),
        ({"chain": "arbitrum", "gas_price_gwei": 3}, "max_gas_price: 3.000 > 2.000 gwei on arbitrum"),
        ({"chain": "solana"}, "chain: 'solana' is not a configured chain"),
        ({"profit": 5.0, "gas": 4.6}, "max_slippage: profit 5.0000 - 50 bps slippage 0.5250 < gas 4.6000 USD"),
        ({"profit": -1.0}, "max_slippage"),
        ({"notional": float("nan")}, "invalid_opportunity: notional_usd is nan"),
        ({"gas": -1.0}, "invalid_opportunity: gas_cost_usd is -1.0"),
    ],
)
def test_single_opportunity_limits_name_the_limit_and_numbers(gate: RiskGate, kwargs: dict, reason: str) -> None:
    assert refused(gate, opp(**kwargs)).startswith(reason)


def test_exposure_limits_count_what_is_in_flight(gate: RiskGate) -> None:
    assert gate.check(opp(1, notional=900)).allowed
    assert refused(gate, opp(2, notional=400)) == (
        "max_token_exposure: 900.00 in flight in " + WETH + " on ethereum + 400.00 = 1300.00 > 1200.00 USD"
    )
    assert gate.check(opp(3, notional=400, token=USDC)).allowed
    assert refused(gate, opp(4, notional=300, token="0x" + "cc" * 20)) == (
        "max_chain_exposure: 1300.00 in flight on ethereum + 300.00 = 1600.00 > 1500.00 USD"
    )
    assert refused(gate, opp(5, chain="arbitrum", notional=600, gas_price_gwei=1)).startswith(
        "max_chain_exposure: 0.00 in flight on arbitrum + 600.00 = 600.00 > 500.00 USD"
    )
    assert gate.check(opp(6, chain="arbitrum", notional=500, gas_price_gwei=1)).allowed
    gate.update_chain("arbitrum", ChainLimits(2 * GWEI, max_chain_exposure_usd=1_500))
    assert refused(gate, opp(7, chain="arbitrum", notional=900, gas_price_gwei=1)) == (
        "max_total_exposure: 1800.00 in flight + 900.00 = 2700.00 > 2500.00 USD"
    )
    assert refused(gate, opp(1, notional=1)) == "duplicate: opportunity opp-1 is already in flight"


def test_daily_loss_counts_realized_gas_and_in_flight_worst_case(gate: RiskGate, clock: Clock) -> None:
    for n in range(3):
        o = opp(n, gas=50, profit=100)
        assert gate.check(o).allowed
        gate.record(Outcome(o, Status.REVERTED, gas_cost_usd=50))
    assert gate.daily_loss("ethereum") == 150
    # 150 lost + 50 worst case = 200: still within the per-chain limit; one more in flight would not be.
    first = opp(10, gas=50, profit=100)
    assert gate.check(first).allowed
    assert refused(gate, opp(11, gas=1)) == (
        "max_daily_loss_per_chain: ethereum lost 150.00 today + 50.00 at risk in flight + 1.00 = 201.00 > 200.00 USD"
    )
    gate.record(Outcome(first, Status.LANDED, realized_profit_usd=40, gas_cost_usd=50))
    assert gate.daily_loss("ethereum") == 160
    # The global limit (300) binds across chains.
    for n in range(2):
        o = opp(20 + n, chain="arbitrum", gas=60, gas_price_gwei=1, profit=100)
        assert gate.check(o).allowed
        gate.record(Outcome(o, Status.REVERTED, gas_cost_usd=60))
    assert refused(gate, opp(30, chain="arbitrum", gas=30, gas_price_gwei=1, profit=100)).startswith(
        "max_daily_loss: lost 280.00 today + 0.00 at risk in flight + 30.00 = 310.00 > 300.00 USD"
    )
    # A new UTC day starts a new budget; the trailing drawdown does not reset with it.
    clock.t += DAY
    assert gate.daily_loss() == 0
    assert gate.drawdown() == 280
    assert refused(gate, opp(31, gas=150, profit=200)).startswith(
        "max_drawdown: 280.00 below peak + 0.00 at risk in flight + 150.00 = 430.00 > 400.00 USD"
    )
    assert gate.check(opp(32, gas=100, profit=200)).allowed
    assert refused(gate, opp(33, gas=30, profit=100)) == (
        "max_drawdown: 280.00 below peak + 100.00 at risk in flight + 30.00 = 410.00 > 400.00 USD"
    )


def test_drawdown_is_trailing_from_peak(gate: RiskGate, clock: Clock) -> None:
    for n, (profit, gas, status) in enumerate([(500, 10, Status.LANDED), (0, 100, Status.REVERTED)]):
        o = opp(n, gas=min(gas, 15))
        assert gate.check(o).allowed
        gate.record(Outcome(o, status, realized_profit_usd=profit, gas_cost_usd=gas))
    snap = gate.snapshot()
    assert (snap["equity_usd"], snap["peak_equity_usd"], snap["drawdown_usd"]) == (390, 490, 100)
    assert gate.daily_loss() == 0  # the day is net positive


def test_emergency_stop_blocks_the_next_check_and_survives_a_restart(tmp_path: Path, clock: Clock) -> None:
    gate = make_gate(tmp_path, clock)
    in_flight = opp(1)
    assert gate.check(in_flight).allowed
    gate.emergency_stop("operator: suspicious reverts")
    assert refused(gate, opp(2)) == "emergency_stop: engaged (operator: suspicious reverts)"
    gate.record(Outcome(in_flight, Status.LANDED, realized_profit_usd=20, gas_cost_usd=5))
    stored = json.loads((tmp_path / CONTROL_FILE).read_text())
    assert stored["emergency_stop"]["engaged"] is True
    assert os.stat(tmp_path / CONTROL_FILE).st_mode & 0o777 == 0o600
    restarted = make_gate(tmp_path, clock)
    assert restarted.emergency_stopped
    assert refused(restarted, opp(3)).startswith("emergency_stop: engaged")
    restarted.emergency_resume()
    assert restarted.check(opp(3)).allowed
    assert not make_gate(tmp_path, clock).emergency_stopped


def test_a_stop_while_stopped_keeps_the_first_and_writes_nothing_unless_the_first_was_not_written(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fleet's stop reaches an agent by its API and by the bus at once: the second changes nothing (no
    second disk write on the agent's loop). A stop the disk refused is written by the next one."""
    gate = make_gate(tmp_path, clock)
    gate.emergency_stop("fleet: first (ann)")
    written = (tmp_path / CONTROL_FILE).read_bytes()
    saves: list[None] = []
    save = gate._save_control
    monkeypatch.setattr(gate, "_save_control", lambda: saves.append(None) or save())
    clock.t += 5
    gate.emergency_stop("fleet: second (bob)")
    assert saves == [] and (tmp_path / CONTROL_FILE).read_bytes() == written
    assert refused(gate, opp(1)) == "emergency_stop: engaged (fleet: first (ann))"
    gate.emergency_resume()

    def full() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gate, "_save_control", full)
    with pytest.raises(OSError):
        gate.emergency_stop("disk full")
    assert gate.emergency_stopped  # stopped in memory all the same
    monkeypatch.setattr(gate, "_save_control", save)
    gate.emergency_stop("again")  # the disk is back: the stop in memory is written now
    stored = json.loads((tmp_path / CONTROL_FILE).read_text())["emergency_stop"]
    assert stored["engaged"] is True and stored["reason"] == "disk full"
    assert make_gate(tmp_path, clock).emergency_stopped


def test_pause_is_per_strategy_and_persists(tmp_path: Path, clock: Clock) -> None:
    gate = make_gate(tmp_path, clock)
    gate.pause("dex_arb")
    assert refused(gate, opp(1)) == "strategy_paused: dex_arb is paused"
    assert gate.check(opp(2, strategy="liquidations")).allowed
    restarted = make_gate(tmp_path, clock)
    assert restarted.paused == {"dex_arb"}
    restarted.resume("dex_arb")
    assert restarted.check(opp(1)).allowed


@pytest.mark.parametrize("name", [CONTROL_FILE, LEDGER_FILE])
def test_unreadable_state_fails_closed(tmp_path: Path, clock: Clock, name: str) -> None:
    (tmp_path / name).write_text("{not json")
    gate = make_gate(tmp_path, clock)
    assert refused(gate, opp()).startswith(f"emergency_stop: engaged ({name} unreadable")


def test_daily_loss_survives_a_restart_the_same_day_only(tmp_path: Path, clock: Clock) -> None:
    gate = make_gate(tmp_path, clock)
    o = opp(gas=15)
    assert gate.check(o).allowed
    gate.record(Outcome(o, Status.REVERTED, gas_cost_usd=150))
    assert make_gate(tmp_path, clock).daily_loss("ethereum") == 150
    clock.t += DAY
    restarted = make_gate(tmp_path, clock)
    assert restarted.daily_loss() == 0 and restarted.drawdown() == 150


def test_breaker_trips_after_five_failures_half_opens_and_recovers(gate: RiskGate, clock: Clock) -> None:
    for n in range(5):
        assert gate.breaker("ethereum").state is BreakerState.CLOSED
        o = opp(n, gas=1)
        assert gate.check(o).allowed
        gate.record(Outcome(o, Status.FAILED, reason="not included"))
    assert gate.breaker("ethereum").state is BreakerState.OPEN
    assert refused(gate, opp(10)) == (
        "circuit_breaker: ethereum open after 5 consecutive failures (limit 5); half-open in 60.0 s"
    )
    assert gate.check(opp(11, chain="arbitrum", gas_price_gwei=1)).allowed  # per chain
    clock.t += 59
    assert refused(gate, opp(12)).startswith("circuit_breaker: ethereum open")
    clock.t += 1
    probe = opp(13)
    assert gate.check(probe).allowed
    assert gate.breaker("ethereum").state is BreakerState.HALF_OPEN
    assert refused(gate, opp(14)) == "circuit_breaker: ethereum half-open: the probe execution is still in flight"
    gate.record(Outcome(probe, Status.REVERTED, gas_cost_usd=1))  # the probe fails: open again
    assert gate.breaker("ethereum").state is BreakerState.OPEN
    assert refused(gate, opp(15)).endswith("half-open in 60.0 s")
    clock.t += 60
    probe = opp(16)
    assert gate.check(probe).allowed
    gate.record(Outcome(probe, Status.LANDED, realized_profit_usd=20, gas_cost_usd=5))
    assert gate.breaker("ethereum").state is BreakerState.CLOSED
    assert gate.breaker("ethereum").failures == 0
    assert gate.check(opp(17)).allowed and gate.check(opp(18)).allowed


def test_a_success_resets_the_consecutive_count(gate: RiskGate) -> None:
    for n, status in enumerate([Status.FAILED] * 4 + [Status.DRY_RUN] + [Status.FAILED] * 4):
        o = opp(n, gas=1)
        assert gate.check(o).allowed
        gate.record(Outcome(o, status))
    assert gate.breaker("ethereum").state is BreakerState.CLOSED
    assert gate.breaker("ethereum").failures == 4


def test_update_limits_applies_to_the_next_check(gate: RiskGate) -> None:
    assert gate.check(opp(1, notional=800)).allowed
    gate.update_limits(LIMITS.updated({"max_position_size_usd": 500}))
    assert refused(gate, opp(2, notional=800)) == "max_position_size: 800.00 > 500.00 USD"


def test_metrics_follow_the_gate(tmp_path: Path, clock: Clock) -> None:
    metrics = AgentMetrics()
    gate = make_gate(tmp_path, clock, metrics)
    o = opp(1, notional=250)
    assert gate.check(o).allowed
    assert metrics.value(names.RISK_EXPOSURE, "ethereum") == 250
    refused(gate, opp(2, gas_price_gwei=500))
    assert metrics.value(names.RISK_REJECTIONS, "ethereum", "max_gas_price", suffix="_total") == 1
    gate.record(Outcome(o, Status.REVERTED, gas_cost_usd=12))
    assert metrics.value(names.DAILY_PNL, "ethereum") == -12
    assert metrics.value(names.CONSECUTIVE_FAILED_EXECUTIONS, "ethereum") == 1
    assert metrics.value(names.RISK_DRAWDOWN) == 12
    gate.emergency_stop("test")
    assert metrics.value(names.EMERGENCY_STOP) == 1
    gate.pause("dex_arb")
    assert metrics.value(names.STRATEGY_PAUSED, "dex_arb") == 1
    gate.resume("dex_arb")
    assert metrics.value(names.STRATEGY_PAUSED, "dex_arb") == 0


class NoLease:
    def refusal(self, chain: str) -> str:
        return f"no fresh lease for {chain}"


def test_an_unwind_accepts_its_loss_needs_no_lease_and_counts_the_loss_against_the_loss_limits(
    gate: RiskGate,
) -> None:
    gate.require_lease(NoLease(), ["ethereum"])
    # A cross-chain unwind loses by design (its profit_usd is the loss it accepts): an ordinary trade like it
    # is refused by the profitability test, and on a leased chain without a lease.
    loss = opp(1, profit=-40.0, gas=5.0)
    assert refused(gate, loss).startswith("risk_lease:")
    unleased = opp(4, chain="arbitrum", profit=-40.0, gas=5.0, gas_price_gwei=1.0)
    assert refused(gate, unleased).startswith("max_slippage:")
    assert gate.check(unleased, unwind=True).allowed
    gate.record(Outcome(unleased, Status.DRY_RUN))
    assert gate.check(loss, unwind=True).allowed
    # Its worst case is the loss plus gas (45), reserved against the chain's daily loss budget (200).
    assert gate.snapshot()["exposure_usd"]["reserved_worst_loss"] == 45.0
    big = opp(2, profit=-160.0, gas=5.0)
    decision = gate.check(big, unwind=True)
    assert not decision.allowed and decision.reason.startswith("max_daily_loss_per_chain:"), decision.reason
    gate.record(Outcome(loss, Status.LANDED, gas_cost_usd=5.0))
    gate.emergency_stop("test")
    assert gate.check(opp(3, profit=-1.0), unwind=True).reason.startswith("emergency_stop:")
