"""Replace or cancel a stuck transaction of this agent: the same nonce, fees raised, the same gate and key.

The fleet control plane lists transactions that were sent and did not settle (docs/control-plane.md) and
sends the owning agent a `replace_transaction` command. The agent trusts nothing in it but the hash:

1. the node must still hold the transaction as pending, sent by this chain's signing key, with its nonce
   not yet used on chain (`eth_getTransactionCount(.., "latest")`); anything else is refused and said;
2. the new fee caps are at least the nodes' replacement minimum (+10 % on maxFeePerGas and on
   maxPriorityFeePerGas, or on gasPrice) and the command's `bump_percent` when the chain's
   `max_gas_price` leaves room for it (never above it: the gate refuses a bump the cap cannot hold);
3. `replace` re-signs the same call (to, data, value, gas); `cancel` signs 0 to the sender itself;
4. the risk gate's `check_replacement` is asked, and the transaction is signed right after its answer
   with no await in between, with the executor's key (`ArbitrageExecutor.sign`), then sent the way the
   original went when it went to a sequencer, else to the node's mempool, where a stuck transaction
   waits. The executor's nonces are marked stale: the node says which nonce comes next.
5. `follow` then watches the node until the replacement's receipt (`landed`, or `reverted`), or until
   the nonce is used by another transaction (`superseded`: the original, mined before its replacement
   reached a block), or gives up after a while (the stuck list keeps saying `replaced`/`cancelled`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from eth_utils import to_checksum_address

from mevagent.core import Decision

log = logging.getLogger(__name__)

NODE_MINIMUM_BUMP_PERCENT = 10  # geth's and anvil's txpool price bump for a replacement
CANCEL_GAS = 21_000
FOLLOW_POLL_S = 1.0  # how often the node is asked for the replacement's receipt
FOLLOW_TIMEOUT_S = 1800.0  # then the replacement is left to the operator (the stuck list)


class ReplacementGate(Protocol):
    def check_replacement(self, chain: str, action: str, max_fee_per_gas: int) -> Decision: ...


@dataclass(frozen=True, slots=True)
class Replacement:
    """What became of one replace/cancel: sent (ok) or why not."""

    ok: bool
    detail: str
    nonce: int | None = None
    replacement_hash: str | None = None
    fees: dict[str, int] = field(default_factory=dict)


def bumped(fee: int, percent: float) -> int:
    """`fee` raised by `percent`, rounded up, and by at least 1 wei (a 0 fee must move too)."""
    return max(math.ceil(fee * (100 + percent) / 100), fee + 1)


def replacement_fee(fee: int, percent: float, cap: int) -> int:
    """The command's bump, held to the chain's cap while the cap still allows the nodes' minimum bump."""
    wanted = bumped(fee, percent)
    least = bumped(fee, NODE_MINIMUM_BUMP_PERCENT)
    return max(least, min(wanted, cap))


def replacement_tx(original: dict[str, Any], action: str, percent: float, cap: int, chain_id: int) -> dict[str, Any]:
    """The transaction to sign at the original's nonce (see the module doc)."""
    sender = to_checksum_address(original["from"])
    tx: dict[str, Any] = {"chainId": chain_id, "nonce": int(original["nonce"], 16)}
    if action == "cancel":
        tx.update(to=sender, value=0, data=b"", gas=CANCEL_GAS)
    else:
        to = original.get("to")
        if to is None:
            raise ValueError("a contract creation is not replaced (cancel it instead)")
        tx.update(to=to_checksum_address(to), value=int(original.get("value", "0x0"), 16),
                  data=bytes.fromhex(original.get("input", "0x")[2:]), gas=int(original["gas"], 16))  # fmt: skip
    if original.get("maxFeePerGas") is not None:
        max_fee = replacement_fee(int(original["maxFeePerGas"], 16), percent, cap)
        priority = replacement_fee(int(original.get("maxPriorityFeePerGas", "0x0"), 16), percent, cap)
        # The original's priority fee is at most its max fee, so the minimum bump of both still holds.
        tx.update(type=2, maxFeePerGas=max_fee, maxPriorityFeePerGas=min(priority, max_fee))
    else:
        tx["gasPrice"] = replacement_fee(int(original["gasPrice"], 16), percent, cap)
    return tx


class Executor(Protocol):
    """What of mevagent.executor.executor.ArbitrageExecutor this needs."""

    rpc: Any
    sequencer: Any
    nonces: Any
    config: Any

    @property
    def address(self) -> str | None: ...

    def sign(self, tx: dict[str, Any]) -> tuple[bytes, str]: ...


