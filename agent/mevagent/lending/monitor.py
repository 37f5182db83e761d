"""The flashloan monitor of one chain: each configured lending market as a provider, followed from its logs.

At start the Pool is read from the market's PoolAddressesProvider (an Aave V2 market's LendingPool from its
LendingPoolAddressesProvider: `protocol: aave_v2`, mevagent.lending.aave_reader.LAYOUTS), then its
reserves, their aTokens' cash and the flashloan premium, all at one block. From then on only the Pool's
logs move the figures (mevagent.lending.flash): each poll asks the node for the logs of the blocks since
the last one it followed (`eth_getLogs` over the Pool's address), never for balances. A market whose load or log read
fails is unhealthy with the node's error, and is loaded again from scratch on the next poll (a fresh
read is also how a reorg that removed followed blocks is recovered: the block it followed is gone).
`/providers/status` reads `status()`.

It is also the chain's lending collector (mevagent.core.Collector): what it follows reaches the
strategies as events. After a load, one `Reserve` event per reserve (its configuration word, tokens,
indexes, rates and their timestamp), one `AssetPrice` per asset (the AaveOracle's answer) and a
`MarketLoaded` (the flashloan premium); then per log, in chain order: `ReserveDataUpdated` (with its
block's timestamp), each Pool event naming a user with that user's scaled balances re-read at that
block (`collateral:<asset>` / `debt:<asset>` arguments, and on a V2 market `stable:<asset>`,
`stable_rate:<asset>`, `stable_at:<asset>` for its stable-rate debt), `AssetSourceUpdated` with the price the
AaveOracle answers through the new source, `ReserveConfigured` for a PoolConfigurator's
`CollateralConfigurationChanged` or `LiquidationProtocolFeeChanged` of a tracked reserve (the fields it sets:
`ltv`, `liquidation_threshold`, `liquidation_bonus`, or `liquidation_protocol_fee`), and an `OracleUpdate`
for each `AnswerUpdated` of a current source. A source set and answering within one poll's block range
has its answers in that range missed (the next answer is seen): sources are known when the range is asked
for. Each poll that brought the market to a new head (or loaded it) ends with a `Head` event (the head's
timestamp and base fee), after the head's events and, on a load, its `PositionLoaded` events: there the
strategy values the positions that interest alone, or an event just applied, made liquidatable (no price
answer needed).

Positions opened before the agent started: with `history_from_block` set, a load also scans the Pool's
user events from that block to the head (`eth_getLogs` in chunks of `log_span` blocks, filtered on the
Pool's address and the user-event topics), keeps the users they name (at most `history_max_users`, the
most recently active), reads each one's scaled balances at the head and emits a `PositionLoaded` event per
user holding anything (after `MarketLoaded`). The users named later are added as the logs are followed,
so a reload (an error, a reorg) scans only from `RESCAN_DEPTH` blocks below where it had got to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from mevagent.amm.v2 import fork_fees
from mevagent.config import FlashProviderConfig, LendingMarketConfig
from mevagent.core import Emit, LendingEvent, OracleUpdate
from mevagent.lending.aave_reader import (
    ANSWER_UPDATED,
    LAYOUTS,
    address_arg,
    call_words,
    configuration_update,
    flashloan_premium,
    read_position,
    read_prices,
    reserve_update,
    source_update,
)
from mevagent.lending.aave_v3 import Position, Reserve
from mevagent.lending.flash import AaveV2Provider, AaveV3Provider
from mevagent.lending.providers import BalancerV2Provider, UniswapV2FlashProvider, UniswapV3FlashProvider
from mevagent.state.abi import address, selector

OtherProvider = BalancerV2Provider | UniswapV3FlashProvider | UniswapV2FlashProvider

log = logging.getLogger(__name__)

GET_PRICE_ORACLE = selector("getPriceOracle()")
GET_SOURCE_OF_ASSET = selector("getSourceOfAsset(address)")
GET_ASSET_PRICE = selector("getAssetPrice(address)")
NO_SOURCE = "0x" + "00" * 20  # an asset the oracle prices otherwise (V2: its WETH, or the fallback oracle)
POLL_S = 1.0
MAX_LOG_SPAN = 2_000  # blocks per eth_getLogs: nodes refuse wide ranges
RESCAN_DEPTH = 64  # a reload scans the history again from this many blocks below the last block scanned
EMIT_BATCH = 1_000  # positions emitted between two yields to the event loop (the engine drains between)


@dataclass
class MarketFeed:
    """One market's provider and what the monitor knows about following it."""

    config: LendingMarketConfig
    provider: AaveV3Provider | None = None
    reserves: dict[str, Reserve] = field(default_factory=dict)
    oracle: str = ""
    configurator: str = ""  # the pool's (Lending)PoolConfigurator: its events change risk parameters
    sources: dict[str, str] = field(default_factory=dict)  # price source (aggregator) -> asset
    followed: int = 0  # the last block whose logs were applied
    followed_hash: str = ""
    updated_at: float | None = None  # wall clock of the last successful poll
    error: str = ""
    users: dict[str, int] = field(default_factory=dict)  # users named by a Pool event -> its block, oldest first
    scanned: int = 0  # the last block whose user events are in `users` (0: no history scanned yet)

    def named(self, user: str, block: int) -> None:
        """A Pool event named `user`: kept as the most recently active (history_max_users bounds them)."""
        self.users.pop(user, None)
        self.users[user] = block
        if len(self.users) > self.config.history_max_users:
            del self.users[next(iter(self.users))]


