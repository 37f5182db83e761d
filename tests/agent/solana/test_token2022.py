"""Token-2022 transfer fees: the mint layout, the fee by epoch, and Raydium CPMM and Orca Whirlpool quotes with
transfer fees, against the published libraries to the unit; then a cycle through both pools executed in
LiteSVM over a real Token-2022 mint with the extension, each transfer withholding exactly the computed fee,
before and after the epoch switch to a newer fee.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import struct

import pytest
from solana.rpc.async_api import AsyncClient
from solders.account import Account
from solders.clock import Clock
from solders.epoch_schedule import EpochSchedule
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import TransactionMetadata
from spl.token import instructions as spl
from spl.token import models

from mevagent.api.readiness import StateFreshness
from mevagent.core import PoolUpdate
from mevagent.solana.book import PoolBook
from mevagent.solana.clmm import RAYDIUM_CLMM, ClmmPool
from mevagent.solana.clmm import decode_pool as decode_clmm_pool
from mevagent.solana.collector import AccountCollector
from mevagent.solana.config import SolanaChainConfig, SolanaPool
from mevagent.solana.cycles import CycleFinder, CycleSettings, Leg
from mevagent.solana.executor import ExecutorSettings, SolanaExecutor, whirlpool_venue
from mevagent.solana.layouts import RAYDIUM_CPMM, TOKEN_2022, TOKEN_PROGRAM, AccountData
from mevagent.solana.node import SolanaCollector, SolanaNode
from mevagent.solana.raydium import CpmmPool, QuoteError
from mevagent.solana.token2022 import ACCOUNT_SIZE, NO_FEE, EpochInfo, TransferFee, TransferFeeConfig, decode_mint
from mevagent.solana.whirlpool import (
    WHIRLPOOL_PROGRAM,
    WhirlpoolPool,
    decode_whirlpool,
    swap_exact_in,
    tick_array_address,
    tick_array_start,
)
from testbed.solana.standin import RunningStandIn
from testbed.solana.world import (
    SOL,
    cpmm_config_data,
    cpmm_pool_data,
    mint_data,
    put,
    spl_owned,
    svm_account,
    t22_owned,
    tick_array_data,
    token_account_data,
    whirlpool_data,
)

from .oracles import need, run
from .test_clmm_oracle import random_pool as clmm_random_pool
from .test_dlmm_oracle import random_pair as dlmm_random_pair
from .test_whirlpool_oracle import random_pool
from .token2022_world import (
    amount,
    create_fee_mint,
    create_token_account,
    excluded,
    fee_mint_data,
    included,
    mint_to,
    pre_fee_amount,
    send,
    set_transfer_fee,
    transfer_checked,
    withheld,
)

U64 = 2**64 - 1
pytestmark = pytest.mark.usefixtures("packages")


@pytest.fixture(scope="module")
def packages() -> None:
    for package in ("@solana/spl-token", "@raydium-io/raydium-sdk-v2", "@orca-so/whirlpools-core"):
        need(package)


def key() -> Pubkey:
    return Pubkey.from_bytes(os.urandom(32))


def random_fee(rnd: random.Random, epoch: int) -> TransferFee:
    bps = rnd.choice((0, 1, 25, 100, 150, 500, 9_999, 10_000, rnd.randrange(0, 10_001)))
    maximum = rnd.choice((0, 1, 1_000, 10**6, 10**12, U64, rnd.randrange(0, U64)))
    return TransferFee(epoch, maximum, bps)


def random_config(rnd: random.Random) -> TransferFeeConfig:
    older_epoch = rnd.randrange(0, 1_000)
    newer_epoch = older_epoch + rnd.choice((0, 1, 2, rnd.randrange(0, 500)))
    return TransferFeeConfig(None, None, 0, random_fee(rnd, older_epoch), random_fee(rnd, newer_epoch))


def wire(config: TransferFeeConfig) -> list[list[int]]:
    f = lambda x: [x.epoch, str(x.maximum_fee), x.basis_points]  # noqa: E731
    return [f(config.older), f(config.newer)]


def test_mint_layout_equals_spl_token_and_the_program() -> None:
    """Random TransferFeeConfig mints decode here as @solana/spl-token's unpackMint decodes them; a mint the
    real Token-2022 program initialized (then SetTransferFee, built as spl-token builds it) decodes too."""
    rnd = random.Random(11)
    cases, hexes = [], []
    for i in range(200):
        config = random_config(rnd)
        authority = key() if rnd.random() < 0.7 else None
        withdraw = key() if rnd.random() < 0.7 else None
        withheld_amount = rnd.randrange(U64)
        data = fee_mint_data(config.older, config.newer, withheld_amount, authority, withdraw, decimals=i % 10)
        hook = None
        if rnd.random() < 0.2:  # a TransferHook extension after it: the agent refuses such mints
            hook = key()
            data += struct.pack("<HH", 14, 64) + bytes(key()) + bytes(hook)
        cases.append((config, authority, withdraw, withheld_amount, i % 10, hook))
        hexes.append(data.hex())

    # The real program: InitializeTransferFeeConfig + InitializeMint2, then SetTransferFee two epochs out.
    svm, payer, owner = LiteSVM(), Keypair(), Keypair()
    svm.airdrop(payer.pubkey(), 10 * SOL)
    mint = create_fee_mint(svm, payer, owner, 150, 5_000)
    set_transfer_fee(svm, payer, owner, mint, 300, 10**6)
    real = bytes(svm.get_account(mint).data)
    hexes.append(real.hex())
    answer = run(
        "token2022_oracle.js",
        {"mints": hexes, "set_transfer_fee": [[str(mint), str(owner.pubkey()), 300, str(10**6)]]},
    )
    for (config, authority, withdraw, withheld_amount, decimals, hook), got, raw in zip(
        cases, answer["mints"], hexes, strict=False
    ):
        info = decode_mint(bytes.fromhex(raw), TOKEN_2022)
        assert info.program == TOKEN_2022 and info.decimals == got["decimals"] == decimals
        ours = info.transfer_fee
        assert ours is not None and (ours.older, ours.newer) == (config.older, config.newer)
        for side, fee in (("older", config.older), ("newer", config.newer)):
            assert got["config"][side] == [str(fee.epoch), str(fee.maximum_fee), fee.basis_points]
        assert int(got["config"]["withheld"]) == ours.withheld_amount == withheld_amount
        default = str(Pubkey.default())
        assert got["config"]["authority"] == str(ours.config_authority or default) == str(authority or default)
        assert got["config"]["withdraw"] == str(ours.withdraw_authority or default) == str(withdraw or default)
        assert got["hook"] == (None if hook is None else str(hook)) and info.transfer_hook == hook
    real_info = decode_mint(real, TOKEN_2022)
    assert real_info.transfer_fee is not None
    assert real_info.transfer_fee.older == TransferFee(0, 5_000, 150)
    assert real_info.transfer_fee.newer == TransferFee(2, 10**6, 300)  # SetTransferFee: current epoch + 2
    assert answer["mints"][-1]["config"]["newer"] == ["2", str(10**6), 300]
    # Our SetTransferFee instruction is spl-token's createSetTransferFeeInstruction byte for byte.
    assert answer["set_transfer_fee"][0]["data"] == (bytes([26, 5]) + struct.pack("<HQ", 300, 10**6)).hex()
    # An SPL Token mint has no extension; what is neither a mint nor padded right is refused.
    plain = decode_mint(mint_data(), TOKEN_PROGRAM)
    assert plain.transfer_fee is None and plain.program == TOKEN_PROGRAM and plain.fee_at(5) == NO_FEE
    for bad in (b"", mint_data()[:81], mint_data() + b"\x00" * 10):
        with pytest.raises(ValueError):
            decode_mint(bad, TOKEN_PROGRAM)


def test_fee_by_epoch_equals_spl_token_raydium_and_orca() -> None:
    """calculate_fee (ceil, capped) and the epoch switch equal @solana/spl-token's calculateEpochFee, the
    Raydium SDK's getTransferAmountFee and Orca's core, on 3,000 random cases; so does the inverse the
    Whirlpool and DLMM comparisons below put our quotes in the SDKs' terms with (token2022_world)."""
    rnd = random.Random(5)
    cases = []
    for _ in range(3_000):
        config = random_config(rnd)
        epoch = rnd.choice((config.newer.epoch - 1, config.newer.epoch, config.newer.epoch + 1, rnd.randrange(1_500)))
        epoch = max(epoch, 0)
        amount_ = rnd.choice((0, 1, 99, 10_000, rnd.randrange(10**6), rnd.randrange(10**12), rnd.randrange(U64 // 2)))
        cases.append((config, epoch, amount_))
    answer = run("token2022_oracle.js", {"fees": [[wire(c), e, str(a)] for c, e, a in cases]})
    capped = switched = 0
    for (config, epoch, amount_), got in zip(cases, answer["fees"], strict=True):
        fee = config.at(epoch)
        assert fee.fee(amount_) == int(got["spl"]) == int(got["raydium"]), (config, epoch, amount_)
        pre = pre_fee_amount(fee, amount_)
        if amount_ == 0 and fee.basis_points == 10_000:
            # The one corner where the Raydium SDK (amount + maximum) differs from the program (0 for 0).
            assert pre == 0 and int(got["raydium_pre"]) == fee.maximum_fee
        else:
            assert pre == int(got["raydium_pre"]), (config, epoch, amount_)
        if got["orca_applied"] != "error":
            assert excluded(fee, amount_) == int(got["orca_applied"])
        if got["orca_reversed"] != "error":
            assert pre == int(got["orca_reversed"])
        else:
            assert pre > U64  # Orca's u64 overflows where the program's checked math would too
        capped += fee.basis_points and fee.fee(amount_) == fee.maximum_fee < -(-amount_ * fee.basis_points // 10_000)
        switched += config.older != config.newer and epoch >= config.newer.epoch
        if pre <= U64 and fee.basis_points < 10_000:  # what pre_fee_amount sends delivers at least `amount`
            assert excluded(fee, pre) >= amount_
    assert capped >= 300 and switched >= 800, (capped, switched)


def cpmm_bytes(rnd: random.Random, mint_a: Pubkey, mint_b: Pubkey, t22: tuple[bool, bool]):
    config, va, vb = key(), key(), key()
    pool = bytearray(cpmm_pool_data(config, va, vb, mint_a, mint_b))
    for offset, is_t22 in ((232, t22[0]), (264, t22[1])):
        pool[offset : offset + 32] = bytes(TOKEN_2022 if is_t22 else TOKEN_PROGRAM)
    pool[389], pool[390] = rnd.choice((0, 1, 2)), rnd.random() < 0.5  # creator fee on, enabled
    conf = bytearray(cpmm_config_data(rnd.choice((0, 100, 2_500, 10_000, 100_000))))
    struct.pack_into("<QQ", conf, 20, rnd.randrange(0, 250_000), rnd.randrange(0, 250_000))
    struct.pack_into("<Q", conf, 108, rnd.choice((0, 500, 5_000)))
    return config, va, vb, bytes(pool), bytes(conf)


def test_cpmm_with_transfer_fees_equals_raydium() -> None:
    """CpmmPool, fed a pool, its config, vaults and Token-2022 mints, quotes as raydium-cp-swap composes
    the SDK's CurveCalculator with getTransferAmountFee on either side, at the pool's epoch."""
    rnd = random.Random(3)
    pools, requests = [], []
    for _ in range(300):
        mint_a, mint_b = key(), key()
        t22 = (rnd.random() < 0.7, rnd.random() < 0.7)
        configs = tuple(random_config(rnd) if on else None for on in t22)
        config, va, vb, pool_data, conf = cpmm_bytes(rnd, mint_a, mint_b, t22)
        pool = CpmmPool(address=key(), program=RAYDIUM_CPMM)
        pool.update(pool.address, AccountData(pool_data, pool.program))
        assert pool.fee_mints() == tuple(m for m, on in zip((mint_a, mint_b), t22, strict=True) if on)
        pool.update(config, AccountData(conf, pool.program))
        reserves = (rnd.randrange(10**3, 10**15), rnd.randrange(10**3, 10**15))
        pool.update(va, spl_owned(struct.pack("<32s32sQ", bytes(mint_a), bytes(key()), reserves[0]) + bytes(93)))
        pool.update(vb, spl_owned(struct.pack("<32s32sQ", bytes(mint_b), bytes(key()), reserves[1]) + bytes(93)))
        assert pool.ready() == (not any(t22))
        for mint, c in zip((mint_a, mint_b), configs, strict=True):
            if c is not None:
                pool.update(mint, t22_owned(fee_mint_data(c.older, c.newer)))
        assert pool.ready()
        epoch = rnd.choice([c.newer.epoch for c in configs if c] + [rnd.randrange(1_500)])
        pool.set_epoch(epoch)
        s, cf = pool.state, pool.config
        assert s is not None and cf is not None
        for _ in range(8):
            z2o = rnd.random() < 0.5
            amount_in = min(U64, int(10 ** rnd.uniform(0, 16)))
            r_in, r_out = reserves if z2o else reserves[::-1]
            c_in, c_out = configs if z2o else configs[::-1]
            rate = cf.creator_fee_rate if s.enable_creator_fee else 0
            requests.append([str(amount_in), str(r_in), str(r_out), cf.trade_fee_rate, rate, cf.protocol_fee_rate,
                             cf.fund_fee_rate, pool.creator_fee_on_input(z2o), c_in and wire(c_in),
                             c_out and wire(c_out), epoch])  # fmt: skip
            pools.append((pool, amount_in, z2o))
    answer = run("token2022_oracle.js", {"cpmm": requests})
    compared = with_fees = refused = 0
    for (pool, amount_in, z2o), got in zip(pools, answer["cpmm"], strict=True):
        if got[0] == "error":
            with pytest.raises(QuoteError):
                pool.quote(amount_in, z2o)
            refused += 1
            continue
        fee_in, out, fee_out, received = (int(x) for x in got)
        if out >= (pool.reserves()[1] if z2o else pool.reserves()[0]) or received <= 0:
            with pytest.raises(QuoteError):  # the program refuses a drained vault or nothing received
                pool.quote(amount_in, z2o)
            refused += 1
            continue
        swap = pool.transfer_quote(amount_in, z2o)
        assert (swap.fee_in, swap.pool_out, swap.fee_out, swap.received) == (fee_in, out, fee_out, received)
        assert pool.quote(amount_in, z2o) == received
        compared += 1
        with_fees += fee_in > 0 and fee_out > 0
    assert compared >= 1_500 and with_fees >= 300 and refused >= 20, (compared, with_fees, refused)
    # A mint with a transfer hook: its extra accounts are not passed, so the pool is not quoted.
    pool = next(p for p, _, _ in pools if p.fee_mints())
    mint = pool.fee_mints()[0]
    pool.update(
        mint, t22_owned(fee_mint_data(NO_FEE, NO_FEE) + struct.pack("<HH", 14, 64) + bytes(key()) + bytes(key()))
    )
    with pytest.raises(QuoteError, match="transfer hook"):
        pool.quote(10**6, mint == pool.mints[1])


def test_whirlpool_with_transfer_fees_equals_orca_wasm() -> None:
    """WhirlpoolPool with Token-2022 mints on random pools equals swapQuoteByInputToken given the fee in
    force at the pool's epoch: input taken (Orca's reverse of what the swap used), output received, fee."""
    rnd = random.Random(21)
    pools, setups = [], []
    for _ in range(40):
        fields = random_pool(rnd)
        configs = tuple(random_config(rnd) if rnd.random() < 0.75 else None for _ in range(2))
        epoch = rnd.choice([c.newer.epoch for c in configs if c] + [rnd.randrange(1_500)])
        in_force = [None if c is None else c.at(epoch) for c in configs]
        fields["transferFeeA"], fields["transferFeeB"] = (
            None if f is None else [f.basis_points, str(f.maximum_fee)] for f in in_force
        )
        pools.append(fields)
        setups.append((configs, epoch))
    answer = run("whirlpool_oracle.js", {"pools": pools})
    compared = fees_both = refused = 0
    for fields, got, (configs, epoch) in zip(pools, answer["pools"], setups, strict=True):
        address = Pubkey.from_string(fields["address"])
        data = bytes.fromhex(got["whirlpool"])
        state = decode_whirlpool(data)
        pool = WhirlpoolPool(address=address, program=WHIRLPOOL_PROGRAM)
        pool.update(address, AccountData(data, pool.program))
        for pda, hex_data in zip(pool.window, got["arrays"], strict=True):
            if hex_data is None:
                pool.absent(pda)
            else:
                pool.update(pda, AccountData(bytes.fromhex(hex_data), pool.program))
        for mint, c in zip(pool.fee_mints(), configs, strict=True):
            assert not pool.ready()
            pool.update(mint, spl_owned(mint_data()) if c is None else t22_owned(fee_mint_data(c.older, c.newer)))
        assert pool.ready()
        pool.set_epoch(epoch)
        sequence = pool.sequence()
        for (amount_text, a_to_b), oracle in zip(fields["swaps"], got["swaps"], strict=True):
            amount_in = int(amount_text)
            fee_in = pool.transfer_fee(state.token_mint_a if a_to_b else state.token_mint_b)
            fee_out = pool.transfer_fee(state.token_mint_b if a_to_b else state.token_mint_a)
            if oracle[0] == "error":
                with pytest.raises(QuoteError):
                    pool.quote(amount_in, a_to_b)
                refused += 1
                continue
            ours = swap_exact_in(state, sequence, excluded(fee_in, amount_in), a_to_b)
            wanted = [pre_fee_amount(fee_in, ours.amount_in), excluded(fee_out, ours.amount_out), ours.trade_fee]
            assert wanted == [int(x) for x in oracle], (fields, amount_in, a_to_b)
            if ours.amount_in == excluded(fee_in, amount_in):
                swap = pool.transfer_quote(amount_in, a_to_b)
                assert (swap.fee_in, swap.pool_out) == (fee_in.fee(amount_in), ours.amount_out)
                assert pool.quote(amount_in, a_to_b) == int(oracle[1])
                compared += 1
                fees_both += swap.fee_in > 0 and swap.fee_out > 0
            else:
                with pytest.raises(QuoteError):
                    pool.quote(amount_in, a_to_b)
                refused += 1
    assert compared >= 120 and fees_both >= 30 and refused >= 50, (compared, fees_both, refused)


def test_clmm_with_transfer_fees_equals_raydium() -> None:
    """ClmmPool with Token-2022 mints on random pools (the CLMM oracle test's generator) equals the SDK's
    swapInternal between its two getTransferAmountFee, as swap_v2 composes them: input fee, vault out,
    trade fee, output fee; or both refuse (partial fills included: swap_v2 without a price limit requires
    the whole amount)."""
    rnd = random.Random(41)
    pools, setups = [], []
    for _ in range(30):
        fields = clmm_random_pool(rnd)
        configs = tuple(random_config(rnd) if rnd.random() < 0.75 else None for _ in range(2))
        epoch = rnd.choice([c.newer.epoch for c in configs if c] + [rnd.randrange(1_500)])
        fields["transferFees"] = {"configs": [c and wire(c) for c in configs], "epoch": epoch}
        pools.append(fields)
        setups.append((configs, epoch))
    answer = run("clmm_oracle.js", {"pools": pools})
    compared = fees_both = refused = 0
    for fields, got, (configs, epoch) in zip(pools, answer["pools"], setups, strict=True):
        address = Pubkey.from_string(fields["address"])
        data = bytes.fromhex(got["pool"])
        state = decode_clmm_pool(data)
        pool = ClmmPool(address=address, program=RAYDIUM_CLMM)
        pool.update(address, AccountData(data, pool.program))
        pool.update(state.config, AccountData(bytes.fromhex(got["config"]), pool.program))
        by_start = {a["start"]: h for a, h in zip(fields["arrays"], got["arrays"], strict=True)}
        for address_of, start in pool.window.items():
            pool.update(address_of, AccountData(bytes.fromhex(by_start[start]), pool.program))
        for mint, c in zip(pool.fee_mints(), configs, strict=True):
            pool.update(mint, spl_owned(mint_data()) if c is None else t22_owned(fee_mint_data(c.older, c.newer)))
        assert pool.ready()
        pool.set_epoch(epoch)
        for (amount_text, zero_for_one, _), oracle in zip(fields["swaps"], got["swaps"], strict=True):
            amount_in = int(amount_text)
            # swap_v2 refuses a partial fill, and a swap with nothing in or out (the fee took the input).
            if oracle[0] == "error" or oracle[0] is False or oracle[1] == "0":
                with pytest.raises(QuoteError):
                    pool.quote(amount_in, zero_for_one)
                refused += 1
                continue
            try:
                swap, inner = pool.transfer_swap(amount_in, zero_for_one)
            except QuoteError as e:  # the SDK reports a swap stopped at the price bound as all traded
                assert "price limit" in str(e), (fields, amount_in, zero_for_one, oracle)
                refused += 1
                continue
            _, out, trade_fee, remaining, fee_in, fee_out = oracle
            wanted = [int(x) for x in (fee_in, out, trade_fee, fee_out)]
            assert [swap.fee_in, swap.pool_out, inner.fee, swap.fee_out] == wanted, (fields, amount_in, oracle)
            assert remaining == "0" and pool.quote(amount_in, zero_for_one) == swap.pool_out - swap.fee_out
            compared += 1
            fees_both += swap.fee_in > 0 and swap.fee_out > 0
    assert compared >= 100 and fees_both >= 20 and refused >= 30, (compared, fees_both, refused)


def test_dlmm_with_transfer_fees_equals_meteora() -> None:
    """DlmmPool with Token-2022 mints on random pairs (the DLMM oracle test's generator) equals Meteora's
    swapQuote given the same mints (unpacked by spl-token) and epoch: input consumed (the SDK's included
    amount of what the walk used, at most the amount), output received, fee and protocol fee."""
    rnd = random.Random(51)
    compared = fees_both = refused = 0
    cases = []
    for _ in range(30):
        _, pool, request = dlmm_random_pair(rnd)
        configs = tuple(random_config(rnd) if rnd.random() < 0.75 else None for _ in range(2))
        epoch = rnd.choice([c.newer.epoch for c in configs if c] + [rnd.randrange(1_500)])
        for mint, c, side in zip(pool.fee_mints(), configs, ("mintX", "mintY"), strict=True):
            data = mint_data() if c is None else fee_mint_data(c.older, c.newer)
            pool.update(mint, AccountData(data, TOKEN_PROGRAM if c is None else TOKEN_2022))
            request[side] = data.hex() if c is not None else None
        request["epoch"] = epoch
        pool.set_epoch(epoch)
        cases.append((pool, request))
    answer = run("dlmm_oracle.js", {"pools": [r for _, r in cases]})
    for (pool, request), got in zip(cases, answer["pools"], strict=True):
        s = pool.state
        assert s is not None
        for (amount_text, swap_for_y), oracle in zip(request["swaps"], got["swaps"], strict=True):
            amount_in = int(amount_text)
            if oracle[0] == "error":
                with pytest.raises(QuoteError):
                    pool.quote(amount_in, swap_for_y)
                refused += 1
                continue
            swap, inner = pool.transfer_swap(amount_in, swap_for_y)
            fee_in = pool.transfer_fee(s.token_x_mint if swap_for_y else s.token_y_mint)
            consumed = min(amount_in, included(fee_in, inner.amount_in))
            assert inner.amount_in == amount_in - swap.fee_in  # the walk used all that arrived
            assert [consumed, swap.received, inner.fee, inner.protocol_fee] == [int(x) for x in oracle], (
                request["address"], amount_in, swap_for_y, oracle)  # fmt: skip
            compared += 1
            fees_both += swap.fee_in > 0 and swap.fee_out > 0
    assert compared >= 120 and fees_both >= 20 and refused >= 30, (compared, fees_both, refused)


# --- our own transactions in LiteSVM, over a real Token-2022 mint -------------------------------------


def settle_with_transfer_checked(authority: Keypair, mints: dict[Pubkey, tuple[Pubkey, int]], vaults):
    """The test venue (no DEX program runs here): the leg's quote as two TransferChecked, ours into the input
    vault and the output vault's gross out to us; the Token-2022 program withholds the fees itself."""

    def venue(leg: Leg, amount_in: int, min_out: int, owner: Pubkey, accounts):
        swap = leg.pool.transfer_quote(amount_in, leg.zero_for_one)
        vault_in, vault_out = vaults[(leg.pool.address, leg.mint_in)], vaults[(leg.pool.address, leg.mint_out)]
        (program_in, dec_in), (program_out, dec_out) = mints[leg.mint_in], mints[leg.mint_out]
        paid = swap.pool_out if swap.received >= min_out else U64  # the program would refuse below min_out
        return [
            transfer_checked(program_in, accounts[leg.mint_in], leg.mint_in, vault_in, owner, amount_in, dec_in),
            transfer_checked(
                program_out, vault_out, leg.mint_out, accounts[leg.mint_out], authority.pubkey(), paid, dec_out
            ),
        ], [authority]

    return venue


def test_cycle_through_token2022_pools_in_litesvm_pays_exactly_the_computed_fees() -> None:
    svm, payer, authority = LiteSVM(), Keypair(), Keypair()
    svm.airdrop(payer.pubkey(), 100 * SOL)
    svm.airdrop(authority.pubkey(), SOL)
    base = Keypair()
    send(svm, payer, [
        create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=base.pubkey(),
                                           lamports=svm.minimum_balance_for_rent_exemption(82), space=82,
                                           owner=TOKEN_PROGRAM)),
        spl.initialize_mint2(models.InitializeMint2Params(program_id=TOKEN_PROGRAM, mint=base.pubkey(), decimals=9,
                                                         mint_authority=authority.pubkey())),
    ], base)  # fmt: skip
    # Token X: 1.5% with a 2-unit-of-6-decimals cap, so the larger transfers are capped.
    x = create_fee_mint(svm, payer, authority, 150, 2_000_000)
    mints = {base.pubkey(): (TOKEN_PROGRAM, 9), x: (TOKEN_2022, 6)}
    ours = {m: create_token_account(svm, payer, m, payer.pubkey(), p) for m, (p, _) in mints.items()}
    mint_to(svm, payer, authority, base.pubkey(), ours[base.pubkey()], 1_000 * SOL, TOKEN_PROGRAM)

    # A CPMM pool (base, X) at 150 X per base and a Whirlpool (base, X) nearer 140: a gap to close.
    vaults: dict[tuple[Pubkey, Pubkey], Pubkey] = {}
    cpmm, config, whirl = key(), key(), key()
    for pool, reserve_base, reserve_x in ((cpmm, 100 * SOL, 15_000 * 10**6), (whirl, 10_000 * SOL, 10**13)):
        for mint, reserve in ((base.pubkey(), reserve_base), (x, reserve_x)):
            vault = create_token_account(svm, payer, mint, authority.pubkey(), mints[mint][0])
            mint_to(svm, payer, authority, mint, vault, reserve, mints[mint][0])
            vaults[(pool, mint)] = vault
    pool_bytes = bytearray(cpmm_pool_data(config, vaults[(cpmm, base.pubkey())], vaults[(cpmm, x)], base.pubkey(), x))
    pool_bytes[264:296], pool_bytes[332] = bytes(TOKEN_2022), 6

    def put(address: Pubkey, data: bytes, owner: Pubkey) -> None:
        svm.set_account(address, Account(10 * SOL // 100, data, owner, False, 0))

    put(cpmm, bytes(pool_bytes), RAYDIUM_CPMM)
    put(config, cpmm_config_data(2_500), RAYDIUM_CPMM)
    tick = -19_800  # ~0.138 X units per base unit: 138 X per base (decimals 9 and 6)
    liquidity = 10**13
    put(whirl, whirlpool_data(base.pubkey(), vaults[(whirl, base.pubkey())], x, vaults[(whirl, x)], tick, liquidity),
        WHIRLPOOL_PROGRAM)  # fmt: skip
    start = tick_array_start(tick, 64)
    put(tick_array_address(whirl, start), tick_array_data(whirl, start, 64, {}), WHIRLPOOL_PROGRAM)

    book = PoolBook()
    book.add("raydium_cpmm", cpmm)
    book.add("orca_whirlpool", whirl)

    def read_all() -> None:
        seen: set[Pubkey] = set()
        while set(book.accounts()) - seen:
            todo = [k for k in book.accounts() if k not in seen]
            seen |= set(todo)
            book.apply_many([(k, svm_account(svm, k)) for k in todo])

    read_all()
    assert x in book.accounts() and base.pubkey() in book.accounts()  # the Whirlpool reads both mints
    assert book.pools[cpmm].fee_mints() == (x,)  # the CPMM pool only its Token-2022 one
    assert all(p.ready() for p in book.pools.values())
    assert not book.set_epoch(svm.get_clock().epoch)  # older == newer: nothing changes with the epoch
    # The executor's own Whirlpool venue names each mint's owner: Token-2022 for X, SPL Token for base.
    ixs, _ = whirlpool_venue(Leg(book.pools[whirl], True, base.pubkey(), x), 10, 1, payer.pubkey(), ours)
    assert [m.pubkey for m in ixs[0].accounts[:2]] == [TOKEN_PROGRAM, TOKEN_2022]

    finder = CycleFinder(CycleSettings(base_mint=str(base.pubkey()), max_input=20 * SOL,
                                       compute_unit_price_micro_lamports=1))  # fmt: skip
    finder.rebuild(book.pools.values())
    tip = key()
    svm.airdrop(tip, SOL)
    executor = SolanaExecutor(
        None,  # type: ignore[arg-type]
        [],
        payer,
        ours,
        None,  # type: ignore[arg-type]
        ExecutorSettings(sol_usd=1.0),
        [tip],
        venues={k: settle_with_transfer_checked(authority, mints, vaults) for k in ("raydium_cpmm", "orca_whirlpool")},
    )

    def run_best(fee: TransferFee) -> None:
        found = finder.evaluate(list(book.pools.values()), slot=1)
        assert found, "no profitable cycle"
        best = found[0]
        first, second = best.cycle.legs
        assert first.mint_out == x == second.mint_in
        q1 = first.pool.transfer_quote(best.amount_in, first.zero_for_one)
        q2 = second.pool.transfer_quote(best.amounts[0], second.zero_for_one)
        assert (q1.received, q2.received) == best.amounts
        # The X legs pay the fee in force: on what the first pool sends us, on what we send the second.
        assert q1.fee_out == fee.fee(q1.pool_out) > 0 and q2.fee_in == fee.fee(best.amounts[0]) > 0
        assert q1.fee_in == q2.fee_out == 0  # base is an SPL Token mint
        v_in = vaults[(second.pool.address, x)]
        v_out = vaults[(first.pool.address, x)]
        before = {a: amount(svm, a) for a in (ours[base.pubkey()], ours[x], v_in, v_out)}
        held = {a: withheld(svm, a) for a in (ours[x], v_in)}
        built = executor.build(best, svm.latest_blockhash(), 400_000, 1)
        result = svm.send_transaction(built.tx)
        assert isinstance(result, TransactionMetadata), result
        svm.expire_blockhash()
        assert amount(svm, ours[base.pubkey()]) - before[ours[base.pubkey()]] == best.amount_out - best.amount_in
        assert amount(svm, v_out) == before[v_out] - q1.pool_out
        assert withheld(svm, ours[x]) - held[ours[x]] == q1.fee_out  # withheld in the receiving account
        assert amount(svm, ours[x]) == before[ours[x]]  # we received q1.received and sent exactly that on
        assert amount(svm, v_in) - before[v_in] == best.amounts[0] - q2.fee_in
        assert withheld(svm, v_in) - held[v_in] == q2.fee_in
        read_all()

    first_fee = TransferFee(0, 2_000_000, 150)
    run_best(first_fee)

    # SetTransferFee: 4% uncapped from two epochs on. The book reads the mint; the fee stays until the
    # epoch comes, then every pool holding the mint is re-quoted at the new fee.
    set_transfer_fee(svm, payer, authority, x, 400, U64)
    read_all()
    epoch = svm.get_clock().epoch
    assert book.pools[whirl].transfer_fee(x) == first_fee
    assert not book.set_epoch(epoch + 1)
    c = svm.get_clock()
    svm.set_clock(Clock(c.slot, c.epoch_start_timestamp, epoch + 2, epoch + 3, c.unix_timestamp))
    changed = book.set_epoch(epoch + 2)
    assert {p.address for p in changed} == {cpmm, whirl}
    assert book.pools[cpmm].transfer_fee(x) == TransferFee(epoch + 2, U64, 400)
    # The gap (narrowed by the first cycle) pays less net of 4% twice: widen it on the Whirlpool side.
    put(whirl, whirlpool_data(base.pubkey(), vaults[(whirl, base.pubkey())], x, vaults[(whirl, x)], tick - 2_000,
                              liquidity), WHIRLPOOL_PROGRAM)  # fmt: skip
    start2 = tick_array_start(tick - 2_000, 64)
    put(tick_array_address(whirl, start2), tick_array_data(whirl, start2, 64, {}), WHIRLPOOL_PROGRAM)
    read_all()
    run_best(TransferFee(epoch + 2, U64, 400))


# --- the epoch, from the node ---------------------------------------------------------------------------


def t22_account_data(mint: Pubkey, owner: Pubkey, balance: int) -> bytes:
    """A Token-2022 account of a fee mint: the SPL layout, AccountType 2, then TransferFeeAmount (withheld)."""
    return token_account_data(mint, owner, balance) + b"\x02" + struct.pack("<HHQ", 2, 8, 0)


def test_the_agent_takes_the_epoch_from_the_node_and_the_program_agrees(standin: RunningStandIn) -> None:
    """The simulator's getEpochInfo (read by the unmodified client) follows the epoch schedule as its clock
    does, so the real Token-2022 program charges the newer fee from the epoch the agent is told; the
    agent's collector asks at start and again at the first slot of the next epoch, and announces the pools
    whose fee changed."""
    payer, owner = Keypair(), Keypair()
    standin.call("requestAirdrop", str(payer.pubkey()), 10 * SOL)
    start = standin.call("standin_pauseTicker")
    info = EpochInfo.model_validate(standin.call("getEpochInfo"))
    schedule = EpochSchedule(432_000)  # LiteSVM's (a validator's default, with warm-up epochs)
    assert (info.epoch, info.slot_index) == schedule.get_epoch_and_slot_index(start)
    assert info.slots_in_epoch == schedule.get_slots_in_epoch(info.epoch)
    older, newer = TransferFee(0, U64, 100), TransferFee(info.epoch + 1, 7_000, 300)
    x, mine, theirs = key(), key(), key()
    put(standin, x, fee_mint_data(older, newer), TOKEN_2022)
    put(standin, mine, t22_account_data(x, payer.pubkey(), 10**12), TOKEN_2022)
    put(standin, theirs, t22_account_data(x, owner.pubkey(), 0), TOKEN_2022)

    # The agent's collector over a CPMM pool (base, X) whose X is that mint.
    base, config, va, vb, cpmm = key(), key(), key(), key(), key()
    node = SolanaNode("sol", standin.http, standin.ws, 4)
    chain = SolanaChainConfig(pools=(SolanaPool(kind="raydium_cpmm", address=str(cpmm)),), sol_usd=1.0)
    book = PoolBook()
    collector = SolanaCollector("sol", chain, node, book, StateFreshness(60))
    pool_bytes = bytearray(cpmm_pool_data(config, va, vb, base, x))
    pool_bytes[264:296] = bytes(TOKEN_2022)
    book.apply_many([(cpmm, AccountData(bytes(pool_bytes), RAYDIUM_CPMM))])
    book.apply_many([(config, AccountData(cpmm_config_data(2_500), RAYDIUM_CPMM)),
                     (va, spl_owned(token_account_data(base, owner.pubkey(), 10**12))),
                     (vb, t22_owned(t22_account_data(x, owner.pubkey(), 10**12))),
                     (x, t22_owned(fee_mint_data(older, newer)))])  # fmt: skip
    pool = book.pools[cpmm]
    assert pool.ready()
    with pytest.raises(QuoteError, match="epoch is not known"):  # two fees, no epoch yet
        pool.quote(10**6, False)
    emitted: list[object] = []

    async def emit(event: object) -> None:
        emitted.append(event)

    def send_transfer(amount_: int) -> int:
        """TransferChecked over the simulator's RPC; what the receiving account withheld."""
        ix = transfer_checked(TOKEN_2022, mine, x, theirs, payer.pubkey(), amount_, 6)
        blockhash = Hash.from_string(standin.call("getLatestBlockhash")["value"]["blockhash"])
        tx = VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [ix], [], blockhash), [payer])
        standin.call("sendTransaction", base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"})
        data = base64.b64decode(standin.call("getAccountInfo", str(theirs), {"encoding": "base64"})["value"]["data"][0])
        return struct.unpack_from("<Q", data, ACCOUNT_SIZE + 5)[0]

    async def go() -> None:
        async with AsyncClient(standin.http) as client:
            got = (await client.get_epoch_info()).value  # the unmodified client parses the answer
            assert (got.epoch, got.absolute_slot) == (info.epoch, start)
        collector._emit = emit
        await collector._refresh_epoch()
        assert book.epoch == info.epoch and pool.transfer_fee(x) == older
        assert book.next_epoch_slot == info.next_epoch_slot
        assert [e.pool for e in emitted if isinstance(e, PoolUpdate)] == [str(cpmm)]
        held = send_transfer(10**6)
        assert held == older.fee(10**6) == pool.transfer_quote(10**6, False).fee_in

        rpc = node.rpc()
        collector.accounts = AccountCollector(rpc.session, rpc, standin.ws, [], collector._on_accounts)
        emitted.clear()
        await collector._on_slot(info.next_epoch_slot - 1)  # still this epoch: not asked again
        assert book.epoch == info.epoch and not [e for e in emitted if isinstance(e, PoolUpdate)]
        standin.call("standin_warpSlot", info.next_epoch_slot)
        await collector._on_slot(info.next_epoch_slot)
        assert book.epoch == info.epoch + 1 and pool.transfer_fee(x) == newer
        assert [e.pool for e in emitted if isinstance(e, PoolUpdate)] == [str(cpmm)]
        # The program, on the simulator's clock, charges the newer fee now (capped at 7,000).
        assert send_transfer(100_000) - held == newer.fee(100_000) == 3_000
        assert send_transfer(10**9) - held - 3_000 == newer.fee(10**9) == 7_000

    async def run_and_close() -> None:
        try:
            await go()
        finally:
            await node.close()

    try:
        asyncio.run(run_and_close())
    finally:
        standin.call("standin_resumeTicker")
