"""The agent's own address lookup tables: created, extended with the accounts its cycles name, handed to the
executor once active, deactivated when no cycle needs them any more and closed (their rent back) once the
program allows it.

Every instruction is solders' (`system_program.create_lookup_table`, `extend_lookup_table`,
`deactivate_lookup_table`, `close_lookup_table`) and every table is read with `AddressLookupTable`; the
lookup-table program itself runs on the node (a built-in of LiteSVM on the simulator). Its rules set the
order here:

- a new table's address derives from (authority, recent slot), and the slot must be in the SlotHashes
  sysvar: the sysvar's newest entry is used, so one new table per round (`plan_tables`);
- addresses added in slot S resolve from slot S+1 on (the table's `last_extended_slot`): a table is handed
  over with only the entries active at the node's slot, and `ensure` waits for the slot after its own
  extensions, or every transaction naming a new entry would fail;
- a deactivated table can be closed only once its deactivation slot has left SlotHashes (513 slots on).

Creating or extending a table locks rent and pays fees: a live action, taken only when the chain is live.
In dry-run the same plan is computed and reported (its transactions, the rent they would lock) and nothing
is sent; tables already on chain are still used (reading costs nothing).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from solders.address_lookup_table_account import ID as LOOKUP_TABLE_PROGRAM
from solders.address_lookup_table_account import (
    LOOKUP_TABLE_MAX_ADDRESSES,
    LOOKUP_TABLE_META_SIZE,
    AddressLookupTable,
    AddressLookupTableAccount,
    LookupTableStatusDeactivating,
    LookupTableStatusFieldless,
    SlotHashes,
)
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import (
    close_lookup_table,
    create_lookup_table,
    deactivate_lookup_table,
    extend_lookup_table,
)
from solders.sysvar import SLOT_HASHES
from solders.transaction import VersionedTransaction

from .book import kind_of
from .clmm import ClmmPool
from .cycles import Cycle
from .dlmm import DlmmPool
from .executor import SolanaExecutor, public_key
from .raydium import Pool
from .rpc import RpcError, SolanaRpc
from .whirlpool import WhirlpoolPool

log = logging.getLogger(__name__)

PACKET_DATA_SIZE = 1_232  # the most bytes a transaction may have (an IPv6 packet's payload less headers)
# A table account: u32 state tag, u64 deactivation slot, u64 last extended slot, u8 its start index, then the
# authority as an Option (u8 tag, 32 bytes): the authority's key starts here (getProgramAccounts' memcmp).
AUTHORITY_OFFSET = 22

Status = Literal["active", "deactivating", "deactivated"]
Action = Literal["create", "extend", "deactivate", "close"]


class TableError(RuntimeError):
    """A table transaction the node refused or did not confirm."""


@dataclass(frozen=True, slots=True)
class Table:
    """One lookup table as the node holds it at `slot`."""

    address: Pubkey
    authority: Pubkey | None  # None: frozen
    addresses: tuple[Pubkey, ...]
    status: Status
    last_extended_slot: int
    active_len: int  # entries that resolve at `slot` (those added at `last_extended_slot` do not yet)

    def usable(self) -> AddressLookupTableAccount:
        """The table as a transaction may use it now: only its active entries."""
        return AddressLookupTableAccount(self.address, list(self.addresses[: self.active_len]))


def read_table(address: Pubkey, data: bytes, slot: int, slot_hashes: SlotHashes) -> Table:
    table = AddressLookupTable.deserialize(data)
    meta = table.meta
    status = meta.status(slot, slot_hashes)
    if isinstance(status, LookupTableStatusDeactivating):
        state: Status = "deactivating"
    else:
        state = "active" if status == LookupTableStatusFieldless.Activated else "deactivated"
    active = table.get_active_addresses_len(slot, slot_hashes) if state == "active" else 0
    addresses = tuple(table.addresses)
    return Table(address, meta.authority, addresses, state, meta.last_extended_slot, active)


@dataclass(frozen=True, slots=True)
class Step:
    """One transaction of a plan."""

    action: Action
    table: Pubkey
    instructions: tuple[Instruction, ...]
    addresses: tuple[Pubkey, ...] = ()  # the entries it adds


@dataclass(frozen=True, slots=True)
class TablePlan:
    steps: tuple[Step, ...]
    unplaced: tuple[Pubkey, ...]  # wanted but left for a later round (one new table per round)

    def summary(self) -> str:
        if not self.steps:
            return "nothing to do"
        parts = [f"{s.action} {s.table}" + (f" +{len(s.addresses)}" if s.addresses else "") for s in self.steps]
        return "; ".join(parts) + (f"; {len(self.unplaced)} left for the next round" if self.unplaced else "")


def fits(payer: Pubkey, instructions: Sequence[Instruction]) -> bool:
    """Whether a v0 transaction of `instructions`, signed by `payer` alone, is at most PACKET_DATA_SIZE bytes."""
    message = MessageV0.try_compile(payer, list(instructions), [], Hash.default())
    signatures = [Signature.default()] * message.header.num_required_signatures
    return len(bytes(VersionedTransaction.populate(message, signatures))) <= PACKET_DATA_SIZE


def extend_instruction(payer: Pubkey, table: Pubkey, addresses: Sequence[Pubkey]) -> Instruction:
    params = {
        "payer_address": payer,
        "lookup_table_address": table,
        "authority_address": payer,
        "new_addresses": list(addresses),
    }
    return extend_lookup_table(params)  # type: ignore[arg-type]


def extend_steps(
    payer: Pubkey, table: Pubkey, addresses: Sequence[Pubkey], create: Instruction | None = None
) -> list[Step]:
    """`addresses` into `table` in as few transactions as fit, each carrying as many as it can (the first
    also creating the table when `create` is given)."""
    steps: list[Step] = []
    rest = list(addresses)
    prefix = [create] if create is not None else []
    while rest:
        lo, hi = 0, len(rest)  # the most entries that fit: lo fits (0 by convention), hi is the ceiling
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(payer, [*prefix, extend_instruction(payer, table, rest[:mid])]):
                lo = mid
            else:
                hi = mid - 1
        if lo == 0:
            raise ValueError(f"not one address fits an extend of {table}")
        chunk, rest = rest[:lo], rest[lo:]
        ixs = (*prefix, extend_instruction(payer, table, chunk))
        steps.append(Step("create" if prefix else "extend", table, ixs, tuple(chunk)))
        prefix = []
    return steps


def plan_tables(payer: Pubkey, wanted: Iterable[Pubkey], tables: Sequence[Table], recent_slot: int) -> TablePlan:
    """What to send so that `wanted` is in `payer`'s active tables: close the deactivated ones, deactivate the
    ones no wanted address is in, fill the others' room, then create one table (at `recent_slot`) for the
    rest. Other authorities' and frozen tables are never touched."""
    want = dict.fromkeys(wanted)
    ours = [t for t in tables if t.authority == payer]
    steps = [
        Step("close", t.address, (close_lookup_table(_close(payer, t.address)),))
        for t in ours
        if t.status == "deactivated"
    ]
    active = [t for t in ours if t.status == "active"]
    stale = [t for t in active if t.addresses and not any(a in want for a in t.addresses)]
    for t in stale:
        params = {"lookup_table_address": t.address, "authority_address": payer}
        steps.append(Step("deactivate", t.address, (deactivate_lookup_table(params),)))  # type: ignore[arg-type]
    kept = [t for t in active if t not in stale]
    covered = {a for t in kept for a in t.addresses}
    missing = [a for a in want if a not in covered]
    for t in kept:
        room = LOOKUP_TABLE_MAX_ADDRESSES - len(t.addresses)
        if room > 0 and missing:
            steps += extend_steps(payer, t.address, missing[:room])
            missing = missing[room:]
    if missing:
        params = {"authority_address": payer, "payer_address": payer, "recent_slot": recent_slot}
        create, address = create_lookup_table(params)  # type: ignore[arg-type]
        steps += extend_steps(payer, address, missing[:LOOKUP_TABLE_MAX_ADDRESSES], create)
        missing = missing[LOOKUP_TABLE_MAX_ADDRESSES:]
    return TablePlan(tuple(steps), tuple(missing))


