"""The simulated chain: LiteSVM plus what a node keeps beside its bank (slot, signature statuses, bundles).

Transactions run one at a time on the event loop thread; every mutation goes through `commit`, which
diffs the accounts a transaction touched so that subscribers hear about every change exactly once.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from solders.account import Account
from solders.address_lookup_table_account import AddressLookupTable
from solders.clock import Clock
from solders.hash import Hash
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.sysvar import SLOT_HASHES
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from solders.transaction_status import TransactionErrorFieldless

AnyTx = Transaction | VersionedTransaction
# What the blockhash window is on mainnet: a hash is usable for 150 slots.
BLOCKHASH_SLOTS = 150
FINALIZED_DEPTH = 32
BLOCKS_KEPT = 1_024  # slots getBlock still answers for (older: "missing in long-term storage")
SLOT_HASHES_KEPT = 512  # the SlotHashes sysvar's entries (a validator's MAX_ENTRIES)
TOKEN_PROGRAMS = (
    Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"),
    Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"),
)


@dataclass(frozen=True)
class TokenBalance:
    """One token account of a transaction, as getBlock's pre/postTokenBalances list it."""

    index: int  # into the transaction's keys: static, then loaded writable, then loaded readonly
    mint: Pubkey
    owner: Pubkey
    program: Pubkey
    amount: int
    decimals: int


@dataclass(frozen=True)
class BlockEntry:
    """What getBlock reports of one landed transaction, captured around its execution."""

    tx: AnyTx
    loaded: tuple[tuple[Pubkey, ...], tuple[Pubkey, ...]]  # lookup-table addresses: writable, readonly
    pre_lamports: tuple[int, ...]
    post_lamports: tuple[int, ...]
    pre_tokens: tuple[TokenBalance, ...]
    post_tokens: tuple[TokenBalance, ...]


@dataclass(frozen=True)
class Executed:
    """One transaction's outcome, as the RPC reports it."""

    signature: Signature
    slot: int
    err: object | None  # a solders TransactionErrorType, None on success
    logs: tuple[str, ...]
    units: int
    fee: int
    entry: BlockEntry | None = None  # None: refused before execution (nothing for a block)


@dataclass(frozen=True)
class Change:
    pubkey: Pubkey
    account: Account | None  # None: the account no longer exists


@dataclass
class Listeners:
    """Callbacks the pubsub side registers; the ledger calls them after each commit or slot."""

    on_changes: list[Callable[[list[Change], int], None]] = field(default_factory=list)
    on_executed: list[Callable[[Executed, tuple[Pubkey, ...]], None]] = field(default_factory=list)
    on_slot: list[Callable[[int], None]] = field(default_factory=list)


def signature_of(tx: AnyTx) -> Signature:
    return tx.signatures[0]


