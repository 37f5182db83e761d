"""The Venus collector of one chain: each configured Venus core pool followed from its logs (mevagent.core.Collector).

A load reads, at the head: the Comptroller (markets, close factor, oracle), every market
(mevagent.lending.venus_reader.read_market) and the oracle's price for each; with `history_from_block`
set it also scans the markets' Borrow/RepayBorrow logs from that block (`scan_borrowers`) and reads every
account they name. It emits one `VenusMarket` per market, one `VenusAccount` per account, one `VenusPrice`
per market, a `VenusVAI` when the Comptroller has a VAI controller (its interest state,
venus_reader.read_vai; with `history_from_block` its MintVAI logs are scanned too, and every minter read), then
`VenusLoaded` (close factor, native market, and the Comptroller's execution terms:
`liquidatorContract` and `treasuryPercent`, and that Liquidator's treasury share and VAI rule,
venus_reader.execution_terms). Each poll after that asks the node for the logs of the Comptroller, the oracle,
the markets, the VAI controller (if any) and the Liquidator (if any) in the blocks since the last one it
followed; per block with logs, in this order: a `VenusTerms` when the Comptroller or the Liquidator logged a
change to the terms (`TERMS_CHANGED`; the terms re-read at that block), a `VenusMarket` for each market that
logged (re-read at that block), a `VenusAccount` for each account a log named (`accounts_touched`; its borrow
snapshot from the block's Borrow/RepayBorrow logs with the market's borrow index at that block, and its VAI
debt), a `VenusPrice` for each market whose oracle answer changed when the oracle logged, and a `VenusVAI` when the
VAI controller, the oracle or the Liquidator logged and the controller's state changed (its rates, the VAI price,
its index). The index is accrued at every VAI mint, repayment and liquidation, and by the Liquidator at each of
its liquidations (all logged); an `accrueVAIInterest()` called on its own logs nothing and is seen at the next
such block: until then the stored index is behind, which only a vToken's own `liquidateBorrow` reads (the
Comptroller values VAI at the stored index there); accrued to a block, the index is the same whichever blocks
it was accrued in, as long as the rate did not change (every change to it is a log followed here). A Comptroller
that logs a new VAI controller is loaded again. A read or a log query that fails loads the pool again from
scratch at the next poll (as a reorg would need). Every event carries its block's base fee.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from mevagent.config import VenusMarketConfig
from mevagent.core import Emit, LendingEvent
from mevagent.lending import venus_reader as reader
from mevagent.lending.monitor import Polling, base_fee
from mevagent.lending.venus import Account, VAIDebt, VAIState, VMarket

log = logging.getLogger(__name__)

POLL_S = 1.0
MAX_LOG_SPAN = 2_000


@dataclass
class VenusFeed:
    config: VenusMarketConfig
    comptroller: reader.Comptroller | None = None
    prices: dict[str, int] = field(default_factory=dict)
    snapshots: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)  # user -> vToken -> snapshot
    followed: int = 0  # the last block whose logs were translated
    error: str = ""
    terms: reader.ExecutionTerms | None = None  # the last read: its Liquidator's logs are followed too
    vai: VAIState | None = None  # the VAI controller's, as last emitted


@dataclass
class VenusMonitor(Polling):
    chain: str
    rpc: Any  # anything with `await call(method, params)`
    feeds: list[VenusFeed]
    poll_s: float = POLL_S
    log_span: int = MAX_LOG_SPAN
    _emit: Emit | None = None

    @classmethod
    def of(cls, chain: str, rpc: Any, markets: tuple[VenusMarketConfig, ...]) -> VenusMonitor:
        return cls(chain, rpc, [VenusFeed(m) for m in markets])

    @property
    def name(self) -> str:
        return f"venus:{self.chain}"

    async def poll(self) -> None:
        """Every pool brought to the node's head. The head is asked as its header: its number and the base fee
        its events carry, in one round trip."""
        try:
            latest = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
            head = int(latest["number"], 16)
        except Exception as exc:
            for feed in self.feeds:
                feed.error = f"node: {exc}"
            return
        base_fees = {head: base_fee(latest)}
        for feed in self.feeds:
            try:
                if feed.comptroller is None:
                    await self._load(feed, head, base_fees[head])
                else:
                    await self._follow(feed, head, base_fees)
                feed.error = ""
            except Exception as exc:  # the node's error: loaded again from scratch at the next poll
                feed.comptroller, feed.error = None, f"{type(exc).__name__}: {exc}"
                log.warning("%s: Venus market %s: %s", self.chain, feed.config.name, feed.error)

    def _event(self, feed: VenusFeed, kind: str, user: str, block: int, args: dict[str, int | str]) -> LendingEvent:
        market = feed.comptroller.address if feed.comptroller is not None else feed.config.comptroller.lower()
        return LendingEvent(
            self.chain, feed.config.name, market, kind, user, block, -1, time.perf_counter_ns(), tuple(args.items())
        )

    async def _base_fee(self, block: int, known: dict[int, int]) -> int:
        if block not in known:
            known[block] = base_fee(await self.rpc.call("eth_getBlockByNumber", [hex(block), False]))
        return known[block]

    async def _load(self, feed: VenusFeed, head: int, base_fee: int) -> None:
        at = hex(head)
        comptroller = await reader.read_comptroller(self.rpc, feed.config.comptroller, at)
        markets = [await reader.read_market(self.rpc, comptroller.address, v, at) for v in comptroller.markets]
        prices = await reader.read_prices(self.rpc, comptroller.oracle, comptroller.markets, at)
        terms = await reader.execution_terms(self.rpc, comptroller.address, at)
        if feed.config.history_from_block is not None:
            start = feed.config.history_from_block if not feed.followed else max(0, feed.followed - 64)
            found = await reader.scan_borrowers(self.rpc, comptroller.markets, start, head, self.log_span)
            for user, snapshots in found.items():
                feed.snapshots.setdefault(user, {}).update(snapshots)
            if comptroller.vai_controller != reader.ZERO:  # VAI minters: their debt is the VAI they owe
                for user in await reader.scan_vai_minters(
                    self.rpc, comptroller.vai_controller, start, head, self.log_span
                ):
                    feed.snapshots.setdefault(user, {})
        vai = (
            await reader.read_vai(self.rpc, comptroller.vai_controller, comptroller.oracle, at)
            if comptroller.vai_controller != reader.ZERO
            else None
        )
        accounts = [
            await reader.read_account(self.rpc, comptroller.address, user, snaps, at, comptroller.vai_controller)
            for user, snaps in feed.snapshots.items()
        ]
        feed.comptroller, feed.prices, feed.followed, feed.terms, feed.vai = comptroller, prices, head, terms, vai
        for market in markets:
            await self._out(self._event(feed, "VenusMarket", "", head, _market_args(market, base_fee)))
        for account in accounts:
            await self._out(self._event(feed, "VenusAccount", account.user, head, _account_args(account, base_fee)))
        for vtoken, price in prices.items():
            await self._out(self._event(feed, "VenusPrice", "", head, {"vtoken": vtoken, "price": price}))
        if vai is not None:
            await self._out(self._event(feed, "VenusVAI", "", head, _vai_args(vai, base_fee)))
        args: dict[str, int | str] = {
            "close_factor": comptroller.close_factor,
            "native_market": feed.config.native_market.lower(),
            "base_fee": base_fee,
            **terms.args(),
        }
        await self._out(self._event(feed, "VenusLoaded", "", head, args))

    async def _follow(self, feed: VenusFeed, head: int, base_fees: dict[int, int]) -> None:
        comptroller = feed.comptroller
        assert comptroller is not None
        watched = [comptroller.address, comptroller.oracle, *comptroller.markets]
        if comptroller.vai_controller != reader.ZERO:  # VAI minted or repaid: the account's VAI debt is re-read
            watched.append(comptroller.vai_controller)
        if feed.terms is not None and feed.terms.liquidator != reader.ZERO:  # its treasury share and VAI rule
            watched.append(feed.terms.liquidator)
        while feed.followed < head:
            start, end = feed.followed + 1, min(feed.followed + self.log_span, head)
            logs = await self.rpc.call(
                "eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end), "address": watched}]
            )
            by_block: dict[int, list[dict[str, Any]]] = {}
            for entry in logs:
                by_block.setdefault(int(entry["blockNumber"], 16), []).append(entry)
            for block in sorted(by_block):
                await self._block(feed, block, by_block[block], await self._base_fee(block, base_fees))
            feed.followed = end

    async def _block(self, feed: VenusFeed, block: int, logs: list[dict[str, Any]], base_fee: int) -> None:
        comptroller = feed.comptroller
        assert comptroller is not None
        at = hex(block)
        markets = {e["address"].lower() for e in logs} & set(comptroller.markets)
        users: dict[str, None] = {}
        oracle_logged = terms_changed = vai_touched = False
        for entry in logs:
            where = entry["address"].lower()
            if where == comptroller.oracle:
                oracle_logged = vai_touched = True
                continue
            if where == comptroller.address and entry["topics"] and entry["topics"][0] == reader.NEW_VAI_CONTROLLER:
                raise RuntimeError(f"block {block}: the Comptroller set a new VAI controller: loading the pool again")
            liquidator = feed.terms.liquidator if feed.terms is not None else reader.ZERO
            if where in (comptroller.vai_controller, liquidator):  # VAI minted, repaid, liquidated, accrued
                vai_touched = True
            if (
                where in (comptroller.address, liquidator)
                and entry["topics"]
                and entry["topics"][0] in reader.TERMS_CHANGED
            ):
                terms_changed = True
            if where == liquidator:
                continue
            found = reader.borrow_log(entry)
            if found is not None:
                vtoken, user, principal = found
                index = await reader.read_word(self.rpc, vtoken, reader.BORROW_INDEX, at)
                feed.snapshots.setdefault(user, {})[vtoken] = (principal, index)
            for user in reader.accounts_touched(entry):
                if user not in (reader.ZERO, *comptroller.markets):
                    users[user] = None
                    if where == comptroller.vai_controller:  # kept across loads without a history scan
                        feed.snapshots.setdefault(user, {})
        if terms_changed:  # first: what the strategy finds in this block is planned with them
            terms = feed.terms = await reader.execution_terms(self.rpc, comptroller.address, at)
            await self._out(self._event(feed, "VenusTerms", "", block, {**terms.args(), "base_fee": base_fee}))
        if vai_touched and feed.vai is not None:  # before the accounts: they are valued with it
            vai = await reader.read_vai(self.rpc, comptroller.vai_controller, comptroller.oracle, at)
            if vai != feed.vai:
                feed.vai = vai
                await self._out(self._event(feed, "VenusVAI", "", block, _vai_args(vai, base_fee)))
        for vtoken in sorted(markets):
            market = await reader.read_market(self.rpc, comptroller.address, vtoken, at)
            await self._out(self._event(feed, "VenusMarket", "", block, _market_args(market, base_fee)))
        for user in users:
            snapshots = feed.snapshots.get(user, {})
            account = await reader.read_account(
                self.rpc, comptroller.address, user, snapshots, at, comptroller.vai_controller
            )
            await self._out(self._event(feed, "VenusAccount", user, block, _account_args(account, base_fee)))
        if oracle_logged:
            prices = await reader.read_prices(self.rpc, comptroller.oracle, comptroller.markets, at)
            for vtoken, price in prices.items():
                if feed.prices.get(vtoken) != price:
                    args: dict[str, int | str] = {"vtoken": vtoken, "price": price, "base_fee": base_fee}
                    await self._out(self._event(feed, "VenusPrice", "", block, args))
            feed.prices = prices


def _market_args(market: VMarket, base_fee: int) -> dict[str, int | str]:
    return {**dataclasses.asdict(market), "base_fee": base_fee}


def _vai_args(vai: VAIState, base_fee: int) -> dict[str, int | str]:
    return {**dataclasses.asdict(vai), "base_fee": base_fee}


def vai_of(args: dict[str, int | str]) -> VAIState:
    """The VAIState a `VenusVAI` event carries."""
    names = {f.name for f in dataclasses.fields(VAIState)}
    values = {k: (str(v) if k in ("controller", "token") else int(v)) for k, v in args.items() if k in names}
    return VAIState(**values)  # type: ignore[arg-type]


def _account_args(account: Account, base_fee: int) -> dict[str, int | str]:
    args: dict[str, int | str] = {
        "entered": ",".join(account.entered),
        "core_pool": int(account.core_pool),
        "vai_minted": account.vai.minted,
        "vai_past_interest": account.vai.past_interest,
        "vai_index": account.vai.index,
        "base_fee": base_fee,
    }
    for vtoken, balance in account.tokens.items():
        args[f"tokens:{vtoken}"] = balance
    for vtoken, (principal, index) in account.borrows.items():
        args[f"principal:{vtoken}"] = principal
        args[f"index:{vtoken}"] = index
    return args


def market_of(args: dict[str, int | str]) -> VMarket:
    """The VMarket a `VenusMarket` event carries."""
    names = {f.name for f in dataclasses.fields(VMarket)}
    values = {k: (str(v) if k in ("vtoken", "underlying") else int(v)) for k, v in args.items() if k in names}
    return VMarket(**values)  # type: ignore[arg-type]


def account_of(user: str, args: dict[str, int | str]) -> Account:
    """The Account a `VenusAccount` event carries."""
    entered = [v for v in str(args.get("entered", "")).split(",") if v]
    vai = VAIDebt(*(int(args.get(f"vai_{k}", 0)) for k in ("minted", "past_interest", "index")))
    account = Account(user, entered, core_pool=bool(int(args.get("core_pool", 1))), vai=vai)
    for key, value in args.items():
        side, _, vtoken = key.partition(":")
        if side == "tokens":
            account.tokens[vtoken] = int(value)
        elif side == "principal":
            account.borrows[vtoken] = (int(value), int(args[f"index:{vtoken}"]))
    return account