def _close(payer: Pubkey, table: Pubkey) -> dict[str, Pubkey]:
    return {"lookup_table_address": table, "authority_address": payer, "recipient_address": payer}


def price_arrays(pool: Pool) -> set[Pubkey]:
    """The tick or bin arrays a swap through `pool` names: they follow the price, so a table slot spent on
    one is soon wasted; they stay in each transaction's own keys."""
    if isinstance(pool, WhirlpoolPool | ClmmPool | DlmmPool):
        return set(pool.window)
    return set()


def route_accounts(executor: SolanaExecutor, cycles: Iterable[Cycle]) -> list[Pubkey]:
    """The accounts the executor's transactions for `cycles` name that do not move with the price: each leg's
    swap accounts (pools, configs, vaults, mints, token programs, our token accounts) but the price arrays,
    and the tip accounts. Not the signers (a signature needs its key in the message) nor the programs invoked
    (a v0 message must carry those itself). A cycle the executor cannot build (no venue, no token account
    for a mint, a pool not read) is left out."""
    out: dict[Pubkey, None] = {}
    for cycle in cycles:
        found: dict[Pubkey, None] = {}
        try:
            for leg in cycle.legs:
                venue = executor.venues[kind_of(leg.pool)]
                ixs, extra = venue(leg, 1, 0, executor.owner, executor.token_accounts)
                moving = price_arrays(leg.pool) | {executor.owner, *(public_key(k) for k in extra)}
                invoked = {ix.program_id for ix in ixs}
                for ix in ixs:
                    found.update((m.pubkey, None) for m in ix.accounts if m.pubkey not in moving | invoked)
        except (KeyError, ValueError) as exc:
            log.debug("cycle %s left out of the lookup tables: %s", cycle.key, exc)
            continue
        out.update(found)
    out.update((k, None) for k in executor.tip_accounts)
    return list(out)


