"""The agent's link to the fleet: events out (through BusPublisher), commands and the risk lease in.

Wired by mevagent.app when the config has a `bus:` section:

- `reporting(router)` wraps the executor router: every opportunity that reaches an executor is
  published as found (best effort), a refusal as skipped, and every execution's outcome (with what was
  sent) as durable events with exact amounts: the profit the contract kept (the executor's report, in
  base units) and the gas paid (from the receipt);
- the command task reads this agent's command stream and applies each command once, in order, through
  the same control queue as the agent's own API, then acknowledges it on the bus (a cross-chain leg is
  acknowledged by its own task once its transaction is out: the ack's work stays out of the leg's way);
  lease grants go to the `RiskLease` the risk gate consults before any live signature;
- the heartbeat task publishes a heartbeat (with each chain's node and beacon peer counts, asked every
  PEERS_EVERY_S), the gate's exposure snapshot, and per chain the fee market (eth_feeHistory) with the
  node's round trip and the pipeline's found→outcome percentiles; every PROVIDERS_EVERY_S, the flashloan
  providers its chains' FlashMonitors follow (`providers_status`: what its GET /providers/status answers,
  read from the monitors' memory, no node call), for the control plane's fleet-wide /providers/status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mevagent.bus.events import (
    FIELD,
    Command,
    CommandAck,
    CrossChainLegCommand,
    CrossChainLegResult,
    EmergencyResumeCommand,
    EmergencyStopCommand,
    Event,
    ExecutionOutcome,
    ExecutionSent,
    ExposureSnapshot,
    GasPrices,
    Heartbeat,
    Latency,
    LeaseGrant,
    OpportunityFound,
    OpportunitySkipped,
    PauseStrategyCommand,
    ProviderReport,
    ProvidersStatus,
    ReplaceTransactionCommand,
    ResumeStrategyCommand,
    SetLimitsCommand,
    TransactionReplaced,
    command_stream,
    decode_command,
    new_id,
)
from mevagent.bus.lease import RiskLease
from mevagent.bus.publisher import BusPublisher, reraise_if_cancelled
from mevagent.bus.spool import Spool
from mevagent.config import AgentConfig, BusConfig, read_secret
from mevagent.core import Opportunity, Outcome, Status
from mevagent.engine import commands as engine_commands
from mevagent.risk.gate import RiskGate

log = logging.getLogger(__name__)

LAST_COMMAND_FILE = "bus-last-command"
SEEN_COMMANDS = 10_000
WINDOW = 512  # found→outcome samples kept per chain for the latency percentiles
FEE_PERCENTILES = [50, 90, 99]
PEERS_EVERY_S = 10.0  # peer counts change slowly: asked this often, by the heartbeat task (never the hot path)
PEERS_TIMEOUT_S = 2.0  # a node that does not answer in time: its count is left off the heartbeat
PROVIDERS_EVERY_S = 5.0  # the flashloan providers' status: liquidity moves with blocks, the fleet view is a glance
MAX_PROVIDERS = 256  # per report (ProvidersStatus.providers), as are the tokens per provider


class Node(Protocol):
    async def call(self, method: str, params: Any = ()) -> Any: ...


def _evm(nodes: Mapping[str, Node]) -> dict[str, Node]:
    """The nodes the fee market and peer counts are asked of (eth_feeHistory, net_peerCount): a Solana
    node (mevagent.solana.node.SolanaNode, `evm = False`) has neither."""
    return {chain: node for chain, node in nodes.items() if getattr(node, "evm", True)}


class Router(Protocol):
    executors: Mapping[str, Mapping[str, Any]]  # chain -> route -> executor
    nodes: Mapping[str, Node]

    async def execute(self, opportunity: Opportunity, head: int | None = None) -> Outcome: ...


def usd(value: float) -> Decimal:
    """A float USD figure as the shortest decimal that reads back as the same float."""
    return Decimal(repr(float(value)))


def redis_client(config: BusConfig) -> Redis:
    password = read_secret(config.password_file).decode() if config.password_file is not None else None
    kwargs: dict[str, Any] = {"password": password, "socket_connect_timeout": 2.0, "socket_timeout": 5.0}
    if config.username is not None:
        kwargs["username"] = config.username
    if config.redis_url.startswith("rediss://") and config.tls_ca_file is not None:
        kwargs["ssl_ca_certs"] = str(config.tls_ca_file)
        kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        # The certificate must name the address dialled (redis-py 5 did not check it by default).
        kwargs["ssl_check_hostname"] = True
        kwargs["ssl_min_version"] = ssl.TLSVersion.TLSv1_2
    if config.redis_url.startswith("unix://"):
        kwargs.pop("socket_connect_timeout")
    return Redis.from_url(config.redis_url, **kwargs)


class ReportingRouter:
    """The executor router, publishing what becomes of each opportunity (see the module doc)."""

    def __init__(self, inner: Router, link: BusLink) -> None:
        self.inner = inner
        self.link = link
        self.executors = inner.executors
        self.nodes = inner.nodes
        for routes in inner.executors.values():
            for executor in routes.values():
                if hasattr(executor, "sent_observer"):
                    executor.sent_observer = link.publish_sent

    async def execute(self, opportunity: Opportunity, head: int | None = None) -> Outcome:
        link = self.link
        found_at = time.time() - max(0, time.perf_counter_ns() - opportunity.found_ns) / 1e9
        oid = _opportunity_id(opportunity)
        link.publish_found(opportunity, oid)
        outcome = await self.inner.execute(opportunity, head)
        link.sample_latency(opportunity, time.perf_counter_ns())
        try:
            await link.publish_outcome(opportunity, oid, outcome, found_at, self.inner)
        except Exception:  # reporting must never fail an execution that already happened
            log.exception("bus: the outcome of %s could not be published", oid)
        return outcome


def _opportunity_id(opportunity: Opportunity) -> str:
    from mevagent.executor.executor import opportunity_id  # the executor's own id: one per trade

    return opportunity_id(opportunity)


class BusLink:
    def __init__(
        self,
        config: AgentConfig,
        gate: RiskGate,
        apply: Callable[[engine_commands.Command], Awaitable[None]],
        *,
        redis: Redis | None = None,
    ) -> None:
        assert config.bus is not None
        self.config = config
        self.bus = config.bus
        self.agent = config.bus.agent
        self.gate = gate
        self.apply = apply
        self.redis = redis if redis is not None else redis_client(config.bus)
        self.directory: Path = config.state_dir
        self.spool = Spool(config.state_dir)
        self.publisher = BusPublisher(self.redis, self.spool, max_queue=config.bus.max_queue)
        self.lease = RiskLease()
        self.live_chains = tuple(c.name for c in config.chains if c.live)
        if config.bus.lease_required:
            gate.require_lease(self.lease, self.live_chains)
        self.router: ReportingRouter | None = None
        self.commands_applied = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._latency: dict[str, deque[float]] = {}
        self.peers: dict[str, int] = {}  # chain -> its node's peer count, as last asked
        self.beacon_peers: dict[str, int] = {}  # chain -> its consensus client's connected peers
        self._peers_at = -PEERS_EVERY_S
        # The chains' FlashMonitors (mevagent.api.providers.ProviderSource), set by mevagent.app.
        self.providers: list[Any] = []
        self._providers_at = -PROVIDERS_EVERY_S
        self._tasks: list[asyncio.Task[None]] = []
        self._sent_early: OrderedDict[str, None] = OrderedDict()  # executions reported sent when they were
        self._sending: set[asyncio.Task[None]] = set()
        self._following: set[asyncio.Task[None]] = set()  # replacements watched until their receipt, legs
        self._legs: dict[str, Any] = {}  # chain -> its LegExecutor (mevagent.crosschain.legs), made on first use
        self._acked_by_leg: set[str] = set()  # leg commands whose own task publishes their ack (start_leg)

    # ---- events ---------------------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        self.publisher.publish(event)

    def reporting(self, router: Router) -> ReportingRouter:
        self.router = ReportingRouter(router, self)
        return self.router

    def publish_found(self, opp: Opportunity, oid: str) -> None:
        self.publish(
            OpportunityFound(
                agent=self.agent,
                chain=opp.chain,
                strategy=opp.strategy,
                opportunity_id=oid,
                block=opp.block,
                token=opp.token,
                amount_in=opp.amount_in,
                amount_out=opp.amount_out,
                gas_limit=opp.gas_limit,
                gas_price_wei=opp.gas_price,
                builder_payment_wei=opp.builder_payment,
                token_usd_per_unit=_per_unit(opp.notional_usd, opp.amount_in),
                notional_usd=usd(opp.notional_usd),
                profit_usd=usd(opp.profit_usd),
                gas_cost_usd=usd(opp.gas_cost_usd),
                hops=len(opp.hops),
                pools=tuple(h.pool.lower() for h in opp.hops),
                liquidated_user=str(getattr(opp, "user", "")).lower(),
            )
        )

    def publish_sent(self, opp: Opportunity, oid: str, hashes: tuple[str, ...]) -> None:
        """The executor's sent_observer: `execution_sent` as soon as the transaction is out (durable, fsynced by a
        task of its own: the executor goes on waiting for its receipt)."""
        found_at = time.time() - max(0, time.perf_counter_ns() - opp.found_ns) / 1e9
        sent = ExecutionSent(agent=self.agent, chain=opp.chain, strategy=opp.strategy, opportunity_id=oid,
                             block=opp.block, tx_hashes=tuple(h for h in hashes if h), found_at=found_at)  # fmt: skip
        self._sent_early[oid] = None
        if len(self._sent_early) > SEEN_COMMANDS:
            self._sent_early.popitem(last=False)
        task = asyncio.ensure_future(self.publisher.publish_durable(sent))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def publish_outcome(
        self, opp: Opportunity, oid: str, outcome: Outcome, found_at: float, router: Router
    ) -> None:
        common = {"agent": self.agent, "chain": opp.chain, "strategy": opp.strategy, "opportunity_id": oid}
        if outcome.status is Status.REJECTED:
            limit = outcome.reason.split(":", 1)[0].strip()[:64] or "unknown"
            self.publish(OpportunitySkipped(**common, block=opp.block, limit=limit, reason=outcome.reason[:1000]))
            return
        report = _report(router.executors.get(opp.chain, {}).get(opp.route), oid)
        profit = int(report.profit_wei or 0) if report is not None else 0
        gas_paid, included, builder_paid = 0, None, 0
        hashes = tuple(h for h in outcome.tx_hashes if h)
        reported = oid in self._sent_early
        self._sent_early.pop(oid, None)
        if hashes and not reported:  # an execution not reported when it was sent (the sequencer refused it, ...)
            sent = ExecutionSent(**common, block=opp.block, tx_hashes=hashes, found_at=found_at)
            await self.publisher.publish_durable(sent)
        if hashes and outcome.status in (Status.LANDED, Status.REVERTED):
            paid = getattr(report, "gas_paid", None)  # a route that knows what it paid (Solana: fees and tip)
            if paid is not None:
                gas_paid, included = paid, report.included_block
            else:
                gas_paid, included = await _gas_paid(router.nodes[opp.chain], hashes[0])
            if outcome.status is Status.LANDED:
                builder_paid = opp.builder_payment
                gas_paid += builder_paid
        budget = opp.gas_limit * opp.gas_price + opp.builder_payment
        await self.publisher.publish_durable(
            ExecutionOutcome(
                **common,
                block=opp.block,
                status=outcome.status.value,
                token=opp.token,
                amount_in=opp.amount_in,
                realized_profit=profit if outcome.status in (Status.LANDED, Status.DRY_RUN) else 0,
                gas_paid_wei=gas_paid,
                token_usd_per_unit=_per_unit(opp.notional_usd, opp.amount_in),
                native_usd_per_wei=_per_unit(opp.gas_cost_usd, budget),
                realized_profit_usd=usd(outcome.realized_profit_usd),
                gas_cost_usd=usd(outcome.gas_cost_usd),
                builder_paid_wei=builder_paid,
                builder_paid_usd=usd(outcome.builder_paid_usd),
                tx_hashes=hashes,
                included_block=included,
                reason=outcome.reason[:1000],
                found_at=found_at,
                settled_at=time.time(),
                sandwich_exposure=outcome.sandwich_exposure,
                sandwich_exposure_usd=None
                if outcome.sandwich_exposure_usd is None
                else usd(outcome.sandwich_exposure_usd),
            )
        )

    def sample_latency(self, opp: Opportunity, now_ns: int) -> None:
        window = self._latency.setdefault(opp.chain, deque(maxlen=WINDOW))
        window.append(max(0, now_ns - opp.found_ns) / 1e9)

    # ---- commands ---------------------------------------------------------------------------------------

    async def _commands(self) -> None:
        stream = command_stream(self.agent)
        last = self._last_command()
        failures = 0
        while True:
            try:
                answer = await self.redis.xread({stream: last}, count=100, block=1000)
                failures = 0
            except (RedisError, OSError) as exc:
                reraise_if_cancelled()
                if failures == 0:
                    log.warning("bus: cannot read %s (%s); retrying", stream, exc)
                failures += 1
                await asyncio.sleep(min(1.0, 0.05 * 2**failures))
                continue
            for _name, entries in answer or ():
                for entry_id, fields in entries:
                    await self._handle(fields.get(FIELD.encode()) or fields.get(FIELD))
                    last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                await asyncio.to_thread(self._save_last_command, last)

    def _last_command(self) -> str:
        try:
            return (self.directory / LAST_COMMAND_FILE).read_text().strip() or "$"
        except OSError:
            return "$"  # first start: what was sent before this agent existed is not for it

    def _save_last_command(self, entry_id: str) -> None:
        tmp = self.directory / (LAST_COMMAND_FILE + ".tmp")
        try:
            tmp.write_text(entry_id)
            os.replace(tmp, self.directory / LAST_COMMAND_FILE)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full disk: the old position stays, nothing half-written beside it
            raise

    async def _handle(self, raw: bytes | None) -> None:
        if raw is None:
            return
        try:
            command = decode_command(raw)
        except (ValueError, ValidationError) as exc:
            log.warning("bus: a command that does not validate was ignored: %s", str(exc)[:200])
            return
        if command.id in self._seen:
            return
        self._seen[command.id] = None
        if len(self._seen) > SEEN_COMMANDS:
            self._seen.popitem(last=False)
        if isinstance(command, LeaseGrant):
            if command.agent == self.agent and not self.gate.emergency_stopped:
                self.lease.grant(command)
            return
        ok, detail = await self.apply_command(command)
        self.commands_applied += 1
        if command.id in self._acked_by_leg:  # a leg that started acks itself once its transaction is out
            self._acked_by_leg.discard(command.id)
            return
        # Urgent: an operator's call waits for it (the emergency stop answers with every agent's ack).
        await self.publisher.publish_durable(
            CommandAck(agent=self.agent, command_id=command.id, command=command.kind, ok=ok, detail=detail[:1000]),
            urgent=True,
        )

    async def apply_command(self, command: Command) -> tuple[bool, str]:
        """Apply one bus command as the agent's API would; (ok, what happened or why not)."""
        try:
            match command:
                case EmergencyStopCommand(reason=reason, issued_by=who):
                    self.lease.revoke()
                    await self.apply(engine_commands.EmergencyStop(f"fleet: {reason} ({who})"))
                    log.critical("EMERGENCY STOP from the fleet control plane (%s): %s", who, reason)
                    return True, "emergency stop engaged"
                case EmergencyResumeCommand():
                    await self.apply(engine_commands.EmergencyResume())
                    return True, "emergency stop released"
                case PauseStrategyCommand(strategy=name):
                    await self.apply(engine_commands.PauseStrategy(name))
                    return True, f"{name} paused"
                case ResumeStrategyCommand(strategy=name):
                    await self.apply(engine_commands.ResumeStrategy(name))
                    return True, f"{name} resumed"
                case SetLimitsCommand(changes=changes):
                    limits = self.gate.limits.updated(changes)
                    await self.apply(engine_commands.SetRiskLimits(limits))
                    return True, "limits changed"
                case ReplaceTransactionCommand():
                    return await self.replace_transaction(command)
                case CrossChainLegCommand():
                    return await self.start_leg(command)
        except ValidationError as exc:
            return False, "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'changes'}: {e['msg']}" for e in exc.errors()
            )
        except OSError as exc:
            return False, f"not persisted: {exc.strerror}"
        return False, f"unknown command {command.kind}"

    async def replace_transaction(self, command: ReplaceTransactionCommand) -> tuple[bool, str]:
        """A stuck transaction of ours re-signed at its nonce (mevagent.executor.replace), reported as a
        durable `transaction_replaced` event whatever became of it."""
        from mevagent.executor.replace import Replacement, replace_stuck

        signing = [
            e for e in (self.router.executors.get(command.chain, {}) if self.router else {}).values()
            if getattr(e, "address", None)
        ]  # fmt: skip
        if command.agent != self.agent:
            result = Replacement(False, f"the command is for agent {command.agent}, this is {self.agent}")
        elif not signing:
            result = Replacement(False, f"{command.chain}: this agent has no signing executor there")
        else:
            try:
                result = await replace_stuck(
                    signing[0], self.gate, chain=command.chain, tx_hash=command.tx_hash, action=command.action,
                    bump_percent=command.bump_percent,
                    max_gas_price_wei=self.gate.chain_limits(command.chain).max_gas_price_wei,
                )  # fmt: skip
            except Exception as exc:  # the node: nothing was signed, or the send failed after signing
                reraise_if_cancelled()
                result = Replacement(False, f"node: {type(exc).__name__}: {exc}")
        fees = result.fees
        sent = TransactionReplaced(
            agent=self.agent, command_id=command.id, chain=command.chain, tx_hash=command.tx_hash,
            action=command.action, ok=result.ok, nonce=result.nonce,
            replacement_hash=result.replacement_hash.lower() if result.ok and result.replacement_hash else None,
            max_fee_per_gas_wei=fees.get("maxFeePerGas", fees.get("gasPrice")),
            max_priority_fee_per_gas_wei=fees.get("maxPriorityFeePerGas"), detail=result.detail[:1000],
        )  # fmt: skip
        await self.publisher.publish_durable(sent)
        if sent.replacement_hash is not None and sent.nonce is not None:
            task = asyncio.create_task(self._follow(signing[0], sent), name=f"bus:follow:{sent.replacement_hash}")
            self._following.add(task)
            task.add_done_callback(self._following.discard)
        return result.ok, result.detail

    async def start_leg(self, command: CrossChainLegCommand) -> tuple[bool, str]:
        """A cross-chain leg (mevagent.crosschain.legs), carried out by a task of its own so the command loop
        (an emergency stop behind it) never waits on a receipt; its result is a durable `crosschain_leg`
        event, also when the leg cannot start here."""
        from mevagent.crosschain.legs import LegExecutor
        from mevagent.executor.routes import ARB_CONTRACT

        executor = self.router.executors.get(command.chain, {}).get(ARB_CONTRACT) if self.router else None
        refusal = ""
        if command.agent != self.agent:
            refusal = f"the command is for agent {command.agent}, this is {self.agent}"
        elif executor is None:
            refusal = f"{command.chain}: this agent has no executor there"
        elif command.chain not in self._legs:
            try:
                self._legs[command.chain] = LegExecutor(executor, self.agent)
            except ValueError as exc:
                refusal = str(exc)
        if refusal:
            await self.publisher.publish_durable(
                CrossChainLegResult(
                    agent=self.agent, command_id=command.id, position_id=command.position_id, leg=command.leg,
                    chain=command.chain, status="rejected", token_in=command.token_in, token_out=command.token_out,
                    amount_in=0, amount_out=0, reason=refusal,
                )
            )  # fmt: skip
            return False, refusal

        detail = f"{command.leg} leg started on {command.chain}"
        # The ack (made now: its time is the leg's start) is published once the leg's transaction is out, or
        # the leg ended without one: its spooling, its XADD and the control plane's ingest of it would
        # otherwise run beside the leg's reads, signing and send. Nobody waits for a leg's ack (its durable
        # result is the answer), so it goes through the spool in the background.
        ack = CommandAck(agent=self.agent, command_id=command.id, command=command.kind, ok=True, detail=detail)
        acked: list[bool] = []

        def acknowledge() -> None:
            if not acked:
                acked.append(True)
                self.publisher.publish(ack)

        async def run(legs: LegExecutor) -> None:
            try:
                result = await legs.execute(command, on_sent=acknowledge)
            finally:
                acknowledge()
            log.info("%s: cross-chain %s leg of %s: %s %s", command.chain, command.leg, command.position_id,
                     result.status, result.reason)  # fmt: skip
            await self.publisher.publish_durable(result)

        task = asyncio.create_task(run(self._legs[command.chain]), name=f"bus:leg:{command.id}")
        self._following.add(task)
        task.add_done_callback(self._following.discard)
        self._acked_by_leg.add(command.id)
        return True, detail

    async def _follow(self, executor: Any, sent: TransactionReplaced) -> None:
        """The replacement followed to its receipt (mevagent.executor.replace.follow), published again with it."""
        from mevagent.executor.replace import follow

        assert sent.replacement_hash is not None and sent.nonce is not None
        settled = await follow(executor, sent.replacement_hash, sent.nonce)
        if settled is None:
            log.warning("%s: %s %s: no receipt yet, no longer followed", sent.chain, sent.action, sent.replacement_hash)
            return
        detail = f"{sent.action} {sent.replacement_hash} {settled.receipt}" + (
            f" in block {settled.included_block}" if settled.included_block is not None else ""
        )
        await self.publisher.publish_durable(
            sent.model_copy(update={"id": new_id(), "at": time.time(), "receipt": settled.receipt,
                                    "included_block": settled.included_block, "detail": detail})
        )  # fmt: skip

    # ---- heartbeat, exposure, gas, latency ------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a snapshot must never stop the heartbeat
                self._beat()
            if self.router is not None:
                for chain, node in _evm(self.router.nodes).items():
                    try:
                        await self._fee_market(chain, node)
                    except Exception:  # a node that does not answer: no fee figures this round
                        reraise_if_cancelled()
                if time.monotonic() - self._peers_at >= PEERS_EVERY_S:
                    self._peers_at = time.monotonic()
                    await self._ask_peers()
            if self.providers and time.monotonic() - self._providers_at >= PROVIDERS_EVERY_S:
                self._providers_at = time.monotonic()
                with contextlib.suppress(Exception):  # a report must never stop the heartbeat
                    self.publish_providers()
            await asyncio.sleep(self.bus.heartbeat_s)

    async def _ask_peers(self) -> None:
        """Each chain's node (net_peerCount) and consensus client (the beacon API), at once, each bounded."""
        assert self.router is not None
        beacons = {c.name: c.beacon_url for c in self.config.chains if c.beacon_url}

        async def node_peers(chain: str, node: Node) -> None:
            try:
                async with asyncio.timeout(PEERS_TIMEOUT_S):
                    self.peers[chain] = int(await node.call("net_peerCount", []), 16)
            except Exception:  # no answer, or not a number: the count is left off
                reraise_if_cancelled()
                self.peers.pop(chain, None)

        async def beacon_peers(session: aiohttp.ClientSession, chain: str, url: str) -> None:
            try:
                async with session.get(f"{url.rstrip('/')}/eth/v1/node/peer_count") as response:
                    response.raise_for_status()
                    self.beacon_peers[chain] = int((await response.json())["data"]["connected"])
            except Exception:
                reraise_if_cancelled()
                self.beacon_peers.pop(chain, None)

        timeout = aiohttp.ClientTimeout(total=PEERS_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(
                *(node_peers(chain, node) for chain, node in _evm(self.router.nodes).items()),
                *(beacon_peers(session, chain, url) for chain, url in beacons.items()),
            )

    def publish_providers(self) -> None:
        """The flashloan providers as GET /providers/status lists them, bounded (MAX_PROVIDERS)."""
        reports = []
        for source in self.providers:
            for status in source.status():
                liquidity = [{"token": t["token"], "available": int(t["available"])} for t in status["liquidity"]]
                entry = {**status, "detail": str(status["detail"])[:500], "liquidity": liquidity[:MAX_PROVIDERS]}
                reports.append(ProviderReport.model_validate(entry))
        self.publish(ProvidersStatus(agent=self.agent, providers=tuple(reports[:MAX_PROVIDERS])))

    def _beat(self) -> None:
        snap = self.gate.snapshot()
        exposure = snap["exposure_usd"]
        self.publish(
            Heartbeat(
                agent=self.agent,
                chains=tuple(c.name for c in self.config.chains),
                live_chains=self.live_chains,
                lease_fresh=self.lease.fresh(),
                lease_expires_in_s=max(-1e9, self.lease.expires_in()),
                emergency_stop=self.gate.emergency_stopped,
                spool_pending=self.publisher.pending,
                dropped=self.publisher.dropped,
                api_url=self.bus.api_url or f"http://{self.config.api.bind}:{self.config.api.port}",
                peers=dict(self.peers),
                beacon_peers=dict(self.beacon_peers),
            )
        )
        daily = {k: usd(v) for k, v in snap["daily_pnl_usd"].items() if k != "total"}
        self.publish(
            ExposureSnapshot(
                agent=self.agent,
                total_usd=usd(exposure["total"]),
                by_chain={k: usd(v) for k, v in exposure["by_chain"].items()},
                by_token={k: usd(v) for k, v in exposure["by_token"].items()},
                daily_pnl_usd=daily,
                in_flight=snap["in_flight"],
                emergency_stop=snap["emergency_stop"]["engaged"],
                paused_strategies=tuple(snap["paused_strategies"]),
            )
        )

    async def _fee_market(self, chain: str, node: Node) -> None:
        started = time.perf_counter()
        history = await node.call("eth_feeHistory", [hex(5), "latest", FEE_PERCENTILES])
        round_trip = time.perf_counter() - started
        rewards = [[int(x, 16) for x in block] for block in history.get("reward") or []]
        base_fees = history.get("baseFeePerGas") or ["0x0"]
        oldest = int(history.get("oldestBlock", "0x0"), 16)

        def column(i: int) -> int:
            values = sorted(r[i] for r in rewards if len(r) > i)
            return values[len(values) // 2] if values else 0

        self.publish(
            GasPrices(
                agent=self.agent,
                chain=chain,
                block=oldest + max(0, len(base_fees) - 2),
                base_fee_wei=int(base_fees[-1], 16),
                priority_fee_p50_wei=column(0),
                priority_fee_p90_wei=column(1),
                priority_fee_p99_wei=column(2),
            )
        )
        stages: dict[str, float] = {}
        window = sorted(self._latency.get(chain, ()))
        if window:
            stages = {
                "found_to_outcome_p50": window[len(window) // 2],
                "found_to_outcome_p99": window[min(len(window) - 1, int(len(window) * 0.99))],
            }
        self.publish(Latency(agent=self.agent, chain=chain, rpc_round_trip_s=round_trip, stages=stages))

    # ---- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        loops = {"publisher": self.publisher.run, "commands": self._commands, "heartbeat": self._heartbeats}
        for name, run in loops.items():
            self._tasks.append(asyncio.create_task(run(), name=f"bus:{name}"))

    async def stop(self, flush_s: float = 2.0) -> None:
        """Give queued events `flush_s` to reach Redis (durable ones stay in the spool anyway), then close."""
        if self._tasks:
            await self.publisher.flushed(flush_s)
        self.publisher.stop()
        for task in [*self._tasks, *self._following]:
            task.cancel()
        if self._tasks:
            # Bounded: a cancellation swallowed inside the Redis client must not hold up the agent's exit.
            await asyncio.wait(self._tasks, timeout=5.0)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        self.spool.close()


def _per_unit(value_usd: float, units: int) -> Decimal:
    if units <= 0:
        return Decimal(0)
    return usd(value_usd) / Decimal(units)


def _report(executor: Any, oid: str) -> Any:
    """The executor's report of `oid`: the profit the contract kept (or would keep, simulated), in base units."""
    for report in reversed(getattr(executor, "reports", ())):
        if report.opportunity_id == oid:
            return report
    return None


async def _gas_paid(node: Node, tx_hash: str) -> tuple[int, int | None]:
    receipt = await node.call("eth_getTransactionReceipt", [tx_hash])
    if not receipt:
        return 0, None
    paid = int(receipt["gasUsed"], 16) * int(receipt.get("effectiveGasPrice", "0x0"), 16)
    return paid, int(receipt["blockNumber"], 16)
