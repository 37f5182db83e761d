"""A running agent publishes its pairs' prices for the cross-chain engine: the `pair_prices` plug-in on a
real anvil chain (the e2e world's DEX, pools followed by the agent's own state syncer) puts a `pair_price`
on the bus's `mev:prices` stream with the pair's on-chain reserves when it starts, and again, with the new
reserves and the block, after a swap moved the price. Its V3 pool is published with the exact state the
agent's syncer follows: slot0, the liquidity and every initialized tick of the published range, as the chain
holds them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from mevagent.amm.v3 import simulate_swap
from mevagent.bus.events import FIELD, PRICE_STREAM, InventoryBalances, PairPrice, decode_event
from testbed.arb import BuilderBehaviour, builders
from testbed.e2e import World, eventually, load, running, world_config
from testbed.evm import read_v3_pool
from testbed.services import RedisServer


async def _inventory(redis: Redis) -> list[InventoryBalances]:
    entries = await redis.xrange(PRICE_STREAM)
    events = [decode_event(fields[FIELD.encode()]) for _, fields in entries]
    return [e for e in events if isinstance(e, InventoryBalances)]


async def _prices(redis: Redis, pool: str) -> list[PairPrice]:
    entries = await redis.xrange(PRICE_STREAM)
    events = [decode_event(fields[FIELD.encode()]) for _, fields in entries]
    return [e for e in events if isinstance(e, PairPrice) and e.pool == pool]


def test_the_agent_publishes_pair_prices_when_they_move(
    e2e_world: World, redis_server: RedisServer, tmp_path: Path
) -> None:
    world = e2e_world
    pair = world.dex.pairs["A"]
    pool, base = pair.address.lower(), world.dex.base.lower()
    v3 = world.dex.v3
    v3_pool, v3_base = v3.address.lower(), v3.functions.token0().call().lower()
    bus = {"agent": "xc1", "redis_url": redis_server.url, "password_file": str(redis_server.password_file)}
    trader = world.dex.chain.account.lower()

    def balances_at(block: int, tokens: list[str]) -> dict[str, int]:
        of = world.w3.to_checksum_address(trader)
        return {t: world.dex.tokens[t].functions.balanceOf(of).call(block_identifier=block) for t in tokens}

    def reserves() -> tuple[int, int]:
        r0, r1, _ = pair.functions.getReserves().call()
        return (r0, r1) if pair.functions.token0().call().lower() == base else (r1, r0)

    async def scenario() -> None:
        redis = Redis(host="127.0.0.1", port=redis_server.port, password=redis_server.password)
        try:
            async with builders([BuilderBehaviour("builder", include=True)], world.http_url) as (builder,):
                (tmp_path / "agent").mkdir()
                data: dict[str, Any] = world_config(
                    world, tmp_path / "agent", builder.url, live=False, bus=bus
                ).model_dump(mode="json")
                data["strategies"]["pair_prices"] = {
                    "pairs": {
                        data["chains"][0]["name"]: [{"pool": pool, "base": base}, {"pool": v3_pool, "base": v3_base}]
                    },
                    "sell_sizes": [10**18],
                    "min_move_bps": 0,
                    # The trader's account: its balances of the pairs' tokens change with the swap below.
                    "inventory_accounts": {data["chains"][0]["name"]: trader},
                    "inventory_every_blocks": 1,
                }
                async with running(load(data)) as (_agent, api):
                    await eventually(api.ready, 30, "/ready")
                    before = reserves()

                    async def first() -> list[PairPrice] | None:
                        return await _prices(redis, pool) or None

                    [start] = await eventually(first, 30, "the first pair_price of pool A")
                    assert (start.reserve_base, start.reserve_quote) == before and start.agent == "xc1"
                    assert start.base == base
                    assert (start.fee_base_in, start.fee_denominator) == (3, 1000)  # forks.yml uniswap_v2
                    assert start.sell[0].amount_in == 10**18 and start.sell[0].amount_out > 0

                    # The V3 pool: as the chain holds it (TickLens over the published words), to the unit.
                    async def first_v3() -> list[PairPrice] | None:
                        return await _prices(redis, v3_pool) or None

                    [v3_start] = await eventually(first_v3, 30, "the V3 pool's pair_price")
                    quote = v3_start.v3
                    assert quote is not None and quote.base_is_token0 and v3_start.base == v3_base
                    chain = read_v3_pool(world.dex.lens, v3, quote.tick_lower, quote.tick_upper)
                    assert (quote.sqrt_price_x96, quote.liquidity, quote.tick, quote.fee, quote.tick_spacing) == (
                        chain.sqrt_price_x96, chain.liquidity, chain.tick, chain.fee, chain.tick_spacing,
                    )  # fmt: skip
                    inside = [(t, n) for t, n in chain.ticks.items() if quote.tick_lower <= t <= quote.tick_upper]
                    assert [(t.tick, t.liquidity_net) for t in quote.ticks] == inside and inside
                    print(f"V3 pair_price: {len(inside)} ticks in [{quote.tick_lower}, {quote.tick_upper}]")
                    assert v3_start.sell[0].amount_out == -simulate_swap(chain, True, 10**18).amount1 > 0

                    block = await asyncio.to_thread(world.gap)
                    after = reserves()
                    assert after != before

                    async def moved() -> PairPrice | None:
                        found = [p for p in await _prices(redis, pool) if p.block >= block]
                        return found[-1] if found else None

                    latest = await eventually(moved, 30, "a pair_price after the swap")
                    assert (latest.reserve_base, latest.reserve_quote) == after
                    assert latest.price < start.price  # W was sold into pair A: cheaper in the quote

                    # The inventory account's balances of the pairs' tokens, as the chain holds them at the
                    # event's block: once at the start, and again after the swap changed them.
                    async def inventory_after() -> InventoryBalances | None:
                        found = [e for e in await _inventory(redis) if e.block >= block]
                        return found[-1] if found else None

                    held = await eventually(inventory_after, 30, "an inventory event after the swap")
                    first = (await _inventory(redis))[0]
                    assert held.account == trader and held.agent == "xc1" and first.block < block
                    tokens = sorted(held.balances)
                    assert base in tokens and len(tokens) >= 2  # pair A's tokens (and the V3 pool's)
                    assert held.balances == balances_at(held.block, tokens)
                    assert first.balances == balances_at(first.block, tokens) != held.balances
        finally:
            await redis.aclose()

    asyncio.run(scenario())
