"""Token-2022 mints with the TransferFeeConfig extension, made by the real Token-2022 program in LiteSVM
(instructions from the `solana` package's `spl.token`), and a test encoder of the same mint bytes.

The inverse of a transfer fee (`pre_fee_amount`, `included`) and what arrives (`excluded`): the agent quotes
exact-in only and never needs them; the oracle tests do, to put our quotes in the terms Orca's and Meteora's
SDKs report (checked against spl-token's, the Raydium SDK's and Orca's in test_token2022).

`set_transfer_fee` is the one instruction the `solana` package does not build: TransferFeeExtension (26),
SetTransferFee (5), then the new basis points (u16) and maximum fee (u64), signed by the config authority;
the program makes it the newer fee from two epochs on.
"""

from __future__ import annotations

import struct

from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import TransactionMetadata
from spl.token import instructions as spl
from spl.token import models

from mevagent.solana.layouts import TOKEN_2022
from mevagent.solana.token2022 import (
    ACCOUNT_SIZE,
    MAX_FEE_BASIS_POINTS,
    MINT_SIZE,
    TRANSFER_FEE_CONFIG_SIZE,
    TransferFee,
)

MINT_WITH_FEE_SIZE = ACCOUNT_SIZE + 1 + 4 + TRANSFER_FEE_CONFIG_SIZE  # 278
ACCOUNT_WITH_FEE_SIZE = ACCOUNT_SIZE + 1 + 4 + 8  # the TransferFeeAmount extension (withheld)


def send(svm: LiteSVM, payer: Keypair, ixs: list[Instruction], *signers: Keypair) -> TransactionMetadata:
    message = MessageV0.try_compile(payer.pubkey(), ixs, [], svm.latest_blockhash())
    result = svm.send_transaction(VersionedTransaction(message, [payer, *signers]))
    assert isinstance(result, TransactionMetadata), result
    svm.expire_blockhash()
    return result


def create_fee_mint(
    svm: LiteSVM, payer: Keypair, authority: Keypair, bps: int, maximum_fee: int, decimals: int = 6
) -> Pubkey:
    mint = Keypair()
    lamports = svm.minimum_balance_for_rent_exemption(MINT_WITH_FEE_SIZE)
    ixs = [
        create_account(
            CreateAccountParams(
                from_pubkey=payer.pubkey(),
                to_pubkey=mint.pubkey(),
                lamports=lamports,
                space=MINT_WITH_FEE_SIZE,
                owner=TOKEN_2022,
            )
        ),
        spl.initialize_transfer_fee_config(
            models.InitializeTransferFeeConfigParams(
                program_id=TOKEN_2022,
                mint=mint.pubkey(),
                transfer_fee_config_authority=authority.pubkey(),
                withdraw_withheld_authority=authority.pubkey(),
                transfer_fee_basis_points=bps,
                maximum_fee=maximum_fee,
            )
        ),
        spl.initialize_mint2(
            models.InitializeMint2Params(
                program_id=TOKEN_2022, mint=mint.pubkey(), decimals=decimals, mint_authority=authority.pubkey()
            )
        ),
    ]
    send(svm, payer, ixs, mint)
    return mint.pubkey()


def set_transfer_fee(svm: LiteSVM, payer: Keypair, authority: Keypair, mint: Pubkey, bps: int, maximum: int) -> None:
    data = bytes([26, 5]) + struct.pack("<HQ", bps, maximum)
    ix = Instruction(TOKEN_2022, data, [AccountMeta(mint, False, True), AccountMeta(authority.pubkey(), True, False)])
    send(svm, payer, [ix], authority)


def create_mint(svm: LiteSVM, payer: Keypair, authority: Keypair, program: Pubkey, decimals: int = 9) -> Pubkey:
    """A mint without extensions (82 bytes) of `program`: SPL Token's, or Token-2022's with the same bytes."""
    mint = Keypair()
    ixs = [
        create_account(
            CreateAccountParams(
                from_pubkey=payer.pubkey(),
                to_pubkey=mint.pubkey(),
                lamports=svm.minimum_balance_for_rent_exemption(MINT_SIZE),
                space=MINT_SIZE,
                owner=program,
            )
        ),
        spl.initialize_mint2(
            models.InitializeMint2Params(
                program_id=program, mint=mint.pubkey(), decimals=decimals, mint_authority=authority.pubkey()
            )
        ),
    ]
    send(svm, payer, ixs, mint)
    return mint.pubkey()


