"""The agent's Solana path, unmodified, against the simulator over loopback: WebSocket account updates ->
exact pool state -> a 2-hop cycle -> a bundle through the risk gate -> landed atomically in LiteSVM.

Pools are Raydium CPMM accounts in the published layout; the swap itself settles as SPL transfers of the
exact quoted amounts (world.settle_by_transfers: no DEX program can run here). Everything else is real.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import pytest
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from mevagent.config import RiskLimits
from mevagent.core import Status
from mevagent.risk.gate import ChainLimits, RiskGate
from mevagent.solana.book import PoolBook
from mevagent.solana.collector import AccountCollector
from mevagent.solana.cycles import CycleFinder, CycleSettings
from mevagent.solana.executor import DONT_FRONT, ExecutorSettings, SolanaExecutor
from mevagent.solana.layouts import TOKEN_PROGRAM
from mevagent.solana.rpc import BlockEngine, RateLimited, RpcError, SolanaRpc
from mevagent.solana.searcher import SolanaSearcher
from testbed.solana.standin import RunningStandIn, start_standin
from testbed.solana.world import ALT_PROGRAM, SOL, World, build_world, lookup_table_data, put, settle_by_transfers

VENUE_KINDS = ("raydium_cpmm", "raydium_clmm", "orca_whirlpool", "meteora_dlmm")  # settled by transfers in these tests
GATE_LIMITS = RiskLimits(max_slippage_bps=0)  # the last leg's on-chain minimum already rules out a loss


def gate(tmp: Path, **limits: float) -> RiskGate:
    return RiskGate(GATE_LIMITS.model_copy(update=limits), {"solana": ChainLimits(max_gas_price_wei=10**9)}, tmp)


class Agent:
    """The agent's Solana pieces wired as the searcher wires them, on one simulator."""

    def __init__(
        self, standin: RunningStandIn, world: World, tmp: Path, live: bool = True, tables=(), **limits: float
    ) -> None:
        self.standin, self.world, self.tmp, self.live, self.limits = standin, world, tmp, live, limits
        self.tables = tables

    async def __aenter__(self) -> Agent:
        self.session = aiohttp.ClientSession()
        self.rpc = SolanaRpc(self.session, self.standin.http)
        self.engine = BlockEngine(self.session, self.standin.block_engine, rps=50)
        self.book = PoolBook()
        for pool in self.world.pools:
            self.book.add("raydium_cpmm", pool.address)
        for pool in self.world.whirlpools:
            self.book.add("orca_whirlpool", pool.address)
        for pool in self.world.clmms:
            self.book.add("raydium_clmm", pool.address)
        for pool in self.world.dlmms:
            self.book.add("meteora_dlmm", pool.address)
        settings = CycleSettings(
            base_mint=str(self.world.base), max_input=50 * SOL, compute_unit_price_micro_lamports=1
        )
        self.executor = SolanaExecutor(
            self.rpc,
            [self.engine],
            self.world.payer,
            self.world.ours,
            gate(self.tmp, **self.limits),
            ExecutorSettings(live=self.live, sol_usd=150.0, status_timeout_s=10),
            await self.engine.tip_accounts(),
            venues={kind: settle_by_transfers(self.world.authority) for kind in VENUE_KINDS},
            lookup_tables=self.tables,
        )
        self.searcher = SolanaSearcher(self.book, CycleFinder(settings), self.executor, self.rpc)
        self.collector = AccountCollector(
            self.session,
            self.rpc,
            self.standin.ws,
            self.book.accounts(),
            self.searcher.on_accounts,
            self.searcher.on_slot,
        )
        self.task = asyncio.create_task(self.collector.run())
        await asyncio.wait_for(self.collector.ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        if self.searcher.in_flight is not None:
            with contextlib.suppress(Exception):
                await self.searcher.in_flight
        await self.session.close()

    async def outcome(self, timeout: float = 15.0):
        async def wait():
            while not self.searcher.stats.outcomes:
                await asyncio.sleep(0.02)
            return self.searcher.stats.outcomes[0]

        return await asyncio.wait_for(wait(), timeout)


@pytest.fixture
def world(standin: RunningStandIn) -> World:
    w = build_world(standin)
    w.add_pool(100 * SOL, 15_000 * SOL)  # 150 other per base
    w.add_pool(100 * SOL, 14_000 * SOL)  # 140 other per base: a gap
    return w


def test_price_gap_found_and_bundle_lands_atomically(standin: RunningStandIn, world: World, tmp_path) -> None:
    async def go():
        base_before = world.balance(world.ours[world.base])
        async with Agent(standin, world, tmp_path) as agent:
            outcome = await agent.outcome()
            best = agent.searcher.stats.found[0]
        assert outcome.status == Status.LANDED, outcome.reason
        assert len(best.cycle.legs) == 2 and best.net > 0
        # Exactly the quoted amounts moved, in one transaction of one bundle.
        assert world.balance(world.ours[world.base]) == base_before - best.amount_in + best.amount_out
        assert world.balance(world.ours[world.other]) == 0
        first = best.cycle.legs[0]
        assert first.pool.address == world.pools[0].address  # buy where the other token is cheap in base
        status = standin.call("getSignatureStatuses", [outcome.tx_hashes[0]])["value"][0]
        assert status is not None and status["err"] is None
        return best

    asyncio.run(go())


def test_dry_run_is_the_default_and_sends_nothing(standin: RunningStandIn, world: World, tmp_path) -> None:
    async def go():
        before = world.balance(world.ours[world.base])
        async with Agent(standin, world, tmp_path, live=False) as agent:
            outcome = await agent.outcome()
            assert agent.executor.sent == []
        assert outcome.status == Status.DRY_RUN
        assert world.balance(world.ours[world.base]) == before

    assert ExecutorSettings(sol_usd=1.0).live is False
    asyncio.run(go())


def test_risk_gate_refuses_before_anything_is_signed(standin: RunningStandIn, world: World, tmp_path) -> None:
    async def go():
        async with Agent(standin, world, tmp_path, max_position_size_usd=1.0) as agent:
            outcome = await agent.outcome()
            assert agent.executor.sent == []
        assert outcome.status == Status.REJECTED and "max_position_size" in outcome.reason

    asyncio.run(go())


def test_expired_blockhash_is_refreshed_and_the_bundle_lands(standin: RunningStandIn, world: World, tmp_path) -> None:
    async def go():
        session = aiohttp.ClientSession()
        try:
            rpc = SolanaRpc(session, standin.http)
            stale = await rpc.blockhash()
            standin.call("standin_expireBlockhash")
            async with Agent(standin, world, tmp_path) as agent:
                agent.executor.blockhash = stale  # what it cached before the hash expired
                outcome = await agent.outcome()
                assert agent.executor.blockhash != stale
            assert outcome.status == Status.LANDED, outcome.reason
        finally:
            await session.close()

    asyncio.run(go())


def test_websocket_drop_recovered_with_no_missed_update(standin: RunningStandIn, tmp_path) -> None:
    world = build_world(standin)
    pool = world.add_pool(1_000 * SOL, 150_000 * SOL)  # one pool: no cycle, nothing executes

    async def go():
        async with Agent(standin, world, tmp_path) as agent:
            assert agent.collector.connects == 1
            dropped = standin.call("standin_dropSubscribers")
            assert dropped >= 1
            # While the agent is disconnected, the pool's vault changes: no notification can reach it.
            world.set_vault(pool.vault_b, world.other, 123_456_789)
            await asyncio.wait_for(_until(lambda: agent.collector.connects >= 2 and agent.collector.ready.is_set()), 10)
            assert agent.book.pools[pool.address].vaults[pool.vault_b] == 123_456_789
            # And live updates flow again on the new connection.
            world.set_vault(pool.vault_b, world.other, 987_654_321)
            await asyncio.wait_for(
                _until(lambda: agent.book.pools[pool.address].vaults[pool.vault_b] == 987_654_321), 10
            )

    asyncio.run(go())


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.02)