async def replace_stuck(
    executor: Executor,
    gate: ReplacementGate,
    *,
    chain: str,
    tx_hash: str,
    action: Literal["replace", "cancel"],
    bump_percent: float,
    max_gas_price_wei: int,
) -> Replacement:
    address = executor.address
    if address is None or not executor.config.live:
        return Replacement(False, f"{chain} is not live on this agent: it signs nothing there")
    original = await executor.rpc.call("eth_getTransactionByHash", [tx_hash])
    if not original:
        return Replacement(
            False,
            f"{tx_hash} is not in the node's mempool nor on chain (dropped, or sent only to builders, "
            "who drop a bundle that was not included): nothing to replace",
        )
    nonce = int(original["nonce"], 16)
    if original["from"].lower() != address.lower():
        return Replacement(False, f"{tx_hash} was sent by {original['from']}, not by this agent's key", nonce)
    if original.get("blockNumber"):
        return Replacement(False, f"{tx_hash} is already mined in block {int(original['blockNumber'], 16)}", nonce)
    used = int(await executor.rpc.call("eth_getTransactionCount", [address, "latest"]), 16)
    if used > nonce:
        return Replacement(False, f"nonce {nonce} is already used on chain (next: {used})", nonce)
    try:
        tx = replacement_tx(original, action, bump_percent, max_gas_price_wei, executor.config.chain_id)
    except (KeyError, ValueError) as exc:
        return Replacement(False, f"{tx_hash}: {exc}", nonce)
    fees = {k: tx[k] for k in ("maxFeePerGas", "maxPriorityFeePerGas", "gasPrice") if k in tx}
    decision = gate.check_replacement(chain, action, tx.get("maxFeePerGas", tx.get("gasPrice", 0)))
    if not decision.allowed:
        return Replacement(False, decision.reason, nonce, fees=fees)
    raw, new_hash = executor.sign(tx)  # right after the gate's answer, no await in between
    executor.nonces.mark_stale()  # whichever of the two lands, the node knows the next nonce
    error = await _send(executor, raw)
    if error:
        return Replacement(False, f"the node refused the {action} of {tx_hash}: {error}", nonce, new_hash, fees)
    log.warning("%s: %s of %s at nonce %d sent as %s (%s)", chain, action, tx_hash, nonce, new_hash, fees)
    return Replacement(True, f"{action} of {tx_hash} sent as {new_hash} at nonce {nonce}", nonce, new_hash, fees)


async def _send(executor: Executor, raw: bytes) -> str:
    """ "" when the replacement was accepted; else the refusal."""
    if executor.sequencer is not None:
        result = await executor.sequencer.send(raw)
        return "" if result.accepted else (result.error or result.status)
    try:
        await executor.rpc.call("eth_sendRawTransaction", ["0x" + raw.hex()])
    except Exception as exc:  # the node's refusal (underpriced, nonce too low): reported as it said it
        return f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    return ""


@dataclass(frozen=True, slots=True)
class Settled:
    """What became of a replacement on chain."""

    receipt: Literal["landed", "reverted", "superseded"]
    included_block: int | None = None


async def follow(
    executor: Executor,
    replacement_hash: str,
    nonce: int,
    *,
    poll_s: float = FOLLOW_POLL_S,
    timeout_s: float = FOLLOW_TIMEOUT_S,
) -> Settled | None:
    """Ask the node until the replacement has a receipt, or its nonce went to another transaction;
    None after `timeout_s` (a node that does not answer meanwhile is asked again at the next poll)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            settled = await _settled(executor, replacement_hash, nonce)
        except Exception as exc:  # the node did not answer this time
            log.debug("following %s: %s", replacement_hash, exc)
            settled = None
        if settled is not None:
            return settled
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(poll_s)


async def _settled(executor: Executor, replacement_hash: str, nonce: int) -> Settled | None:
    receipt = await executor.rpc.call("eth_getTransactionReceipt", [replacement_hash])
    if not receipt:
        used = int(await executor.rpc.call("eth_getTransactionCount", [executor.address, "latest"]), 16)
        if used <= nonce:
            return None
        # The nonce is used: by the replacement mined since the first question, or by another transaction.
        receipt = await executor.rpc.call("eth_getTransactionReceipt", [replacement_hash])
        if not receipt:
            return Settled("superseded")
    status = "landed" if int(receipt["status"], 16) == 1 else "reverted"
    return Settled(status, int(receipt["blockNumber"], 16))
