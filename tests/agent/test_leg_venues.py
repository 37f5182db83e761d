"""The chains' leg venues (mevagent.crosschain.venues, `leg_venues` in a chain's config): which router a pool's
cross-chain legs go through and its V3 fee tier. An unknown router kind or fee tier, a fee on a V2-only router,
a V3-only router without one and a pool listed twice are refused when the config loads, naming the field.
No node: the swaps themselves are tests/agent/control/test_crosschain_legs.py's."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mevagent.config import ChainConfig
from mevagent.crosschain.venues import R02_MULTICALL, LegVenue, default_venue

POOL = "0x" + "ab" * 20
ROUTER = "0x68b3465833fb72A70ecDF485E0e4C7bD8665Fc45"


def chain(*venues: dict[str, Any]) -> ChainConfig:
    return ChainConfig.model_validate({
        "name": "arbitrum", "chain_id": 42161, "http_url": "http://127.0.0.1:8547", "max_gas_price_gwei": 10,
        "leg_venues": list(venues),
    })  # fmt: skip


@pytest.mark.parametrize(
    ("venue", "named"),
    [
        (
            {"kind": "universal_router"},
            "leg_venues.0.kind\n  Value error, unknown leg router 'universal_router': "
            "the legs drive v2_router02, v3_swap_router, swap_router02",
        ),
        (
            {"kind": "swap_router02", "fee": 2500},
            "leg_venues.0.fee\n  Value error, fee 2500 is not a Uniswap V3 fee "
            "tier (100, 500, 3000, 10000, in millionths)",
        ),
        ({"kind": "v2_router02", "fee": 3000}, f"pool {POOL}: v2_router02 swaps V2 pairs only, so no fee tier"),
        ({"kind": "v3_swap_router"}, f"pool {POOL}: v3_swap_router swaps V3 pools only: give the pool's fee tier"),
        ({"kind": "swap_router02", "router": "0x12"}, "leg_venues.0.router\n  String should match pattern"),
    ],
    ids=["unknown-router", "unknown-fee-tier", "fee-on-v2-router", "v3-router-without-fee", "bad-address"],
)
def test_an_unknown_router_or_fee_tier_is_refused_naming_the_field(venue: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError) as exc:
        chain({"pool": POOL, "router": ROUTER, **venue})
    assert named in str(exc.value), str(exc.value)


def test_a_pool_has_one_venue() -> None:
    with pytest.raises(ValidationError, match=f"leg_venues: pool {POOL} is listed twice"):
        chain({"pool": POOL, "router": ROUTER, "kind": "swap_router02", "fee": 500},
              {"pool": POOL.upper().replace("0X", "0x"), "router": ROUTER, "kind": "swap_router02"})  # fmt: skip


def test_every_tier_and_kind_it_knows_loads_and_the_addresses_are_lower_case() -> None:
    kinds = [("v2_router02", None), ("swap_router02", None), *(("swap_router02", t) for t in (100, 500, 3000, 10000))]
    kinds.append(("v3_swap_router", 500))
    venues = [{"pool": "0x" + f"{i:040x}", "router": ROUTER, "kind": k, "fee": fee} for i, (k, fee) in enumerate(kinds)]
    loaded = chain(*venues).leg_venues
    assert [(v.kind, v.fee, v.v3) for v in loaded][:3] == [
        ("v2_router02", None, False), ("swap_router02", None, False), ("swap_router02", 100, True),
    ]  # fmt: skip
    assert {v.router for v in loaded} == {ROUTER.lower()}


def test_swap_router02_wraps_its_swap_in_the_deadline_multicall() -> None:
    """SwapRouter02's swaps carry no deadline of their own: the leg's goes into multicall(deadline, [swap])."""
    v3 = LegVenue(pool=POOL, router=ROUTER, kind="swap_router02", fee=500)
    v2 = LegVenue(pool=POOL, router=ROUTER, kind="swap_router02")
    for venue in (v3, v2):
        data = venue.calldata(POOL, ROUTER, 10**18, 99, "0x" + "11" * 20, 1_700_000_000)
        assert data[:4] == R02_MULTICALL
        assert int.from_bytes(data[4:36], "big") == 1_700_000_000
    # A pool without an entry keeps the chain's routers: Router02 for a pair, the V3 SwapRouter for a pool.
    assert default_venue(POOL, None, ROUTER.lower(), None).kind == "v2_router02"  # type: ignore[union-attr]
    assert default_venue(POOL, 3000, ROUTER.lower(), None) is None
