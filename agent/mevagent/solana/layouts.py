"""Account layouts, decoded with `struct` at the offsets the programs publish.

Raydium AMM v4 `AmmInfo` (752 bytes), CPMM `PoolState` (637) and `AmmConfig` (236); SPL Token account
amounts. tests/agent/solana/test_raydium_oracle.py encodes random values with the Raydium SDK's own
layouts and checks every field decodes back here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from solders.pubkey import Pubkey

RAYDIUM_AMM_V4 = Pubkey.from_string("675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8")
RAYDIUM_CPMM = Pubkey.from_string("CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C")
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022 = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")

AMM_V4_SIZE = 752
CPMM_POOL_SIZE = 637
CPMM_CONFIG_SIZE = 236
TOKEN_ACCOUNT_MIN = 165


class LayoutError(ValueError):
    """Account data that does not have the layout's size or discriminator."""


class AccountData(NamedTuple):
    """An account as the node reports it (getMultipleAccounts, accountSubscribe): its data and its owner, the
    program that alone writes it. A mint's owner is its token program, which its data alone does not tell
    (an extension-free Token-2022 mint has SPL Token's 82 bytes)."""

    data: bytes
    owner: Pubkey


def _u64(data: bytes, offset: int) -> int:
    return struct.unpack_from("<Q", data, offset)[0]


def _key(data: bytes, offset: int) -> Pubkey:
    return Pubkey.from_bytes(data[offset : offset + 32])


def token_amount(data: bytes) -> int:
    """The `amount` of an SPL Token (or Token-2022) account: u64 at offset 64, after mint and owner."""
    if len(data) < TOKEN_ACCOUNT_MIN:
        raise LayoutError(f"token account of {len(data)} bytes (at least {TOKEN_ACCOUNT_MIN})")
    return _u64(data, 64)


def token_mint(data: bytes) -> Pubkey:
    return _key(data, 0)


@dataclass(frozen=True, slots=True)
class AmmV4State:
    status: int
    base_decimal: int
    quote_decimal: int
    trade_fee_numerator: int
    trade_fee_denominator: int
    swap_fee_numerator: int
    swap_fee_denominator: int
    base_need_take_pnl: int
    quote_need_take_pnl: int
    pool_open_time: int
    base_vault: Pubkey
    quote_vault: Pubkey
    base_mint: Pubkey
    quote_mint: Pubkey
    lp_mint: Pubkey
    open_orders: Pubkey
    market_id: Pubkey
    market_program_id: Pubkey
    target_orders: Pubkey
    owner: Pubkey


def decode_amm_v4(data: bytes) -> AmmV4State:
    if len(data) != AMM_V4_SIZE:
        raise LayoutError(f"Raydium AMM v4 state is {AMM_V4_SIZE} bytes, got {len(data)}")
    return AmmV4State(
        status=_u64(data, 0),
        base_decimal=_u64(data, 32),
        quote_decimal=_u64(data, 40),
        trade_fee_numerator=_u64(data, 144),
        trade_fee_denominator=_u64(data, 152),
        swap_fee_numerator=_u64(data, 176),
        swap_fee_denominator=_u64(data, 184),
        base_need_take_pnl=_u64(data, 192),
        quote_need_take_pnl=_u64(data, 200),
        pool_open_time=_u64(data, 224),
        base_vault=_key(data, 336),
        quote_vault=_key(data, 368),
        base_mint=_key(data, 400),
        quote_mint=_key(data, 432),
        lp_mint=_key(data, 464),
        open_orders=_key(data, 496),
        market_id=_key(data, 528),
        market_program_id=_key(data, 560),
        target_orders=_key(data, 592),
        owner=_key(data, 688),
    )


@dataclass(frozen=True, slots=True)
class CpmmPoolState:
    config: Pubkey
    vault_a: Pubkey
    vault_b: Pubkey
    mint_a: Pubkey
    mint_b: Pubkey
    mint_program_a: Pubkey
    mint_program_b: Pubkey
    observation: Pubkey
    status: int
    decimals_a: int
    decimals_b: int
    protocol_fees_a: int
    protocol_fees_b: int
    fund_fees_a: int
    fund_fees_b: int
    open_time: int
    enable_creator_fee: bool
    creator_fee_on: int  # 0: on whichever token is input, 1: only token 0, 2: only token 1
    creator_fees_a: int
    creator_fees_b: int


def decode_cpmm_pool(data: bytes) -> CpmmPoolState:
    if len(data) != CPMM_POOL_SIZE:
        raise LayoutError(f"Raydium CPMM pool state is {CPMM_POOL_SIZE} bytes, got {len(data)}")
    return CpmmPoolState(
        config=_key(data, 8),
        vault_a=_key(data, 72),
        vault_b=_key(data, 104),
        mint_a=_key(data, 168),
        mint_b=_key(data, 200),
        mint_program_a=_key(data, 232),
        mint_program_b=_key(data, 264),
        observation=_key(data, 296),
        status=data[329],
        decimals_a=data[331],
        decimals_b=data[332],
        protocol_fees_a=_u64(data, 341),
        protocol_fees_b=_u64(data, 349),
        fund_fees_a=_u64(data, 357),
        fund_fees_b=_u64(data, 365),
        open_time=_u64(data, 373),
        creator_fee_on=data[389],
        enable_creator_fee=bool(data[390]),
        creator_fees_a=_u64(data, 397),
        creator_fees_b=_u64(data, 405),
    )


@dataclass(frozen=True, slots=True)
class CpmmConfig:
    trade_fee_rate: int
    protocol_fee_rate: int
    fund_fee_rate: int
    creator_fee_rate: int


def decode_cpmm_config(data: bytes) -> CpmmConfig:
    if len(data) != CPMM_CONFIG_SIZE:
        raise LayoutError(f"Raydium CPMM config is {CPMM_CONFIG_SIZE} bytes, got {len(data)}")
    return CpmmConfig(
        trade_fee_rate=_u64(data, 12),
        protocol_fee_rate=_u64(data, 20),
        fund_fee_rate=_u64(data, 28),
        creator_fee_rate=_u64(data, 108),
    )
