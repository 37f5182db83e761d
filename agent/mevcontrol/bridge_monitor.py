"""The bridge monitor: deposits and fills per bridge route, from the bridges' own events on both ends.

`BridgeWatcher` follows one bridge's contracts on one chain over JSON-RPC (`eth_getLogs` from the block
it reached, once per `poll_s`) and decodes the events of the bridge's `events` family (bridges.yml):

- `across` (Across's SpokePool, both generations of its events): a `FundsDeposited` or `V3FundsDeposited`
  is a transfer leaving that chain, a `FilledRelay` or `FilledV3Relay` one arriving, matched by origin
  chain id and deposit id.
- `cctp` (Circle's CCTP V1, evm-cctp-contracts' TokenMessenger and MessageTransmitter): the source's
  `DepositForBurn` is the deposit, keyed by (source domain, nonce); its `MessageSent` in the same
  transaction must carry the same domain and nonce (a catalog whose domain for the chain is wrong holds
  the watch at that block, refusing the round with a warning naming the domain on every poll, instead of
  keying every transfer wrongly). On the destination a
  `MessageReceived` with a `MintAndWithdraw` in the same transaction is the fill (other applications'
  messages through the same MessageTransmitter are not transfers). CCTP V2 (a watch of TokenMessengerV2 and
  MessageTransmitterV2, same bridge and family: the two generations run side by side): the source's
  `DepositForBurn` has no nonce and its `MessageSent` a zero one (the attester assigns it, with the finality
  threshold executed, the fee and the expiration block), so a transfer is named by what both ends show
  unchanged (`cctp_v2_content`: the two domains, the sender, the burn message but its feeExecuted and
  expirationBlock) and a `MessageReceived` after the TokenMessengerV2's `MintAndWithdraw` fills the oldest
  pending transfer of that content whose `minFinalityThreshold` its `finalityThresholdExecuted` meets (FIFO
  among transfers alike in every field); the fee taken is recorded per route.
- `stargate_v2` (one Stargate V2 pool or OFT per watch; its events do not name the token, the watch
  does): `OFTSent` is the deposit, `OFTReceived` the fill, keyed by the LayerZero guid and the asset. A bus
  ride's `OFTSent` carries a zero guid (the bus's guid is known only when it is driven): with the pool's
  TokenMessaging in `also`, the passenger is the `BusRode` before it in the transaction (pending under its
  ticket), the `BusDriven` naming its ticket gives its guid, and the destination pool's `OFTReceived` of that
  guid fills the bus's passengers of that asset in ticket order (seat order). Without it bus rides are skipped.
- `op_stack` (the OP Stack's canonical bridge, OP Mainnet's and Base's: watch the CrossDomainMessenger as
  `contract`, the StandardBridge in `also`, on each end): a transfer is the bridge's `ETHBridgeInitiated` or
  `ERC20BridgeInitiated` followed in its transaction by the messenger's `SentMessage` (sent by that bridge)
  and `SentMessageExtension1` (its value), keyed by the origin chain and the message's hash as the
  destination messenger computes it (the hash alone would not tell a deposit from a withdrawal of the same
  fields through a pair whose two ends share addresses); a `RelayedMessage` of that hash with the bridge's
  `...BridgeFinalized` before it in the transaction is the fill (L1 → L2: the deposit relayed on L2; L2 →
  L1: the withdrawal finalized on L1, days later), a `FailedRelayedMessage` a failure (the transfer stays
  pending: anybody may replay it, and the replay's `RelayedMessage` is the fill). The other end is the other
  chain of the bridge's routes. Messages of other applications through the same messenger are not transfers.

Chains are named in CCTP and LayerZero events by the bridge's own numbers, mapped to the catalog's chains
by the bridge's `chain_ids`.
Times are the control host's clock when a watcher first saw each event (one clock for both ends, within
`poll_s`): two chains' block timestamps are not comparable to the second (and a devnet's run ahead of
the wall clock when blocks come faster than one a second).
`BridgeMonitor` keeps what is pending (and stuck past its route's `stuck_s`, else `stuck_after_s`), the
last 1,000 fill times per route and the failures (transfers that went stuck, or whose relay failed), and
says which bridges are unhealthy.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import aiohttp
from eth_abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils import keccak
from pydantic import Field

from mevagent.config import Strict
from mevagent.crosschain.registry import Registry
from mevagent.executor.rpc import HttpJsonRpc
from mevagent.state.abi import topic

log = logging.getLogger(__name__)


# Across's SpokePool, as its ABI published in npm @across-protocol/contracts@5.0.27 gives it
# (dist/evm/artifacts/SpokePool.sol/SpokePool.json). Both generations are decoded: since the 2025 upgrade
# to bytes32 addresses (for non-EVM chains) a SpokePool emits FundsDeposited/FilledRelay (bytes32 tokens
# and recipient, uint256 deposit id); before it, V3FundsDeposited/FilledV3Relay (addresses, uint32 deposit
# id), which the package keeps in the ABI for the migration (same topics as 3.0.16's SpokePool, which
# emitted them). A watch reads its contract's history, and the chains were upgraded one at a time, so a
# deposit of one generation may be filled by the other: both are keyed alike, by (origin chain id, deposit
# id as an integer), the first two indexed arguments of both fills (a deposit's: destination chain id,
# deposit id).
FUNDS_DEPOSITED = topic(
    "FundsDeposited(bytes32,bytes32,uint256,uint256,uint256,uint256,uint32,uint32,uint32,bytes32,bytes32,bytes32,bytes)"
)
V3_FUNDS_DEPOSITED = topic(
    "V3FundsDeposited(address,address,uint256,uint256,uint256,uint32,uint32,uint32,uint32,address,address,address,bytes)"
)
FILLED_RELAY = topic(
    "FilledRelay(bytes32,bytes32,uint256,uint256,uint256,uint256,uint256,uint32,uint32,bytes32,bytes32,bytes32,bytes32,"
    "bytes32,(bytes32,bytes32,uint256,uint8))"
)
FILLED_V3_RELAY = topic(
    "FilledV3Relay(address,address,uint256,uint256,uint256,uint256,uint32,uint32,uint32,address,address,address,address,"
    "bytes,(address,bytes,uint256,uint8))"
)
# A deposit's data (its arguments not indexed): input token, output token, input and output amounts, quote
# timestamp, fill deadline, exclusivity deadline, recipient, exclusive relayer, message.
ACROSS_DEPOSITS = {
    FUNDS_DEPOSITED: ("bytes32", "bytes32", "uint256", "uint256", "uint32", "uint32", "uint32", "bytes32", "bytes32",
                      "bytes"),
    V3_FUNDS_DEPOSITED: ("address", "address", "uint256", "uint256", "uint32", "uint32", "uint32", "address",
                         "address", "bytes"),
}  # fmt: skip
ACROSS_FILLS = (FILLED_RELAY, FILLED_V3_RELAY)
# Circle CCTP V1 (circlefin/evm-cctp-contracts src/TokenMessenger.sol and src/MessageTransmitter.sol).
DEPOSIT_FOR_BURN = topic("DepositForBurn(uint64,address,uint256,address,bytes32,uint32,bytes32,bytes32)")
MESSAGE_SENT = topic("MessageSent(bytes)")
MESSAGE_RECEIVED = topic("MessageReceived(address,uint32,uint64,bytes32,bytes)")
MINT_AND_WITHDRAW = topic("MintAndWithdraw(address,uint256,address)")
# Circle CCTP V2 (circlefin/evm-cctp-contracts src/v2/TokenMessengerV2.sol, BaseTokenMessenger.sol,
# MessageTransmitterV2.sol), as the ABIs npm @circle-fin/adapter-viem-v2@1.18.0 exports give them
# (messageTransmitterV2Abi, tokenMessengerV2Abi). MessageSent keeps V1's signature (its message's version
# field tells them apart: 0 for V1, 1 for V2). DepositForBurn has no nonce: the attester assigns it.
DEPOSIT_FOR_BURN_V2 = topic(
    "DepositForBurn(address,uint256,address,bytes32,uint32,bytes32,bytes32,uint256,uint32,bytes)"
)
MESSAGE_RECEIVED_V2 = topic("MessageReceived(address,uint32,bytes32,bytes32,uint32,bytes)")
MINT_AND_WITHDRAW_V2 = topic("MintAndWithdraw(address,uint256,address,uint256)")
# Stargate V2 (IOFT's events, as in the StargatePool ABI of npm @stargatefinance/stg-evm-v2@2.0.6,
# artifacts/src/StargatePool.sol/StargatePool.json, and @layerzerolabs/oft-evm@4.0.1 IOFT.sol).
OFT_SENT = topic("OFTSent(bytes32,uint32,address,uint256,uint256)")
OFT_RECEIVED = topic("OFTReceived(bytes32,uint32,address,uint256)")
# Stargate V2's bus (TokenMessaging in the same package, artifacts/src/messaging/TokenMessaging.sol): a bus
# passenger's ride (its ticket), then the bus driven (its tickets and the LayerZero guid of the message).
BUS_RODE = topic("BusRode(uint32,uint72,uint80,bytes)")
BUS_DRIVEN = topic("BusDriven(uint32,uint72,uint8,bytes32)")
# The OP Stack's canonical bridge: its CrossDomainMessenger and StandardBridge, as the ABIs published in
# npm @eth-optimism/contracts-bedrock@0.17.3 give them (forge-artifacts/L1CrossDomainMessenger.sol,
# L2CrossDomainMessenger.sol, L1StandardBridge.sol, L2StandardBridge.sol: the L1 and L2 contracts emit the
# same events).
SENT_MESSAGE = topic("SentMessage(address,address,bytes,uint256,uint256)")
SENT_MESSAGE_EXTENSION1 = topic("SentMessageExtension1(address,uint256)")
RELAYED_MESSAGE = topic("RelayedMessage(bytes32)")
FAILED_RELAYED_MESSAGE = topic("FailedRelayedMessage(bytes32)")
ETH_BRIDGE_INITIATED = topic("ETHBridgeInitiated(address,address,uint256,bytes)")
ERC20_BRIDGE_INITIATED = topic("ERC20BridgeInitiated(address,address,address,address,uint256,bytes)")
ETH_BRIDGE_FINALIZED = topic("ETHBridgeFinalized(address,address,uint256,bytes)")
ERC20_BRIDGE_FINALIZED = topic("ERC20BridgeFinalized(address,address,address,address,uint256,bytes)")
OP_INITIATED = (ETH_BRIDGE_INITIATED, ERC20_BRIDGE_INITIATED)
OP_FINALIZED = (ETH_BRIDGE_FINALIZED, ERC20_BRIDGE_FINALIZED)
# The messenger's relayMessage: the hash it files a message under (RelayedMessage, FailedRelayedMessage) is
# keccak256 of this call's calldata (the package's Hashing.hashCrossDomainMessageV1 over
# Encoding.encodeCrossDomainMessageV1), whatever the nonce's version.
RELAY_MESSAGE = keccak(text="relayMessage(uint256,address,address,uint256,uint256,bytes)")[:4]
TOPICS = {
    "across": [*ACROSS_DEPOSITS, *ACROSS_FILLS],
    "cctp": [DEPOSIT_FOR_BURN, MESSAGE_SENT, MESSAGE_RECEIVED, MINT_AND_WITHDRAW, DEPOSIT_FOR_BURN_V2,
             MESSAGE_RECEIVED_V2, MINT_AND_WITHDRAW_V2],
    "stargate_v2": [OFT_SENT, OFT_RECEIVED, BUS_RODE, BUS_DRIVEN],
    "op_stack": [SENT_MESSAGE, SENT_MESSAGE_EXTENSION1, RELAYED_MESSAGE, FAILED_RELAYED_MESSAGE, *OP_INITIATED,
                 *OP_FINALIZED],
}  # fmt: skip
BURN_MESSAGE_LEN = 132  # CCTP V1 BurnMessage: version 4, burnToken 32, mintRecipient 32, amount 32, sender 32
# CCTP V2 (src/messages/v2/MessageV2.sol, BurnMessageV2.sol). Message: version 4, sourceDomain 4,
# destinationDomain 4, nonce 32, sender 32, recipient 32, destinationCaller 32, minFinalityThreshold 4,
# finalityThresholdExecuted 4, body from 148. Burn message: V1's 132 bytes, then maxFee 32, feeExecuted 32,
# expirationBlock 32, hookData from 228. The source emits nonce, finalityThresholdExecuted, feeExecuted and
# expirationBlock as zeros; the attester fills them in the message it signs for the destination.
V2_BODY_AT = 148
V2_FEE_AT, V2_HOOK_AT = 164, 228
FINALIZED_THRESHOLD = 2000  # MessageTransmitterV2's FINALITY_THRESHOLD_FINALIZED
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]


class BridgeWatch(Strict):
    bridge: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]  # its name in the bridge catalog
    chain: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    rpc_url: Annotated[str, Field(pattern=r"^https?://\S+$")]
    contract: Address
    # The bridge's other contracts on that chain whose events count (CCTP: the MessageTransmitter beside
    # the TokenMessenger in `contract`; OP Stack: the StandardBridge beside the CrossDomainMessenger;
    # Stargate V2: its TokenMessaging beside the pool, for bus rides).
    also: tuple[Address, ...] = ()
    # The token the contract carries when its events do not name it (a Stargate V2 pool or OFT).
    token: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9.]{1,16}$")] | None = None
    poll_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 1.0


def pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class BridgeMonitor:
    stuck_after_s: float = 3600.0
    bounds: dict[str, float] = field(default_factory=dict)  # route → its stuck_s, where the catalog sets one
    pending: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)  # (bridge, id) → (route, at)
    fills: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(lambda: deque(maxlen=1000)))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    deposits: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # route → deposits seen
    # A fill whose deposit is not seen within `early_for_s` (made on a chain not watched, or before the
    # watch's history) is dropped and counted here, per bridge.
    early_for_s: float = 600.0
    unmatched: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unhealthy: set[str] = field(default_factory=set)  # bridges the route choice avoids
    _early: dict[tuple[str, str], float] = field(default_factory=dict)  # fills seen before their deposit
    # Failed relays seen before their deposit (an OP Stack messenger's): counted when it shows, forgotten
    # after `early_for_s` (not counted unmatched: a failed relay does not say whose message it was).
    _early_failed: dict[tuple[str, str], float] = field(default_factory=dict)
    _counted: set[tuple[str, str]] = field(default_factory=set)  # stuck transfers counted as failures
    # Transfers the destination names only by their content (CCTP V2: the nonce is the attester's, unknown
    # on the source): (bridge, content) → the pending deposits of that content, oldest first, with each one's
    # rank (the least a fill's rank must be: a V2 burn's minFinalityThreshold against the threshold its
    # attestation executed). Fills seen first wait in `_early_alike` as (at, rank, amount, fee).
    _alike: dict[tuple[str, str], list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))
    _early_alike: dict[tuple[str, str], list[tuple[float, int, int, int | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # route → (amount, fee taken) of its last 1,000 fills that say what fee they paid (CCTP V2's feeExecuted).
    fees: dict[str, deque[tuple[int, int]]] = field(default_factory=lambda: defaultdict(lambda: deque(maxlen=1000)))

    def deposit(self, bridge: str, deposit_id: str, route: str, at: float) -> None:
        if (bridge, deposit_id) in self.pending:
            return  # seen again (a poll repeated after an error)
        self.deposits[route] += 1
        if self._early_failed.pop((bridge, deposit_id), None) is not None:
            self.failures[route] += 1
            self._counted.add((bridge, deposit_id))
        filled = self._early.pop((bridge, deposit_id), None)
        if filled is not None:  # the destination's watcher was ahead of the origin's
            self.fills[route].append(max(0.0, filled - at))
            self._counted.discard((bridge, deposit_id))
            return
        self.pending[(bridge, deposit_id)] = (route, at)

    def fill(self, bridge: str, deposit_id: str, at: float) -> float | None:
        seen = self.pending.pop((bridge, deposit_id), None)
        if seen is None:
            self._early[(bridge, deposit_id)] = at
            return None
        route, deposited = seen
        elapsed = max(0.0, at - deposited)
        self.fills[route].append(elapsed)
        self._counted.discard((bridge, deposit_id))
        return elapsed

    def deposit_alike(self, bridge: str, content: str, deposit_id: str, route: str, at: float, rank: int) -> None:
        """A deposit the destination will name only by `content`: filled by the oldest fill of that content
        whose rank is at least `rank` (one seen already, else the next)."""
        if (bridge, deposit_id) in self.pending:
            return  # seen again
        early = self._early_alike.get((bridge, content), [])
        for i, (filled, fill_rank, amount, fee) in enumerate(early):
            if fill_rank >= rank:
                del early[i]
                if not early:  # a name is kept only while something waits under it
                    del self._early_alike[(bridge, content)]
                self.deposits[route] += 1
                self.fills[route].append(max(0.0, filled - at))
                if fee is not None:
                    self.fees[route].append((amount, fee))
                return
        self.deposit(bridge, deposit_id, route, at)
        self._alike[(bridge, content)].append((deposit_id, rank))

    def board(self, bridge: str, content: str, deposit_ids: list[str]) -> None:
        """Pending deposits (in that order) that the destination will name by `content` from now on (a
        Stargate bus's passengers, once the bus is driven: its guid); fills of it seen already end them."""
        waiting = self._alike.get((bridge, content), [])
        boarding = [d for d in deposit_ids if (bridge, d) in self.pending and all(d != w for w, _ in waiting)]
        if boarding:
            self._alike[(bridge, content)] = waiting + [(d, 0) for d in boarding]
        early = self._early_alike.pop((bridge, content), [])
        for filled, rank, amount, fee in early:  # in the order they were seen; unmatched ones wait again
            self.fill_alike(bridge, content, filled, rank, amount, fee)

    def fill_alike(
        self, bridge: str, content: str, at: float, rank: int, amount: int, fee: int | None = None
    ) -> float | None:
        """A fill of `content` at `rank`: the oldest pending deposit of that content it can fill (FIFO among
        transfers that look the same: which of two equal transfers a fill ends cannot be told, the counts
        are right and the times may be swapped). `amount` moved and `fee` taken are recorded on the route."""
        waiting = self._alike.get((bridge, content), [])
        for i, (deposit_id, deposit_rank) in enumerate(waiting):
            if deposit_rank <= rank:
                del waiting[i]
                if not waiting:  # a name is kept only while something waits under it
                    del self._alike[(bridge, content)]
                route = self.pending[(bridge, deposit_id)][0]
                if fee is not None:
                    self.fees[route].append((amount, fee))
                return self.fill(bridge, deposit_id, at)
        self._early_alike[(bridge, content)].append((at, rank, amount, fee))
        return None

    def fee_rows(self) -> list[dict[str, Any]]:
        """Per route whose fills said their fee: how many, the fee taken in total and its largest share of
        the amount in basis points (CCTP V2: a fast transfer's fee, at most its maxFee; a standard one's 0)."""
        return [
            {"route": route, "fills": len(paid), "fee_total": sum(f for _, f in paid),
             "fee_bps_max": max(10_000 * f / a for a, f in paid if a) if any(a for a, _ in paid) else None}
            for route, paid in sorted(self.fees.items())
        ]  # fmt: skip

    def failed(self, bridge: str, deposit_id: str, at: float) -> None:
        """A relay that failed: the transfer counts once as its route's failure and stays pending (a replay's
        fill, or its stuck bound, ends it)."""
        seen = self.pending.get((bridge, deposit_id))
        if seen is None:
            self._early_failed.setdefault((bridge, deposit_id), at)
        elif (bridge, deposit_id) not in self._counted:
            self._counted.add((bridge, deposit_id))
            self.failures[seen[0]] += 1

    def unhealthy_bridges(self, now: float, typical_s: dict[str, float], slow_factor: float) -> set[str]:
        bad: set[str] = set()
        for key, at in list(self._early.items()):
            if now - at > self.early_for_s:
                del self._early[key]
                self.unmatched[key[0]] += 1
        for key, at in list(self._early_failed.items()):
            if now - at > self.early_for_s:
                del self._early_failed[key]
        for (bridge, content), early in list(self._early_alike.items()):
            kept = [e for e in early if now - e[0] <= self.early_for_s]
            if len(kept) < len(early):
                self.unmatched[bridge] += len(early) - len(kept)
                if kept:
                    early[:] = kept
                else:
                    del self._early_alike[(bridge, content)]
        for (bridge, deposit_id), (route, at) in self.pending.items():
            if self.stuck(route, now - at):
                bad.add(bridge)
                if (bridge, deposit_id) not in self._counted:
                    self._counted.add((bridge, deposit_id))
                    self.failures[route] += 1
        for route, times in self.fills.items():
            recent = sorted(list(times)[-20:])
            if recent and route in typical_s and pct(recent, 0.9) > slow_factor * typical_s[route]:
                bad.add(route.split("@", 1)[0])
        return bad

    def stuck(self, route: str, age_s: float) -> bool:
        return age_s > self.bounds.get(route, self.stuck_after_s)

    def performance(self) -> list[dict[str, Any]]:
        """Per route seen: deposits, fills (the last 1,000's times), pending and failed transfers, and the
        fill time distribution (None before a first fill)."""
        rows = []
        pending = Counter(route for route, _ in self.pending.values())
        for route in sorted({*self.fills, *self.deposits}):
            ordered = sorted(self.fills.get(route, ()))
            stats = {f"fill_s_p{round(q * 100)}": pct(ordered, q) if ordered else None for q in (0.5, 0.9, 0.99)}
            rows.append(
                {"route": route, "deposits": self.deposits.get(route, 0), "fills": len(ordered),
                 "pending": pending[route], "failures": self.failures.get(route, 0), **stats,
                 "fill_s_max": ordered[-1] if ordered else None}
            )  # fmt: skip
        return rows

    def pending_rows(self, now: float) -> list[dict[str, Any]]:
        return [
            {"bridge": b, "deposit": d, "route": r, "age_s": now - at, "stuck": self.stuck(r, now - at)}
            for (b, d), (r, at) in sorted(self.pending.items())
        ]


def evm_address(value: str | bytes) -> str:
    """An address from an Across event's token field: a V3 event's address as is, an upgraded one's bytes32
    (an EVM address left-padded with zeros) cut to 20 bytes; another chain's 32 bytes (Solana's) kept whole."""
    if isinstance(value, str):
        return value
    return "0x" + (value if any(value[:12]) else value[12:]).hex()


def route_name(bridge: str, src: str, dst: str) -> str:
    return f"{bridge}@{src}->{dst}"


class BridgeWatcher:
    """Follows one bridge's contracts on one chain into the monitor; `on_poll` after each round."""

    def __init__(
        self, watch: BridgeWatch, registry: Registry, monitor: BridgeMonitor, on_poll: Callable[[float], None]
    ) -> None:
        self.watch = watch
        self.registry = registry
        self.monitor = monitor
        self.on_poll = on_poll
        self.chain_id = registry.chain_id(watch.chain)
        self._by_id = {c.chain_id: name for name, c in registry.catalog.chains.items()}
        entry = registry.catalog.bridges.get(watch.bridge)
        if entry is None or entry.events is None:
            raise ValueError(f"bridge monitor: {watch.bridge} has no `events` in the bridge catalog")
        self.events = entry.events
        self._by_bridge_id = {number: chain for chain, number in entry.chain_ids.items()}
        self.bridge_id = entry.chain_ids.get(watch.chain)
        if self.events in ("cctp", "stargate_v2") and self.bridge_id is None:
            raise ValueError(f"bridge monitor: {watch.bridge} has no chain_ids entry for {watch.chain}")
        if self.events == "stargate_v2" and (watch.token is None or watch.token not in registry.tokens):
            raise ValueError(f"bridge monitor: a {watch.bridge} watch names its pool's token (not {watch.token})")
        # OP Stack: the chain at the other end of the messenger pair (the catalog checks there is one).
        self.other: str | None = None
        if self.events == "op_stack":
            ends = {registry.tokens[t].chain for (src, dst), rs in registry.routes.items() for t in (src, dst)
                    if any(r.bridge == watch.bridge for r in rs)}  # fmt: skip
            if watch.chain not in ends or not watch.also:
                raise ValueError(
                    f"bridge monitor: a {watch.bridge} watch is on one of its chains ({sorted(ends)}), its "
                    "CrossDomainMessenger as `contract` and its StandardBridge in `also`"
                )
            (self.other,) = ends - {watch.chain}
        self.next_block: int | None = None
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            rpc = HttpJsonRpc(self.watch.rpc_url, session)
            while not self._stopping:
                try:
                    await self.poll(rpc)
                # A log the decoder cannot read (DecodingError) stalls this watch like a refused round, warned
                # each poll, instead of ending the task and with it the crosschain engine's gather.
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError, DecodingError) as exc:
                    log.warning("bridge monitor: %s on %s: %s", self.watch.bridge, self.watch.chain, exc)
                self.on_poll(time.time())
                await asyncio.sleep(self.watch.poll_s)

    async def poll(self, rpc: HttpJsonRpc) -> None:
        head = int(await rpc.call("eth_blockNumber", []), 16)
        # A new watch reads the contract's whole history (a devnet's; production would set where to start).
        start = 0 if self.next_block is None else self.next_block
        if start > head:
            return
        addresses = [self.watch.contract, *self.watch.also]
        query = {"address": addresses, "fromBlock": hex(start), "toBlock": hex(head), "topics": [TOPICS[self.events]]}
        logs = await rpc.call("eth_getLogs", [query])
        seen = time.time()
        if self.events == "across":
            for entry in logs:
                self._across(entry, seen)
        elif self.events == "cctp":
            self._cctp(logs, seen)
        elif self.events == "op_stack":
            self._op_stack(logs, seen)
        else:
            self._stargate(logs, seen)
        self.next_block = head + 1

    def _route(self, src_token: str, destination: str | None, dst_token: str | None) -> str:
        """The catalog's route name for a transfer of `src_token` (an address on the watched chain or a
        token id) to `destination`: the destination token from the event when it names one, else the
        bridge's route from the source token to that chain."""
        src = self.registry.tokens.get(src_token) or self.registry.token_at(self.watch.chain, src_token)
        dst = self.registry.token_at(destination, dst_token) if destination and dst_token else None
        if dst is None and src is not None and destination is not None:
            for (from_, _), routes in self.registry.routes.items():
                for r in routes:
                    if from_ == src.id and r.bridge == self.watch.bridge and r.dst.split(":", 1)[0] == destination:
                        dst = self.registry.tokens[r.dst]
        dst_name = dst.id if dst else f"{destination or '?'}:{dst_token or '?'}"
        return route_name(self.watch.bridge, src.id if src else src_token, dst_name)

    def _across(self, entry: dict[str, Any], at: float) -> None:
        topics = entry["topics"]
        types = ACROSS_DEPOSITS.get(topics[0])
        if types is not None:
            input_token, output_token, *_ = decode(list(types), bytes.fromhex(entry["data"][2:]))
            destination = self._by_id.get(int(topics[1], 16))
            route = self._route(evm_address(input_token), destination, evm_address(output_token))
            self.monitor.deposit(self.watch.bridge, f"{self.chain_id}:{int(topics[2], 16)}", route, at)
        elif topics[0] in ACROSS_FILLS:
            self.monitor.fill(self.watch.bridge, f"{int(topics[1], 16)}:{int(topics[2], 16)}", at)

    def _cctp(self, logs: list[dict[str, Any]], at: float) -> None:
        """The round's CCTP logs, checked whole before any is applied (a refused round is read again whole)."""
        sent: dict[str, set[tuple[int, int]]] = defaultdict(set)  # tx → (source domain, nonce) of its messages
        sent_v2: dict[str, list[bytes]] = defaultdict(list)  # tx → its V2 messages
        minted = {e["transactionHash"] for e in logs if e["topics"][0] == MINT_AND_WITHDRAW}
        for entry in logs:
            if entry["topics"][0] == MESSAGE_SENT:
                (message,) = decode(["bytes"], bytes.fromhex(entry["data"][2:]))
                if int.from_bytes(message[:4]) == 0:
                    sent[entry["transactionHash"]].add((int.from_bytes(message[4:8]), int.from_bytes(message[12:20])))
                else:
                    sent_v2[entry["transactionHash"]].append(message)
        v2_deposits, v2_fills = self._cctp_v2(logs, sent_v2)
        deposits: list[tuple[str, str]] = []  # (key, route)
        fills: list[str] = []
        for entry in logs:
            topics, data = entry["topics"], bytes.fromhex(entry["data"][2:])
            if topics[0] == DEPOSIT_FOR_BURN:
                nonce, burn_token = int(topics[1], 16), "0x" + topics[2][-40:]
                _amount, _recipient, domain, _messenger, _caller = decode(
                    ["uint256", "bytes32", "uint32", "bytes32", "bytes32"], data
                )
                if (self.bridge_id, nonce) not in sent[entry["transactionHash"]]:
                    raise ValueError(
                        f"DepositForBurn nonce {nonce} without a MessageSent from domain {self.bridge_id} in "
                        f"{entry['transactionHash']}: is {self.watch.chain}'s domain in chain_ids right, and the "
                        "MessageTransmitter watched?"
                    )
                route = self._route(burn_token, self._by_bridge_id.get(domain), None)
                deposits.append((f"{self.bridge_id}:{nonce}", route))
            elif topics[0] == MESSAGE_RECEIVED and entry["transactionHash"] in minted:
                source, _sender, body = decode(["uint32", "bytes32", "bytes"], data)
                if len(body) == BURN_MESSAGE_LEN:
                    fills.append(f"{source}:{int(topics[2], 16)}")
        for key, route in deposits:
            self.monitor.deposit(self.watch.bridge, key, route, at)
        for key in fills:
            self.monitor.fill(self.watch.bridge, key, at)
        for content, deposit_id, route, rank in v2_deposits:
            self.monitor.deposit_alike(self.watch.bridge, content, deposit_id, route, at, rank)
        for content, rank, amount, fee in v2_fills:
            self.monitor.fill_alike(self.watch.bridge, content, at, rank, amount, fee)

    def _cctp_v2(
        self, logs: list[dict[str, Any]], sent: dict[str, list[bytes]]
    ) -> tuple[list[tuple[str, str, str, int]], list[tuple[str, int, int, int]]]:
        """CCTP V2's deposits (content, id, route, minFinalityThreshold) and fills (content, finality threshold
        executed, amount, fee) of a round, without applying them (a ValueError refuses the round).

        The destination cannot name a transfer by its nonce: the source's message carries a zero nonce and
        the attester assigns it. A transfer is named by what the attester leaves as the source wrote it and
        the destination's MessageReceived shows: source and destination domains, the sender (the source's
        TokenMessengerV2) and the burn message without feeExecuted and expirationBlock (burn token, mint
        recipient, amount, depositor, maxFee, hookData). Transfers equal in all of these are matched FIFO."""
        messenger = self.watch.contract.lower()
        deposits: list[tuple[str, str, str, int]] = []
        fills: list[tuple[str, int, int, int]] = []
        mint: tuple[str, int, int] | None = None  # (tx, amount, fee) of the TokenMessengerV2's last mint
        for entry in sorted(logs, key=lambda e: (int(e["blockNumber"], 16), int(e["logIndex"], 16))):
            topics, data, tx = entry["topics"], bytes.fromhex(entry["data"][2:]), entry["transactionHash"]
            if topics[0] == DEPOSIT_FOR_BURN_V2:
                amount, recipient, domain, _remote, _caller, max_fee, hook = decode(
                    ["uint256", "bytes32", "uint32", "bytes32", "bytes32", "uint256", "bytes"], data
                )
                burn_token, depositor = bytes.fromhex(topics[1][2:]), bytes.fromhex(topics[2][2:])
                stable = burn_token + recipient + amount.to_bytes(32) + depositor + max_fee.to_bytes(32)
                sender = bytes(12) + bytes.fromhex(entry["address"][2:])
                ours = [m for m in sent.get(tx, []) if (int.from_bytes(m[4:8]), int.from_bytes(m[8:12]), m[44:76])
                        == (self.bridge_id, domain, sender) and m[V2_BODY_AT + 4 : V2_BODY_AT + V2_FEE_AT] == stable
                        and m[V2_BODY_AT + V2_HOOK_AT :] == hook]  # fmt: skip
                if not ours:
                    raise ValueError(
                        f"DepositForBurn (V2) without its MessageSent from domain {self.bridge_id} in {tx}: is "
                        f"{self.watch.chain}'s domain in chain_ids right, and the MessageTransmitterV2 watched?"
                    )
                sent[tx].remove(ours[0])
                route = self._route("0x" + topics[1][-40:], self._by_bridge_id.get(domain), None)
                deposit_id = f"{self.bridge_id}:{tx}:{int(entry['logIndex'], 16)}"
                deposits.append((cctp_v2_content(ours[0][4:8], ours[0][8:12], sender, ours[0][V2_BODY_AT:]),
                                 deposit_id, route, int(topics[3], 16)))  # fmt: skip
            elif topics[0] == MINT_AND_WITHDRAW_V2 and entry["address"].lower() == messenger:
                _minted, fee = decode(["uint256", "uint256"], data)
                mint = (tx, _minted + fee, fee)
            elif topics[0] == MESSAGE_RECEIVED_V2:
                source, sender, body = decode(["uint32", "bytes32", "bytes"], data)
                # A message without the TokenMessengerV2's mint before it is another application's.
                if mint is not None and mint[0] == tx and len(body) >= V2_HOOK_AT:
                    assert self.bridge_id is not None  # __init__ requires it for this family
                    content = cctp_v2_content(source.to_bytes(4), self.bridge_id.to_bytes(4), sender, body)
                    fills.append((content, int(topics[3], 16), mint[1], mint[2]))
                mint = None
        return deposits, fills

    def _stargate(self, logs: list[dict[str, Any]], at: float) -> None:
        """The round's Stargate V2 logs in log order, checked whole before any is applied. A taxi transfer is
        named by its guid on both ends (the pool's OFTSent, OFTReceived). A bus passenger's OFTSent has a zero
        guid and follows its TokenMessaging BusRode (its ticket) in the transaction: the passenger is pending
        under its ticket until a BusDriven gives its tickets' guid, then filled by the OFTReceived of that guid
        on the destination's pool of its asset, seat after seat (a bus's passengers of one asset in ticket
        order). Without the TokenMessaging in `also` bus rides are not followed."""
        assert self.watch.token is not None and self.bridge_id is not None
        pool, messaging = self.watch.contract.lower(), {a.lower() for a in self.watch.also}
        asset = self.registry.tokens[self.watch.token].asset
        deposits: list[tuple[str, str, str]] = []  # (content or "", deposit id, route)
        boardings: list[tuple[str, list[str]]] = []
        fills: list[tuple[str, int]] = []
        ride: tuple[str, int, int] | None = None  # (tx, destination eid, ticket) of the last BusRode
        for entry in sorted(logs, key=lambda e: (int(e["blockNumber"], 16), int(e["logIndex"], 16))):
            topics, data, tx = entry["topics"], bytes.fromhex(entry["data"][2:]), entry["transactionHash"]
            address = entry["address"].lower()
            if address in messaging and topics[0] == BUS_RODE:
                dst_eid, ticket, _fare, _passenger = decode(["uint32", "uint72", "uint80", "bytes"], data)
                ride = (tx, dst_eid, ticket)
            elif address in messaging and topics[0] == BUS_DRIVEN:
                dst_eid, start, count, guid = decode(["uint32", "uint72", "uint8", "bytes32"], data)
                tickets = [self._ticket(dst_eid, t, asset) for t in range(start, start + count)]
                boardings.append((f"0x{guid.hex()}:{asset}", tickets))
            elif address != pool:
                continue
            elif topics[0] == OFT_SENT:
                dst_eid, _sent, _received = decode(["uint32", "uint256", "uint256"], data)
                route = self._route(self.watch.token, self._by_bridge_id.get(dst_eid), None)
                if int(topics[1], 16):
                    deposits.append((f"{topics[1]}:{asset}", topics[1], route))
                elif messaging:
                    if ride is None or ride[0] != tx or ride[1] != dst_eid:
                        raise ValueError(f"a bus passenger's OFTSent without its BusRode in {tx}: is the "
                                         "TokenMessaging of the pool in the watch's `also`?")  # fmt: skip
                    deposits.append(("", self._ticket(dst_eid, ride[2], asset), route))
                    ride = None
            elif topics[0] == OFT_RECEIVED:
                (_src_eid, amount) = decode(["uint32", "uint256"], data)
                fills.append((f"{topics[1]}:{asset}", amount))
        for content, deposit_id, route in deposits:
            if content:
                self.monitor.deposit_alike(self.watch.bridge, content, deposit_id, route, at, 0)
            else:
                self.monitor.deposit(self.watch.bridge, deposit_id, route, at)
        for content, tickets in boardings:
            self.monitor.board(self.watch.bridge, content, tickets)
        for content, amount in fills:
            self.monitor.fill_alike(self.watch.bridge, content, at, 0, amount)

    def _ticket(self, dst_eid: int, ticket: int, asset: str) -> str:
        """A bus passenger's name until its bus is driven: its ticket on the (source, destination) queue, and
        its asset (a bus carries several assets' passengers, each followed by the watch of its pool)."""
        return f"{self.bridge_id}:bus:{dst_eid}:{ticket}:{asset}"

    def _native_route(self) -> str:
        """The route of the chain's own coin through the bridge (ETHBridgeInitiated). The catalog lists it as
        the wrapped coin's (the fleet holds WETH, unwrapped before the deposit and wrapped after), so the
        route is the bridge's from this chain's native or wrapped token of the coin's asset to the other end,
        else one named after the two native coins."""
        assert self.other is not None
        native, there = self.registry.natives[self.watch.chain], self.registry.natives[self.other]
        for (src, dst), routes in sorted(self.registry.routes.items()):
            token = self.registry.tokens[src]
            coin = (token.chain, token.asset) == (native.chain, native.asset) and token.variant in ("native", "wrapped")
            if coin and dst.split(":", 1)[0] == self.other and any(r.bridge == self.watch.bridge for r in routes):
                return route_name(self.watch.bridge, src, dst)
        return route_name(self.watch.bridge, native.id, there.id)

    def _op_stack(self, logs: list[dict[str, Any]], at: float) -> None:
        """The round's OP Stack logs, transaction by transaction in log order, checked whole before any is
        applied. The StandardBridge emits its ...BridgeInitiated and then calls the messenger, whose
        SentMessage and SentMessageExtension1 follow; on the other end the messenger calls the bridge, whose
        ...BridgeFinalized precedes the messenger's RelayedMessage."""
        messenger, bridges = self.watch.contract.lower(), {a.lower() for a in self.watch.also}
        by_tx: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in sorted(logs, key=lambda e: (int(e["blockNumber"], 16), int(e["logIndex"], 16))):
            by_tx[entry["transactionHash"]].append(entry)
        deposits: list[tuple[str, str]] = []  # (message hash, route)
        relays: list[tuple[str, bool]] = []  # (message hash, relayed); a failed relay: False
        for tx, entries in by_tx.items():
            initiated: dict[str, deque[str]] = defaultdict(deque)  # bridge → routes of its transfers not sent yet
            finalized = False  # a bridge finalized a transfer since the messenger's last relay
            for i, entry in enumerate(entries):
                address, topics = entry["address"].lower(), entry["topics"]
                data = bytes.fromhex(entry["data"][2:])
                if address in bridges:
                    if topics[0] == ETH_BRIDGE_INITIATED:
                        initiated[address].append(self._native_route())
                    elif topics[0] == ERC20_BRIDGE_INITIATED:
                        local, remote = "0x" + topics[1][-40:], "0x" + topics[2][-40:]
                        initiated[address].append(self._route(local, self.other, remote))
                    elif topics[0] in OP_FINALIZED:
                        finalized = True
                elif address == messenger and topics[0] == SENT_MESSAGE:
                    sender, message, nonce, min_gas_limit = decode(["address", "bytes", "uint256", "uint256"], data)
                    after = entries[i + 1] if i + 1 < len(entries) else None
                    if (
                        after is None
                        or after["topics"][0] != SENT_MESSAGE_EXTENSION1
                        or after["address"].lower() != messenger
                    ):
                        raise ValueError(f"SentMessage without its SentMessageExtension1 in {tx}")
                    (value,) = decode(["uint256"], bytes.fromhex(after["data"][2:]))
                    sender = sender.lower()
                    if sender not in bridges:
                        continue  # another application's message through the same messenger
                    if not initiated[sender]:
                        raise ValueError(f"SentMessage from the bridge {sender} without a ...BridgeInitiated in {tx}")
                    target = "0x" + topics[1][-40:]
                    key = op_message_hash(nonce, sender, target, value, min_gas_limit, message)
                    deposits.append((f"{self.watch.chain}:{key}", initiated[sender].popleft()))
                elif address == messenger and topics[0] == RELAYED_MESSAGE:
                    if finalized:  # else another application's message
                        relays.append((f"{self.other}:{topics[1]}", True))
                    finalized = False
                elif address == messenger and topics[0] == FAILED_RELAYED_MESSAGE:
                    relays.append((f"{self.other}:{topics[1]}", False))
                    finalized = False
        for key, route in deposits:
            self.monitor.deposit(self.watch.bridge, key, route, at)
        for key, relayed in relays:
            (self.monitor.fill if relayed else self.monitor.failed)(self.watch.bridge, key, at)


def cctp_v2_content(source: bytes, destination: bytes, sender: bytes, body: bytes) -> str:
    """What names a CCTP V2 transfer on both ends (the nonce and the attester's fields left out): the two
    domains (4 bytes each), the message's sender (32) and the burn message but its feeExecuted and
    expirationBlock."""
    stable = body[:V2_FEE_AT] + body[V2_HOOK_AT:]
    return "0x" + keccak(source + destination + sender + stable).hex()


def op_message_hash(nonce: int, sender: str, target: str, value: int, min_gas_limit: int, message: bytes) -> str:
    """The hash an OP Stack CrossDomainMessenger files a message under (RelayedMessage's msgHash): keccak256
    of relayMessage's calldata, its nonce versioned (the version in the top 16 bits, 1 since Bedrock)."""
    args = encode(
        ["uint256", "address", "address", "uint256", "uint256", "bytes"],
        [nonce, sender, target, value, min_gas_limit, message],
    )
    return "0x" + keccak(RELAY_MESSAGE + args).hex()