def _tx(payer: Keypair, ixs, blockhash: Hash) -> VersionedTransaction:
    return VersionedTransaction(MessageV0.try_compile(payer.pubkey(), ixs, [], blockhash), [payer])


def test_failing_transaction_rolls_the_agents_bundle_back(standin: RunningStandIn, world: World) -> None:
    async def go():
        async with aiohttp.ClientSession() as session:
            rpc, engine = SolanaRpc(session, standin.http), BlockEngine(session, standin.block_engine, rps=50)
            tips = await engine.tip_accounts()
            payer, sink = world.payer, Keypair().pubkey()
            before = standin.call("getBalance", str(payer.pubkey()))["value"]
            blockhash = await rpc.blockhash()
            pay = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=sink, lamports=SOL))
            tip = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=tips[0], lamports=10_000))
            overdraft = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=sink, lamports=10_000 * SOL))
            bundle_id = await engine.send_bundle(
                [_tx(payer, [pay], blockhash), _tx(payer, [overdraft, tip], blockhash)]
            )
            while (status := (await engine.inflight([bundle_id]))[0]["status"]) == "Pending":
                await asyncio.sleep(0.05)
            assert status == "Failed"
            assert standin.call("getBalance", str(payer.pubkey()))["value"] == before
            assert standin.call("getBalance", str(sink))["value"] == 0
            with pytest.raises(RpcError, match="at most 5"):
                await engine.send_bundle([_tx(payer, [pay], blockhash) for _ in range(1)] * 6)

    asyncio.run(go())


