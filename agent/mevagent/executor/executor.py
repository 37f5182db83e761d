"""The arbitrage executor of one chain: core.Executor, dry-run unless the chain's config says live.

Order of work for one opportunity, and why:
1. duplicate check: an opportunity id is executed at most once, whatever the mode;
2. calldata from the pool store, then an eth_call of the contract on the node (verification before
   send: a cycle the chain no longer pays is never signed). The contract's minProfit is only break-even,
   so the profit the call returns is also held against the prediction: a pool that moved between
   detection and execution can leave a cycle that still pays something but far less than the risk
   gate was told; more than the risk limits' max_slippage_bps short of it is never signed either;
3. dry-run stops here and reports what the call says it would earn, or that live would refuse it:
   nothing is signed or sent (not even to a builder's eth_callBundle: a signed transaction handed out
   can be included);
4. live: a nonce is reserved, then the risk gate is asked, and the transaction is signed right after
   its answer with no await in between, so nothing can change between the check and the signature;
5. a builder that offers eth_callBundle simulates the signed bundle first (a revert there sends nothing);
   bundles go to every builder for blocks N+1..N+k (or the transaction to the chain's sequencer),
   then the executor waits for the receipt or for block N+k to pass, settles the nonce and reports
   the outcome to the risk gate exactly once.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import aiohttp
from eth_utils import to_checksum_address

from mevagent.core import Opportunity, Outcome, RiskCheck, Status
from mevagent.executor.bundles import BundleSender, EndpointResult, RelayStatus, SequencerSender
from mevagent.executor.config import ChainExecution
from mevagent.executor.contract import (
    OWNER_SELECTOR,
    ContractHop,
    contract_hops,
    decode_profit,
    decode_revert,
    execute_calldata,
    executed_profit,
)
from mevagent.executor.keys import Signer
from mevagent.executor.nonces import NonceManager
from mevagent.executor.rpc import HttpJsonRpc, JsonRpc, revert_data
from mevagent.state.pools import PoolStore

# Opportunity ids remembered for the duplicate check: far more than a block's worth on any chain.
_REMEMBERED_IDS = 100_000


class SimulationReverted(Exception):
    pass


class SimulationShort(Exception):
    """The contract's eth_call at the head keeps less than predicted, beyond the slippage tolerance."""


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """What the executor did with one opportunity, in wei: for the API and for tests."""

    opportunity_id: str
    status: Status
    profit_wei: int | None  # kept by the contract (simulated in dry-run); None when unknown
    tx_hash: str = ""
    reason: str = ""


