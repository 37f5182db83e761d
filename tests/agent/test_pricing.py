"""USD pricing: configuration is checked before use, prices follow reference pools' state."""

import pytest
from pydantic import ValidationError

from mevagent.amm.v3.pool import V3PoolState
from mevagent.amm.v3.tick_math import get_sqrt_ratio_at_tick
from mevagent.pricing import Pricer, PricingConfig
from mevagent.state.pools import PoolStore, V2Pool, V3Pool

WETH = "0x" + "c0" * 20
USDC = "0x" + "a0" * 20
PEPE = "0x" + "6e" * 20
V2_POOL = "0x" + "01" * 20
V3_POOL = "0x" + "02" * 20


def _store() -> PoolStore:
    store = PoolStore("eth")
    # 1 WETH (18 decimals) = 2000 USDC (6 decimals); 1 PEPE (18 decimals) = 1e-6 WETH.
    store.add(V2Pool(V2_POOL, "uniswap_v2", USDC, WETH, 2_000_000 * 10**6, 1000 * 10**18, 3, 1000))
    # PEPE priced in WETH by a V3 pool.
    token0, token1 = sorted((PEPE, WETH))
    # token1 per token0: PEPE per WETH = 10^6 when WETH is token0, else 10^-6.
    tick = 138163 if token0 == WETH else -138163  # 1.0001^138163 ~ 10^6
    state = V3PoolState.from_ticks(
        sqrt_price_x96=get_sqrt_ratio_at_tick(tick), tick=tick, liquidity=10**20, fee=3000, tick_spacing=60, ticks={}
    )
    store.add(V3Pool(V3_POOL, "uniswap_v3", token0, token1, state))
    return store


def _config(**tokens: dict) -> PricingConfig:
    return PricingConfig.model_validate(
        {
            "native_token": WETH,
            "tokens": {
                WETH: {"usd": 2000.0, "decimals": 18},
                USDC: {"reference_pool": V2_POOL},
                PEPE: {"reference_pool": V3_POOL},
                **tokens,
            },
        }
    )


def test_reference_prices_and_reference_pools() -> None:
    store = _store()
    pricer = Pricer(_config(), store)
    assert pricer.amount_usd(WETH, 3 * 10**18) == pytest.approx(6000.0)
    assert pricer.wei_usd(21_000 * 10 * 10**9) == pytest.approx(0.42)  # 21k gas at 10 gwei
    # USDC through the V2 pool: 2000 USDC per WETH at 2000 USD per WETH.
    assert pricer.amount_usd(USDC, 5 * 10**6) == pytest.approx(5.0)
    # PEPE through the V3 pool's sqrt price.
    assert pricer.amount_usd(PEPE, 10**6 * 10**18) == pytest.approx(2000.0, rel=1e-4)
    assert pricer.to_wei(WETH, 12345) == 12345
    assert pricer.to_wei(USDC, 2000 * 10**6) == pytest.approx(10**18, rel=1e-9)
    assert pricer.amount_usd("0x" + "99" * 20, 1) is None  # not configured

    # The pool moves (someone buys WETH with USDC): USDC's value follows it in the same block.
    pool = store.pools[V2_POOL]
    assert isinstance(pool, V2Pool)
    pool.reserve0 *= 2
    assert pricer.amount_usd(USDC, 5 * 10**6) == pytest.approx(2.5)
    # A Camelot pair switched to its stable curve: the reserve ratio is not a price, so nothing is priced.
    pool.stable = True
    assert pricer.amount_usd(USDC, 5 * 10**6) is None
    pool.stable = False
    # An emptied reference pool prices nothing rather than dividing by zero.
    pool.reserve1 = 0
    assert pricer.amount_usd(USDC, 1) is None


def test_reference_pool_needs_a_priced_counterpart() -> None:
    store = _store()
    # PEPE's pool pairs it with WETH; if WETH were priced only through a pool, PEPE is not priced.
    pricer = Pricer(
        PricingConfig.model_validate(
            {
                "native_token": USDC,
                "tokens": {
                    USDC: {"usd": 1.0, "decimals": 6},
                    WETH: {"reference_pool": V2_POOL},
                    PEPE: {"reference_pool": V3_POOL},
                },
            }
        ),
        store,
    )
    assert pricer.amount_usd(WETH, 10**18) == pytest.approx(2000.0)
    assert pricer.amount_usd(PEPE, 10**18) is None
    # A reference pool that is not in the store (yet) prices nothing either.
    missing = Pricer(_config(**{PEPE: {"reference_pool": "0x" + "77" * 20}}), store)
    assert missing.amount_usd(PEPE, 10**18) is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"native_token": "0x1234", "tokens": {}}, "native_token"),
        ({"native_token": WETH, "tokens": {WETH: {"usd": 2000.0}}}, "decimals is required"),
        (
            {"native_token": WETH, "tokens": {WETH: {"usd": 2000.0, "decimals": 18, "reference_pool": V2_POOL}}},
            "exactly one",
        ),
        ({"native_token": WETH, "tokens": {WETH: {}}}, "exactly one"),
        ({"native_token": WETH, "tokens": {WETH: {"usd": -1.0, "decimals": 18}}}, "usd"),
        ({"native_token": WETH, "tokens": {WETH: {"usd": float("nan"), "decimals": 18}}}, "usd"),
        ({"native_token": WETH, "tokens": {USDC: {"usd": 1.0, "decimals": 6}}}, "native_token"),
        ({"native_token": WETH, "tokens": {WETH: {"usd": 1.0, "decimals": 18, "price": 3}}}, "price"),
        ({"native_token": WETH, "tokens": {"WETH": {"usd": 1.0, "decimals": 18}}}, "WETH"),
    ],
)
def test_bad_config_is_rejected_naming_the_field(payload: dict, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        PricingConfig.model_validate(payload)
    assert field in str(error.value)


def test_addresses_are_normalised() -> None:
    config = PricingConfig.model_validate(
        {
            "native_token": WETH.upper().replace("0X", "0x"),
            "tokens": {WETH.upper().replace("0X", "0x"): {"usd": 1.0, "decimals": 18}},
        }
    )
    assert config.native_token == WETH
    assert list(config.tokens) == [WETH]