def create_token_account(
    svm: LiteSVM, payer: Keypair, mint: Pubkey, owner: Pubkey, program: Pubkey, fee: bool = True
) -> Pubkey:
    """A token account of `mint`; a Token-2022 one of a fee mint (`fee`) carries the TransferFeeAmount."""
    account = Keypair()
    space = ACCOUNT_WITH_FEE_SIZE if program == TOKEN_2022 and fee else ACCOUNT_SIZE
    ixs = [
        create_account(
            CreateAccountParams(
                from_pubkey=payer.pubkey(),
                to_pubkey=account.pubkey(),
                lamports=svm.minimum_balance_for_rent_exemption(space),
                space=space,
                owner=program,
            )
        ),
        spl.initialize_account3(
            models.InitializeAccount3Params(program_id=program, account=account.pubkey(), mint=mint, owner=owner)
        ),
    ]
    send(svm, payer, ixs, account)
    return account.pubkey()


def mint_to(svm: LiteSVM, payer: Keypair, authority: Keypair, mint: Pubkey, dest: Pubkey, amount: int, program: Pubkey):
    ix = spl.mint_to(
        models.MintToParams(program_id=program, mint=mint, dest=dest, mint_authority=authority.pubkey(), amount=amount)
    )
    send(svm, payer, [ix], authority)


def transfer_checked(
    program: Pubkey, source: Pubkey, mint: Pubkey, dest: Pubkey, owner: Pubkey, amount: int, decimals: int
) -> Instruction:
    params = models.TransferCheckedParams(
        program_id=program, source=source, mint=mint, dest=dest, owner=owner, amount=amount, decimals=decimals
    )
    return spl.transfer_checked(params)


def withheld(svm: LiteSVM, account: Pubkey) -> int:
    """The TransferFeeAmount extension of a Token-2022 account: the fees withheld in it."""
    data = bytes(svm.get_account(account).data)
    kind, length = struct.unpack_from("<HH", data, ACCOUNT_SIZE + 1)
    assert (kind, length) == (2, 8)
    return struct.unpack_from("<Q", data, ACCOUNT_SIZE + 5)[0]


def amount(svm: LiteSVM, account: Pubkey) -> int:
    return struct.unpack_from("<Q", bytes(svm.get_account(account).data), 64)[0]


def fee_mint_data(
    older: TransferFee,
    newer: TransferFee,
    withheld_amount: int = 0,
    config_authority: Pubkey | None = None,
    withdraw_authority: Pubkey | None = None,
    decimals: int = 6,
    supply: int = 10**15,
) -> bytes:
    """A Token-2022 mint with TransferFeeConfig, as the program lays it out (checked against a mint the
    program made, and against @solana/spl-token's decoder)."""
    base = struct.pack("<I32sQBBI32s", 0, bytes(32), supply, decimals, 1, 0, bytes(32))
    assert len(base) == MINT_SIZE

    def fee(f: TransferFee) -> bytes:
        return struct.pack("<QQH", f.epoch, f.maximum_fee, f.basis_points)

    value = bytes(config_authority or bytes(32)) + bytes(withdraw_authority or bytes(32))
    value += struct.pack("<Q", withheld_amount) + fee(older) + fee(newer)
    return base + bytes(ACCOUNT_SIZE - MINT_SIZE) + b"\x01" + struct.pack("<HH", 1, len(value)) + value


def pre_fee_amount(fee: TransferFee, post: int) -> int:
    """calculate_pre_fee_amount: the amount to send so that `post` arrives (the inverse of `fee.fee`)."""
    if fee.basis_points == 0:
        return post
    if post == 0:
        return 0
    if fee.basis_points == MAX_FEE_BASIS_POINTS:
        return post + fee.maximum_fee
    raw = -(-post * MAX_FEE_BASIS_POINTS // (MAX_FEE_BASIS_POINTS - fee.basis_points))
    return post + fee.maximum_fee if raw - post >= fee.maximum_fee else raw


def included(fee: TransferFee, excluded_amount: int) -> int:
    """calculate_transfer_fee_included_amount (Whirlpool, DLMM): the amount + calculate_inverse_fee (the fee
    on pre_fee_amount), or + the maximum at 10,000 bps; 0 for 0."""
    if excluded_amount == 0:
        return 0
    if fee.basis_points == MAX_FEE_BASIS_POINTS:
        return excluded_amount + fee.maximum_fee
    return excluded_amount + fee.fee(pre_fee_amount(fee, excluded_amount))


def excluded(fee: TransferFee, amount_: int) -> int:
    """What arrives when `amount_` is sent."""
    return amount_ - fee.fee(amount_)
