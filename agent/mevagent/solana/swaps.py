"""Swap instructions as the programs define them (checked byte for byte against the Raydium SDK's and Orca's
client's builders).

Each builder takes the pool's decoded state and our token accounts and returns one `Instruction`; the
minimum output is an on-chain check, so a swap that would give less than quoted fails (and, inside a
bundle, takes the whole bundle with it).
"""

from __future__ import annotations

import struct
from functools import cache

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from .clmm import RAYDIUM_CLMM, ClmmPoolState
from .dlmm import METEORA_DLMM, LbPairState
from .layouts import RAYDIUM_AMM_V4, RAYDIUM_CPMM, TOKEN_2022, TOKEN_PROGRAM, AmmV4State, CpmmPoolState
from .whirlpool import WHIRLPOOL_PROGRAM, WhirlpoolState

CPMM_SWAP_BASE_INPUT = bytes([143, 190, 90, 218, 196, 30, 51, 222])  # anchor: sha256("global:swap_base_input")[:8]
AMM_V4_SWAP_BASE_IN_V2 = 16  # raydium-amm AmmInstruction::SwapBaseInV2: no OpenBook accounts
SWAP_V2 = bytes([43, 4, 237, 11, 26, 201, 30, 98])  # anchor: sha256("global:swap_v2")[:8], both programs
DLMM_SWAP2 = bytes([65, 75, 63, 76, 235, 91, 91, 136])  # anchor: sha256("global:swap2")[:8]
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")


@cache
def cpmm_authority(program: Pubkey = RAYDIUM_CPMM) -> Pubkey:
    return Pubkey.find_program_address([b"vault_and_lp_mint_auth_seed"], program)[0]


@cache
def amm_v4_authority(program: Pubkey = RAYDIUM_AMM_V4) -> Pubkey:
    return Pubkey.find_program_address([b"amm authority"], program)[0]


def _meta(key: Pubkey, writable: bool, signer: bool = False) -> AccountMeta:
    return AccountMeta(key, is_signer=signer, is_writable=writable)


def cpmm_swap_base_input(
    pool: Pubkey,
    state: CpmmPoolState,
    owner: Pubkey,
    source: Pubkey,
    destination: Pubkey,
    zero_for_one: bool,
    amount_in: int,
    min_out: int,
    program: Pubkey = RAYDIUM_CPMM,
) -> Instruction:
    in_vault, out_vault = (state.vault_a, state.vault_b) if zero_for_one else (state.vault_b, state.vault_a)
    in_mint, out_mint = (state.mint_a, state.mint_b) if zero_for_one else (state.mint_b, state.mint_a)
    in_prog, out_prog = (
        (state.mint_program_a, state.mint_program_b) if zero_for_one else (state.mint_program_b, state.mint_program_a)
    )
    accounts = [
        _meta(owner, False, True),
        _meta(cpmm_authority(program), False),
        _meta(state.config, False),
        _meta(pool, True),
        _meta(source, True),
        _meta(destination, True),
        _meta(in_vault, True),
        _meta(out_vault, True),
        _meta(in_prog, False),
        _meta(out_prog, False),
        _meta(in_mint, False),
        _meta(out_mint, False),
        _meta(state.observation, True),
    ]
    return Instruction(program, CPMM_SWAP_BASE_INPUT + struct.pack("<QQ", amount_in, min_out), accounts)


def amm_v4_swap_base_in(
    pool: Pubkey,
    state: AmmV4State,
    owner: Pubkey,
    source: Pubkey,
    destination: Pubkey,
    amount_in: int,
    min_out: int,
    program: Pubkey = RAYDIUM_AMM_V4,
) -> Instruction:
    accounts = [
        _meta(TOKEN_PROGRAM, False),
        _meta(pool, True),
        _meta(amm_v4_authority(program), False),
        _meta(state.base_vault, True),
        _meta(state.quote_vault, True),
        _meta(source, True),
        _meta(destination, True),
        _meta(owner, False, True),
    ]
    data = struct.pack("<BQQ", AMM_V4_SWAP_BASE_IN_V2, amount_in, min_out)
    return Instruction(program, data, accounts)


@cache
def whirlpool_oracle(pool: Pubkey, program: Pubkey = WHIRLPOOL_PROGRAM) -> Pubkey:
    return Pubkey.find_program_address([b"oracle", bytes(pool)], program)[0]


