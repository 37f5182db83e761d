"""One inventory leg of a cross-chain position, carried out by this agent (mevagent.bus.events.CrossChainLegCommand).

The control plane's position book (mevcontrol.positions) decides a position and sends each leg to the agent
of its chain; here the leg is one exact-input swap from the signing key's own inventory, through the router the
chain's venues name for the leg's pool (mevagent.crosschain.venues: `leg_venues`, else `swap_router` for a V2 pair
and `v3_swap_router` for a V3 pool, the command's `v3_fee`): Uniswap V2's Router02 (`swapExactTokensForTokens`
with `amountOutMin` and a deadline), @uniswap/v3-periphery's SwapRouter (`exactInputSingle` with
`amountOutMinimum`, a deadline and no price limit) or SwapRouter02 (either swap inside `multicall(deadline, ...)`):
atomic, it reverts rather than pay less. A V3 router finds its pool by (tokens, fee) from its own factory, and
SwapRouter02 its V2 pair by the tokens from its V2 factory, so before anything else such a leg checks that the
router's factory maps them to the leg's pool (once per pool): a router of another factory (another fork, a
misconfiguration) would swap in a pool the engine never priced. Order of work, as for the arbitrage executor
(mevagent.executor.executor), whose node client, key, nonces and submission path it shares:

1. not after the command's deadline; the pool must have a venue on the chain whose fee tier is the leg's, and
   the router's factory must map the leg's tokens (and fee) to the leg's pool (Router02 excepted);
2. an eth_call of the swap from the key's address at the head (read at once with the head's number and the
   gas price: three requests in flight together): what it pays now, and a revert (no
   allowance, not enough inventory, less than `min_out`) is reported without asking the gate; the router's
   own words for the first two are the same ("TRANSFER_FROM_FAILED"), so after a revert the key's balance
   and the router's allowance are read and the reason names the one that is short (`inventory:` or
   `allowance:`, with both amounts): approving the router is the operator's step (docs/crosschain.md);
3. dry-run (the chain's default) asks the risk gate, as live would, and reports the simulated output:
   nothing is signed;
4. live: a nonce is reserved, the gate is asked (an `unwind` leg as a trade that reduces exposure), and
   the transaction is signed right after its answer, then sent and its receipt waited for by the
   executor's own submission path (`transaction`, `send`, `inclusion`: the same builders or sequencer,
   nonce settlement and receipt wait as an arbitrage); the output is read from the receipt (the token's
   Transfer to the key). On a sequencer chain the receipt is waited for until the inclusion timeout,
   not only for the target blocks: a leg that lands late is still reported landed. The gate books the
   leg's gas; the position's P&L is the control plane's (a leg alone is half a trade).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address

from mevagent.bus.events import CrossChainLegCommand, CrossChainLegResult
from mevagent.core import Hop, Opportunity, Outcome, Status
from mevagent.crosschain.venues import LegVenue, default_venue
from mevagent.executor.executor import ArbitrageExecutor, gas_paid
from mevagent.executor.rpc import is_out_of_gas, is_revert, revert_data

log = logging.getLogger(__name__)

BALANCE_OF = keccak(text="balanceOf(address)")[:4]
ALLOWANCE = keccak(text="allowance(address,address)")[:4]
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
ROUTE = "inventory_swap"  # the executor route legs name (they come from the bus, not a strategy)
STRATEGY = "crosschain"
WEI_PER_COIN = 10**18


class LegExecutor:
    """Legs of one chain, through `executor`'s node, key, nonces and submission path."""

    def __init__(self, executor: ArbitrageExecutor, agent: str) -> None:
        config = executor.config
        if config.swap_router is None and config.v3_swap_router is None and not config.leg_venues:
            raise ValueError(
                f"swap_router: {config.chain} has no Uniswap V2 router (nor a V3 v3_swap_router, nor leg_venues)"
            )
        self.executor = executor
        self.agent = agent
        self.router: str | None = config.swap_router
        self.v3_router: str | None = config.v3_swap_router
        self.venues: dict[str, LegVenue] = {v.pool: v for v in config.leg_venues}
        self.chain = config.chain
        # (router, token0, token1, fee) → the pool the router swaps them in (fee None: SwapRouter02's V2 pair)
        self._pools: dict[tuple[str, str, str, int | None], str] = {}

    def venue_for(self, command: CrossChainLegCommand) -> tuple[LegVenue | None, str]:
        """The leg's venue, or why there is none: the pool's `leg_venues` entry (its fee tier must be the leg's),
        else the chain's router for the pool's kind."""
        venue = self.venues.get(command.pool)
        if venue is not None:
            if venue.fee != command.v3_fee:
                said = "a V2 pair" if command.v3_fee is None else f"a V3 pool of fee {command.v3_fee}"
                return None, f"leg_venues: {venue.describe()}, the leg says {said}"
            return venue, ""
        venue = default_venue(command.pool, command.v3_fee, self.router, self.v3_router)
        if venue is None:
            which = "swap_router (V2 Router02)" if command.v3_fee is None else "v3_swap_router (V3 SwapRouter)"
            return None, f"{which}: {self.chain} has none configured for this leg's pool (nor leg_venues)"
        return venue, ""

    async def execute(
        self, command: CrossChainLegCommand, on_sent: Callable[[], None] | None = None
    ) -> CrossChainLegResult:
        """The leg, start to end (its receipt). `on_sent` is called once a builder or the sequencer accepted the
        transaction, before the receipt is waited for."""
        received_at = time.time()
        sent: list[float] = []  # when a builder or the sequencer accepted it (legs of one chain run concurrently)
        try:
            status, amount_out, gas_paid, tx_hash, reason = await self._execute(command, sent, on_sent)
        except Exception as exc:  # the node: reported, never raised into the command loop
            status, amount_out, gas_paid, tx_hash, reason = "failed", 0, 0, None, f"{type(exc).__name__}: {exc}"
        return CrossChainLegResult(
            agent=self.agent, command_id=command.id, position_id=command.position_id, leg=command.leg,
            chain=command.chain, status=status, token_in=command.token_in, token_out=command.token_out,
            amount_in=command.amount_in if status in ("landed", "dry_run") else 0, amount_out=amount_out,
            gas_paid_wei=gas_paid, tx_hash=tx_hash, reason=reason[:1000], received_at=received_at,
            sent_at=sent[0] if sent else None,
        )  # fmt: skip

    async def _execute(
        self, command: CrossChainLegCommand, sent: list[float], on_sent: Callable[[], None] | None
    ) -> tuple[Any, int, int, str | None, str]:
        ex = self.executor
        if command.chain != self.chain:
            return "rejected", 0, 0, None, f"chain: the leg is for {command.chain}, this executor for {self.chain}"
        if time.time() >= command.deadline:
            return "rejected", 0, 0, None, f"deadline: {command.deadline:.3f} passed before the leg was started"
        me = ex.address
        if me is None:
            return "failed", 0, 0, None, f"key_file: {self.chain} has no key, so no inventory to swap from"
        venue, refused = self.venue_for(command)
        if venue is None:
            return "rejected", 0, 0, None, refused
        router = venue.router
        if venue.kind != "v2_router02":
            wrong = await self._pool_mismatch(command, venue)
            if wrong:
                return "rejected", 0, 0, None, wrong
        rpc = ex.rpc
        data = self.calldata(command, me, venue)
        # The head, the gas price and the simulation are independent reads: one round trip's wait, not three.
        reads = asyncio.gather(
            rpc.call("eth_blockNumber", []),
            rpc.call("eth_gasPrice", []),
            self._simulate(me, venue, data, command.gas_limit),
        )
        try:
            head_hex, price_hex, simulated = await reads
        except _OutOfGas:
            limit, via = command.gas_limit, f"{venue.kind} at {router}"
            short = f"gas: the leg takes more than its limit of {limit} gas through {via} (simulated with that limit)"
            return "failed", 0, 0, None, f"{short}: raise leg_gas, nothing was signed"
        except _Reverted as exc:
            return "failed", 0, 0, None, await self._short_of(command, me, router, f"simulation reverted: {exc}")
        head, gas_price = int(head_hex, 16), int(price_hex, 16)
        opportunity = self.opportunity(command, head, gas_price)
        unwind = command.leg == "unwind"
        if not ex.live:
            decision = ex.risk.check(opportunity, unwind=unwind)
            if not decision.allowed:
                return "rejected", 0, 0, None, decision.reason
            ex.risk.record(Outcome(opportunity, Status.DRY_RUN, reason="dry-run leg: simulated only"))
            return "dry_run", simulated, 0, None, f"dry-run: simulated at block {head}, nothing signed"
        assert ex.nonces is not None
        nonce = await ex.nonces.reserve()
        decision = ex.risk.check(opportunity, unwind=unwind)
        if not decision.allowed:
            ex.nonces.release(nonce)
            return "rejected", 0, 0, None, decision.reason
        outcome = Outcome(opportunity, Status.FAILED, reason="leg did not finish")
        result: tuple[Any, int, int, str | None, str] = ("failed", 0, 0, None, outcome.reason)
        try:
            raw, tx_hash = ex.sign(ex.transaction(router, data, nonce, command.gas_limit, gas_price))
            result, outcome = await self._submit(command, opportunity, nonce, raw, tx_hash, head, me, sent, on_sent)
        except Exception as exc:
            result = ("failed", 0, 0, None, f"execution error: {type(exc).__name__}: {exc}")
            outcome = Outcome(opportunity, Status.FAILED, reason=result[4])
        finally:
            ex.nonces.settle_unknown(nonce)
            ex.risk.record(outcome)
        return result

    # ---- the swap -------------------------------------------------------------------------------------

    def calldata(self, command: CrossChainLegCommand, me: str, venue: LegVenue) -> bytes:
        return venue.calldata(
            command.token_in, command.token_out, command.amount_in, command.min_out, me, int(command.deadline)
        )

    def opportunity(self, command: CrossChainLegCommand, head: int, gas_price: int) -> Opportunity:
        """The leg as the risk gate sees any trade: one hop, its notional, its share of the expected profit."""
        gas_usd = float(command.native_usd) * command.gas_limit * gas_price / WEI_PER_COIN
        return Opportunity(
            chain=command.chain, strategy=STRATEGY, block=head,
            hops=(Hop(command.pool, "v2" if command.v3_fee is None else "v3", command.token_in, command.token_out),),
            amount_in=command.amount_in, amount_out=command.expected_out, gas_limit=command.gas_limit,
            gas_price=gas_price, builder_payment=0, notional_usd=float(command.notional_usd),
            profit_usd=float(command.profit_usd), gas_cost_usd=gas_usd, found_ns=time.perf_counter_ns(),
            id=command.id, route=ROUTE,
        )  # fmt: skip

    async def _pool_mismatch(self, command: CrossChainLegCommand, venue: LegVenue) -> str:
        """ "" when the venue's router swaps (token_in, token_out[, fee]) in the leg's pool, else why not (the
        router's factory answers getPool, or SwapRouter02's V2 factory getPair; asked once per pool, the answer
        never changes)."""
        # The factory's answer is the same pool for either order of the tokens: keyed in address order, so a
        # leg's unwind (the same pool, its tokens the other way) asks nothing again.
        low, high = sorted((command.token_in, command.token_out))
        key = (venue.router, low, high, venue.fee)
        pool = self._pools.get(key)
        if pool is None:
            rpc = self.executor.rpc
            which, lookup = venue.pool_lookup(command.token_in, command.token_out)
            answer = await rpc.call("eth_call", [{"to": venue.router, "data": "0x" + which.hex()}, "latest"])
            factory = "0x" + answer[-40:]
            answer = await rpc.call("eth_call", [{"to": factory, "data": "0x" + lookup.hex()}, "latest"])
            pool = ("0x" + answer[-40:]).lower()
            self._pools[key] = pool
        if pool != command.pool:
            name = "v3_swap_router" if venue.kind == "v3_swap_router" else "leg_venues"
            fee = f"at fee {venue.fee}" if venue.fee is not None else "as a V2 pair"
            return (
                f"{name}: {venue.kind} {venue.router} swaps {command.token_in}/{command.token_out} {fee} in "
                f"pool {pool}, not the leg's pool {command.pool} (another factory?)"
            )
        return ""

    async def _simulate(self, me: str, venue: LegVenue, data: bytes, gas_limit: int) -> int:
        """The leg's output, simulated with the gas limit the transaction will carry: a leg that fits only the
        node's default cap would be signed, run out of gas on chain, pay for it and leave the other leg open."""
        call = {"from": me, "to": venue.router, "data": "0x" + data.hex()}
        try:
            result = await self.executor.rpc.call("eth_call", [{**call, "gas": hex(gas_limit)}, "latest"])
        except Exception as exc:
            if not (is_out_of_gas(exc) or is_revert(exc)):
                raise
            # Short of gas inside the router often shows as the token transfer's revert (a call gets 63/64 of
            # what is left): only the same call without the limit tells the limit from a real refusal.
            if await self._passes_uncapped(call):
                raise _OutOfGas(str(exc)) from None
            raise _Reverted(_reason(revert_data(exc)) or str(exc)) from None
        return venue.amount_out(bytes.fromhex(result[2:]))

    async def _passes_uncapped(self, call: dict[str, str]) -> bool:
        try:
            await self.executor.rpc.call("eth_call", [call, "latest"])
        except Exception:
            return False
        return True

    async def _short_of(self, command: CrossChainLegCommand, me: str, router_address: str, reverted: str) -> str:
        """`reverted`, led by what the key is short of when it is the inventory or the router's allowance."""
        token = to_checksum_address(command.token_in)
        owner, router = (encode(["address"], [to_checksum_address(a)]) for a in (me, router_address))
        try:
            held, allowed = await asyncio.gather(
                self._read(token, BALANCE_OF + owner), self._read(token, ALLOWANCE + owner + router)
            )
        except Exception:  # the diagnosis is a courtesy: the revert itself stays the reason
            return reverted
        need, me = command.amount_in, me.lower()
        if held < need:
            return f"inventory: {me} holds {held} of {command.token_in}, the leg needs {need} ({reverted})"
        if allowed < need:
            return (
                f"allowance: {me} lets the router {router_address} take {allowed} of {command.token_in}, the leg needs "
                f"{need}: approve the router for it once (docs/crosschain.md) ({reverted})"
            )
        return reverted

    async def _read(self, token: str, data: bytes) -> int:
        answer = await self.executor.rpc.call("eth_call", [{"to": token, "data": "0x" + data.hex()}, "latest"])
        return int(answer, 16)

    async def _submit(
        self, command: CrossChainLegCommand, opp: Opportunity, nonce: int, raw: bytes, tx_hash: str, head: int, me: str,
        sent: list[float], on_sent: Callable[[], None] | None,
    ) -> tuple[tuple[Any, int, int, str | None, str], Outcome]:  # fmt: skip
        ex = self.executor
        blocks = range(head + 1, head + ex.config.target_blocks + 1)
        refusal = await ex.send(raw, nonce, blocks, command.id)
        if refusal:
            return ("failed", 0, 0, tx_hash, refusal), Outcome(opp, Status.FAILED, reason=refusal, tx_hashes=(tx_hash,))
        sent.append(time.time())
        if on_sent is not None:
            on_sent()
        # A bundle is for its blocks only; a sequencer's transaction may land after them (see the module doc).
        receipt, reason = await ex.inclusion(tx_hash, nonce, blocks if ex.bundles is not None else None)
        if receipt is None:
            return ("failed", 0, 0, tx_hash, reason), Outcome(opp, Status.FAILED, reason=reason, tx_hashes=(tx_hash,))
        paid = gas_paid(receipt)
        gas_usd = float(command.native_usd) * paid / WEI_PER_COIN
        block = int(receipt["blockNumber"], 16)
        if int(receipt["status"], 16) != 1:
            reason = f"reverted in block {block}"
            outcome = Outcome(opp, Status.REVERTED, gas_cost_usd=gas_usd, reason=reason, tx_hashes=(tx_hash,))
            return ("reverted", 0, paid, tx_hash, reason), outcome
        received = transferred(receipt, command.token_out, me)
        reason = f"landed in block {block}: {received} of {command.token_out} for {command.amount_in}"
        outcome = Outcome(opp, Status.LANDED, gas_cost_usd=gas_usd, reason=reason, tx_hashes=(tx_hash,))
        return ("landed", received, paid, tx_hash, reason), outcome


class _Reverted(Exception):
    pass


class _OutOfGas(Exception):
    pass


def _reason(data: bytes) -> str:
    """A revert's Error(string) in words ("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"), else ""."""
    if data[:4] == keccak(text="Error(string)")[:4]:
        try:
            return str(decode(["string"], data[4:])[0])
        except Exception:
            return ""
    return ""


def transferred(receipt: dict[str, Any], token: str, to: str) -> int:
    """The sum of `token`'s Transfer events to `to` in a receipt: what the swap paid out."""
    total = 0
    for entry in receipt.get("logs", []):
        topics = entry.get("topics") or []
        if (
            entry["address"].lower() == token.lower()
            and len(topics) == 3
            and topics[0] == TRANSFER_TOPIC
            and topics[2][-40:].lower() == to[2:].lower()
        ):
            total += int(entry["data"], 16)
    return total
