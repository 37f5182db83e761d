"""The agent's own address lookup tables (mevagent.solana.tables) on the simulator: the lookup-table program
is LiteSVM's built-in, run for real on every create, extend, deactivate and close; the instructions are
solders'. A 3-hop Whirlpool -> CLMM -> CPMM cycle built with the executor's real swap instructions names more
accounts than a legacy transaction can carry: through the table the agent made, its v0 transaction fits and
resolves to the same keys, each as writable as before; the cycle (settled by transfers) lands through it.
The route keeps such tables for the cycles it executes, live only when the chain is.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from solders.address_lookup_table_account import ID as LOOKUP_TABLE_PROGRAM
from solders.address_lookup_table_account import LOOKUP_TABLE_META_SIZE, AddressLookupTable
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction

from mevagent.config import ChainConfig
from mevagent.core import Status
from mevagent.solana.book import PoolBook
from mevagent.solana.cycles import CycleFinder, CycleSettings, Sized
from mevagent.solana.executor import ExecutorSettings, SolanaExecutor, opportunity_of
from mevagent.solana.layouts import TOKEN_PROGRAM
from mevagent.solana.price import FixedSolPrice
from mevagent.solana.route import ROUTE, SolanaRoute
from mevagent.solana.rpc import BlockEngine, SolanaRpc
from mevagent.solana.tables import (
    PACKET_DATA_SIZE,
    LookupTables,
    Step,
    Table,
    extend_instruction,
    fits,
    plan_tables,
    read_table,
    route_accounts,
)
from mevagent.solana.whirlpool import WHIRLPOOL_PROGRAM
from testbed.solana.standin import RunningStandIn
from testbed.solana.world import SOL, World, build_world, mint_data, put, settle_by_transfers, token_account_data

from .test_agent_run_solana import agent_config
from .test_agent_solana_e2e import gate

TICK_140 = round(math.log(140) / math.log(1.0001))
KINDS = ("raydium_cpmm", "raydium_clmm", "orca_whirlpool")


def _world(standin: RunningStandIn) -> World:
    """A 3-hop cycle: base -> other on a Whirlpool (140 other per base), other -> third on a CLMM pool (about
    1.03 third per other), third -> base on a CPMM pool (130 third per base): a gap of about 11%."""
    world = build_world(standin)
    world.add_whirlpool(TICK_140, liquidity=10**12, inner=10**12)
    third, ours = Keypair().pubkey(), Keypair().pubkey()
    put(standin, third, mint_data(), TOKEN_PROGRAM)
    put(standin, ours, token_account_data(third, world.payer.pubkey(), 0), TOKEN_PROGRAM)
    world.ours[third] = ours
    world.clmms += (replace(world, base=world.other, other=third, clmms=[]).add_clmm(300, liquidity=2 * 10**12),)
    world.pools += (replace(world, base=third, other=world.base, pools=[]).add_pool(13_000 * SOL, 100 * SOL),)
    return world


async def _executor(
    session: aiohttp.ClientSession, standin: RunningStandIn, world: World, tmp: Path, venues=None
) -> tuple[SolanaExecutor, Sized]:
    """The executor (its real swap instructions unless `venues`) and the best cycle of the world as read now."""
    rpc, engine = SolanaRpc(session, standin.http), BlockEngine(session, standin.block_engine, rps=50)
    executor = SolanaExecutor(
        rpc,
        [engine],
        world.payer,
        world.ours,
        gate(tmp),
        ExecutorSettings(live=True, sol_usd=150.0, status_timeout_s=10),
        await engine.tip_accounts(),
        venues=venues,
    )
    book = PoolBook()
    book.add("orca_whirlpool", world.whirlpools[0].address)
    book.add("raydium_clmm", world.clmms[0].address)
    book.add("raydium_cpmm", world.pools[0].address)
    for _ in range(3):  # the pools, then their vaults, configs, mints and tick arrays
        book.apply_many(await rpc.accounts(book.accounts()))
    finder = CycleFinder(CycleSettings(base_mint=str(world.base), max_input=50 * SOL))
    finder.rebuild(book.pools.values())
    best = finder.evaluate(list(book.pools.values()), 0)[0]
    assert [type(leg.pool).__name__ for leg in best.cycle.legs] == ["WhirlpoolPool", "ClmmPool", "CpmmPool"]
    return executor, best


def _writable(keys: list[Pubkey], header, static: int) -> set[Pubkey]:
    """The writable keys of a message's first `static` keys by its header (signed first, then unsigned)."""
    signed, ro_signed, ro_unsigned = (
        header.num_required_signatures,
        header.num_readonly_signed_accounts,
        header.num_readonly_unsigned_accounts,
    )
    return {k for i, k in enumerate(keys[:static]) if i < signed - ro_signed or signed <= i < static - ro_unsigned}


