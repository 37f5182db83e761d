"""The arbitrage executor of one chain: core.Executor, dry-run unless the chain's config says live.

Order of work for one opportunity, and why:
1. duplicate check: an opportunity id is executed at most once, whatever the mode;
2. funding (mevagent.executor.funding), when the chain has flashloan providers: a cycle that needs more
   than the contract holds is re-sized for the inventory or for the cheapest loan net of its fee and
   gas, and goes on as that funded opportunity (what the contract keeps after repaying the loan);
3. calldata from the pool store, then an eth_call of the contract on the node (verification before
   send: a cycle the chain no longer pays is never signed). The contract's minProfit is only break-even,
   so the profit the call returns is also held against the prediction: a pool that moved between
   detection and execution can leave a cycle that still pays something but far less than the risk
   gate was told; more than the risk limits' max_slippage_bps short of it is never signed either;
4. dry-run stops here and reports what the call says it would earn, or that live would refuse it:
   nothing is signed or sent (not even to a builder's eth_callBundle: a signed transaction handed out
   can be included);
5. live: a nonce is reserved, then the risk gate is asked, and the transaction is signed right after
   its answer with no await in between, so nothing can change between the check and the signature;
6. a builder that offers eth_callBundle simulates the signed bundle first (a revert there sends nothing);
   bundles go to every builder for blocks N+1..N+k (or the transaction to the chain's sequencer),
   then the executor waits for the receipt or for block N+k to pass, settles the nonce and reports
   the outcome to the risk gate exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

import aiohttp
from eth_utils import to_checksum_address

from mevagent.analytics.protection import execution_exposure
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
    execute_flash_calldata,
    executed_profit,
)
from mevagent.executor.funding import FlashOpportunity, FlashProvider, choose
from mevagent.executor.keys import Signer
from mevagent.executor.liquidation import FundedLiquidation
from mevagent.executor.nonces import NonceManager
from mevagent.executor.routes import ARB_CONTRACT
from mevagent.executor.rpc import HttpJsonRpc, JsonRpc, is_out_of_gas, is_revert, revert_data
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
    sandwich_exposure: int | None = None  # in the cycle's token: see Outcome.sandwich_exposure
    funding: str = ""  # the flashloan provider that funded it; "" for the contract's inventory


log = logging.getLogger(__name__)
T = TypeVar("T")


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


def profit_before_payment(opportunity: Opportunity, kept: int, paid_from_profit: bool) -> int:
    """The cycle's profit before the builder payment: what the contract reports (`kept`) is after a
    payment it took out of the profit, so that payment is added back; otherwise `kept` as it is."""
    return kept + (opportunity.builder_payment if paid_from_profit else 0)


def shortfall(opportunity: Opportunity, simulated_profit: int, paid_from_profit: bool, max_slippage_bps: float) -> str:
    """Why the simulated profit is too far below the predicted one to sign ("" when it is within tolerance).

    The tolerance is the risk limits' max_slippage_bps of the cycle's predicted output, in the cycle's
    token: the same allowance the risk gate's slippage check priced in (the profit left after it must
    still pay the gas), so a simulation within it is a trade the gate has already accepted. The
    contract returns the profit after a builder payment it took out of the profit; the prediction is
    before it, so the payment is added back before comparing.
    """
    simulated = profit_before_payment(opportunity, simulated_profit, paid_from_profit)
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

    route = ARB_CONTRACT

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
        # Exposures priced right after the transaction went out, before its block can move the store.
        self._exposures: dict[str, int | None] = {}
        self.exposure_observer: Callable[[str, float], None] | None = None  # (chain, usd): the metric
        # (opportunity, id, hashes) as soon as a builder or the sequencer accepted the signed transaction: the
        # bus reports it sent then, so an execution whose receipt does not come shows as stuck meanwhile.
        self.sent_observer: Callable[[Opportunity, str, tuple[str, ...]], None] | None = None
        # The chain's flashloan providers as they are now (mevagent.lending.monitor); None: inventory only.
        self.flash_providers: Callable[[], Sequence[FlashProvider]] | None = None

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

    @property
    def address(self) -> str | None:
        """The signing key's address (None on a chain without a key)."""
        return self._signer.address if self._signer else None

    def sign(self, tx: dict[str, Any]) -> tuple[bytes, str]:
        """Sign `tx` with the chain's key: a stuck transaction's replacement (mevagent.executor.replace),
        which asks the risk gate first as `_sign_and_submit` does."""
        if self._signer is None:
            raise ValueError(f"key_file: {self.config.chain} has no signing key")
        return self._signer.sign_transaction(tx)

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
        if self.flash_providers is not None and not isinstance(opportunity, FundedLiquidation):
            try:
                funded, refusal = await self._funded(opportunity)
            except Exception as exc:  # the node: nothing is signed
                reason = f"funding: node: {type(exc).__name__}: {exc}"
                return self._report(oid, Outcome(opportunity, Status.FAILED, reason=reason))
            if funded is None:
                return self._report(oid, Outcome(opportunity, Status.REJECTED, reason=refusal))
            opportunity = funded
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
            profit = await self._simulate(calldata, self._simulated_block(opportunity, head), opportunity.gas_limit)
            refusal = self._shortfall(opportunity, profit)
            if refusal:
                # What live would have done: not signed, so nothing earned and no gas paid.
                outcome = Outcome(opportunity, Status.DRY_RUN, reason=f"live would not sign: {refusal}")
            else:
                outcome = Outcome(
                    opportunity,
                    Status.DRY_RUN,
                    realized_profit_usd=self._realized_usd(opportunity, profit),
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
            outcome = self._with_exposure(oid, outcome)
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
            simulated = await self._simulate(calldata, self._simulated_block(opportunity, head), opportunity.gas_limit)
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
            assert self.config.contract is not None
            tx = self.transaction(self.config.contract, calldata, nonce, opportunity.gas_limit, opportunity.gas_price)
            raw, tx_hash = self._signer.sign_transaction(tx)
            outcome, profit = await self._submit(opportunity, oid, nonce, raw, tx_hash, range(head + 1, last_block + 1))
        except Exception as exc:
            hashes = (tx_hash,) if tx_hash else ()
            reason = f"execution error: {type(exc).__name__}: {exc}"
            outcome = Outcome(opportunity, Status.FAILED, reason=reason, tx_hashes=hashes)
        finally:
            self.nonces.settle_unknown(nonce)  # an error or a cancellation before the nonce was settled
            outcome = self._with_exposure(oid, outcome)
            self.risk.record(outcome)
        return self._report(oid, outcome, profit, tx_hash)

    # -- the submission path: also a cross-chain leg's (mevagent.crosschain.legs) ----------------------

    def transaction(self, to: str, data: bytes, nonce: int, gas: int, gas_price: int) -> dict[str, Any]:
        """A call of `to` by the chain's key, priced as the chain's config says (EIP-1559 with the priority
        fee capped at `gas_price`, or legacy), ready to sign."""
        tx: dict[str, Any] = {
            "chainId": self.config.chain_id,
            "nonce": nonce,
            "to": to_checksum_address(to),
            "value": 0,
            "data": data,
            "gas": gas,
        }
        if self.config.eip1559:
            tx["type"] = 2
            tx["maxFeePerGas"] = gas_price
            tx["maxPriorityFeePerGas"] = min(self.config.priority_fee_wei, gas_price)
        else:
            tx["gasPrice"] = gas_price
        return tx

    async def send(
        self, raw: bytes, nonce: int, blocks: range, oid: str, meanwhile: Callable[[], None] | None = None
    ) -> str:
        """Hand a signed transaction to every builder for `blocks` (or to the chain's sequencer): "" once one
        accepted it. Otherwise why none did, and its nonce is released (a sequencer's refusal naming the nonce
        also has the count read again from the node). `meanwhile` runs while the request is in flight: after
        signing, never delaying the send."""
        assert self.nonces is not None
        if self.bundles is not None:
            results = await _sending(self.bundles.send_bundle([raw], blocks, oid), meanwhile)
        else:
            assert self.sequencer is not None
            results = [await _sending(self.sequencer.send(raw), meanwhile)]
        if any(r.accepted for r in results):
            return ""
        self.nonces.release(nonce)
        if self.bundles is None and "nonce" in results[0].error.lower():
            self.nonces.mark_stale()
        return _refusals(results)

    async def inclusion(self, tx_hash: str, nonce: int, blocks: range | None) -> tuple[dict[str, Any] | None, str]:
        """Wait for a sent transaction's receipt, then settle its nonce: (the receipt, "") or (None, why not).

        `blocks`: no receipt once the head is past the last of them; None: the receipt is waited for until the
        inclusion timeout whatever the head. A bundle whose blocks all passed can no longer be included: its
        nonce is released. Any other transaction without a receipt may still land (the sequencer holds it, or
        the chain stalled before the last block): only the node can say whether the nonce is used.
        """
        assert self.nonces is not None
        last = None if blocks is None else blocks.stop - 1
        timeout_s = self.config.inclusion_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                receipt = await self._wait_for_receipt(tx_hash, last)
        except TimeoutError:
            self.nonces.confirm(nonce)
            self.nonces.mark_stale()
            past = "" if last is None else f" and no block past {last}"
            return None, f"no receipt{past} within {timeout_s:g} s"
        if receipt is not None:
            self.nonces.confirm(nonce)
            return receipt, ""
        if self.bundles is not None:
            self.nonces.release(nonce)
        else:
            self.nonces.confirm(nonce)
            self.nonces.mark_stale()
        assert blocks is not None  # without a last block only the timeout ends the wait
        return None, f"not included in blocks {blocks.start}..{last}"

    async def _submit(
        self, opportunity: Opportunity, oid: str, nonce: int, raw: bytes, tx_hash: str, blocks: range
    ) -> tuple[Outcome, int | None]:
        assert self.nonces is not None
        if self.bundles is not None:
            refusal = await self._call_bundle(raw, blocks.start)
            if refusal:
                self.nonces.release(nonce)
                return Outcome(opportunity, Status.FAILED, reason=refusal, tx_hashes=(tx_hash,)), None

        def price_exposure() -> None:  # after signing, before the transaction can land and move the store's pools
            self._exposures[oid] = self._exposure(opportunity)

        refusal = await self.send(raw, nonce, blocks, oid, price_exposure)
        if refusal:
            return Outcome(opportunity, Status.FAILED, reason=refusal, tx_hashes=(tx_hash,)), None
        if self.sent_observer is not None:
            try:
                self.sent_observer(opportunity, oid, (tx_hash,))
            except Exception:  # reporting must never fail an execution
                log.exception("%s: the send of %s was not reported", self.config.chain, oid)
        receipt, reason = await self.inclusion(tx_hash, nonce, blocks)
        if receipt is None:
            return Outcome(opportunity, Status.FAILED, reason=reason, tx_hashes=(tx_hash,)), None
        paid = gas_paid(receipt)
        if int(receipt["status"], 16) != 1:
            outcome = Outcome(
                opportunity,
                Status.REVERTED,
                gas_cost_usd=self._native_usd(opportunity, paid),
                reason=f"reverted in block {int(receipt['blockNumber'], 16)}",
                tx_hashes=(tx_hash,),
            )
            return outcome, None
        assert self.config.contract is not None
        profit = executed_profit(receipt, self.config.contract)
        outcome = Outcome(
            opportunity,
            Status.LANDED,
            realized_profit_usd=self._realized_usd(opportunity, profit) if profit is not None else 0.0,
            gas_cost_usd=self._native_usd(opportunity, paid + opportunity.builder_payment),
            # The contract pays the coinbase exactly builder_payment or reverts: landed means paid.
            builder_paid_usd=self._native_usd(opportunity, opportunity.builder_payment),
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

    async def _wait_for_receipt(self, tx_hash: str, last_block: int | None) -> dict[str, Any] | None:
        poll_s = self.config.receipt_poll_ms / 1000
        while True:
            receipt = await self.rpc.call("eth_getTransactionReceipt", [tx_hash])
            if receipt:
                return receipt
            if last_block is not None and await self._block_number() > last_block:
                # It could have landed in the last target block between the two calls.
                return await self.rpc.call("eth_getTransactionReceipt", [tx_hash]) or None
            await asyncio.sleep(poll_s)

    # -- node calls and conversions --------------------------------------------------------------

    async def _funded(self, opportunity: Opportunity) -> tuple[Opportunity | None, str]:
        """The opportunity as the contract's inventory or a flashloan funds it (mevagent.executor.funding)."""
        assert self.config.contract is not None and self.flash_providers is not None
        call = {"to": opportunity.token, "data": "0x70a08231" + self.config.contract[2:].rjust(64, "0")}
        inventory = int(await self.rpc.call("eth_call", [call, "latest"]), 16)
        if opportunity.amount_in <= inventory:
            return opportunity, ""
        hops = [self.store.pools[h.pool].hop(h.token_in) for h in opportunity.hops]
        return choose(opportunity, hops, inventory, list(self.flash_providers()))

    async def _block_number(self) -> int:
        return int(await self.rpc.call("eth_blockNumber", []), 16)

    async def _transaction_count(self, address: str) -> int:
        return int(await self.rpc.call("eth_getTransactionCount", [address, "pending"]), 16)

    @staticmethod
    def _simulated_block(opportunity: Opportunity, head: int) -> int | None:
        """The block number the head simulation runs as: the next block for a liquidation sized for it (a
        vToken accrues interest per block), None for the head's own."""
        if isinstance(opportunity, FundedLiquidation) and opportunity.SIMULATE_NEXT_BLOCK:
            return head + 1
        return None

    async def _simulate(self, calldata: bytes, block: int | None = None, gas: int | None = None) -> int:
        """execute() as an eth_call from the contract's owner at the head: the profit it would keep. With
        `block`, on the head's state with the block number overridden (eth_call's block overrides). With `gas`,
        the transaction's gas limit: a call the limit cannot carry fails here as it would on chain, where
        without it the node runs the call with its own cap and the signed transaction runs out of gas."""
        assert self.config.contract is not None
        if self._caller is None:
            owner = await self.rpc.call(
                "eth_call", [{"to": self.config.contract, "data": "0x" + OWNER_SELECTOR.hex()}, "latest"]
            )
            self._caller = "0x" + owner[-40:]
        call = {"from": self._caller, "to": self.config.contract, "data": "0x" + calldata.hex()}
        if gas is not None:
            call["gas"] = hex(gas)
        params: list[Any] = [call, "latest"] if block is None else [call, "latest", {}, {"number": hex(block)}]
        try:
            result = await self.rpc.call("eth_call", params)
        except Exception as exc:
            if is_revert(exc):
                raise SimulationReverted(decode_revert(revert_data(exc))) from None
            if gas is not None and is_out_of_gas(exc):
                raise SimulationReverted(f"out of gas at the transaction's gas limit {gas:,}") from None
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
        floor = min_profit(opportunity, self.config.min_profit_wei, paid_from_profit)
        if isinstance(opportunity, FundedLiquidation):  # Aave V3's liquidate or Venus' liquidateVenus
            return opportunity.calldata(hops, floor, opportunity.builder_payment, max_block)
        if isinstance(opportunity, FlashOpportunity) and opportunity.loan is not None:
            return execute_flash_calldata(
                hops, opportunity.amount_in, floor, opportunity.builder_payment, max_block, opportunity.loan
            )
        return execute_calldata(hops, opportunity.amount_in, floor, opportunity.builder_payment, max_block)

    def _realized_usd(self, opportunity: Opportunity, kept: int) -> float:
        """The USD profit of an execution whose contract kept `kept` (landed or simulated), valued before
        the builder payment: gas_cost_usd holds the payment, so the net counts it once."""
        before = profit_before_payment(opportunity, kept, self._paid_from_profit(opportunity))
        return self._token_usd(opportunity, before)

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
        funded = outcome.opportunity
        loan = funded.loan if isinstance(funded, FlashOpportunity | FundedLiquidation) else None
        funding = loan.provider if loan else ""
        report = ExecutionReport(
            oid, outcome.status, profit, tx_hash, outcome.reason, outcome.sandwich_exposure, funding
        )
        self.reports.append(report)
        return outcome

    def _with_exposure(self, oid: str, outcome: Outcome) -> Outcome:
        """The outcome with what a public-mempool sandwich could have taken from it, for what was sent (or,
        in dry-run, simulated): reporting only, after the transaction is out or nothing was signed."""
        sent = self._exposures.pop(oid, None)
        if outcome.status is Status.DRY_RUN and self.config.contract is not None:
            sent = self._exposure(outcome.opportunity)
        if sent is None:
            return outcome
        usd = self._token_usd(outcome.opportunity, sent)
        if self.exposure_observer is not None:
            self.exposure_observer(self.config.chain, usd)
        return dataclasses.replace(outcome, sandwich_exposure=sent, sandwich_exposure_usd=usd)

    def _exposure(self, opportunity: Opportunity) -> int | None:
        """What an optimal sandwich nets from this cycle in its token, the contract's minimum as its limit."""
        if isinstance(opportunity, FundedLiquidation):
            return None  # not a cycle: the analysis prices cycles only
        try:
            floor = min_profit(opportunity, self.config.min_profit_wei, self._paid_from_profit(opportunity))
            risk = execution_exposure(self.store, opportunity, floor)
        except Exception as exc:  # a report must never fail an execution
            log.warning("%s: sandwich exposure of %s not computed: %s", self.config.chain, opportunity.id, exc)
            return None
        if risk is None or (risk.max_profit and risk.profit_token != opportunity.token.lower()):
            return None  # a pool left the store, or the sandwich pays in another token (no price for it)
        return risk.max_profit


def gas_paid(receipt: dict[str, Any]) -> int:
    """What the transaction paid for its gas, in wei, from its receipt."""
    return int(receipt["gasUsed"], 16) * int(receipt.get("effectiveGasPrice", "0x0"), 16)


async def _sending(send: Coroutine[Any, Any, T], meanwhile: Callable[[], None] | None) -> T:
    """Await `send`, running `meanwhile` while the request is in flight (never delaying it)."""
    task = asyncio.ensure_future(send)
    if meanwhile is not None:
        await asyncio.sleep(0)  # the send runs first, up to its first wait on the network
        meanwhile()
    return await task


def _refusals(results: list[EndpointResult]) -> str:
    details = "; ".join(
        f"{r.endpoint}{'' if r.block is None else f'@{r.block}'}: {r.status} {r.error}".strip() for r in results
    )
    return f"no endpoint accepted it: {details}"