@dataclass
class ProviderFeed:
    """A flashloan provider that is not a lending market (mevagent.lending.providers), followed from its logs."""

    config: FlashProviderConfig
    provider: OtherProvider | None = None
    followed: int = 0
    followed_hash: str = ""
    updated_at: float | None = None
    error: str = ""

    async def load(self, chain: str, rpc: Any, head: int) -> None:
        config = self.config
        if config.protocol == "balancer_v2":
            provider: OtherProvider = await BalancerV2Provider.load(
                chain, rpc, config.address, list(config.tokens), head
            )
        elif config.protocol == "uniswap_v3":
            provider = await UniswapV3FlashProvider.load(chain, rpc, config.address, head)
        else:
            fee = fork_fees()[config.fork]
            provider = await UniswapV2FlashProvider.load(chain, rpc, config.address, fee.fee, fee.fee_denominator, head)
        provider.name = config.name
        self.provider = provider

    async def follow(self, rpc: Any, start: int, end: int) -> None:
        assert self.provider is not None
        seen: set[tuple[str, str]] = set()  # a transfer from the holder to itself matches both filters
        entries = []
        for query in self.provider.filters():
            logs = await rpc.call("eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end), **query}])
            for entry in logs:
                key = (entry["blockNumber"], entry["logIndex"])
                if key not in seen and not entry.get("removed"):
                    seen.add(key)
                    entries.append(entry)
        for entry in sorted(entries, key=lambda e: (int(e["blockNumber"], 16), int(e["logIndex"], 16))):
            self.provider.apply(entry)


class Polling:
    """A collector that reads its chain every `poll_s` (the lending monitors): the loop and the emit, once."""

    poll_s: float
    _emit: Emit | None

    async def poll(self) -> None:
        raise NotImplementedError

    async def run(self, emit: Emit | None = None) -> None:
        self._emit = emit
        while True:
            await self.poll()
            await asyncio.sleep(self.poll_s)

    async def _out(self, event: object) -> None:
        if self._emit is not None:
            await self._emit(event)


@dataclass
class FlashMonitor(Polling):
    chain: str
    rpc: Any  # mevagent.app.NodeLink or anything with `await call(method, params)`
    markets: list[MarketFeed] = field(default_factory=list)
    others: list[ProviderFeed] = field(default_factory=list)  # Balancer V2, Uniswap V3 flash, V2 flash swaps
    poll_s: float = POLL_S
    max_age_s: float = 60.0  # older than this since the last good poll: unhealthy
    log_span: int = MAX_LOG_SPAN  # blocks per eth_getLogs

    @classmethod
    def of(
        cls,
        chain: str,
        rpc: Any,
        markets: tuple[LendingMarketConfig, ...],
        max_age_s: float,
        others: tuple[FlashProviderConfig, ...] = (),
    ) -> FlashMonitor:
        return cls(chain, rpc, [MarketFeed(m) for m in markets], [ProviderFeed(o) for o in others], max_age_s=max_age_s)

    @property
    def name(self) -> str:
        return f"lending:{self.chain}"

    _emit: Emit | None = None

    async def poll(self) -> None:
        """Every market brought to the node's head (loaded first when it is not).

        The head is asked as its header (number, hash, parent hash, timestamp, base fee): one round trip that
        also says whether a feed that followed the block before is still on the chain (its hash is the head's
        parent), stamps the head's logs and is the hash the feed follows next."""
        try:
            latest = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
            int(latest["number"], 16)  # a header without its number: the node answered nonsense
        except Exception as exc:  # the node is down: every market is as stale as its last poll
            for feed in [*self.markets, *self.others]:
                feed.error = f"node: {exc}"
            return
        for other in self.others:
            await self._poll_other(other, latest)
        for feed in self.markets:
            try:
                followed = feed.followed if feed.provider is not None else -1
                if feed.provider is None or not await self._follow(feed, latest):
                    await self._load(feed, latest)
                    followed = -1
                if feed.followed != followed:  # after the block's (or the load's) events: the strategies value it
                    args = dict(zip(("timestamp", "base_fee"), _header(latest), strict=True))
                    await self._out(self._event(feed, "Head", "", feed.followed, -1, args))
                feed.error, feed.updated_at = "", time.time()
            except Exception as exc:  # whatever the node answered: report it, start over next time
                feed.provider, feed.error = None, str(exc) or type(exc).__name__
                log.warning("%s: lending market %s: %s", self.chain, feed.config.name, feed.error)

    async def _poll_other(self, feed: ProviderFeed, latest: dict[str, Any]) -> None:
        head = int(latest["number"], 16)
        try:
            if feed.provider is None or not await self._still_on_chain(feed, latest):
                await feed.load(self.chain, self.rpc, head)
            else:
                start = feed.followed + 1
                while start <= head:
                    end = min(head, start + self.log_span - 1)
                    await feed.follow(self.rpc, start, end)
                    start = end + 1
            feed.followed, feed.followed_hash = head, latest["hash"]
            feed.error, feed.updated_at = "", time.time()
        except Exception as exc:  # whatever the node answered: report it, start over next time
            feed.provider, feed.error = None, str(exc) or type(exc).__name__
            log.warning("%s: flashloan provider %s: %s", self.chain, feed.config.name, feed.error)

    async def _still_on_chain(self, feed: MarketFeed | ProviderFeed, latest: dict[str, Any]) -> bool:
        """Whether the block the feed followed is still the chain's: the head itself or its parent answer that
        from the head's header; an older one is asked for."""
        head = int(latest["number"], 16)
        if feed.followed == head:
            return bool(latest["hash"] == feed.followed_hash)
        if feed.followed == head - 1:
            return bool(latest["parentHash"] == feed.followed_hash)
        block = await self.rpc.call("eth_getBlockByNumber", [hex(feed.followed), False])
        return block is not None and block["hash"] == feed.followed_hash

    async def _load(self, feed: MarketFeed, block: dict[str, Any]) -> None:
        head = int(block["number"], 16)
        tag = hex(head)
        layout = LAYOUTS[feed.config.protocol]
        pool = address((await call_words(self.rpc, feed.config.addresses_provider, layout.get_pool, tag))[0])
        reserves = await layout.read_reserves(self.rpc, pool, int(block["timestamp"], 16), tag)
        premium = await flashloan_premium(self.rpc, pool, tag)
        a_tokens = {asset: r.a_token for asset, r in reserves.items()}
        kind = AaveV2Provider if feed.config.protocol == "aave_v2" else AaveV3Provider
        feed.provider = await kind.load(self.chain, self.rpc, pool, a_tokens, premium, head)
        feed.provider.name = feed.config.name
        feed.reserves = reserves
        feed.oracle = address((await call_words(self.rpc, feed.config.addresses_provider, GET_PRICE_ORACLE, tag))[0])
        configurator = await call_words(self.rpc, feed.config.addresses_provider, layout.get_configurator, tag)
        feed.configurator = address(configurator[0])
        feed.sources = {}
        for asset in reserves:
            source = (await call_words(self.rpc, feed.oracle, GET_SOURCE_OF_ASSET + address_arg(asset), tag))[0]
            if address(source) != NO_SOURCE:
                feed.sources[address(source)] = asset
        prices = await read_prices(self.rpc, feed.oracle, list(reserves), tag)
        feed.followed, feed.followed_hash = head, block["hash"]
        await self._snapshot(feed, head, prices)
        if feed.config.history_from_block is not None:
            header = _header(block)
            await self._discover(feed, head, header)

    async def _discover(self, feed: MarketFeed, head: int, header: tuple[int, int]) -> None:
        """The positions of the users the Pool's events named since history_from_block, read at the head."""
        provider = feed.provider
        assert provider is not None and feed.config.history_from_block is not None
        user_events = LAYOUTS[feed.config.protocol].user_events
        start = feed.config.history_from_block
        if feed.scanned:
            start = max(start, feed.scanned - RESCAN_DEPTH)
        while start <= head:
            end = min(head, start + self.log_span - 1)
            query = {"fromBlock": hex(start), "toBlock": hex(end), "address": provider.pool}
            logs = await self.rpc.call("eth_getLogs", [{**query, "topics": [list(user_events)]}])
            for entry in sorted(logs, key=lambda e: (int(e["blockNumber"], 16), int(e["logIndex"], 16))):
                slot = user_events.get(entry["topics"][0])
                if slot is not None and not entry.get("removed"):
                    feed.named(address(int(entry["topics"][slot], 16)), int(entry["blockNumber"], 16))
            start = end + 1
        feed.scanned = head
        at = {"timestamp": header[0], "base_fee": header[1]}
        for emitted, user in enumerate(list(feed.users), 1):
            position = await read_position(self.rpc, provider.pool, user, feed.reserves, hex(head))
            if position.collateral or position.debt or position.stable:
                args = {**at, **position_args(position)}
                await self._out(self._event(feed, "PositionLoaded", user, head, -1, args))
            if emitted % EMIT_BATCH == 0:
                await asyncio.sleep(0)

    def _event(self, feed: MarketFeed, event: str, user: str, block: int, index: int, args: dict) -> LendingEvent:
        assert feed.provider is not None
        return LendingEvent(
            self.chain,
            feed.config.name,
            feed.provider.pool,
            event,
            user,
            block,
            index,
            time.perf_counter_ns(),
            tuple(args.items()),
        )

    async def _snapshot(self, feed: MarketFeed, head: int, prices: dict[str, int]) -> None:
        for asset, r in feed.reserves.items():
            args = {
                "asset": asset,
                "protocol": feed.config.protocol,
                "id": r.id,
                "ltv": r.params.ltv,
                "liquidation_threshold": r.params.liquidation_threshold,
                "liquidation_bonus": r.params.liquidation_bonus,
                "decimals": r.params.decimals,
                "liquidation_protocol_fee": r.params.liquidation_protocol_fee,
                "a_token": r.a_token,
                "debt_token": r.debt_token,
                "stable_debt_token": r.stable_debt_token,
                "liquidity_index": r.liquidity_index,
                "variable_borrow_index": r.variable_borrow_index,
                "liquidity_rate": r.liquidity_rate,
                "variable_borrow_rate": r.variable_borrow_rate,
                "last_update": r.last_update,
            }
            await self._out(self._event(feed, "Reserve", "", head, -1, args))
        source_of = {asset: source for source, asset in feed.sources.items()}
        for asset, price in prices.items():
            args = {"asset": asset, "price": price, "source": source_of.get(asset, NO_SOURCE)}
            await self._out(self._event(feed, "AssetPrice", "", head, -1, args))
        assert feed.provider is not None
        args = {"premium_bps": feed.provider.premium_bps, "oracle": feed.oracle}
        await self._out(self._event(feed, "MarketLoaded", "", head, -1, args))

    async def _translate(self, feed: MarketFeed, entry: dict[str, Any], headers: dict[int, tuple[int, int]]) -> None:
        """The strategies' events for one followed log (reads what the log implies, at its block)."""
        topics = entry["topics"]
        block, index = int(entry["blockNumber"], 16), int(entry["logIndex"], 16)
        where = entry["address"].lower()
        if block not in headers:
            headers[block] = _header(await self.rpc.call("eth_getBlockByNumber", [hex(block), False]))
        # Every lending event carries its block's timestamp and base fee: the valuation's clock and gas.
        timestamp, base_fee = headers[block]
        at = {"timestamp": timestamp, "base_fee": base_fee}
        if where in feed.sources and topics[0] == ANSWER_UPDATED:
            answer = int(topics[1], 16)
            if answer >= 2**255:
                answer -= 2**256
            await self._out(OracleUpdate(self.chain, where, answer, block, time.perf_counter_ns()))
            return
        if where == feed.configurator:
            configured = configuration_update(entry)
            if configured is None or configured[0] not in feed.reserves:
                return
            asset, fields = configured
            reserve = feed.reserves[asset]
            reserve.params = dataclasses.replace(reserve.params, **fields)  # a reload reads the same
            await self._out(self._event(feed, "ReserveConfigured", "", block, index, {"asset": asset, **fields, **at}))
            return
        if where == feed.oracle:
            change = source_update(entry)
            if change is None:
                return
            asset, source = change
            feed.sources = {s: a for s, a in feed.sources.items() if a != asset}
            feed.sources[source] = asset
            price = (await call_words(self.rpc, feed.oracle, GET_ASSET_PRICE + address_arg(asset), hex(block)))[0]
            args = {"asset": asset, "source": source, "price": price, **at}
            await self._out(self._event(feed, "AssetSourceUpdated", "", block, index, args))
            return
        update = reserve_update(entry)
        if update is not None:
            asset, liquidity_rate, variable_rate, liquidity_index, variable_index = update
            args = {
                "asset": asset,
                "liquidity_rate": liquidity_rate,
                "variable_borrow_rate": variable_rate,
                "liquidity_index": liquidity_index,
                "variable_borrow_index": variable_index,
                **at,
            }
            await self._out(self._event(feed, "ReserveDataUpdated", "", block, index, args))
            return
        layout = LAYOUTS[feed.config.protocol]
        slot = layout.user_events.get(topics[0])
        if slot is None:
            return
        user = address(int(topics[slot], 16))
        feed.named(user, block)
        position = await read_position(self.rpc, where, user, feed.reserves, hex(block))
        args = {**at, **position_args(position)}
        await self._out(self._event(feed, layout.event_names[topics[0]], user, block, index, args))

    async def _follow(self, feed: MarketFeed, latest: dict[str, Any]) -> bool:
        """The feed brought to the head from its logs; False (nothing applied) when the block it followed is no
        longer the chain's. The first range's logs are asked while that is checked (the check costs a round trip
        only when the feed is more than a block behind the head)."""
        provider = feed.provider
        assert provider is not None
        head = int(latest["number"], 16)
        start = feed.followed + 1
        if start > head:
            return await self._still_on_chain(feed, latest)
        end = min(head, start + self.log_span - 1)
        checked, first = await asyncio.gather(
            self._still_on_chain(feed, latest), self._logs(feed, start, end, latest), return_exceptions=True
        )
        if isinstance(checked, BaseException):
            raise checked
        if not checked:
            return False
        if isinstance(first, BaseException):
            raise first
        logs = first
        headers = {head: _header(latest)}
        while True:
            for entry in sorted(logs, key=lambda e: (int(e["blockNumber"], 16), int(e["logIndex"], 16))):
                if entry.get("removed"):
                    continue
                provider.apply(entry)
                await self._translate(feed, entry, headers)
            start = end + 1
            if start > head:
                break
            end = min(head, start + self.log_span - 1)
            logs = await self._logs(feed, start, end, latest)
        feed.followed, feed.followed_hash = head, latest["hash"]
        if feed.scanned:
            feed.scanned = head  # the users named since are in `users`
        return True

    async def _logs(self, feed: MarketFeed, start: int, end: int, latest: dict[str, Any]) -> list[dict[str, Any]]:
        """The logs of the Pool, its oracle and the price sources in blocks start..end. The head alone (every
        poll of a feed that keeps up) is asked by its hash: its logs are the block's whose header stamps them and
        whose hash is followed next (a node that no longer has it answers an error: the feed is loaded again)."""
        assert feed.provider is not None
        watched = [feed.provider.pool, feed.oracle, feed.configurator, *feed.sources]
        head = int(latest["number"], 16)
        blocks = (
            {"blockHash": latest["hash"]} if start == end == head else {"fromBlock": hex(start), "toBlock": hex(end)}
        )
        logs: list[dict[str, Any]] = await self.rpc.call("eth_getLogs", [{**blocks, "address": watched}])
        return logs

    def providers(self) -> list[AaveV3Provider | OtherProvider]:
        """The providers a flashloan may come from now: loaded, and polled successfully within max_age_s
        (mevagent.executor.funding takes the cheapest with enough of the token)."""
        now = time.time()
        return [
            feed.provider
            for feed in [*self.markets, *self.others]
            if feed.provider is not None
            and not feed.error
            and feed.updated_at is not None
            and now - feed.updated_at <= self.max_age_s
        ]

    def status(self) -> list[dict[str, Any]]:
        now = time.time()
        out = []
        for feed in self.markets:
            provider = feed.provider
            age = None if feed.updated_at is None else now - feed.updated_at
            healthy = provider is not None and not feed.error and age is not None and age <= self.max_age_s
            detail = feed.error or ("not loaded yet" if provider is None else "following the pool's logs")
            if provider is not None and age is not None and age > self.max_age_s:
                detail = f"no successful poll for {age:.0f} s"
            out.append(
                {
                    "chain": self.chain,
                    "provider": feed.config.name,
                    "protocol": feed.config.protocol,
                    "pool": provider.pool if provider else None,
                    "fee_bps": provider.premium_bps if provider else None,
                    "healthy": healthy,
                    "detail": detail,
                    "last_update_block": feed.followed or None,
                    "last_update_age_s": age,
                    "liquidity": [
                        {"token": token, "available": str(amount)}
                        for token, amount in sorted((provider.cash if provider else {}).items())
                    ],
                }
            )
        for other in self.others:
            out.append(self._other_status(other, now))
        return out

    def _other_status(self, feed: ProviderFeed, now: float) -> dict[str, Any]:
        provider = feed.provider
        age = None if feed.updated_at is None else now - feed.updated_at
        healthy = provider is not None and not feed.error and age is not None and age <= self.max_age_s
        detail = feed.error or ("not loaded yet" if provider is None else "following its logs")
        if provider is not None and age is not None and age > self.max_age_s:
            detail = f"no successful poll for {age:.0f} s"
        liquidity = sorted(provider.cash) if provider is not None else []
        return {
            "chain": self.chain,
            "provider": feed.config.name,
            "protocol": feed.config.protocol,
            "pool": feed.config.address,
            "fee_bps": provider.fee_bps if provider is not None else None,
            "healthy": healthy,
            "detail": detail,
            "last_update_block": feed.followed or None,
            "last_update_age_s": age,
            # What it can lend now (a V2 pair keeps one unit of each reserve).
            "liquidity": [{"token": t, "available": str(provider.available(t))} for t in liquidity],
        }


def base_fee(header: dict[str, Any]) -> int:
    """A block's base fee from its header (0 before London)."""
    return int(header.get("baseFeePerGas") or "0x0", 16)


def _header(block: dict[str, Any]) -> tuple[int, int]:
    """A block's timestamp and base fee, from its header."""
    return int(block["timestamp"], 16), base_fee(block)


def position_args(position: Position) -> dict[str, int | str]:
    """A position as a lending event's arguments (mevagent.strategies.aave_liquidation reads them back)."""
    args: dict[str, int | str] = {f"collateral:{a}": v for a, v in position.collateral.items()}
    args.update({f"debt:{a}": v for a, v in position.debt.items()})
    for asset, debt in position.stable.items():
        args.update({f"stable:{asset}": debt.principal, f"stable_rate:{asset}": debt.rate})
        args[f"stable_at:{asset}"] = debt.last_update
    return args