def test_our_swaps_carry_the_dont_front_account_first(standin: RunningStandIn, world: World, tmp_path) -> None:
    async def go():
        async with Agent(standin, world, tmp_path, live=False) as agent:
            outcome = await agent.outcome()
            best = agent.searcher.stats.found[0]
            built = agent.executor.build(best, await agent.rpc.blockhash(), 400_000, 1)
        assert outcome.status == Status.DRY_RUN
        message = built.tx.message
        keys = list(message.account_keys)
        assert DONT_FRONT in keys and not message.is_maybe_writable(keys.index(DONT_FRONT))
        # The tip is the last instruction, to one of the 8 tip accounts.
        last = message.instructions[-1]
        assert keys[last.program_id_index] == SYSTEM_PROGRAM and keys[last.accounts[1]] == built.tip_account

    asyncio.run(go())


def Pubkey_system():
    from solders.system_program import ID

    return ID


def test_block_engine_rate_limit_is_honoured(tmp_path) -> None:
    limited = start_standin(jito_rps=2.0)

    async def go():
        async with aiohttp.ClientSession() as session:
            polite = BlockEngine(session, limited.block_engine, rps=2.0)
            for _ in range(5):
                await polite.tip_accounts()
            assert polite.refused == 0
            rude = BlockEngine(session, limited.block_engine, rps=1_000.0)
            with pytest.raises(RateLimited):
                for _ in range(5):
                    await rude.tip_accounts()
            assert rude.refused == 1

    try:
        asyncio.run(go())
    finally:
        limited.stop()


