"""The `solana_bundle` executor route: what mevagent.app's router hands a Solana opportunity to.

It wraps SolanaExecutor (the risk gate before signing, simulate, dry-run unless the chain is live, Jito
bundles, its blockhash kept fresh in the background) for the engine: one execution at a time (a second
cycle through the same pools would be built on state the first one is about to change), an opportunity
whose pools moved since it was sized is refused before the gate, and each execution leaves a report the
bus reads (what the cycle kept, what it paid, the slot it landed in).

With `own_lookup_tables`, each cycle it executes for the first time has its accounts put in our own lookup
tables in the background (mevagent.solana.tables; live only when the chain is live), and the executor builds
through them once they are active, besides the config's `lookup_tables` read at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from mevagent.config import ChainConfig, read_secret
from mevagent.core import Opportunity, Outcome, RiskCheck, Status

from .cycles import Cycle
from .executor import ExecutorSettings, SolanaExecutor, SolanaOpportunity
from .price import SolPrice
from .rpc import BlockEngine, RpcError, SolanaRpc
from .tables import LookupTables, TableError, TableReport, given_tables, route_accounts

log = logging.getLogger(__name__)

ROUTE = "solana_bundle"
REPORTS_KEPT = 1_000


@dataclass(frozen=True, slots=True)
class Report:
    """One execution as the bus publishes it (mevagent.bus.link reads these by opportunity id)."""

    opportunity_id: str
    profit_wei: int  # what the cycle returned above its input, in the base mint's units (0 unless landed/dry-run)
    gas_paid: int | None  # lamports paid in fees (the tip is the opportunity's builder_payment) when it landed
    included_block: int | None  # the slot it landed in


def read_keypair(path: str) -> Keypair:
    """A Solana CLI keypair file: a JSON array of the 64 secret-key bytes (mode 0600, checked on read)."""
    raw = json.loads(read_secret(Path(path)))
    if not isinstance(raw, list) or len(raw) != 64 or not all(isinstance(b, int) and 0 <= b < 256 for b in raw):
        raise ValueError(f"{path}: not a Solana keypair file (a JSON array of 64 bytes)")
    return Keypair.from_bytes(bytes(raw))


async def _tip_accounts(engine: BlockEngine) -> list[Pubkey]:
    """The region's tip accounts (a tip goes to one of them); ValueError, so the agent refuses to start naming
    the chain, when the block engine does not answer."""
    try:
        return await engine.tip_accounts()
    except (RpcError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ValueError(f"block engine {engine.url}: getTipAccounts: {type(exc).__name__}: {exc}") from None


async def _given(rpc: SolanaRpc, keys: tuple[str, ...]) -> list[AddressLookupTableAccount]:
    """The config's `lookup_tables` as they resolve now; ValueError (the agent refuses to start, naming the
    chain) when one is not an active table or the node does not answer."""
    try:
        return await given_tables(rpc, [Pubkey.from_string(k) for k in keys])
    except (TableError, RpcError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ValueError(f"lookup_tables: {type(exc).__name__}: {exc}") from None


class SolanaRoute:
    route = ROUTE

    def __init__(
        self,
        executor: SolanaExecutor | None,
        session: aiohttp.ClientSession,
        gate: RiskCheck,
        tables: LookupTables | None = None,
        given: Sequence[AddressLookupTableAccount] = (),
    ) -> None:
        self.executor, self.session, self.gate = executor, session, gate
        self.reports: deque[Report] = deque(maxlen=REPORTS_KEPT)
        self._lock = asyncio.Lock()
        # The executor's blockhash kept fresh in the background: no bundle waits for getLatestBlockhash.
        self.keeper = asyncio.get_running_loop().create_task(executor.keep_blockhash()) if executor else None
        # Our own lookup tables: the cycles executed so far, and the background task keeping the tables.
        self.tables = tables if executor is not None else None
        self.given = list(given)  # the config's `lookup_tables`, read at start
        self.cycles: dict[tuple[tuple[str, bool], ...], Cycle] = {}
        self.table_task: asyncio.Task[None] | None = None
        self.table_report: TableReport | None = None  # the last round's (in dry-run: what it would have sent)
        self._tables_due = False

    @classmethod
    async def open(cls, chain: ChainConfig, gate: RiskCheck, price: SolPrice) -> SolanaRoute:
        """The route for `chain`, its outcomes valued at `price` (the chain's, mevagent.solana.price). Without a
        signing key or a block engine a dry run cannot simulate (no payer, no tip account): it reports the
        opportunity unsimulated, as the EVM route does without a contract."""
        assert chain.solana is not None and chain.http_url is not None
        sol = chain.solana
        session = aiohttp.ClientSession()
        tables: LookupTables | None = None
        given: list[AddressLookupTableAccount] = []
        try:
            executor = None
            if chain.signing_key_file is not None and sol.block_engines:
                payer = read_keypair(str(chain.signing_key_file))
                engines = [BlockEngine(session, r.url, r.rps, r.timeout_ms / 1000) for r in sol.block_engines]
                rpc = SolanaRpc(session, chain.http_url)
                given = await _given(rpc, sol.lookup_tables)
                executor = SolanaExecutor(
                    rpc,
                    engines,
                    payer,
                    {Pubkey.from_string(m): Pubkey.from_string(a) for m, a in sol.token_accounts.items()},
                    gate,
                    ExecutorSettings(
                        live=chain.live,
                        intermediate_slippage_bps=sol.intermediate_slippage_bps,
                        status_timeout_s=sol.status_timeout_s,
                    ),
                    await _tip_accounts(engines[0]),
                    lookup_tables=given,
                    price=price,
                )
                if sol.own_lookup_tables:
                    tables = LookupTables(rpc, payer, live=chain.live)
                    try:  # ours from an earlier run; a node not answering yet is not a reason to refuse to start
                        executor.lookup_tables += await tables.usable()
                    except (TableError, RpcError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                        log.warning("lookup tables: not read at start: %s: %s", type(exc).__name__, exc)
        except BaseException:
            await session.close()
            raise
        return cls(executor, session, gate, tables, given)

    async def execute(self, opportunity: Opportunity, head: int | None = None) -> Outcome:
        if not isinstance(opportunity, SolanaOpportunity) or opportunity.sized is None:
            return Outcome(opportunity, Status.REJECTED, reason="route: not a Solana cycle")
        sized = opportunity.sized
        async with self._lock:
            now = tuple(leg.pool.version for leg in sized.cycle.legs)
            if now != sized.versions:  # a pool moved while it waited: its amounts are no longer the quote
                return Outcome(opportunity, Status.REJECTED, reason="stale: a pool of the cycle changed since sizing")
            if self.executor is None:
                outcome = await self._unsimulated(opportunity)
            else:
                # The compute budget the cycle was sized with (its priority fee): settings changed since
                # apply to the next sizing, never to a cycle already priced.
                outcome = await self.executor.run(
                    opportunity, sized, sized.compute_unit_limit, sized.compute_unit_price_micro_lamports
                )
        self._report(opportunity, outcome)
        self._track(sized.cycle)
        return outcome

    def _track(self, cycle: Cycle) -> None:
        """A cycle executed for the first time: its accounts into our tables, in the background."""
        if self.tables is None or cycle.key in self.cycles:
            return
        self.cycles[cycle.key] = cycle
        self._tables_due = True
        if self.table_task is None or self.table_task.done():
            self.table_task = asyncio.get_running_loop().create_task(self._keep_tables())

    async def _keep_tables(self) -> None:
        """Rounds of `LookupTables.ensure` for every cycle seen, until one ends with no cycle new since it began
        and nothing left unplaced; the executor builds through the tables each round returns (only their active
        entries)."""
        assert self.tables is not None and self.executor is not None
        while self._tables_due:
            self._tables_due = False
            try:
                report = await self.tables.ensure(route_accounts(self.executor, self.cycles.values()))
            except (TableError, RpcError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("lookup tables: %s: %s", type(exc).__name__, exc)
                return
            self.table_report = report
            self.executor.lookup_tables = [*self.given, *report.tables]
            # More than one new table's worth: the next round creates the next one (at a newer slot).
            self._tables_due = self._tables_due or (report.live and bool(report.plan.unplaced))

    async def _unsimulated(self, opp: SolanaOpportunity) -> Outcome:
        decision = self.gate.check(opp)
        if not decision.allowed:
            return Outcome(opp, Status.REJECTED, reason=decision.reason)
        outcome = Outcome(
            opp, Status.DRY_RUN, opp.profit_usd, reason="dry-run: not simulated (no signing_key_file or block engine)"
        )
        self.gate.record(outcome)
        return outcome

    def _report(self, opp: Opportunity, outcome: Outcome) -> None:
        if outcome.status is Status.REJECTED:
            return
        sized = opp.sized if isinstance(opp, SolanaOpportunity) else None
        assert sized is not None
        kept = sized.gross if outcome.status in (Status.LANDED, Status.DRY_RUN) else 0
        paid, slot = None, None
        if outcome.status is Status.LANDED and self.executor is not None:
            paid = sized.priority_fee + sized.base_fee  # the bus adds the tip (builder_payment)
            slot = self.executor.landed.pop(outcome.tx_hashes[0], None)
        self.reports.append(Report(opp.id, kept, paid, slot))

    async def aclose(self) -> None:
        for task in (self.keeper, self.table_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.session.close()
