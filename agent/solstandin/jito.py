"""The Jito block engine's bundle API over the simulated chain.

A bundle is at most 5 transactions executed in order and atomically: every account any of them touches is
snapshotted first and restored if one fails or the tip is too small, so a failed bundle leaves nothing
behind (not even fees), as on mainnet where a losing bundle never lands. Bundles wait in a queue for the
next auction (every `auction_ms`), like the real engine's 200 ms auctions.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Literal

from solders.account import Account
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM

from .ledger import AnyTx, Executed, Ledger

# The 8 mainnet tip accounts; the stand-in creates them rent-exempt, as they are on mainnet, so a small
# tip into them cannot fail with InsufficientFundsForRent.
TIP_ACCOUNTS = tuple(
    Pubkey.from_string(s)
    for s in (
        "96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5",
        "HFqU5x63VTqvQss8hp11i4wVV8bD44PvwucfZ2bU7gRe",
        "Cw8CFyM9FkoMi7K7Crf6HNQqf4uEMzpKw6QNghXLvLkY",
        "ADaUMid9yfUytqMBgopwjb2DTLSokTSzL1zt6iGPaS49",
        "DfXygSm4jCyNCybVYYK6DwvWqjKee8pbDmJGcLWNDXjh",
        "ADuUkR4vqLUMWXxW9gh6D6L8pMSawimctcNZ5pGwDcEt",
        "DttWaMuVvTiduZRnguLF7jNxTgiMBZ1hyAumKUiL2KRL",
        "3AVi9Tg9Uo68tJfuvoKvqKNWKkC5wPdSSdeBnizKZ6jT",
    )
)
MAX_BUNDLE = 5
MIN_TIP = 1_000
DONT_FRONT_PREFIX = "jitodontfront"
LOOKBACK_S = 300  # getInflightBundleStatuses looks 5 minutes back

Status = Literal["Invalid", "Pending", "Failed", "Landed"]


class BundleRejected(ValueError):
    """sendBundle refused the request itself (JSON-RPC error -32602)."""


def bundle_id(txs: list[AnyTx]) -> str:
    """Jito's derive_bundle_id: sha256 over the comma-joined base58 first signatures."""
    return hashlib.sha256(",".join(str(tx.signatures[0]) for tx in txs).encode()).hexdigest()


@dataclass
class Bundle:
    id: str
    txs: list[AnyTx]
    received: float
    status: Status = "Pending"
    slot: int | None = None
    reason: str | None = None
    executed: list[Executed] = field(default_factory=list)
    # CLOCK_MONOTONIC at receipt and at the start of the slot it arrived in (benchmarks read both).
    received_mono: float = 0.0
    slot_seen: int = 0
    slot_started: float = 0.0


def check_dont_front(txs: list[AnyTx]) -> None:
    """A transaction that carries a `jitodontfront…` account may only be the bundle's first."""
    for index, tx in enumerate(txs):
        if index > 0 and any(str(k).startswith(DONT_FRONT_PREFIX) for k in tx.message.account_keys):
            raise BundleRejected(
                f"transaction {index} carries a {DONT_FRONT_PREFIX} account and must be at index 0 of the bundle"
            )


class BlockEngine:
    def __init__(self, ledger: Ledger, min_tip: int = MIN_TIP) -> None:
        self.ledger = ledger
        self.min_tip = min_tip
        self.queue: deque[Bundle] = deque()
        self.bundles: OrderedDict[str, Bundle] = OrderedDict()
        rent = ledger.svm.minimum_balance_for_rent_exemption(0)
        for tip in TIP_ACCOUNTS:
            if ledger.account(tip) is None:
                ledger.svm.set_account(tip, Account(rent, b"", SYSTEM_PROGRAM))
        # Observers (benchmarks, metrics): called with each bundle as it is received.
        self.on_received: list = []

    def submit(self, txs: list[AnyTx]) -> str:
        if not txs:
            raise BundleRejected("a bundle needs at least one transaction")
        if len(txs) > MAX_BUNDLE:
            raise BundleRejected(f"bundle of {len(txs)} transactions: at most {MAX_BUNDLE} are allowed")
        check_dont_front(txs)
        sigs = [tx.signatures[0] for tx in txs]
        if len(set(sigs)) != len(sigs):
            raise BundleRejected("a bundle may not contain the same transaction twice")
        bid = bundle_id(txs)
        if bid in self.bundles and self.bundles[bid].status in ("Pending", "Landed"):
            return bid
        bundle = Bundle(bid, txs, time.time(), received_mono=time.monotonic())
        bundle.slot_seen, bundle.slot_started = self.ledger.slot, self.ledger.slot_started
        self.bundles[bid] = bundle
        self.bundles.move_to_end(bid)
        self.queue.append(bundle)
        for callback in self.on_received:
            callback(bundle)
        self._forget_old()
        return bid

    def _forget_old(self) -> None:
        horizon = time.time() - LOOKBACK_S
        while self.bundles:
            first = next(iter(self.bundles.values()))
            if first.received >= horizon or first.status == "Pending":
                break
            self.bundles.popitem(last=False)

    def auction(self) -> list[Bundle]:
        """Run every queued bundle in arrival order (one slot's auction)."""
        done = []
        while self.queue:
            bundle = self.queue.popleft()
            self._run(bundle)
            done.append(bundle)
        return done

    def _tips(self) -> int:
        return sum(self.ledger.svm.get_balance(t) or 0 for t in TIP_ACCOUNTS)

    def _run(self, bundle: Bundle) -> None:
        ledger = self.ledger
        snapshot: dict[Pubkey, Account | None] = {}
        for tx in bundle.txs:
            for key, acc in ledger.snapshot(ledger.keys_of(tx)).items():
                snapshot.setdefault(key, acc)
        tips_before = self._tips()
        outcomes: list[tuple[Executed, dict]] = []
        for index, tx in enumerate(bundle.txs):
            if ledger.duplicate(tx):
                return self._fail(bundle, snapshot, f"transaction {index} was already processed")
            executed, before = ledger.execute(tx)
            if executed.err is not None:
                return self._fail(bundle, snapshot, f"transaction {index} failed: {executed.err}")
            outcomes.append((executed, before))
        tip = self._tips() - tips_before
        if tip < self.min_tip:
            return self._fail(bundle, snapshot, f"tip of {tip} lamports is below the minimum {self.min_tip}")
        bundle.status, bundle.slot = "Landed", ledger.slot
        bundle.executed = [e for e, _ in outcomes]
        for executed, _ in outcomes:
            ledger.statuses[executed.signature] = executed
            ledger.record(executed)
        ledger.publish(snapshot)
        for executed, before in outcomes:
            for callback in ledger.listeners.on_executed:
                callback(executed, tuple(before))

    def _fail(self, bundle: Bundle, snapshot: dict[Pubkey, Account | None], reason: str) -> None:
        self.ledger.restore(snapshot)
        bundle.status, bundle.reason = "Failed", reason

    def status(self, bid: str) -> Bundle | None:
        return self.bundles.get(bid)