def whirlpool_swap_v2(
    pool: Pubkey,
    state: WhirlpoolState,
    owner: Pubkey,
    account_a: Pubkey,
    account_b: Pubkey,
    tick_arrays: tuple[Pubkey, Pubkey, Pubkey],
    a_to_b: bool,
    amount_in: int,
    min_out: int,
    token_program_a: Pubkey = TOKEN_PROGRAM,
    token_program_b: Pubkey = TOKEN_PROGRAM,
    program: Pubkey = WHIRLPOOL_PROGRAM,
) -> Instruction:
    """`swap_v2`, exact input, no explicit price limit (0: the program's bound), no remaining accounts."""
    accounts = [
        _meta(token_program_a, False),
        _meta(token_program_b, False),
        _meta(MEMO_PROGRAM, False),
        _meta(owner, False, True),
        _meta(pool, True),
        _meta(state.token_mint_a, False),
        _meta(state.token_mint_b, False),
        _meta(account_a, True),
        _meta(state.token_vault_a, True),
        _meta(account_b, True),
        _meta(state.token_vault_b, True),
        *(_meta(t, True) for t in tick_arrays),
        _meta(whirlpool_oracle(pool, program), True),
    ]
    data = SWAP_V2 + struct.pack("<QQ", amount_in, min_out) + bytes(16) + bytes([1, int(a_to_b), 0])
    return Instruction(program, data, accounts)


@cache
def clmm_bitmap_extension(pool: Pubkey, program: Pubkey = RAYDIUM_CLMM) -> Pubkey:
    return Pubkey.find_program_address([b"pool_tick_array_bitmap_extension", bytes(pool)], program)[0]


def clmm_swap_v2(
    pool: Pubkey,
    state: ClmmPoolState,
    owner: Pubkey,
    source: Pubkey,
    destination: Pubkey,
    tick_arrays: list[Pubkey],
    zero_for_one: bool,
    amount_in: int,
    min_out: int,
    program: Pubkey = RAYDIUM_CLMM,
) -> Instruction:
    """Raydium CLMM `swap_v2`, base input, no explicit price limit (0: the program's bound), the bitmap
    extension and then the tick arrays the swap walks, in order, as remaining accounts."""
    in_vault, out_vault = (state.vault_a, state.vault_b) if zero_for_one else (state.vault_b, state.vault_a)
    in_mint, out_mint = (state.mint_a, state.mint_b) if zero_for_one else (state.mint_b, state.mint_a)
    accounts = [
        _meta(owner, False, True),
        _meta(state.config, False),
        _meta(pool, True),
        _meta(source, True),
        _meta(destination, True),
        _meta(in_vault, True),
        _meta(out_vault, True),
        _meta(state.observation, True),
        _meta(TOKEN_PROGRAM, False),
        _meta(TOKEN_2022, False),
        _meta(MEMO_PROGRAM, False),
        _meta(in_mint, False),
        _meta(out_mint, False),
        _meta(clmm_bitmap_extension(pool, program), True),
        *(_meta(t, True) for t in tick_arrays),
    ]
    data = SWAP_V2 + struct.pack("<QQ", amount_in, min_out) + bytes(16) + b"\x01"
    return Instruction(program, data, accounts)


@cache
def dlmm_event_authority(program: Pubkey = METEORA_DLMM) -> Pubkey:
    return Pubkey.find_program_address([b"__event_authority"], program)[0]


def dlmm_swap2(
    pair: Pubkey,
    state: LbPairState,
    owner: Pubkey,
    source: Pubkey,
    destination: Pubkey,
    bin_arrays: list[Pubkey],
    amount_in: int,
    min_out: int,
    token_program_x: Pubkey = TOKEN_PROGRAM,
    token_program_y: Pubkey = TOKEN_PROGRAM,
    program: Pubkey = METEORA_DLMM,
) -> Instruction:
    """Meteora DLMM `swap2`, exact input; no bitmap extension and no host fee (Anchor's absent optional
    accounts: the program id), no transfer-hook slices, then the bin arrays the quote walks."""
    accounts = [
        _meta(pair, True),
        _meta(program, False),
        _meta(state.reserve_x, True),
        _meta(state.reserve_y, True),
        _meta(source, True),
        _meta(destination, True),
        _meta(state.token_x_mint, False),
        _meta(state.token_y_mint, False),
        _meta(state.oracle, True),
        _meta(program, False),
        _meta(owner, False, True),
        _meta(token_program_x, False),
        _meta(token_program_y, False),
        _meta(MEMO_PROGRAM, False),
        _meta(dlmm_event_authority(program), False),
        _meta(program, False),
        *(_meta(b, True) for b in bin_arrays),
    ]
    data = DLMM_SWAP2 + struct.pack("<QQ", amount_in, min_out) + bytes(4)
    return Instruction(program, data, accounts)