def test_tables_created_extended_in_chunks_and_used(standin: RunningStandIn, tmp_path) -> None:
    world = _world(standin)
    extra = [Pubkey.from_bytes(bytes([7, i]) + bytes(30)) for i in range(60)]  # so the entries need 3+ transactions

    async def go():
        async with aiohttp.ClientSession() as session:
            executor, best = await _executor(session, standin, world, tmp_path)
            rpc = executor.rpc
            wanted = route_accounts(executor, [best.cycle])
            whirlpool = best.cycle.legs[0].pool
            # Not the signer, the programs invoked or the tick arrays (they follow the price); the vaults,
            # our token accounts and the tip accounts, yes.
            assert world.payer.pubkey() not in wanted and WHIRLPOOL_PROGRAM not in wanted
            assert not set(whirlpool.window) & set(wanted)
            for key in (
                world.pools[0].vault_a,
                world.whirlpools[0].vault_b,
                world.clmms[0].vault_a,
                *world.ours.values(),
            ):
                assert key in wanted
            assert set(executor.tip_accounts) <= set(wanted)

            tables = LookupTables(rpc, world.payer, live=True)
            payer_before = await rpc.call("getBalance", str(world.payer.pubkey()))
            report = await tables.ensure([*wanted, *extra])
            steps = report.plan.steps
            assert steps[0].action == "create" and len(steps) >= 3
            assert all(s.action == "extend" for s in steps[1:]) and len(report.signatures) == len(steps)
            # Each transaction carries as many entries as fit: one more would not.
            for step in steps[:-1]:
                assert fits(world.payer.pubkey(), step.instructions)
                more = one_more(world.payer.pubkey(), step)
                assert not fits(world.payer.pubkey(), more)
            table_key = steps[0].table
            info = await rpc.accounts([table_key])
            account = info[0][1]
            assert account is not None and account.owner == LOOKUP_TABLE_PROGRAM
            on_chain = AddressLookupTable.deserialize(account.data)
            assert list(on_chain.addresses) == [*wanted, *extra]
            assert on_chain.meta.authority == world.payer.pubkey()
            rent = await rpc.rent_exempt(LOOKUP_TABLE_META_SIZE + 32 * len(on_chain.addresses))
            assert report.rent_lamports == rent
            fees = 5_000 * len(steps)
            balance = await rpc.call("getBalance", str(world.payer.pubkey()))
            assert balance["value"] == payer_before["value"] - rent - fees

            # Entries resolve only from the slot after they were added: ensure returned past it, so the table
            # comes back whole; read at the extension's own slot, only the earlier entries are active.
            slot = await rpc.slot()
            hashes = await tables.slot_hashes()
            assert slot > on_chain.meta.last_extended_slot
            assert [list(t.addresses) for t in report.tables] == [[*wanted, *extra]]
            then = read_table(table_key, account.data, on_chain.meta.last_extended_slot, hashes)
            assert then.active_len == on_chain.meta.last_extended_slot_start_index < len(on_chain.addresses)

            # The cycle's transaction with the executor's real swap instructions: legacy it is too large, v0
            # through our table it fits, and it resolves to the same keys with the same writability.
            executor.choose = lambda tips: tips[0]  # the same tip account in both builds
            blockhash = await rpc.blockhash()
            instructions, _, _ = executor.instructions(best, 400_000, 1)
            legacy = Message.new_with_blockhash(instructions, world.payer.pubkey(), blockhash)
            legacy_size = len(bytes(Transaction.populate(legacy, [Signature.default()])))
            plain = MessageV0.try_compile(world.payer.pubkey(), instructions, [], blockhash)
            assert legacy_size > PACKET_DATA_SIZE
            assert len(bytes(VersionedTransaction.populate(plain, [Signature.default()]))) > PACKET_DATA_SIZE
            executor.lookup_tables = list(report.tables)
            built = executor.build(best, blockhash, 400_000, 1)
            assert len(bytes(built.tx)) <= PACKET_DATA_SIZE
            message = built.tx.message
            (lookup,) = message.address_table_lookups
            loaded_w = on_chain.lookup(slot, list(lookup.writable_indexes), hashes)
            loaded_r = on_chain.lookup(slot, list(lookup.readonly_indexes), hashes)
            static = list(message.account_keys)
            resolved = [*static, *loaded_w, *loaded_r]
            assert sorted(map(str, resolved)) == sorted(map(str, legacy.account_keys))
            writable = _writable(static, message.header, len(static)) | set(loaded_w)
            legacy_keys = list(legacy.account_keys)
            assert writable == _writable(legacy_keys, legacy.header, len(legacy_keys))

            # The test venue's accounts (it settles by transfers: no DEX program runs here) are all in the table
            # already: nothing is sent; the cycle then lands through it, moving exactly its quote.
            settle, best = await _executor(
                session, standin, world, tmp_path, venues={k: settle_by_transfers(world.authority) for k in KINDS}
            )
            second = await tables.ensure(route_accounts(settle, [best.cycle]))
            assert second.plan.steps == () and second.signatures == ()
            settle.lookup_tables = list(second.tables)
            base_before = world.balance(world.ours[world.base])
            outcome = await settle.execute(best, 400_000, 1)
            assert outcome.status == Status.LANDED, outcome.reason
            assert world.balance(world.ours[world.base]) == base_before - best.amount_in + best.amount_out
            used = settle.build(best, await rpc.blockhash(), 400_000, 1).tx.message.address_table_lookups
            assert [u.account_key for u in used] == [table_key]

    asyncio.run(go())


