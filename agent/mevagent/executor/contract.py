"""The ArbExecutor contract as the agent uses it: its committed artifact, calldata and what it reports back.

Encoding uses eth_abi directly (no web3 on hosts): the hot path builds one `execute` call per
opportunity, from the opportunity's hops and the fees the pool store holds for each V2 pair.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak

from mevagent.core import Opportunity
from mevagent.executor.build import ARTIFACT
from mevagent.executor.funding import Loan
from mevagent.state.pools import PoolStore, V2Pool, V3Pool

_HOP = "(address,address,address,bool,uint32,uint32)"
_EXECUTE_ARGS = [f"{_HOP}[]", "uint256", "uint256", "uint256", "uint256"]
EXECUTE_SELECTOR = keccak(text=f"execute({_HOP}[],uint256,uint256,uint256,uint256)")[:4]
_LOAN = "(uint8,address,uint32,uint32)"
_EXECUTE_FLASH_ARGS = [*_EXECUTE_ARGS, _LOAN]
EXECUTE_FLASH_SELECTOR = keccak(text=f"executeFlash({_HOP}[],uint256,uint256,uint256,uint256,{_LOAN})")[:4]
OWNER_SELECTOR = keccak(text="owner()")[:4]
EXECUTED_TOPIC = "0x" + keccak(text="Executed(address,uint256,uint256,uint256)").hex()
BORROWED_TOPIC = "0x" + keccak(text="Borrowed(address,address,uint256,uint256)").hex()
# The contract's custom errors, by selector: a simulation that reverts says why in words.
_ERRORS = {
    keccak(text="NotOwner()")[:4]: ("NotOwner", []),
    keccak(text="NotACycle()")[:4]: ("NotACycle", []),
    keccak(text="Expired(uint256,uint256)")[:4]: ("Expired", ["uint256", "uint256"]),
    keccak(text="InsufficientProfit(uint256,uint256,uint256)")[:4]: (
        "InsufficientProfit",
        ["uint256", "uint256", "uint256"],
    ),
    keccak(text="UnexpectedCallback(address)")[:4]: ("UnexpectedCallback", ["address"]),
    keccak(text="TransferFailed()")[:4]: ("TransferFailed", []),
    keccak(text="UnknownLoan(uint8)")[:4]: ("UnknownLoan", ["uint8"]),
    keccak(text="LoanNotTaken(address)")[:4]: ("LoanNotTaken", ["address"]),
    keccak(text="VenusRefused(address,uint256)")[:4]: ("VenusRefused", ["address", "uint256"]),
    keccak(text="NotWrappedNative(address)")[:4]: ("NotWrappedNative", ["address"]),
    keccak(text="Error(string)")[:4]: ("Error", ["string"]),
}


@cache
def artifact() -> dict[str, Any]:
    return json.loads(ARTIFACT.read_text())


def creation_code(wrapped_native: str) -> bytes:
    """Constructor call data: the creation bytecode and the chain's wrapped native token."""
    return bytes.fromhex(artifact()["bytecode"][2:]) + encode(["address"], [wrapped_native])


@dataclass(frozen=True, slots=True)
class ContractHop:
    pool: str
    token_in: str
    token_out: str
    is_v3: bool
    fee: int  # V2 only
    fee_denominator: int  # V2 only


