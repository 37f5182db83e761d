"""Raydium AMM v4 and CPMM, decoded and quoted by the agent, against the Raydium SDK to the lamport.

Layouts: random field values are encoded by the SDK's own layouts (CpmmPoolInfoLayout,
CpmmConfigInfoLayout, liquidityStateV4Layout) and decoded by ours, field by field. Quotes: random pools and
amounts through CurveCalculator.swapBaseInput (CPMM) and LiquidityModule.computeAmountOut (AMM v4).
The programs themselves cannot run here (no Raydium binary can be had): the SDK is the oracle.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from mevagent.solana.layouts import (
    CPMM_POOL_SIZE,
    RAYDIUM_AMM_V4,
    RAYDIUM_CPMM,
    CpmmConfig,
    decode_amm_v4,
    decode_cpmm_config,
    decode_cpmm_pool,
)
from mevagent.solana.raydium import QuoteError, amm_v4_out, cpmm_out
from mevagent.solana.swaps import amm_v4_authority, amm_v4_swap_base_in, cpmm_authority, cpmm_swap_base_input

from .oracles import need, run

U64 = 2**64 - 1
pytestmark = pytest.mark.usefixtures("raydium_sdk")


@pytest.fixture(scope="module")
def raydium_sdk() -> None:
    need("@raydium-io/raydium-sdk-v2")


def key() -> str:
    return str(Pubkey.from_bytes(os.urandom(32)))


@settings(max_examples=3, deadline=None)
@given(st.integers(0, 2**32))
def test_layouts_decode_what_the_sdk_encodes(seed: int) -> None:
    rnd = random.Random(seed)
    u64 = lambda: rnd.randrange(U64)  # noqa: E731
    pools = [
        {
            "configId": key(),
            "vaultA": key(),
            "vaultB": key(),
            "mintA": key(),
            "mintB": key(),
            "mintProgramA": key(),
            "mintProgramB": key(),
            "observationId": key(),
            "status": rnd.randrange(256),
            "mintDecimalA": rnd.randrange(256),
            "mintDecimalB": rnd.randrange(256),
            "protocolFeesMintA": str(u64()),
            "protocolFeesMintB": str(u64()),
            "fundFeesMintA": str(u64()),
            "fundFeesMintB": str(u64()),
            "openTime": str(u64()),
            "feeOn": rnd.randrange(3),
            "enableCreatorFee": rnd.random() < 0.5,
            "creatorFeesMintA": str(u64()),
            "creatorFeesMintB": str(u64()),
        }
        for _ in range(20)
    ]
    configs = [
        {f: str(u64()) for f in ("tradeFeeRate", "protocolFeeRate", "fundFeeRate", "creatorFeeRate")} for _ in range(20)
    ]
    amms = [
        {
            **{f: str(u64()) for f in AMM_U64},
            **{f: key() for f in AMM_KEYS},
        }
        for _ in range(20)
    ]
    encoded = run("raydium_oracle.js", {"cpmm_pools": pools, "cpmm_configs": configs, "amm_v4": amms})
    for fields, blob in zip(pools, encoded["cpmm_pools"], strict=True):
        s = decode_cpmm_pool(bytes.fromhex(blob))
        assert (str(s.config), str(s.vault_a), str(s.vault_b)) == (
            fields["configId"],
            fields["vaultA"],
            fields["vaultB"],
        )
        assert (str(s.mint_a), str(s.mint_b), str(s.observation)) == (
            fields["mintA"],
            fields["mintB"],
            fields["observationId"],
        )
        assert (str(s.mint_program_a), str(s.mint_program_b)) == (fields["mintProgramA"], fields["mintProgramB"])
        assert (s.status, s.decimals_a, s.decimals_b) == (
            fields["status"],
            fields["mintDecimalA"],
            fields["mintDecimalB"],
        )
        assert [s.protocol_fees_a, s.protocol_fees_b, s.fund_fees_a, s.fund_fees_b, s.open_time] == [
            int(fields[f])
            for f in ("protocolFeesMintA", "protocolFeesMintB", "fundFeesMintA", "fundFeesMintB", "openTime")
        ]
        assert (s.creator_fee_on, s.enable_creator_fee) == (fields["feeOn"], fields["enableCreatorFee"])
        assert (s.creator_fees_a, s.creator_fees_b) == (
            int(fields["creatorFeesMintA"]),
            int(fields["creatorFeesMintB"]),
        )
    for fields, blob in zip(configs, encoded["cpmm_configs"], strict=True):
        c = decode_cpmm_config(bytes.fromhex(blob))
        assert [c.trade_fee_rate, c.protocol_fee_rate, c.fund_fee_rate, c.creator_fee_rate] == [
            int(fields[f]) for f in ("tradeFeeRate", "protocolFeeRate", "fundFeeRate", "creatorFeeRate")
        ]
    for fields, blob in zip(amms, encoded["amm_v4"], strict=True):
        a = decode_amm_v4(bytes.fromhex(blob))
        for ours, theirs in AMM_FIELDS.items():
            value = getattr(a, ours)
            assert str(value) == fields[theirs], ours


AMM_FIELDS = {
    "status": "status",
    "base_decimal": "baseDecimal",
    "quote_decimal": "quoteDecimal",
    "trade_fee_numerator": "tradeFeeNumerator",
    "trade_fee_denominator": "tradeFeeDenominator",
    "swap_fee_numerator": "swapFeeNumerator",
    "swap_fee_denominator": "swapFeeDenominator",
    "base_need_take_pnl": "baseNeedTakePnl",
    "quote_need_take_pnl": "quoteNeedTakePnl",
    "pool_open_time": "poolOpenTime",
    "base_vault": "baseVault",
    "quote_vault": "quoteVault",
    "base_mint": "baseMint",
    "quote_mint": "quoteMint",
    "lp_mint": "lpMint",
    "open_orders": "openOrders",
    "market_id": "marketId",
    "market_program_id": "marketProgramId",
    "target_orders": "targetOrders",
    "owner": "owner",
}
AMM_KEYS = [v for k, v in AMM_FIELDS.items() if k.endswith(("vault", "mint", "orders", "_id", "owner"))]
AMM_U64 = [v for v in AMM_FIELDS.values() if v not in AMM_KEYS]


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 2**32))
def test_cpmm_quotes_equal_the_sdk(seed: int) -> None:
    rnd = random.Random(seed)
    cases = []
    for _ in range(500):
        r_in, r_out = rnd.randrange(1, 10 ** rnd.randrange(3, 19)), rnd.randrange(1, 10 ** rnd.randrange(3, 19))
        amount = rnd.randrange(1, 10 ** rnd.randrange(1, 19))
        trade = rnd.choice([100, 250, 2500, 10000, rnd.randrange(0, 100_000)])
        creator = rnd.choice([0, 0, 1000, rnd.randrange(0, 50_000)])
        protocol, fund = (
            rnd.choice([120_000, rnd.randrange(0, 1_000_000)]),
            rnd.choice([40_000, rnd.randrange(0, 500_000)]),
        )
        cases.append([amount, r_in, r_out, trade, creator, protocol, fund, rnd.random() < 0.5])
    answers = run(
        "raydium_oracle.js",
        {"cpmm_swaps": [[str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in c] for c in cases]},
    )
    for (amount, r_in, r_out, trade, creator, protocol, fund, on_input), theirs in zip(
        cases, answers["cpmm_swaps"], strict=True
    ):
        config = CpmmConfig(trade, protocol, fund, creator)
        try:
            ours = cpmm_out(amount, r_in, r_out, config, creator, on_input)
        except QuoteError:
            # The SDK computes it anyway; the program refuses (fees above the input, or the pool drained).
            assert int(theirs[0]) <= 0 or int(theirs[0]) >= r_out, (amount, r_in, r_out)
            continue
        got = [ours.amount_out, ours.trade_fee, ours.protocol_fee, ours.fund_fee, ours.creator_fee]
        assert got == [int(t) for t in theirs], (amount, r_in, r_out, trade, creator, on_input)


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 2**32))
def test_amm_v4_quotes_equal_the_sdk(seed: int) -> None:
    rnd = random.Random(seed)
    # The SDK applies mainnet's 25/10000 swap fee: every AMM v4 pool has it.
    cases = []
    for _ in range(500):
        base, quote = rnd.randrange(1, 10 ** rnd.randrange(3, 19)), rnd.randrange(1, 10 ** rnd.randrange(3, 19))
        cases.append([rnd.randrange(1, 10 ** rnd.randrange(1, 19)), base, quote, rnd.random() < 0.5])
    answers = run("raydium_oracle.js", {"amm_v4_swaps": [[str(a), str(b), str(q), d] for a, b, q, d in cases]})
    for (amount, base, quote, base_in), (out, fee) in zip(cases, answers["amm_v4_swaps"], strict=True):
        r_in, r_out = (base, quote) if base_in else (quote, base)
        try:
            got = amm_v4_out(amount, r_in, r_out, 25, 10_000)
        except QuoteError:
            assert int(out) <= 0 or int(out) >= r_out
            continue
        assert got == (int(out), int(fee)), (amount, base, quote, base_in)


def _keyed(ix) -> dict:
    return {
        "program": str(ix.program_id),
        "data": bytes(ix.data).hex(),
        "keys": [[str(m.pubkey), m.is_signer, m.is_writable] for m in ix.accounts],
    }


def test_swap_instructions_equal_the_sdks_builders() -> None:
    """Our CPMM swap_base_input and AMM v4 SwapBaseInV2 instructions, byte for byte and account for account."""
    rnd = random.Random(11)
    cpmm_cases, amm_cases, ours_cpmm, ours_amm = [], [], [], []
    for _ in range(20):
        state = decode_cpmm_pool(
            bytes(8) + b"".join(bytes(Pubkey.from_string(key())) for _ in range(10)) + bytes(CPMM_POOL_SIZE - 328)
        )
        pool, owner, source, dest = (Pubkey.from_string(key()) for _ in range(4))
        zero_for_one = rnd.random() < 0.5
        amount, min_out = rnd.randrange(U64), rnd.randrange(U64)
        ours_cpmm.append(_keyed(cpmm_swap_base_input(pool, state, owner, source, dest, zero_for_one, amount, min_out)))
        ins = (state.vault_a, state.vault_b, state.mint_program_a, state.mint_program_b, state.mint_a, state.mint_b)
        vin, vout, pin, pout, min_, mout = ins if zero_for_one else (ins[1], ins[0], ins[3], ins[2], ins[5], ins[4])
        keys = [RAYDIUM_CPMM, owner, cpmm_authority(), state.config, pool, source, dest, vin, vout, pin, pout]
        keys += [min_, mout, state.observation]
        cpmm_cases.append({"keys": [str(k) for k in keys], "amountIn": str(amount), "minOut": str(min_out)})
        amm_state = decode_amm_v4(
            bytes(336) + b"".join(bytes(Pubkey.from_string(key())) for _ in range(12)) + bytes(32)
        )
        ours_amm.append(_keyed(amm_v4_swap_base_in(pool, amm_state, owner, source, dest, amount, min_out)))
        keys = [RAYDIUM_AMM_V4, pool, amm_v4_authority(), amm_state.base_vault, amm_state.quote_vault, source, dest]
        amm_cases.append({"keys": [str(k) for k in [*keys, owner]], "amountIn": str(amount), "minOut": str(min_out)})
    theirs = run("raydium_oracle.js", {"cpmm_ix": cpmm_cases, "amm_v4_ix": amm_cases})
    assert theirs["authorities"] == {"cpmm": str(cpmm_authority()), "amm_v4": str(amm_v4_authority())}
    assert ours_cpmm == theirs["cpmm_ix"]
    assert ours_amm == theirs["amm_v4_ix"]