def test_cycle_through_an_address_lookup_table_lands(standin: RunningStandIn, world: World, tmp_path) -> None:
    """Our v0 transaction references the pools' vaults and the token program through an on-chain lookup
    table (the ALT program's account layout, resolved by LiteSVM and by the simulator's notifications)."""
    table_key = Keypair().pubkey()
    addresses = [TOKEN_PROGRAM, *(k for p in world.pools for k in (p.vault_a, p.vault_b))]
    put(standin, table_key, lookup_table_data(world.payer.pubkey(), addresses), ALT_PROGRAM)
    standin.call("standin_advanceSlots", 2)  # entries are usable from the slot after they were added
    table = AddressLookupTableAccount(table_key, addresses)

    async def go():
        base_before = world.balance(world.ours[world.base])
        async with Agent(standin, world, tmp_path, tables=[table]) as agent:
            outcome = await agent.outcome()
            best = agent.searcher.stats.found[0]
            built = agent.executor.build(best, await agent.rpc.blockhash(), 400_000, 1)
        assert outcome.status == Status.LANDED, outcome.reason
        assert world.balance(world.ours[world.base]) == base_before - best.amount_in + best.amount_out
        lookups = built.tx.message.address_table_lookups
        assert len(lookups) == 1 and lookups[0].account_key == table_key and lookups[0].writable_indexes

    asyncio.run(go())


async def _executor_on(session: aiohttp.ClientSession, standin: RunningStandIn, world: World, tmp: Path, **settings):
    """The executor and the best cycle of the world's pools as read now (no subscription: the book stays)."""
    rpc, engine = SolanaRpc(session, standin.http), BlockEngine(session, standin.block_engine, rps=50)
    executor = SolanaExecutor(
        rpc,
        [engine],
        world.payer,
        world.ours,
        gate(tmp),
        ExecutorSettings(live=True, sol_usd=150.0, status_timeout_s=10, **settings),
        await engine.tip_accounts(),
        venues={"raydium_cpmm": settle_by_transfers(world.authority)},
    )
    book = PoolBook()
    for pool in world.pools:
        book.add("raydium_cpmm", pool.address)
    for _ in range(3):  # the pools, then their vaults and config
        book.apply_many(await rpc.accounts(book.accounts()))
    finder = CycleFinder(CycleSettings(base_mint=str(world.base), max_input=50 * SOL))
    finder.rebuild(book.pools.values())
    return executor, finder.evaluate(list(book.pools.values()), 0)[0]


@pytest.mark.parametrize("simulate_first", [False, True])
def test_a_bundle_its_simulation_fails_is_sent_first_and_fails_at_the_engine(
    standin: RunningStandIn, world: World, tmp_path, simulate_first: bool
) -> None:
    """Live, the bundle goes to the block engine before its simulation answers; when the simulation fails
    (here: a vault emptied after the book read it) the engine's verdict is waited for and the simulation's
    reason reported; nothing moves. With simulate_first, such a bundle is never sent."""

    async def go():
        async with aiohttp.ClientSession() as session:
            executor, best = await _executor_on(session, standin, world, tmp_path, simulate_first=simulate_first)
            last = best.cycle.legs[-1]
            pool = next(p for p in world.pools if p.address == last.pool.address)
            vault_out = pool.vault_a if last.mint_out == world.base else pool.vault_b  # vault_a holds the base mint
            world.set_vault(vault_out, last.mint_out, 0)
            base_before = world.balance(world.ours[world.base])
            outcome = await executor.execute(best, 400_000, 1)
            assert outcome.status == Status.FAILED
            assert world.balance(world.ours[world.base]) == base_before
            if simulate_first:
                assert executor.sent == [] and outcome.reason.startswith("simulation failed")
            else:
                assert len(executor.sent) == 1
                assert f"bundle {executor.sent[0]}: Failed (simulation failed" in outcome.reason

    asyncio.run(go())


def test_blockhash_is_kept_fresh_in_the_background(standin: RunningStandIn, world: World, tmp_path) -> None:
    async def go():
        async with aiohttp.ClientSession() as session:
            executor, _ = await _executor_on(session, standin, world, tmp_path, blockhash_refresh_s=0.05)
            keeper = asyncio.create_task(executor.keep_blockhash())
            try:
                await asyncio.wait_for(_until(lambda: executor.blockhash is not None), 5)
                fresh = Hash.from_string(standin.call("standin_expireBlockhash"))
                assert executor.blockhash != fresh
                await asyncio.wait_for(_until(lambda: executor.blockhash == fresh), 5)
            finally:
                keeper.cancel()

    asyncio.run(go())