def _same(a: Account | None, b: Account | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.lamports == b.lamports and a.data == b.data and a.owner == b.owner and a.executable == b.executable


class Ledger:
    def __init__(self, start_slot: int = 1, blockhash_slots: int = BLOCKHASH_SLOTS) -> None:
        # No transaction history in LiteSVM: a rolled-back bundle's signatures must be sendable again;
        # duplicates are refused here instead (self.statuses).
        self.svm = LiteSVM().with_transaction_history(0)
        self.blockhash_slots = blockhash_slots
        self.slot = start_slot
        # The SlotHashes sysvar, newest first: what the lookup-table program checks a new table's recent
        # slot against and times a deactivated table's closing by. LiteSVM's warp does not keep it.
        self.slot_hashes: deque[tuple[int, Hash]] = deque(maxlen=SLOT_HASHES_KEPT)
        self._slot_hashes_written = False
        self._pass_slots(0, start_slot)
        self.svm.warp_to_slot(start_slot)
        self._sync_epoch()
        self.blockhash_since = start_slot
        self.statuses: dict[Signature, Executed] = {}
        self.blocks: OrderedDict[int, list[Executed]] = OrderedDict()  # slot -> its landed transactions, in order
        self.listeners = Listeners()
        self.slot_started = time.monotonic()  # CLOCK_MONOTONIC when the current slot began (benchmarks)

    # --- reads -------------------------------------------------------------------------------------------

    def account(self, pubkey: Pubkey) -> Account | None:
        if pubkey == SLOT_HASHES:
            self._write_slot_hashes()
        acc = self.svm.get_account(pubkey)
        if acc is None or (acc.lamports == 0 and not acc.data and acc.owner == SYSTEM_PROGRAM):
            return None
        return acc

    def program_accounts(self, program: Pubkey) -> list[tuple[Pubkey, Account]]:
        return [(k, a) for k, a in self.svm.get_program_accounts(program) if a.lamports > 0]

    def blockhash(self) -> Hash:
        return self.svm.latest_blockhash()

    def last_valid_block_height(self) -> int:
        return self.blockhash_since + self.blockhash_slots

    def confirmation(self, executed: Executed) -> str:
        return "finalized" if self.slot - executed.slot >= FINALIZED_DEPTH else "confirmed"

    # --- slots -------------------------------------------------------------------------------------------

    def advance(self, slots: int = 1) -> int:
        """Move the clock; the blockhash rotates once its window is spent (LiteSVM accepts only the latest)."""
        self.warp(self.slot + slots)
        return self.slot

    def warp(self, slot: int) -> None:
        if slot < self.slot:
            raise ValueError(f"slot {slot} is behind the current slot {self.slot}")
        self._pass_slots(self.slot, slot)
        self.slot = slot
        self.slot_started = time.monotonic()
        self.svm.warp_to_slot(slot)
        self._sync_epoch()
        if slot - self.blockhash_since >= self.blockhash_slots:
            self.expire_blockhash()
        for callback in self.listeners.on_slot:
            callback(slot)

    def _pass_slots(self, old: int, new: int) -> None:
        """Slots old..new-1 become the new slot's ancestors, each with its bank hash (a digest of the slot
        number here: nothing reads it but as a key's presence). Written to the sysvar only before the next
        transaction or read (`_write_slot_hashes`): 512 entries cost ~0.3 ms, not to be spent every tick."""
        for passed in range(max(old, new - SLOT_HASHES_KEPT), new):
            self.slot_hashes.appendleft((passed, Hash(hashlib.sha256(b"slot" + struct.pack("<Q", passed)).digest())))
        if new > old:
            self._slot_hashes_written = False

    def _write_slot_hashes(self) -> None:
        if not self._slot_hashes_written:
            self.svm.set_slot_hashes(list(self.slot_hashes))
            self._slot_hashes_written = True

    def epoch_info(self) -> tuple[int, int, int]:
        """(epoch, slot index, slots in the epoch) of the current slot, by the epoch schedule sysvar."""
        schedule = self.svm.get_epoch_schedule()
        epoch, index = schedule.get_epoch_and_slot_index(self.slot)
        return epoch, index, schedule.get_slots_in_epoch(epoch)

    def _sync_epoch(self) -> None:
        """LiteSVM's warp moves only the clock's slot: its epoch (what Token-2022 picks a transfer fee by)
        is set from the epoch schedule, as a validator's clock has it."""
        clock = self.svm.get_clock()
        epoch = self.epoch_info()[0]
        if clock.epoch != epoch:
            self.svm.set_clock(
                Clock(
                    clock.slot,
                    clock.epoch_start_timestamp,
                    epoch,
                    max(clock.leader_schedule_epoch, epoch + 1),
                    clock.unix_timestamp,
                )
            )

    def expire_blockhash(self) -> None:
        self.svm.expire_blockhash()
        self.blockhash_since = self.slot

    # --- writes ------------------------------------------------------------------------------------------

    def keys_of(self, tx: AnyTx) -> tuple[Pubkey, ...]:
        """Every account a transaction can touch, lookup-table entries resolved."""
        message = tx.message
        keys = list(message.account_keys)
        for lookup in getattr(message, "address_table_lookups", None) or ():
            table = self.svm.get_account(lookup.account_key)
            if table is None:
                continue
            addresses = AddressLookupTable.deserialize(bytes(table.data)).addresses
            for index in (*lookup.writable_indexes, *lookup.readonly_indexes):
                if index < len(addresses):
                    keys.append(addresses[index])
        return tuple(dict.fromkeys(keys))

    def loaded_addresses(self, tx: AnyTx) -> tuple[tuple[Pubkey, ...], tuple[Pubkey, ...]]:
        """The lookup tables' addresses a v0 transaction loads: every writable one, then every read-only one."""
        writable: list[Pubkey] = []
        readonly: list[Pubkey] = []
        for lookup in getattr(tx.message, "address_table_lookups", None) or ():
            table = self.svm.get_account(lookup.account_key)
            addresses = AddressLookupTable.deserialize(bytes(table.data)).addresses if table is not None else []
            writable += [addresses[i] for i in lookup.writable_indexes if i < len(addresses)]
            readonly += [addresses[i] for i in lookup.readonly_indexes if i < len(addresses)]
        return tuple(writable), tuple(readonly)

    def _tokens(self, keys: Iterable[Pubkey], accounts: dict[Pubkey, Account | None]) -> tuple[TokenBalance, ...]:
        out = []
        for index, key in enumerate(keys):
            acc = accounts.get(key)
            if acc is None or acc.owner not in TOKEN_PROGRAMS or len(acc.data) < 165:
                continue
            data = bytes(acc.data)
            mint = Pubkey(data[0:32])
            mint_account = self.svm.get_account(mint)
            decimals = bytes(mint_account.data)[44] if mint_account is not None and len(mint_account.data) > 44 else 0
            amount = struct.unpack_from("<Q", data, 64)[0]
            out.append(TokenBalance(index, mint, Pubkey(data[32:64]), acc.owner, amount, decimals))
        return tuple(out)

    def _entry(self, tx: AnyTx, before: dict[Pubkey, Account | None]) -> BlockEntry:
        loaded = self.loaded_addresses(tx)
        keys = (*tx.message.account_keys, *loaded[0], *loaded[1])
        after = self.snapshot(keys)
        pre = {k: before.get(k) for k in keys}
        return BlockEntry(
            tx,
            loaded,
            tuple(a.lamports if a is not None else 0 for a in pre.values()),
            tuple(after[k].lamports if after[k] is not None else 0 for k in keys),  # type: ignore[union-attr]
            self._tokens(keys, pre),
            self._tokens(keys, after),
        )

    def record(self, executed: Executed) -> None:
        """A landed transaction into its slot's block (getBlock), the oldest slots forgotten past BLOCKS_KEPT."""
        self.blocks.setdefault(executed.slot, []).append(executed)
        while len(self.blocks) > BLOCKS_KEPT:
            self.blocks.popitem(last=False)

    def snapshot(self, keys: Iterable[Pubkey]) -> dict[Pubkey, Account | None]:
        return {k: self.svm.get_account(k) for k in keys}

    def restore(self, before: dict[Pubkey, Account | None]) -> None:
        for key, acc in before.items():
            self.svm.set_account(key, acc if acc is not None else Account(0, b"", SYSTEM_PROGRAM))

    def set_account(self, pubkey: Pubkey, account: Account) -> None:
        before = self.snapshot([pubkey])
        self.svm.set_account(pubkey, account)
        self.publish(before)

    def airdrop(self, pubkey: Pubkey, lamports: int) -> None:
        before = self.snapshot([pubkey])
        self.svm.airdrop(pubkey, lamports)
        self.publish(before)

    def publish(self, before: dict[Pubkey, Account | None]) -> None:
        changes = []
        for key, old in before.items():
            new = self.account(key)
            if not _same(old if old is None or old.lamports > 0 else None, new):
                changes.append(Change(key, new))
        if changes:
            for callback in self.listeners.on_changes:
                callback(changes, self.slot)

    def duplicate(self, tx: AnyTx) -> bool:
        return signature_of(tx) in self.statuses

    def execute(self, tx: AnyTx) -> tuple[Executed, dict[Pubkey, Account | None]]:
        """Run one transaction in LiteSVM; returns its outcome and the accounts as they were before it."""
        self._write_slot_hashes()
        keys = self.keys_of(tx)
        before = self.snapshot(keys)
        if self.duplicate(tx):
            return self._executed(tx, TransactionErrorFieldless.AlreadyProcessed, (), 0, 0), before
        result = self.svm.send_transaction(tx)
        entry = self._entry(tx, before)
        if isinstance(result, FailedTransactionMetadata):
            meta = result.meta()
            executed = self._executed(tx, result.err(), meta.logs(), meta.compute_units_consumed(), meta.fee(), entry)
            return executed, before
        assert isinstance(result, TransactionMetadata)
        return self._executed(tx, None, result.logs(), result.compute_units_consumed(), result.fee(), entry), before

    def _executed(
        self, tx: AnyTx, err: object, logs: Iterable[str], units: int, fee: int, entry: BlockEntry | None = None
    ) -> Executed:
        return Executed(signature_of(tx), self.slot, err, tuple(logs), units, fee, entry)

    def commit(self, executed: Executed, before: dict[Pubkey, Account | None]) -> None:
        """Record a transaction that landed (succeeded, or failed after paying its fee) and notify."""
        if executed.err is not None and executed.fee == 0:
            return  # refused before execution (bad blockhash, duplicate, unfunded payer): nothing landed
        self.statuses[executed.signature] = executed
        self.record(executed)
        self.publish(before)
        for callback in self.listeners.on_executed:
            callback(executed, tuple(before))

    def send(self, tx: AnyTx) -> Executed:
        executed, before = self.execute(tx)
        self.commit(executed, before)
        return executed

    def simulate(self, tx: AnyTx):
        self._write_slot_hashes()
        return self.svm.simulate_transaction(tx)