def one_more(payer: Pubkey, step: Step) -> list[Instruction]:
    """`step`'s instructions with its extend carrying one more (distinct) entry."""
    *prefix, _ = step.instructions
    return [*prefix, extend_instruction(payer, step.table, [*step.addresses, Pubkey.from_bytes(bytes([9]) * 32)])]


def test_dry_run_plans_and_reports_and_sends_nothing(standin: RunningStandIn, tmp_path) -> None:
    world = _world(standin)

    async def go():
        async with aiohttp.ClientSession() as session:
            executor, best = await _executor(session, standin, world, tmp_path)
            rpc = executor.rpc
            wanted = route_accounts(executor, [best.cycle])
            before = await rpc.call("getBalance", str(world.payer.pubkey()))
            report = await LookupTables(rpc, world.payer, live=False).ensure(wanted)
            assert not report.live and report.signatures == () and report.tables == ()
            assert report.plan.steps[0].action == "create"
            assert [a for s in report.plan.steps for a in s.addresses] == wanted
            assert report.rent_lamports == await rpc.rent_exempt(LOOKUP_TABLE_META_SIZE + 32 * len(wanted))
            assert await rpc.call("getBalance", str(world.payer.pubkey())) == before
            tables, _, _ = await LookupTables(rpc, world.payer).read()
            assert tables == []

    asyncio.run(go())


def test_stale_table_deactivated_then_closed(standin: RunningStandIn, tmp_path) -> None:
    """A table none of whose entries a cycle needs is deactivated (and no longer handed out), and closed once
    the program allows it (its deactivation slot gone from SlotHashes), its rent back to us."""
    world = build_world(standin)
    first = [Pubkey.from_bytes(bytes([1, i]) + bytes(30)) for i in range(5)]
    second = [Pubkey.from_bytes(bytes([2, i]) + bytes(30)) for i in range(5)]

    async def go():
        async with aiohttp.ClientSession() as session:
            rpc = SolanaRpc(session, standin.http)
            tables = LookupTables(rpc, world.payer, live=True)
            old = (await tables.ensure(first)).plan.steps[0].table
            standin.call("standin_advanceSlots", 1)  # a new table needs a newer recent slot than the first's
            report = await tables.ensure(second)
            assert (report.plan.steps[0].action, report.plan.steps[0].table) == ("deactivate", old)
            new = report.plan.steps[1].table
            assert report.plan.steps[1].action == "create" and new != old
            assert [t.key for t in report.tables] == [new]
            # Deactivating: not closable yet; nothing to do.
            again = await tables.ensure(second)
            assert again.plan.steps == ()
            (before,) = [t for t in (await tables.read())[0] if t.address == old]
            assert before.status == "deactivating"
            lamports = (await rpc.call("getBalance", str(old)))["value"]
            payer = (await rpc.call("getBalance", str(world.payer.pubkey())))["value"]
            standin.call("standin_warpSlot", await rpc.slot() + 520)
            closed = await tables.ensure(second)
            assert [(s.action, s.table) for s in closed.plan.steps] == [("close", old)]
            assert (await rpc.accounts([old]))[0][1] is None
            assert (await rpc.call("getBalance", str(world.payer.pubkey())))["value"] == payer + lamports - 5_000
            assert [t.key for t in closed.tables] == [new]

    asyncio.run(go())