def contract_hops(opportunity: Opportunity, store: PoolStore) -> tuple[ContractHop, ...]:
    """The opportunity's hops as the contract takes them, with each V2 pair's fee for its input token."""
    hops = []
    for index, hop in enumerate(opportunity.hops):
        pool = store.get(hop.pool)
        if pool is None:
            raise ValueError(f"hops[{index}].pool: {hop.pool} is not in the {store.chain} pool store")
        if {hop.token_in, hop.token_out} != set(pool.tokens):
            raise ValueError(f"hops[{index}]: {hop.token_in} -> {hop.token_out} is not a pair of pool {hop.pool}")
        if isinstance(pool, V2Pool) and hop.kind == "v2":
            if not pool.quotable:  # a stable Camelot pair: the contract's x·y quote is not what it pays
                raise ValueError(f"hops[{index}].pool: {hop.pool} cannot be quoted as constant product")
            # The fee of the token paid in: Camelot charges each input token its own.
            fee = pool.fee_in(hop.token_in)
            hops.append(ContractHop(hop.pool, hop.token_in, hop.token_out, False, fee, pool.fee_denominator))
        elif isinstance(pool, V3Pool) and hop.kind == "v3":
            hops.append(ContractHop(hop.pool, hop.token_in, hop.token_out, True, 0, 0))
        else:
            raise ValueError(f"hops[{index}].kind: {hop.kind!r} but pool {hop.pool} is {type(pool).__name__}")
    return tuple(hops)


def execute_calldata(
    hops: Sequence[ContractHop], amount_in: int, min_profit: int, builder_payment: int, max_block: int
) -> bytes:
    encoded_hops = [(h.pool, h.token_in, h.token_out, h.is_v3, h.fee, h.fee_denominator) for h in hops]
    return EXECUTE_SELECTOR + encode(_EXECUTE_ARGS, [encoded_hops, amount_in, min_profit, builder_payment, max_block])


def execute_flash_calldata(
    hops: Sequence[ContractHop], amount_in: int, min_profit: int, builder_payment: int, max_block: int, loan: Loan
) -> bytes:
    """executeFlash(): the same cycle on `amount_in` borrowed as `loan` says (mevagent.executor.funding)."""
    if loan.amount != amount_in:
        raise ValueError(f"loan.amount: {loan.amount} is not the cycle's input {amount_in}")
    encoded_hops = [(h.pool, h.token_in, h.token_out, h.is_v3, h.fee, h.fee_denominator) for h in hops]
    args = [encoded_hops, amount_in, min_profit, builder_payment, max_block, loan.contract_args()]
    return EXECUTE_FLASH_SELECTOR + encode(_EXECUTE_FLASH_ARGS, args)


def borrowed(receipt: dict[str, Any], contract: str) -> list[tuple[str, str, int, int]]:
    """(lender, token, amount, fee) of each Borrowed event of the contract in a receipt."""
    out = []
    for log in receipt.get("logs", []):
        if log["address"].lower() == contract.lower() and log["topics"] and log["topics"][0] == BORROWED_TOPIC:
            amount, fee = decode(["uint256", "uint256"], bytes.fromhex(log["data"][2:]))
            out.append(("0x" + log["topics"][1][-40:], "0x" + log["topics"][2][-40:], int(amount), int(fee)))
    return out


def decode_profit(result: str) -> int:
    """execute()'s return value (profit kept after the builder payment) from an eth_call result."""
    return int(decode(["uint256"], bytes.fromhex(result[2:]))[0])


def decode_revert(data: bytes) -> str:
    """The contract's error in words, e.g. "InsufficientProfit(1000, 1900, 2000)"."""
    if len(data) < 4:
        return "reverted without a reason"
    known = _ERRORS.get(data[:4])
    if known is None:
        return f"reverted: 0x{data.hex()}"
    name, types = known
    try:
        args = decode(types, data[4:])
    except Exception:
        return f"{name}(undecodable)"
    return f"{name}({', '.join(str(a) for a in args)})"


def executed_profit(receipt: dict[str, Any], contract: str) -> int | None:
    """Profit from the Executed event in a receipt, None if the contract did not emit it."""
    for log in receipt.get("logs", []):
        if log["address"].lower() == contract.lower() and log["topics"] and log["topics"][0] == EXECUTED_TOPIC:
            _amount_in, profit, _payment = decode(["uint256", "uint256", "uint256"], bytes.fromhex(log["data"][2:]))
            return int(profit)
    return None