@dataclass(frozen=True, slots=True)
class TableReport:
    plan: TablePlan
    live: bool
    signatures: tuple[str, ...]  # the plan's transactions as sent (none in dry-run)
    rent_lamports: int  # what the plan's new entries lock in rent (created and extended tables)
    tables: tuple[AddressLookupTableAccount, ...]  # ours, as usable now, holding a wanted address


async def given_tables(rpc: SolanaRpc, keys: Sequence[Pubkey]) -> list[AddressLookupTableAccount]:
    """Tables named in the config (anyone's): their entries as they resolve now. ValueError naming the first
    that is not an active lookup table."""
    if not keys:
        return []
    hashes, slot = await LookupTables.slot_hashes_of(rpc), await rpc.slot()
    out = []
    for key, account in await rpc.accounts(keys):
        if account is None or account.owner != LOOKUP_TABLE_PROGRAM:
            raise ValueError(f"lookup_tables: {key} is not a lookup table account")
        table = read_table(key, account.data, slot, hashes)
        if table.status != "active":
            raise ValueError(f"lookup_tables: {key} is {table.status}")
        out.append(table.usable())
    return out


class LookupTables:
    """`payer`'s lookup tables on the node behind `rpc` (it is their authority and pays their rent)."""

    def __init__(
        self, rpc: SolanaRpc, payer: Keypair, live: bool = False, confirm_timeout_s: float = 30.0, poll_s: float = 0.1
    ) -> None:
        self.rpc, self.payer, self.live = rpc, payer, live
        self.owner = public_key(payer)
        self.confirm_timeout_s, self.poll_s = confirm_timeout_s, poll_s

    @staticmethod
    async def slot_hashes_of(rpc: SolanaRpc) -> SlotHashes:
        (_, account), *_ = await rpc.accounts([SLOT_HASHES])
        if account is None:
            raise TableError("the node has no SlotHashes sysvar")
        return SlotHashes.from_bytes(account.data)

    async def slot_hashes(self) -> SlotHashes:
        return await self.slot_hashes_of(self.rpc)

    async def read(self) -> tuple[list[Table], int, SlotHashes]:
        """Our tables as the node holds them, its slot and its SlotHashes."""
        hashes = await self.slot_hashes()
        slot = await self.rpc.slot()
        authority = base64.b64encode(bytes(self.owner)).decode()
        memcmp = {"memcmp": {"offset": AUTHORITY_OFFSET, "bytes": authority, "encoding": "base64"}}
        found = await self.rpc.program_accounts(LOOKUP_TABLE_PROGRAM, [memcmp])
        return [read_table(key, acc.data, slot, hashes) for key, acc in found], slot, hashes

    async def plan(self, wanted: Iterable[Pubkey]) -> tuple[TablePlan, list[Table]]:
        tables, _, hashes = await self.read()
        if not hashes.slot_hashes:
            raise TableError("SlotHashes is empty: no recent slot to create a table at")
        return plan_tables(self.owner, wanted, tables, hashes.slot_hashes[0][0]), tables

    async def usable(self, wanted: Iterable[Pubkey] | None = None) -> tuple[AddressLookupTableAccount, ...]:
        """Our active tables (those holding a wanted address, when given), each with only the entries that
        resolve now."""
        want = None if wanted is None else set(wanted)
        tables, _, _ = await self.read()
        active = [t for t in tables if t.status == "active"]
        return tuple(t.usable() for t in active if want is None or want.intersection(t.addresses))

    async def rent(self, plan: TablePlan, tables: Sequence[Table]) -> int:
        """The rent the plan's new entries lock: each touched table's rent at its new size less at its old."""
        sizes = {t.address: len(t.addresses) for t in tables}
        added: dict[Pubkey, int] = {}
        for step in plan.steps:
            if step.action in ("create", "extend"):
                added[step.table] = added.get(step.table, 0) + len(step.addresses)
        total = 0
        for table, count in added.items():
            before = sizes.get(table)
            after = LOOKUP_TABLE_META_SIZE + 32 * ((before or 0) + count)
            old = 0 if before is None else await self.rpc.rent_exempt(LOOKUP_TABLE_META_SIZE + 32 * before)
            total += await self.rpc.rent_exempt(after) - old
        return total

    async def ensure(self, wanted: Sequence[Pubkey]) -> TableReport:
        """Plan, and when live send, what puts `wanted` in our active tables; then the tables to build with.
        Live, it returns once the node is past the slot of its own last extension, so every entry resolves."""
        plan, tables = await self.plan(wanted)
        rent = await self.rent(plan, tables)
        if not self.live:
            if plan.steps:
                log.info("lookup tables (dry-run, not sent): %s; rent %d lamports", plan.summary(), rent)
            return TableReport(plan, False, (), rent, await self.usable(wanted))
        signatures: list[str] = []
        last = 0
        for step in plan.steps:
            signature, slot = await self._send(step)
            signatures.append(signature)
            if step.addresses:
                last = max(last, slot)
        if plan.steps:
            log.info("lookup tables: %s; rent %d lamports", plan.summary(), rent)
        await self._past(last)
        return TableReport(plan, True, tuple(signatures), rent, await self.usable(wanted))

    async def _send(self, step: Step) -> tuple[str, int]:
        """One step as a transaction of ours, confirmed: its signature and the slot it landed in."""
        blockhash = await self.rpc.blockhash()
        message = MessageV0.try_compile(self.owner, list(step.instructions), [], blockhash)
        tx = VersionedTransaction(message, [self.payer])
        try:
            signature = await self.rpc.send_transaction(tx)
        except RpcError as exc:
            raise TableError(f"{step.action} {step.table}: {exc}") from None
        deadline = time.monotonic() + self.confirm_timeout_s
        while time.monotonic() < deadline:
            status = await self.rpc.signature_status(signature)
            if status is not None and status.get("confirmationStatus") in ("confirmed", "finalized"):
                if status.get("err") is not None:
                    raise TableError(f"{step.action} {step.table}: {status['err']}")
                return signature, int(status["slot"])
            await asyncio.sleep(self.poll_s)
        raise TableError(f"{step.action} {step.table}: not confirmed within {self.confirm_timeout_s} s")

    async def _past(self, slot: int) -> None:
        """Wait until the node's slot is past `slot` (entries added there resolve from the next one)."""
        deadline = time.monotonic() + self.confirm_timeout_s
        while await self.rpc.slot() <= slot:
            if time.monotonic() > deadline:
                raise TableError(f"the node's slot did not pass {slot} within {self.confirm_timeout_s} s")
            await asyncio.sleep(self.poll_s)
