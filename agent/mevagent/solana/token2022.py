"""Token-2022 transfer fees: the mint's `TransferFeeConfig` extension, decoded at the published layout, and
the fee as the SPL Token-2022 program computes it.

Mint layout (spl-token-2022 `state::Mint` + `extension`): the 82-byte base mint; a mint with extensions is
padded to the token account's 165 bytes, then one `AccountType` byte (1 = mint), then TLV entries (u16 type,
u16 length, value). `TransferFeeConfig` (type 1, 108 bytes): config authority (32), withdraw-withheld
authority (32), withheld amount (u64), then `older_transfer_fee` and `newer_transfer_fee`, each
`{epoch: u64, maximum_fee: u64, transfer_fee_basis_points: u16}`. `TransferHook` (type 14): authority (32)
and the hook program (32; all zero when none).

The fee (`TransferFee::calculate_fee`): 0 when the rate or the amount is 0, else
min(ceil(amount * bps / 10_000), maximum_fee). The fee in force is `newer_transfer_fee` from its epoch on,
else `older_transfer_fee` (`TransferFeeConfig::get_epoch_fee`). `swap_with_transfer_fees`: an exact-in
swap between the two transfers, as every pool's swap with Token-2022 mints takes them (Raydium CPMM
`swap_base_input`, CLMM and Whirlpool `swap_v2`, Meteora DLMM `swap2`). tests/agent/solana/test_token2022.py
checks all of it against `@solana/spl-token`, the Raydium SDK's `getTransferAmountFee`, Orca's core, the
pools' SDKs and the real Token-2022 program in LiteSVM.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field
from solders.pubkey import Pubkey

from .layouts import TOKEN_2022, TOKEN_PROGRAM, LayoutError

MINT_SIZE = 82
ACCOUNT_SIZE = 165  # a mint with extensions is padded to this, then carries its AccountType byte
ACCOUNT_TYPE_MINT = 1
EXT_TRANSFER_FEE_CONFIG = 1
EXT_TRANSFER_HOOK = 14
TRANSFER_FEE_CONFIG_SIZE = 108
MAX_FEE_BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class TransferFee:
    epoch: int  # the first epoch this fee is in force
    maximum_fee: int
    basis_points: int

    @property
    def charge(self) -> tuple[int, int]:
        """(basis points, maximum fee): what the fee charges, whatever epoch it starts at."""
        return self.basis_points, self.maximum_fee

    def fee(self, amount: int) -> int:
        """calculate_fee: ceil(amount * bps / 1e4), capped at maximum_fee."""
        if self.basis_points == 0 or amount == 0:
            return 0
        return min(-(-amount * self.basis_points // MAX_FEE_BASIS_POINTS), self.maximum_fee)


NO_FEE = TransferFee(0, 0, 0)


@dataclass(frozen=True, slots=True)
class TransferFeeConfig:
    config_authority: Pubkey | None
    withdraw_authority: Pubkey | None
    withheld_amount: int
    older: TransferFee
    newer: TransferFee

    def at(self, epoch: int) -> TransferFee:
        """get_epoch_fee: the newer fee from its epoch on, else the older one."""
        return self.newer if epoch >= self.newer.epoch else self.older


@dataclass(frozen=True, slots=True)
class MintInfo:
    """What a swap needs of a mint: its token program, decimals, transfer-fee config (None: no fee) and
    transfer hook."""

    program: Pubkey  # the account's owner: SPL Token or Token-2022 (what a swap names as the mint's program)
    decimals: int
    transfer_fee: TransferFeeConfig | None
    transfer_hook: Pubkey | None  # the hook program, when the mint names one

    def fee_at(self, epoch: int) -> TransferFee:
        return NO_FEE if self.transfer_fee is None else self.transfer_fee.at(epoch)


def _optional_key(data: bytes, offset: int) -> Pubkey | None:
    raw = data[offset : offset + 32]
    return None if raw == bytes(32) else Pubkey.from_bytes(raw)


def _fee(data: bytes, offset: int) -> TransferFee:
    epoch, maximum, bps = struct.unpack_from("<QQH", data, offset)
    return TransferFee(epoch, maximum, bps)


def decode_mint(data: bytes, owner: Pubkey) -> MintInfo:
    """An SPL Token or Token-2022 mint, its program being the account's `owner` (the data does not say it: an
    extension-free Token-2022 mint is 82 bytes, as an SPL Token one); the extensions read are
    TransferFeeConfig and TransferHook. A mint owned by any other program is refused."""
    if owner not in (TOKEN_PROGRAM, TOKEN_2022):
        raise LayoutError(f"owned by {owner}, not by a token program")
    if len(data) < MINT_SIZE or (len(data) != MINT_SIZE and len(data) <= ACCOUNT_SIZE):
        raise LayoutError(f"not a mint ({len(data)} bytes)")
    if not data[45]:
        raise LayoutError("mint not initialized")
    decimals = data[44]
    if len(data) == MINT_SIZE:
        return MintInfo(owner, decimals, None, None)
    if owner != TOKEN_2022:
        raise LayoutError(f"{len(data)} bytes with extensions, owned by SPL Token")
    if data[ACCOUNT_SIZE] != ACCOUNT_TYPE_MINT or any(data[MINT_SIZE:ACCOUNT_SIZE]):
        raise LayoutError("Token-2022 account is not a mint")
    fee, hook, offset = None, None, ACCOUNT_SIZE + 1
    while offset + 4 <= len(data):
        kind, length = struct.unpack_from("<HH", data, offset)
        if kind == 0:  # Uninitialized: the rest is padding
            break
        value = offset + 4
        if value + length > len(data):
            raise LayoutError(f"extension {kind} runs past the account")
        if kind == EXT_TRANSFER_FEE_CONFIG:
            if length != TRANSFER_FEE_CONFIG_SIZE:
                raise LayoutError(f"TransferFeeConfig of {length} bytes")
            fee = TransferFeeConfig(
                _optional_key(data, value),
                _optional_key(data, value + 32),
                struct.unpack_from("<Q", data, value + 64)[0],
                _fee(data, value + 72),
                _fee(data, value + 90),
            )
        elif kind == EXT_TRANSFER_HOOK:
            hook = _optional_key(data, value + 32)
        offset = value + length
    return MintInfo(owner, decimals, fee, hook)


@dataclass(frozen=True, slots=True)
class TransferFeeSwap:
    """An exact-in swap with its transfer fees: `sent` by the user, `fee_in` withheld on the way into the
    vault (the pool trades sent - fee_in), `pool_out` leaving the vault, `fee_out` withheld on the way out."""

    sent: int
    fee_in: int
    pool_out: int
    fee_out: int

    @property
    def received(self) -> int:
        return self.pool_out - self.fee_out


R = TypeVar("R")


def swap_with_transfer_fees(
    amount_in: int,
    mints: tuple[Pubkey, Pubkey],
    fee_of: Callable[[Pubkey], TransferFee],
    swap: Callable[[int], tuple[int, R]],
) -> tuple[TransferFeeSwap, R]:
    """`amount_in` of mints[0] sent for mints[1]: the input mint's fee (`fee_of`, the fee in force) comes off
    `amount_in`, `swap` runs the pool on what arrives and returns what the vault sends with its own result,
    the output mint's fee comes off that. The output's fee is looked up after the swap, so a swap the pool
    refuses is refused for its own reason first."""
    mint_in, mint_out = mints
    fee_in = fee_of(mint_in).fee(amount_in)
    pool_out, result = swap(amount_in - fee_in)
    return TransferFeeSwap(amount_in, fee_in, pool_out, fee_of(mint_out).fee(pool_out)), result


# --- the epoch, from the node -------------------------------------------------------------------------


class EpochInfo(BaseModel):
    """getEpochInfo's answer (the fields used): the epoch and where the slot stands in it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    epoch: int = Field(ge=0)
    slot_index: int = Field(alias="slotIndex", ge=0)
    slots_in_epoch: int = Field(alias="slotsInEpoch", gt=0)
    absolute_slot: int = Field(alias="absoluteSlot", ge=0)

    @property
    def next_epoch_slot(self) -> int:
        """The first slot of the next epoch: the agent asks the node again once a slot reaches it."""
        return self.absolute_slot - self.slot_index + self.slots_in_epoch
