"""Meteora DLMM, decoded and quoted by the agent, against Meteora's SDK to the lamport.

Random pairs (bin steps 1 to 100, bins priced (1 + step/1e4)^id in Q64.64, liquidity in up to five bin
arrays around the active bin with empty arrays between, volatility state at random ages past the filter
and decay periods, variable fees on or off and over the cap, fee on the input or on token Y, protocol
shares) are written by the test at our offsets; the SDK's own Anchor coder decodes them (every field we
rely on read back equal), and `DLMM.swapQuote` over the same bin arrays at the same clock must equal our
quote in input taken, output, fee and protocol fee, or both refuse. The program itself cannot run here.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from mevagent.solana.cycles import Leg
from mevagent.solana.dlmm import (
    BINS_PER_ARRAY,
    METEORA_DLMM,
    DlmmPool,
    bin_array_address,
)
from mevagent.solana.executor import dlmm_venue
from mevagent.solana.layouts import TOKEN_PROGRAM, AccountData
from mevagent.solana.raydium import QuoteError
from mevagent.solana.swaps import dlmm_swap2
from testbed.solana.world import dlmm_bin_array_data as bin_array_data
from testbed.solana.world import dlmm_lb_pair_data as lb_pair_data
from testbed.solana.world import mint_data, spl_owned

from .oracles import need, run

pytestmark = pytest.mark.usefixtures("meteora_sdk")


@pytest.fixture(scope="module")
def meteora_sdk() -> None:
    need("@meteora-ag/dlmm")


def key() -> Pubkey:
    return Pubkey.from_bytes(os.urandom(32))


def random_pair(rnd: random.Random) -> tuple[dict, DlmmPool, dict]:
    bin_step = rnd.choice((1, 5, 10, 25, 80, 100))
    active = rnd.randrange(-300_000 // bin_step, 300_000 // bin_step)
    here = active // BINS_PER_ARRAY
    marked = {here} | {here + rnd.randrange(-4, 5) for _ in range(rnd.randrange(0, 5))}
    marked = {i for i in marked if -512 <= i < 512}
    scale = rnd.choice((10**6, 10**9, 10**12))
    now = 1_700_000_000
    f = {
        "base_factor": rnd.choice((5_000, 8_000, 10_000, 20_000)),
        "filter_period": 30,
        "decay_period": 600,
        "reduction_factor": 5_000,
        "variable_fee_control": rnd.choice((0, 7_500, 40_000, 2_000_000)),
        "max_va": rnd.choice((150_000, 350_000)),
        "protocol_share": rnd.choice((0, 500, 2_000)),
        "power": rnd.choice((0, 0, 1)),
        "function_type": rnd.choice((0, 1, 2)),
        "mode": rnd.choice((0, 1)),
        "va": rnd.randrange(0, 150_000),
        "vr": rnd.randrange(0, 100_000),
        "ir": active + rnd.randrange(-20, 21),
        "last_update": now - rnd.choice((0, 10, 100, 1_000)),
        "active_id": active,
        "bin_step": bin_step,
        "mint_x": key(),
        "mint_y": key(),
        "reserve_x": key(),
        "reserve_y": key(),
        "bitmap": sum(1 << (i + 512) for i in marked),
    }
    address = key()
    arrays = {}
    for index in marked:
        bins = []
        for i in range(BINS_PER_ARRAY):
            bid = index * BINS_PER_ARRAY + i
            price = int((1 + bin_step / 10_000) ** bid * 2**64)
            x = rnd.randrange(scale) if bid >= active and rnd.random() < 0.8 else 0
            y = rnd.randrange(scale) if bid <= active and rnd.random() < 0.8 else 0
            bins.append((x, y, max(price, 1)))
        arrays[index] = bin_array_data(address, index, bins)
    pool = DlmmPool(address=address, program=METEORA_DLMM, clock=lambda: now)
    pool.update(address, AccountData(lb_pair_data(f), pool.program))
    swaps = [
        [str(min(2**64 - 1, int(10 ** rnd.uniform(0, len(str(scale)) + 2)))), rnd.random() < 0.5] for _ in range(12)
    ]
    request = {
        "address": str(address),
        "lbPair": lb_pair_data(f).hex(),
        "indexes": list(pool.window.values()),
        "binArrays": [arrays[i].hex() for i in pool.window.values()],
        "now": now,
        "swaps": swaps,
    }
    for k, i in pool.window.items():
        pool.update(k, AccountData(arrays[i], pool.program))
    for mint in pool.fee_mints():  # SPL mints: a Token-2022 transfer fee is refused (not modelled for DLMM)
        pool.update(mint, spl_owned(mint_data()))
    return f, pool, request


@settings(max_examples=2, deadline=None, phases=[Phase.generate])  # a seed does not shrink: no re-runs
@given(st.integers(0, 2**32))
def test_dlmm_quotes_equal_the_sdk(seed: int) -> None:
    rnd = random.Random(seed)
    pairs = [random_pair(rnd) for _ in range(40)]
    answer = run("dlmm_oracle.js", {"pools": [r for _, _, r in pairs]})
    compared = multi = refused = 0
    for (f, pool, request), got in zip(pairs, answer["pools"], strict=True):
        d = got["decoded"]
        # Layout: what we wrote at our offsets is what the SDK's Anchor coder reads.
        assert [d["activeId"], d["binStep"], d["baseFactor"], d["variableFeeControl"], d["protocolShare"]] == [
            f["active_id"],
            f["bin_step"],
            f["base_factor"],
            f["variable_fee_control"],
            f["protocol_share"],
        ]
        assert [d["collectFeeMode"], d["functionType"], d["volatilityAccumulator"]] == [
            f["mode"],
            f["function_type"],
            f["va"],
        ]
        assert int(d["lastUpdateTimestamp"]) == f["last_update"]
        assert d["tokenXMint"] == str(f["mint_x"]) and d["reserveY"] == str(f["reserve_y"])
        assert sum(int(w) << (64 * i) for i, w in enumerate(d["bitmap"])) == f["bitmap"]
        assert (
            got["pdas"]
            == [str(k) for k in pool.window]
            == [str(bin_array_address(pool.address, i)) for i in pool.window.values()]
        )
        for (index, pair, first_bins), i in zip(d["bins"], pool.window.values(), strict=True):
            ours = pool.bin_arrays[i]
            assert int(index) == ours.index and pair == str(pool.address)
            expected = [[b.amount_x, b.amount_y, b.price] for b in ours.bins[:3]]
            assert [[int(v) for v in b] for b in first_bins] == expected
        assert pool.ready()
        for (amount_text, swap_for_y), oracle in zip(request["swaps"], got["swaps"], strict=True):
            amount = int(amount_text)
            if oracle[0] == "error":
                with pytest.raises(QuoteError):
                    pool.swap(amount, swap_for_y)
                refused += 1
                continue
            ours_swap = pool.swap(amount, swap_for_y)
            assert [ours_swap.amount_in, ours_swap.amount_out, ours_swap.fee, ours_swap.protocol_fee] == [
                int(x) for x in oracle
            ], (f, amount, swap_for_y)
            compared += 1
            multi += ours_swap.bins > 1
    # Coverage, not luck: over 150 seeds the fewest were 191 compared, 20 crossing bins and 147 refused (mean
    # 267, 37, 213); 25 crossing bins failed one seed in 20, so the floor sits 3.5 standard deviations down.
    assert compared >= 150 and multi >= 10 and refused >= 40, (compared, multi, refused)


def test_swap2_instruction_equals_the_sdks_builder() -> None:
    """Our DLMM `swap2` (accounts, roles, absent optional accounts, the event authority, data, the bin
    arrays the quote walks as remaining accounts) equals Anchor's build from Meteora's IDL byte for byte."""
    rnd = random.Random(17)
    cases, ours = [], []
    for i in range(12):
        _, pool, _ = random_pair(rnd)
        state = pool.state
        assert state is not None
        swap_for_y = i % 2 == 0
        arrays = pool.swap_array_addresses(swap_for_y)
        owner, source, destination = key(), key(), key()
        amount, min_out = rnd.randrange(2**64), rnd.randrange(2**64)
        ix = dlmm_swap2(pool.address, state, owner, source, destination, arrays, amount, min_out)
        ours.append(
            {
                "program": str(ix.program_id),
                "data": bytes(ix.data).hex(),
                "keys": [[str(m.pubkey), m.is_signer, m.is_writable] for m in ix.accounts],
            }
        )
        cases.append(
            {
                "pair": str(pool.address),
                "reserveX": str(state.reserve_x),
                "reserveY": str(state.reserve_y),
                "mintX": str(state.token_x_mint),
                "mintY": str(state.token_y_mint),
                "tokenProgram": str(TOKEN_PROGRAM),
                "owner": str(owner),
                "source": str(source),
                "destination": str(destination),
                "oracle": str(state.oracle),
                "binArrays": [str(a) for a in arrays],
                "amount": str(amount),
                "minOut": str(min_out),
            }
        )
    assert ours == run("dlmm_oracle.js", {"swap2": cases})["swap2"]


def test_executor_venue_builds_swap2_over_the_quoted_arrays() -> None:
    _, pool, _ = random_pair(random.Random(19))
    state = pool.state
    assert state is not None
    ours_x, ours_y, owner = key(), key(), key()
    accounts = {state.token_x_mint: ours_x, state.token_y_mint: ours_y}
    for swap_for_y in (True, False):
        leg = Leg(pool, swap_for_y, *((state.token_x_mint, state.token_y_mint)[:: 1 if swap_for_y else -1]))
        ixs, signers = dlmm_venue(leg, 1_000, 900, owner, accounts)
        source, destination = (ours_x, ours_y) if swap_for_y else (ours_y, ours_x)
        arrays = pool.swap_array_addresses(swap_for_y)
        assert signers == [] and arrays
        assert ixs == [dlmm_swap2(pool.address, state, owner, source, destination, arrays, 1_000, 900)]