def with_solana(chain: ChainConfig, **update: object) -> ChainConfig:
    assert chain.solana is not None
    return chain.model_copy(update={"solana": chain.solana.model_copy(update=update)})


@pytest.mark.parametrize("live", [True, False], ids=["live", "dry-run"])
def test_the_route_keeps_its_own_tables(standin: RunningStandIn, tmp_path, live: bool) -> None:
    """`own_lookup_tables`: the route puts a cycle it executes in our tables in the background (live) or only
    plans it (dry-run), and builds through them; the config's `lookup_tables` are read at start, a key that is
    no table refuses the start naming it."""
    world = _world(standin)
    config = agent_config(standin, world, tmp_path, live=live, signer=True).chains[0]
    assert config.solana is not None
    chain = with_solana(config, own_lookup_tables=True)

    async def go():
        async with aiohttp.ClientSession() as session:
            reader, best = await _executor(session, standin, world, tmp_path)
            route = await SolanaRoute.open(chain, gate(tmp_path), FixedSolPrice(150.0))
            try:
                assert route.executor is not None and route.executor.lookup_tables == []
                route.executor.venues = {k: settle_by_transfers(world.authority) for k in KINDS}
                outcome = await route.execute(opportunity_of(best, 150.0, route=ROUTE))
                assert outcome.status == (Status.LANDED if live else Status.DRY_RUN), outcome.reason
                assert route.table_task is not None
                await asyncio.wait_for(route.table_task, 10)
                report = route.table_report
                assert report is not None and report.plan.steps[0].action == "create"
                ours, _, _ = await LookupTables(reader.rpc, world.payer).read()
                if not live:
                    assert report.signatures == () and ours == [] and route.executor.lookup_tables == []
                    return
                (table,) = ours
                assert route.executor.lookup_tables == list(report.tables) == [table.usable()]
                assert set(route_accounts(route.executor, [best.cycle])) <= set(table.addresses)
                built = route.executor.build(best, await reader.rpc.blockhash(), 400_000, 1)
                assert [u.account_key for u in built.tx.message.address_table_lookups] == [table.address]
                # The same cycle again starts no new round.
                await route.execute(opportunity_of(best, 150.0, route=ROUTE))
                assert route.table_task.done() and route.table_report is report
            finally:
                await route.aclose()
            # The table named in the config: read at start and built through; a key that is no table refuses.
            named = chain.model_copy(
                update={"solana": chain.solana.model_copy(update={"lookup_tables": (str(table.address),)})}
            )
            route = await SolanaRoute.open(named, gate(tmp_path), FixedSolPrice(150.0))
            try:
                assert route.given == [table.usable()]
            finally:
                await route.aclose()
            bogus = named.model_copy(
                update={"solana": named.solana.model_copy(update={"lookup_tables": (str(world.base),)})}
            )
            with pytest.raises(ValueError, match=f"lookup_tables: .*{world.base} is not a lookup table account"):
                await SolanaRoute.open(bogus, gate(tmp_path), FixedSolPrice(150.0))

    asyncio.run(go())


def test_one_new_table_a_round_of_at_most_256_entries() -> None:
    """In process: 300 wanted entries and no table give one new table of 256 (every extend as full as fits)
    and 44 left for the next round; a table of another authority is neither used nor touched."""
    payer, other = Keypair().pubkey(), Keypair().pubkey()
    wanted = [Pubkey.from_bytes(bytes([3, i // 256, i % 256]) + bytes(29)) for i in range(300)]
    foreign = Table(Keypair().pubkey(), other, tuple(wanted[:10]), "active", 0, 10)
    plan = plan_tables(payer, wanted, [foreign], recent_slot=42)
    assert plan.unplaced == tuple(wanted[256:])
    tables = {s.table for s in plan.steps}
    assert len(tables) == 1 and foreign.address not in tables
    assert [a for s in plan.steps for a in s.addresses] == wanted[:256]
    assert plan.steps[0].action == "create" and all(s.action == "extend" for s in plan.steps[1:])
    for step in plan.steps[:-1]:
        assert fits(payer, step.instructions) and not fits(payer, one_more(payer, step))