def opportunity_id(opportunity: Opportunity) -> str:
    """The opportunity's own id, or one derived from what makes it the same trade."""
    if opportunity.id:
        return opportunity.id
    key = (
        f"{opportunity.chain}:{opportunity.block}:{','.join(h.pool for h in opportunity.hops)}:{opportunity.amount_in}"
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def min_profit(opportunity: Opportunity, floor: int, paid_from_profit: bool) -> int:
    """What the contract must keep, in the cycle's token: at least gas and the builder payment, converted
    at the opportunity's own price, so a cycle the chain pays less for than it costs reverts."""
    if opportunity.profit_usd <= 0 or opportunity.gross_profit <= 0:
        return max(floor, opportunity.gross_profit)
    cost = Fraction(opportunity.gas_cost_usd) * opportunity.gross_profit / Fraction(opportunity.profit_usd)
    break_even = math.ceil(cost)
    if paid_from_profit:  # the contract already demands the payment on top of minProfit
        break_even -= opportunity.builder_payment
    return max(floor, break_even)


def shortfall(opportunity: Opportunity, simulated_profit: int, paid_from_profit: bool, max_slippage_bps: float) -> str:
    """Why the simulated profit is too far below the predicted one to sign ("" when it is within tolerance).

    The tolerance is the risk limits' max_slippage_bps of the cycle's predicted output, in the cycle's
    token: the same allowance the risk gate's slippage check priced in (the profit left after it must
    still pay the gas), so a simulation within it is a trade the gate has already accepted. The
    contract returns the profit after a builder payment it took out of the profit; the prediction is
    before it, so the payment is added back before comparing.
    """
    simulated = simulated_profit + (opportunity.builder_payment if paid_from_profit else 0)
    short = opportunity.gross_profit - simulated
    tolerance = Fraction(opportunity.amount_out) * Fraction(max_slippage_bps) / 10_000
    if short <= tolerance:
        return ""
    return (
        f"simulation at the head short of the prediction: the contract would keep {simulated} of "
        f"{opportunity.token}, predicted {opportunity.gross_profit}: {short} short, more than the "
        f"{max_slippage_bps:g} bps of the output {opportunity.amount_out} that max_slippage_bps allows "
        f"({math.floor(tolerance)})"
    )


class ArbitrageExecutor:
    """core.Executor for one chain.

    `max_slippage_bps` reads the risk limits' max_slippage_bps at every execution (the API can change
    the limits while the agent runs): how far below the predicted profit the head simulation may come
    before the executor refuses to sign.
    """

    def __init__(
        self,
        config: ChainExecution,
        store: PoolStore,
        risk: RiskCheck,
        rpc: JsonRpc,
        session: aiohttp.ClientSession,
        *,
        max_slippage_bps: Callable[[], float],
        signer: Signer | None = None,
        identity: Signer | None = None,
    ) -> None:
        if config.chain != store.chain:
            raise ValueError(f"chain: config is for {config.chain}, the pool store for {store.chain}")
        if config.live and signer is None:
            raise ValueError(f"key_file: {config.chain} is live but no signing key was loaded")
        self.config = config
        self.store = store
        self.risk = risk
        self.max_slippage_bps = max_slippage_bps
        self.rpc = rpc
        self._session = session
        self._signer = signer
        self.relays = RelayStatus(config.chain)
        self.nonces = NonceManager(signer.address, self._transaction_count) if signer else None
        self.bundles: BundleSender | None = None
        self.sequencer: SequencerSender | None = None
        if config.submission == "bundle" and identity is not None:
            self.bundles = BundleSender(config.builders, identity, session, self.relays)
        elif config.submission == "sequencer" and config.sequencer_url is not None:
            self.sequencer = SequencerSender(config.sequencer_url, session, self.relays)
        if config.live and self.bundles is None and self.sequencer is None:
            raise ValueError(f"identity_key_file: {config.chain} is live but has no way to submit")
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._pools_in_flight: set[str] = set()  # sequencer chains: pools of executions not yet settled
        self._caller: str | None = signer.address if signer else None
        self.reports: deque[ExecutionReport] = deque(maxlen=1000)

    @classmethod
    async def open(
        cls,
        config: ChainExecution,
        store: PoolStore,
        risk: RiskCheck,
        *,
        max_slippage_bps: Callable[[], float],
        rpc: JsonRpc | None = None,
    ) -> ArbitrageExecutor:
        """An executor with its keys read from their files and its own HTTP session for builders.

        `rpc` is the agent's client of the co-located node (IPC); without it, `rpc_url` over HTTP.
        """
        if rpc is None and config.rpc_url is None:
            raise ValueError(f"rpc_url: {config.chain} needs its node: set rpc_url or pass the node client")
        signer = Signer.from_file(config.key_file) if config.key_file else None
        identity = Signer.from_file(config.identity_key_file) if config.identity_key_file else None
        session = aiohttp.ClientSession()
        if rpc is None:
            assert config.rpc_url is not None
            rpc = HttpJsonRpc(config.rpc_url, session)
        return cls(
            config, store, risk, rpc, session, max_slippage_bps=max_slippage_bps, signer=signer, identity=identity
        )

    async def aclose(self) -> None:
        await self._session.close()

    @property
    def live(self) -> bool:
        return self.config.live

    async def execute(self, opportunity: Opportunity, head: int | None = None) -> Outcome:
        """`head`: the node's block number if the caller has just read it (one round trip fewer)."""
        oid = opportunity_id(opportunity)
        if oid in self._seen:
            return self._report(
                oid, Outcome(opportunity, Status.REJECTED, reason=f"duplicate: {oid} was already executed")
            )
        self._seen[oid] = None
        if len(self._seen) > _REMEMBERED_IDS:
            self._seen.popitem(last=False)
        if opportunity.chain != self.config.chain:
            reason = f"chain: opportunity is for {opportunity.chain}, this executor for {self.config.chain}"
            return self._report(oid, Outcome(opportunity, Status.REJECTED, reason=reason))
        try:
            hops = contract_hops(opportunity, self.store)
        except ValueError as exc:
            return self._report(oid, Outcome(opportunity, Status.FAILED, reason=str(exc)))
        if self.config.contract is None:
            return await self._unsimulated(oid, opportunity)
        if self.config.live:
            return await self._live(oid, opportunity, hops, head)
        return await self._dry_run(oid, opportunity, hops, head)

    # -- dry-run ----------------------------------------------------------------------------------

    async def _unsimulated(self, oid: str, opportunity: Opportunity) -> Outcome:
        decision = self.risk.check(opportunity)
        if not decision.allowed:
            return self._report(oid, Outcome(opportunity, Status.REJECTED, reason=decision.reason))
        outcome = Outcome(
            opportunity,
            Status.DRY_RUN,
            realized_profit_usd=0.0,
            reason=f"not simulated: no contract is configured for {self.config.chain}",
        )
        self.risk.record(outcome)
        return self._report(oid, outcome)

    async def _dry_run(
        self, oid: str, opportunity: Opportunity, hops: tuple[ContractHop, ...], head: int | None
    ) -> Outcome:
        try:
            head = await self._block_number() if head is None else head
        except Exception as exc:
            return self._report(oid, Outcome(opportunity, Status.FAILED, reason=f"node: {type(exc).__name__}: {exc}"))
        calldata = self._calldata(opportunity, hops, head + self.config.target_blocks)
        # Dry-run asks the risk gate too: what it reports is what live mode would have done.
        decision = self.risk.check(opportunity)
        if not decision.allowed:
            return self._report(oid, Outcome(opportunity, Status.REJECTED, reason=decision.reason))
        outcome = Outcome(opportunity, Status.FAILED, reason="dry-run simulation did not finish")
        profit: int | None = None
        try:
            profit = await self._simulate(calldata)
            refusal = self._shortfall(opportunity, profit)
            if refusal:
                # What live would have done: not signed, so nothing earned and no gas paid.
                outcome = Outcome(opportunity, Status.DRY_RUN, reason=f"live would not sign: {refusal}")
            else:
                outcome = Outcome(
                    opportunity,
                    Status.DRY_RUN,
                    realized_profit_usd=self._token_usd(opportunity, profit),
                    gas_cost_usd=opportunity.gas_cost_usd,
                    reason=(
                        f"simulated at the head: would keep {profit} of {opportunity.token} "
                        f"(predicted {opportunity.gross_profit})"
                    ),
                )
        except SimulationReverted as exc:
            outcome = Outcome(opportunity, Status.DRY_RUN, reason=f"simulation reverted: {exc}")
        except Exception as exc:  # whatever the node client raises (HTTP or IPC): the outcome says what
            outcome = Outcome(opportunity, Status.FAILED, reason=f"simulation failed: {type(exc).__name__}: {exc}")
        finally:
            self.risk.record(outcome)
        return self._report(oid, outcome, profit)

    # -- live -------------------------------------------------------------------------------------

    async def _live(
        self, oid: str, opportunity: Opportunity, hops: tuple[ContractHop, ...], head: int | None
    ) -> Outcome:
        if self.sequencer is None:
            # A bundle that would revert is not included (and costs nothing): concurrent bundles
            # through the same pool are left to the builders.
            return await self._sign_and_submit(oid, opportunity, hops, head)
        # A sequencer includes what it is sent and charges gas for a revert: two executions through
        # one pool, both simulated against the same head, would race and one would pay for nothing.
        pools = {hop.pool for hop in opportunity.hops}
        busy = pools & self._pools_in_flight
        if busy:
            reason = f"pool in flight: {min(busy)} is in an execution not yet settled (a sequencer charges reverts)"
            return self._report(oid, Outcome(opportunity, Status.REJECTED, reason=reason))
        self._pools_in_flight |= pools
        try:
            return await self._sign_and_submit(oid, opportunity, hops, head)
        finally:
            self._pools_in_flight -= pools

    async def _sign_and_submit(
        self, oid: str, opportunity: Opportunity, hops: tuple[ContractHop, ...], head: int | None
    ) -> Outcome:
        assert self._signer is not None and self.nonces is not None  # checked in __init__
        try:
            head = await self._block_number() if head is None else head
            last_block = head + self.config.target_blocks
            calldata = self._calldata(opportunity, hops, last_block)
            simulated = await self._simulate(calldata)
            refusal = self._shortfall(opportunity, simulated)
            if refusal:
                raise SimulationShort(refusal)
            nonce = await self.nonces.reserve()
        except SimulationReverted as exc:
            return self._report(oid, Outcome(opportunity, Status.FAILED, reason=f"simulation reverted: {exc}"))
        except SimulationShort as exc:
            # Like a revert: the pools moved since detection, which says nothing about the builders or
            # the node, so it is not booked with the risk gate (no reservation was made, and a failure
            # there would count towards the circuit breaker). No nonce was reserved.
            return self._report(oid, Outcome(opportunity, Status.FAILED, reason=str(exc)))
        except Exception as exc:  # the node: nothing is signed, so nothing to settle
            reason = f"before signing: {type(exc).__name__}: {exc}"
            return self._report(oid, Outcome(opportunity, Status.FAILED, reason=reason))
        decision = self.risk.check(opportunity)
        if not decision.allowed:
            self.nonces.release(nonce)
            return self._report(oid, Outcome(opportunity, Status.REJECTED, reason=decision.reason))
        outcome = Outcome(opportunity, Status.FAILED, reason="execution did not finish")
        profit: int | None = None
        tx_hash = ""
        try:
            raw, tx_hash = self._signer.sign_transaction(self._transaction(opportunity, calldata, nonce))
            outcome, profit = await self._submit(opportunity, oid, nonce, raw, tx_hash, range(head + 1, last_block + 1))
        except Exception as exc:
            hashes = (tx_hash,) if tx_hash else ()
            reason = f"execution error: {type(exc).__name__}: {exc}"
            outcome = Outcome(opportunity, Status.FAILED, reason=reason, tx_hashes=hashes)
        finally:
            if nonce in self.nonces.in_flight:
                # An error or a cancellation before the nonce was settled: the transaction may have gone
                # out, so only the node can say whether the nonce is used.
                self.nonces.confirm(nonce)
                self.nonces.mark_stale()
            self.risk.record(outcome)
        return self._report(oid, outcome, profit, tx_hash)

    def _transaction(self, opportunity: Opportunity, calldata: bytes, nonce: int) -> dict[str, Any]:
        assert self.config.contract is not None
        tx: dict[str, Any] = {
            "chainId": self.config.chain_id,
            "nonce": nonce,
            "to": to_checksum_address(self.config.contract),
            "value": 0,
            "data": calldata,
            "gas": opportunity.gas_limit,
        }
        if self.config.eip1559:
            tx["type"] = 2
            tx["maxFeePerGas"] = opportunity.gas_price
            tx["maxPriorityFeePerGas"] = min(self.config.priority_fee_wei, opportunity.gas_price)
        else:
            tx["gasPrice"] = opportunity.gas_price
        return tx

    async def _submit(
        self, opportunity: Opportunity, oid: str, nonce: int, raw: bytes, tx_hash: str, blocks: range
    ) -> tuple[Outcome, int | None]:
        assert self.nonces is not None
        if self.bundles is not None:
            refusal = await self._call_bundle(raw, blocks.start)
            if refusal:
                self.nonces.release(nonce)
                return Outcome(opportunity, Status.FAILED, reason=refusal, tx_hashes=(tx_hash,)), None
            results = await self.bundles.send_bundle([raw], blocks, oid)
            if not any(r.accepted for r in results):
                self.nonces.release(nonce)
                return Outcome(opportunity, Status.FAILED, reason=_refusals(results), tx_hashes=(tx_hash,)), None
        else:
            assert self.sequencer is not None
            result = await self.sequencer.send(raw)
            if not result.accepted:
                self.nonces.release(nonce)
                if "nonce" in result.error.lower():
                    self.nonces.mark_stale()
                return Outcome(opportunity, Status.FAILED, reason=_refusals([result]), tx_hashes=(tx_hash,)), None
        try:
            async with asyncio.timeout(self.config.inclusion_timeout_s):
                receipt = await self._wait_for_receipt(tx_hash, blocks.stop - 1)
        except TimeoutError:
            self.nonces.confirm(nonce)
            self.nonces.mark_stale()
            reason = f"no receipt and no block past {blocks.stop - 1} within {self.config.inclusion_timeout_s:g} s"
            return Outcome(opportunity, Status.FAILED, reason=reason, tx_hashes=(tx_hash,)), None
        if receipt is None:
            if self.bundles is not None:
                self.nonces.release(nonce)  # a bundle for blocks that passed can no longer be included
            else:
                # The sequencer may still hold it: only the node can say whether the nonce is used.
                self.nonces.confirm(nonce)
                self.nonces.mark_stale()
            reason = f"not included in blocks {blocks.start}..{blocks.stop - 1}"
            return Outcome(opportunity, Status.FAILED, reason=reason, tx_hashes=(tx_hash,)), None
        self.nonces.confirm(nonce)
        gas_paid = int(receipt["gasUsed"], 16) * int(receipt.get("effectiveGasPrice", "0x0"), 16)
        if int(receipt["status"], 16) != 1:
            outcome = Outcome(
                opportunity,
                Status.REVERTED,
                gas_cost_usd=self._native_usd(opportunity, gas_paid),
                reason=f"reverted in block {int(receipt['blockNumber'], 16)}",
                tx_hashes=(tx_hash,),
            )
            return outcome, None
        assert self.config.contract is not None
        profit = executed_profit(receipt, self.config.contract)
        outcome = Outcome(
            opportunity,
            Status.LANDED,
            realized_profit_usd=self._token_usd(opportunity, profit or 0),
            gas_cost_usd=self._native_usd(opportunity, gas_paid + opportunity.builder_payment),
            reason=f"landed in block {int(receipt['blockNumber'], 16)}",
            tx_hashes=(tx_hash,),
        )
        return outcome, profit

    async def _call_bundle(self, raw: bytes, block: int) -> str:
        """Why the signed bundle fails at a builder that offers eth_callBundle; "" if it passes or none can say.

        Live mode only: dry-run never signs, because a signed transaction in a third party's hands can
        be included, and dry-run must never trade.
        """
        assert self.bundles is not None
        result = await self.bundles.call_bundle([raw], block)
        if result is None or not result.accepted or not isinstance(result.result, dict):
            return ""  # the local eth_call already passed; a builder that cannot simulate does not veto
        for tx in result.result.get("results", []):
            if tx.get("error") or tx.get("revert"):
                return f"bundle simulation at {result.endpoint} reverted: {tx.get('revert') or tx.get('error')}"
        return ""

    async def _wait_for_receipt(self, tx_hash: str, last_block: int) -> dict[str, Any] | None:
        poll_s = self.config.receipt_poll_ms / 1000
        while True:
            receipt = await self.rpc.call("eth_getTransactionReceipt", [tx_hash])
            if receipt:
                return receipt
            if await self._block_number() > last_block:
                # It could have landed in the last target block between the two calls.
                return await self.rpc.call("eth_getTransactionReceipt", [tx_hash]) or None
            await asyncio.sleep(poll_s)

    # -- node calls and conversions --------------------------------------------------------------

    async def _block_number(self) -> int:
        return int(await self.rpc.call("eth_blockNumber", []), 16)

    async def _transaction_count(self, address: str) -> int:
        return int(await self.rpc.call("eth_getTransactionCount", [address, "pending"]), 16)

    async def _simulate(self, calldata: bytes) -> int:
        """execute() as an eth_call from the contract's owner at the head: the profit it would keep."""
        assert self.config.contract is not None
        if self._caller is None:
            owner = await self.rpc.call(
                "eth_call", [{"to": self.config.contract, "data": "0x" + OWNER_SELECTOR.hex()}, "latest"]
            )
            self._caller = "0x" + owner[-40:]
        call = {"from": self._caller, "to": self.config.contract, "data": "0x" + calldata.hex()}
        try:
            result = await self.rpc.call("eth_call", [call, "latest"])
        except Exception as exc:
            # Duck-typed: this module's RpcError and the agent's IPC client's carry the same fields.
            if getattr(exc, "code", None) == 3 or "revert" in str(getattr(exc, "message", "")).lower():
                raise SimulationReverted(decode_revert(revert_data(exc))) from None
            raise
        return decode_profit(result)

    def _paid_from_profit(self, opportunity: Opportunity) -> bool:
        """Whether the contract takes the builder payment out of the cycle's profit (as it decides on chain)."""
        return opportunity.builder_payment > 0 and opportunity.token == self.config.wrapped_native

    def _shortfall(self, opportunity: Opportunity, simulated_profit: int) -> str:
        paid_from_profit = self._paid_from_profit(opportunity)
        return shortfall(opportunity, simulated_profit, paid_from_profit, self.max_slippage_bps())

    def _calldata(self, opportunity: Opportunity, hops: tuple[ContractHop, ...], max_block: int) -> bytes:
        paid_from_profit = self._paid_from_profit(opportunity)
        return execute_calldata(
            hops,
            opportunity.amount_in,
            min_profit(opportunity, self.config.min_profit_wei, paid_from_profit),
            opportunity.builder_payment,
            max_block,
        )

    @staticmethod
    def _token_usd(opportunity: Opportunity, amount: int) -> float:
        if opportunity.gross_profit <= 0:
            return 0.0
        return opportunity.profit_usd * amount / opportunity.gross_profit

    @staticmethod
    def _native_usd(opportunity: Opportunity, wei: int) -> float:
        budget = opportunity.gas_limit * opportunity.gas_price + opportunity.builder_payment
        return opportunity.gas_cost_usd * wei / budget if budget else 0.0

    def _report(self, oid: str, outcome: Outcome, profit: int | None = None, tx_hash: str = "") -> Outcome:
        self.reports.append(ExecutionReport(oid, outcome.status, profit, tx_hash, outcome.reason))
        return outcome


def _refusals(results: list[EndpointResult]) -> str:
    details = "; ".join(f"{r.endpoint}@{r.block}: {r.status} {r.error}".strip() for r in results)
    return f"no endpoint accepted it: {details}"
