"""The risk lease as the risk gate sees it: live chains sign only under a fresh grant, dry-run never asks."""

from __future__ import annotations

from pathlib import Path

from mevagent.bus.events import LeaseGrant
from mevagent.bus.lease import RiskLease
from mevagent.config import RiskLimits
from mevagent.core import Hop, Opportunity
from mevagent.risk.gate import ChainLimits, RiskGate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _opportunity(chain: str, n: int) -> Opportunity:
    hop = Hop("0x" + "aa" * 20, "v2", "0x" + "11" * 20, "0x" + "22" * 20)
    return Opportunity(
        chain=chain, strategy="dex_arb", block=n, hops=(hop, hop), amount_in=10**18, amount_out=10**18 + 10**16,
        gas_limit=200_000, gas_price=10**9, builder_payment=0, notional_usd=100.0, profit_usd=5.0, gas_cost_usd=0.1,
        found_ns=0, id=f"{chain}-{n}",
    )  # fmt: skip


def test_live_chains_need_a_fresh_lease_for_their_chain_and_dry_run_chains_never_do(tmp_path: Path) -> None:
    mono, wall = Clock(), Clock()
    lease = RiskLease(monotonic=mono, wallclock=wall)
    chains = {"live": ChainLimits(10**12), "dry": ChainLimits(10**12)}
    gate = RiskGate(RiskLimits(), chains, tmp_path)
    gate.require_lease(lease, ["live"])

    refused = gate.check(_opportunity("live", 1))
    assert not refused.allowed and refused.reason.startswith("risk_lease: no lease")
    assert gate.check(_opportunity("dry", 1)).allowed  # dry-run chain: no lease needed

    assert lease.grant(LeaseGrant(agent="a1", ttl_s=5, chains=("live",), at=wall.now))
    assert gate.check(_opportunity("live", 2)).allowed
    mono.now += 5.1
    expired = gate.check(_opportunity("live", 3))
    assert not expired.allowed and "expired" in expired.reason

    # A grant that sat in a queue longer than its TTL extends nothing.
    assert not lease.grant(LeaseGrant(agent="a1", ttl_s=5, chains=("live",), at=wall.now - 6))
    assert not gate.check(_opportunity("live", 4)).allowed
    # A grant for other chains does not allow this one.
    assert lease.grant(LeaseGrant(agent="a1", ttl_s=5, chains=("other",), at=wall.now))
    assert "does not allow" in gate.check(_opportunity("live", 5)).reason
    # A grant that spent 2 s in transit leaves 3 s.
    assert lease.grant(LeaseGrant(agent="a1", ttl_s=5, chains=("live",), at=wall.now - 2))
    assert 2.9 < lease.expires_in() <= 3.0
