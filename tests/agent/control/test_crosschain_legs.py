"""Cross-chain positions carried out through the agents: two anvil chains (31401, 31402) with the same
Uniswap V2 pairs and the published Router02, a real control plane (`Control`: ingest into PostgreSQL, the
lease loop, the cross-chain service and its position book) and two agents' bus links with real risk gates
and live executors on their chains (signing with their own keys, sending to the node as their sequencer,
under the control plane's lease). A gap goes agent reporter → Redis → engine → position book → a
`crosschain_leg` command per chain → each agent's risk gate → a router swap → a durable `crosschain_leg`
event → the ingest → the book. Checked against the chains' balances, to the base unit: both legs filled,
one leg refused by its agent's gate (sold back), one agent never answering (held, then sold back at the
time bound, its exposure counted meanwhile), and the fleet's exposure limit refusing the pair before any leg.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from math import isqrt
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from mevcontrol.api import make_app
from mevcontrol.config import FleetLimits
from mevcontrol.db import connect_pool
from mevcontrol.operations import Operations
from mevcontrol.positions import OPEN_POSITIONS, Position
from mevcontrol.service import Control
from redis.asyncio import Redis

from mevagent.amm.v2 import get_amount_out
from mevagent.amm.v3 import V3PoolState, simulate_swap
from mevagent.bus.events import FIELD, CrossChainLegCommand, command_stream, decode_command, new_id
from mevagent.crosschain.legs import LegExecutor
from mevagent.crosschain.prices import PairPriceReporter, PairPricesConfig, PairSpec
from mevagent.crosschain.venues import FACTORY, GET_POOL
from mevagent.executor.config import from_chain_config
from mevagent.executor.executor import ArbitrageExecutor
from mevagent.executor.keys import Signer
from mevagent.executor.routes import ARB_CONTRACT
from mevagent.executor.rpc import HttpJsonRpc
from mevagent.risk.gate import RiskGate
from mevagent.state.pools import PoolStore, V3Pool
from testbed.crosschain import ANN, E18, LIMITS, Fleet, Side, Venue, deploy_venues, fleet, fleet_config
from testbed.e2e import agent_config, load
from testbed.evm import DEADLINE, MAX_UINT256, TX_GAS, V3_CORE, deploy_swap_router02, deploy_v3_stack, read_v3_pool
from testbed.services import Postgres, RedisServer


@pytest.fixture(scope="module")
def venues(sides: tuple[Side, Side], tmp_path_factory: pytest.TempPathFactory) -> tuple[Venue, Venue]:
    """testbed.crosschain.deploy_venues on the module's two chains: then a new baseline snapshot (each test's
    set_price goes back to it)."""
    return deploy_venues(sides, tmp_path_factory.mktemp("venues"))


def _prices(venues: tuple[Venue, Venue]) -> None:
    alpha, beta = (v.side for v in venues)
    alpha.set_price(100 * E18, 300_000 * E18)  # 3,000 per WETH
    beta.set_price(100 * E18, 306_000 * E18)  # 3,060: buy on alpha, sell on beta


def test_both_legs_fill_and_the_position_closes_with_the_predicted_pnl(
    venues: tuple[Venue, Venue], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    _prices(venues)
    va, vb = venues
    before = va.balances(), vb.balances()

    async def scenario() -> tuple[Position, Any, Any, bytes]:
        async with fleet(venues, redis_server, postgres, tmp_path) as f:
            await f.publish_gap(va.side, vb.side, tmp_path)
            position = await f.position("closed", "failed", "unwound", "stuck", "refused")
            risk = await f.control.evaluate()
            # :8906 serves the book (operator token required, as on the listener's other routes).
            async with TestClient(TestServer(make_app(Operations(f.control), "bridges"))) as client:
                assert (await client.get("/positions")).status == 401
                answer = await client.get("/positions", headers=ANN.auth)
                assert answer.status == 200
                served = await answer.json()
            [newest, *_] = served["positions"]
            assert (newest["id"], newest["state"]) == (position.id, "closed"), position.steps
            assert served["exposure_by_chain"] == {}
            return position, await f.record(position.id), risk, f.control.metrics.render()

    position, (state, record, legs), risk, metrics = asyncio.run(scenario())
    opp = position.opportunity
    amount_in, base, amount_out = int(opp["amount_in"]), int(opp["base_amount"]), int(opp["amount_out"])
    assert position.state == state == "closed", position.steps
    # The chains' balances moved exactly as the engine predicted, and the realized P&L is that move.
    after = va.balances(), vb.balances()
    assert (after[0][0] - before[0][0], after[0][1] - before[0][1]) == (-amount_in, base)
    assert (after[1][0] - before[1][0], after[1][1] - before[1][1]) == (amount_out, -base)
    assert position.realized == {
        "alpha:TUSD": -amount_in,
        "alpha:WETH": base,
        "beta:WETH": -base,
        "beta:TUSD": amount_out,
    }
    assert amount_out - amount_in == int(opp["gross"]) > 0
    assert position.realized_usd == Decimal(int(opp["gross"])) / E18
    assert record["state"] == "closed" and record["realized"]["beta:TUSD"] == str(amount_out)
    assert sorted(legs) == [("buy", "alpha", "landed", amount_in, base), ("sell", "beta", "landed", base, amount_out)]
    assert risk.crosschain_usd == 0 and risk.as_json()["crosschain_usd"] == "0"
    # Decision → each leg sent to its chain's sequencer, on this host's one clock (through the bus and the agent).
    found = float(opp["found_at"])
    for leg in position.legs.values():
        assert leg.agent_sent_at is not None and found < leg.agent_received_at < leg.agent_sent_at < found + 5
    sent_ms = [round((leg.agent_sent_at - found) * 1000, 1) for leg in position.legs.values()]  # type: ignore[operator]
    print(f"decision → legs sent: {sent_ms} ms")
    assert b'mevcontrol_crosschain_positions{state="closed"} 1.0' in metrics
    assert b'mevcontrol_crosschain_exposure_usd{chain="beta"} 0.0' in metrics


def test_a_legs_ack_follows_its_transaction_and_is_recorded(
    venues: tuple[Venue, Venue], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    """An agent acknowledges a leg command once the leg's transaction is out, not before its reads and signing
    (the ack's spooling, XADD and ingest ran beside them); the ack still reaches the history, once per leg."""
    _prices(venues)
    va, vb = venues
    order: list[tuple[str, str]] = []  # (what, agent) in the order it happened

    async def scenario() -> tuple[Position, list[Any]]:
        async with fleet(venues, redis_server, postgres, tmp_path) as f:
            for name, link in f.links.items():
                publish, durable = link.publisher.publish, link.publisher.publish_durable
                (executor,) = (route[ARB_CONTRACT] for route in link.router.executors.values())  # type: ignore[union-attr]
                send = executor.send

                def acking(event: Any, publish: Any = publish, name: str = name) -> None:
                    if getattr(event, "command", None) == "crosschain_leg":
                        order.append(("ack", name))
                    publish(event)

                async def acking_durable(event: Any, durable: Any = durable, name: str = name, **kwargs: Any) -> None:
                    if getattr(event, "command", None) == "crosschain_leg":
                        order.append(("ack", name))
                    await durable(event, **kwargs)

                async def sending(*args: Any, send: Any = send, name: str = name, **kwargs: Any) -> str:
                    refusal = await send(*args, **kwargs)
                    order.append(("sent", name))
                    return refusal

                link.publisher.publish = acking  # type: ignore[method-assign]
                link.publisher.publish_durable = acking_durable  # type: ignore[method-assign]
                executor.send = sending
            await f.publish_gap(va.side, vb.side, tmp_path)
            position = await f.position("closed", "failed", "unwound", "stuck", "refused")
            ids = [leg.command.id for leg in position.legs.values()]
            async with asyncio.timeout(10):
                while True:
                    async with f.control.pool.acquire() as conn:
                        acks = await conn.fetch(
                            """SELECT agent, ok, detail FROM command_acks WHERE command_id = ANY($1::uuid[])
                               ORDER BY agent""",
                            ids,
                        )
                    if len(acks) == 2:
                        return position, [tuple(a) for a in acks]
                    await asyncio.sleep(0.05)

    position, acks = asyncio.run(scenario())
    assert position.state == "closed", position.steps
    assert acks == [("xa", True, "buy leg started on alpha"), ("xb", True, "sell leg started on beta")]
    for agent in ("xa", "xb"):
        assert [what for what, who in order if who == agent] == ["sent", "ack"], order


def test_a_leg_refused_by_its_agents_gate_is_unwound_on_the_filled_chain(
    venues: tuple[Venue, Venue], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    _prices(venues)
    va, vb = venues
    before = va.balances(), vb.balances()

    async def scenario() -> tuple[Position, Any]:
        async with fleet(venues, redis_server, postgres, tmp_path, unwind={"action": "sell_back"}) as f:
            f.links["xb"].gate.update_limits(LIMITS.model_copy(update={"max_position_size_usd": 1.0}))
            await f.publish_gap(va.side, vb.side, tmp_path)
            position = await f.position("unwound", "stuck", "closed", "failed", "refused")
            return position, await f.record(position.id)

    position, (state, _record, legs) = asyncio.run(scenario())
    assert position.state == state == "unwound", position.steps
    sell, buy, unwind = position.legs["sell"], position.legs["buy"], position.legs["unwind_buy"]
    assert sell.status == "rejected" and sell.reason.startswith("max_position_size:")
    assert buy.status == "landed" and unwind.status == "landed" and unwind.chain == "alpha"
    # The unwind sold back exactly what the buy leg got, on the pool the buy leg moved: its expected output
    # is that pool after the buy, and it paid exactly that.
    amount_in, base = buy.command.amount_in, buy.amount_out
    r_usd, r_weth = 300_000 * E18 + amount_in, 100 * E18 - base
    back = get_amount_out(base, r_weth, r_usd)
    assert (unwind.command.amount_in, unwind.command.expected_out, unwind.amount_out) == (base, back, back)
    after = va.balances(), vb.balances()
    assert after[0][0] - before[0][0] == back - amount_in < 0 and after[0][1] == before[0][1]
    assert after[1] == before[1]  # nothing moved on beta
    assert position.realized == {"alpha:TUSD": back - amount_in, "alpha:WETH": 0}
    assert [leg[:3] for leg in legs] in (
        [("sell", "beta", "rejected"), ("buy", "alpha", "landed"), ("unwind", "alpha", "landed")],
        [("buy", "alpha", "landed"), ("sell", "beta", "rejected"), ("unwind", "alpha", "landed")],
    )


def test_a_leg_not_answered_in_time_is_held_counted_as_exposure_restored_then_sold_back(
    venues: tuple[Venue, Venue], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    _prices(venues)
    va, vb = venues
    before = vb.balances()
    unwind = {"action": "hold", "hold_s": 1.5, "max_open_usd": "100000"}

    async def restarted(f: Fleet) -> dict[str, Decimal]:
        """A second control plane on the same database (as after a restart): the open position's exposure."""
        pool = await connect_pool(postgres.dsn)
        redis = Redis(host="127.0.0.1", port=redis_server.port, password=redis_server.password)
        try:
            again = Control(f.control.config, redis, pool)
            await again.load_state()
            book = again.crosschain.book  # type: ignore[union-attr]
            [restored] = book.active()
            assert restored.state == "held" and 0 < restored.hold_until - time.monotonic() <= 1.5
            exposure = book.exposure()
            await asyncio.sleep(0.2)  # its record's write
            return exposure
        finally:
            await redis.aclose()
            await pool.close()

    async def scenario() -> tuple[Position, list[tuple[str, dict[str, Decimal]]], float, dict[str, Decimal]]:
        async with fleet(venues, redis_server, postgres, tmp_path, leg_timeout_s=1, settle_s=0.5, unwind=unwind) as f:
            book = f.control.crosschain.book  # type: ignore[union-attr]
            # Beta's legs go to an agent that is not running: the command waits on its stream, never answered.
            book.config = book.config.model_copy(update={"agents": {"alpha": "xa", "beta": "gone"}})
            seen: list[tuple[str, dict[str, Decimal]]] = []
            await f.publish_gap(va.side, vb.side, tmp_path)
            started = time.monotonic()
            async with asyncio.timeout(20):
                while not any(p.state in ("unwound", "stuck") for p in book.positions.values()):
                    for p in book.active():
                        risk = await f.control.evaluate()
                        if not seen or seen[-1][0] != p.state:
                            seen.append((p.state, dict(risk.crosschain_by_chain)))
                            if p.state == "held":
                                await asyncio.sleep(0.1)  # the held record's write
                                after_restart = await restarted(f)
                    await asyncio.sleep(0.05)
            position = await f.position("unwound", "stuck")
            return position, seen, time.monotonic() - started, after_restart

    position, seen, elapsed, after_restart = asyncio.run(scenario())
    assert position.state == "unwound", position.steps
    buy, sell = position.legs["buy"], position.legs["sell"]
    assert sell.status == "timeout" and buy.status == "landed"
    # In flight, both legs' notional counted in the fleet's exposure; held, the bought WETH valued at 3,000.
    states = [s for s, _ in seen]
    assert states[0] == "in_flight" and "held" in states, seen
    in_flight = seen[0][1]
    assert in_flight == {"alpha": buy.command.notional_usd, "beta": sell.command.notional_usd}
    held = dict(seen)["held"]
    assert held == {"alpha": Decimal(buy.amount_out * 3000) / E18}
    assert after_restart == held  # read back from crosschain_positions, it counts again
    assert elapsed >= 1.5 + 1.5  # the leg's deadline plus settle_s, then hold_s
    assert any("held:" in s for s in position.steps) and any("sold back" in s for s in position.steps)
    assert vb.balances() == before


def test_the_fleet_exposure_limit_refuses_the_pair_before_any_leg(
    venues: tuple[Venue, Venue], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    _prices(venues)
    va, vb = venues
    before = va.balances(), vb.balances()

    async def scenario() -> tuple[Position, Any, int, list[Position]]:
        async with fleet(venues, redis_server, postgres, tmp_path) as f:
            f.control.limits = FleetLimits(max_total_exposure_usd=100.0)
            await f.publish_gap(va.side, vb.side, tmp_path)
            position = await f.position("refused", "closed", "failed")
            # The limit lifted, the same gap reported again within the back-off: the pair is left alone (the
            # fleet is not asked again, nothing recorded or sent), though it would fit now.
            f.control.limits = FleetLimits()
            service = f.control.crosschain
            assert service is not None and service.book is not None
            absorbed = service.engine.stats.absorbed
            await f.publish_gap(va.side, vb.side, tmp_path)
            async with asyncio.timeout(5):
                while service.engine.stats.absorbed < absorbed + 2:  # both pools' prices, each handed to the book
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)
            async with f.control.pool.acquire() as conn:
                sent = await conn.fetchval(
                    "SELECT count(*) FROM commands WHERE kind = 'crosschain_leg' AND payload->>'position_id' = $1",
                    position.id,
                )
            return position, await f.record(position.id), sent, list(service.book.positions.values())

    position, (state, record, legs), sent, positions = asyncio.run(scenario())
    assert position.state == state == "refused" and position.legs == {} and legs == [] and sent == 0
    assert positions == [position], [p.steps for p in positions]
    assert "max_total_exposure:" in record["steps"][0] and "> 100.0 USD" in record["steps"][0]
    assert (va.balances(), vb.balances()) == before


def test_no_leg_is_sent_before_its_position_and_commands_are_in_the_history(
    venues: tuple[Venue, Venue], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    """The position's first record and both legs' command rows commit in one statement, and only then do the legs
    go on the bus: a history that refuses the position's record (a constraint here; a full disk or a lost
    database in production) sends no leg, and the position fails at once with nothing moved, its failure
    recorded. Before, the record was written beside the legs' sends, so they went out and traded without it."""
    _prices(venues)
    va, vb = venues
    before = va.balances(), vb.balances()

    async def scenario() -> tuple[Position, Any, list[str], int]:
        async with fleet(venues, redis_server, postgres, tmp_path) as f:
            async with f.control.pool.acquire() as conn:
                await conn.execute(
                    "ALTER TABLE crosschain_positions ADD CONSTRAINT history_refuses CHECK (state <> 'in_flight') "
                    "NOT VALID"
                )
            try:
                await f.publish_gap(va.side, vb.side, tmp_path)
                position = await f.position("failed", "closed", "unwound", "stuck", "refused")
            finally:
                async with f.control.pool.acquire() as conn:
                    await conn.execute("ALTER TABLE crosschain_positions DROP CONSTRAINT history_refuses")
            await asyncio.sleep(0.5)  # a leg sent by mistake would reach its agent's stream (and the chain) by now
            redis = Redis(host="127.0.0.1", port=redis_server.port, password=redis_server.password)
            try:
                on_bus = [
                    decode_command(fields[FIELD.encode()]).kind
                    for agent in ("xa", "xb") for _id, fields in await redis.xrange(command_stream(agent))
                    if position.id.encode() in fields[FIELD.encode()]
                ]  # fmt: skip
            finally:
                await redis.aclose()
            async with f.control.pool.acquire() as conn:
                rows = await conn.fetchval(
                    "SELECT count(*) FROM commands WHERE kind = 'crosschain_leg' AND payload->>'position_id' = $1",
                    position.id,
                )
            return position, await f.record(position.id), on_bus, rows

    position, (state, record, legs), on_bus, rows = asyncio.run(scenario())
    assert position.state == state == "failed", position.steps
    assert on_bus == [] and rows == 0 and legs == []
    assert {leg.status for leg in position.legs.values()} == {"failed"}
    assert "no leg sent: the history did not take" in record["steps"][-2] and "history_refuses" in record["steps"][-2]
    assert (va.balances(), vb.balances()) == before


def test_a_leg_on_a_chain_not_live_is_only_simulated_and_the_landed_one_is_unwound(
    venues: tuple[Venue, Venue], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    _prices(venues)
    va, vb = venues
    before = vb.balances()

    async def scenario() -> Position:
        async with fleet(venues, redis_server, postgres, tmp_path, live=(True, False)) as f:
            await f.publish_gap(va.side, vb.side, tmp_path)
            return await f.position("unwound", "stuck", "closed", "dry_run", "failed", "refused")

    position = asyncio.run(scenario())
    sell = position.legs["sell"]
    # Beta's agent runs its chain in dry-run: the leg was simulated at the head (what the engine predicted)
    # and nothing was signed; alpha's landed leg is real inventory, so it was sold back.
    assert (sell.status, sell.tx_hash, sell.amount_out) == ("dry_run", None, int(position.opportunity["amount_out"]))
    assert position.state == "unwound" and position.legs["unwind_buy"].status == "landed", position.steps
    assert vb.balances() == before


def test_a_slow_leg_that_lands_after_its_timeout_is_unwound_too(
    venues: tuple[Venue, Venue], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    _prices(venues)
    va, vb = venues
    before = va.balances(), vb.balances()
    beta = vb.side.chain.w3.provider

    async def scenario() -> tuple[Position, list[str]]:
        async with fleet(venues, redis_server, postgres, tmp_path, leg_timeout_s=2, settle_s=0.5) as f:
            book = f.control.crosschain.book  # type: ignore[union-attr]
            beta.make_request("evm_setAutomine", [False])  # beta includes nothing until the test mines
            try:
                await f.publish_gap(va.side, vb.side, tmp_path)
                first = await f.position("unwound", "stuck", "closed", "failed")
                states = [first.state]
                # Beta's block comes now, stamped within the leg's deadline: the swap signed in time lands late.
                sell = first.legs["sell"]
                assert sell.status == "timeout" and sell.agent_sent_at is None
                beta.make_request("evm_setNextBlockTimestamp", [int(sell.command.deadline)])
                beta.make_request("evm_mine", [])
            finally:
                beta.make_request("evm_setAutomine", [True])
            async with asyncio.timeout(15):
                while "unwind_sell" not in first.legs or first.state != "unwound" or first.legs["unwind_sell"].open:
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            states.append(first.state)
            assert book.exposure() == {}
            return first, states

    position, states = asyncio.run(scenario())
    assert states == ["unwound", "unwound"], position.steps
    buy, sell = position.legs["buy"], position.legs["sell"]
    unwind_buy, unwind_sell = position.legs["unwind_buy"], position.legs["unwind_sell"]
    assert sell.status == buy.status == unwind_buy.status == unwind_sell.status == "landed", position.steps
    assert any("after its timeout" in step for step in position.steps)
    # Each chain's landed leg was sold back on its own pool: what moved there is exactly the realized P&L.
    after = va.balances(), vb.balances()
    assert position.realized == {
        "alpha:TUSD": after[0][0] - before[0][0], "alpha:WETH": after[0][1] - before[0][1],
        "beta:TUSD": after[1][0] - before[1][0], "beta:WETH": after[1][1] - before[1][1],
    }  # fmt: skip
    assert position.realized["alpha:WETH"] == position.realized["beta:TUSD"] == 0
    assert position.realized["beta:WETH"] == unwind_sell.amount_out - sell.amount_in < 0


def test_a_stuck_position_keeps_its_exposure_until_an_operator_retries_its_unwind(
    venues: tuple[Venue, Venue], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    _prices(venues)
    va, vb = venues
    before = va.balances()

    async def scenario() -> tuple[Position, dict[str, Decimal], list[int], Any]:
        async with fleet(venues, redis_server, postgres, tmp_path) as f:
            f.links["xb"].gate.update_limits(LIMITS.model_copy(update={"max_position_size_usd": 1.0}))
            # Alpha's gate takes the buy (its worst case is its gas) but not the unwind's accepted loss.
            f.links["xa"].gate.update_limits(LIMITS.model_copy(update={"max_daily_loss_per_chain_usd": 1.0}))
            await f.publish_gap(va.side, vb.side, tmp_path)
            stuck = await f.position("stuck", "unwound", "closed", "failed")
            assert stuck.state == "stuck", stuck.steps
            assert stuck.legs["unwind_buy"].reason.startswith("max_daily_loss_per_chain:")
            open_exposure = f.control.crosschain.book.exposure()  # type: ignore[union-attr]
            f.links["xa"].gate.update_limits(LIMITS)
            statuses = []
            async with TestClient(TestServer(make_app(Operations(f.control), "bridges"))) as client:
                path = f"/positions/{stuck.id}/unwind"
                for url, body in (
                    (path, {"max_slippage_bps": 200}),
                    (path, {}),
                    ("/positions/" + "0" * 32 + "/unwind", {}),
                ):
                    statuses.append((await client.post(url, json=body, headers=ANN.auth)).status)
            position = await f.position("unwound")
            async with f.control.pool.acquire() as conn:
                audited = await conn.fetch(
                    """SELECT operator, result, after, at FROM audit_log WHERE action = 'crosschain_unwind'
                       AND target = $1 ORDER BY id""",
                    stuck.id,
                )
                sent_at = await conn.fetchval(
                    "SELECT at FROM commands WHERE id = $1", position.legs["unwind_buy"].command.id
                )
            return position, open_exposure, statuses, (audited, sent_at)

    position, open_exposure, statuses, (audited, sent_at) = asyncio.run(scenario())
    buy, unwind = position.legs["buy"], position.legs["unwind_buy"]
    assert open_exposure == {"alpha": Decimal(buy.amount_out * 3000) / E18}
    assert statuses == [200, 409, 404]  # retried once; then it is no longer stuck; an unknown id
    assert unwind.status == "landed" and unwind.command.min_out == unwind.command.expected_out * 9_800 // 10_000
    assert position.realized == {"alpha:TUSD": unwind.amount_out - buy.amount_in, "alpha:WETH": 0}
    assert va.balances()[0] - before[0] == unwind.amount_out - buy.amount_in and va.balances()[1] == before[1]
    # The intent is audited before the command is recorded and sent, what the bus did after it; the refusals
    # (not stuck, unknown) change nothing and write nothing.
    intent, result = audited
    assert [(row["operator"], row["result"], orjson.loads(row["after"])) for row in audited] == [
        ("ann", "requested", {"max_slippage_bps": 200}),
        ("ann", "sent", {"max_slippage_bps": 200, "command_ids": [unwind.command.id]}),
    ]
    assert intent["at"] <= sent_at <= result["at"]


def test_a_positions_record_keeps_its_latest_step_whatever_order_its_writes_commit_in(
    redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    """Each write of a position's record is its own task on its own pool connection, so writes can commit out of
    order: each is numbered when its snapshot is taken and an earlier one never replaces a later one. After a
    restart the numbering goes on from the stored record."""
    config = fleet_config(tmp_path, redis_server, postgres, None)  # no pool is priced: the shipped registry

    async def stored(control: Control, position_id: str) -> tuple[str, int]:
        async with control.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT state, version FROM crosschain_positions WHERE id = $1", position_id)
        return row["state"], row["version"]

    async def scenario() -> list[tuple[str, int]]:
        redis = Redis(host="127.0.0.1", port=redis_server.port, password=redis_server.password)
        pools = [await connect_pool(postgres.dsn, size=8), await connect_pool(postgres.dsn)]
        try:
            control = Control(config, redis, pools[0])
            book = control.crosschain.book  # type: ignore[union-attr]
            position = Position(new_id(), {}, ("alpha", "0x01", "beta", "0x02"), "in_flight", time.time())
            book._keep(position)
            await asyncio.gather(*book._tasks)
            seen = [await stored(control, position.id)]
            # Two of its writes, the later committed first: the earlier one is dropped.
            earlier = position.as_json()
            position.state = "stuck"
            await control.record_position(position.as_json(), 3)
            await control.record_position(earlier, 2)
            seen.append(await stored(control, position.id))
            # A burst of steps, each write on its own connection while the others are in flight.
            position.version = 3
            for state in ("unwinding", "stuck", "unwinding", "held", "unwinding", "stuck") * 4:
                position.state = state
                book._changed(position)
                await asyncio.sleep(0)
            await asyncio.gather(*book._tasks)
            seen.append(await stored(control, position.id))
            # Restarted: read back open, and its own first write numbered after the stored one (an earlier test's
            # position left open, one that failed, is not this test's: it is read back only with its registry).
            async with pools[1].acquire() as conn:
                await conn.execute(
                    "UPDATE crosschain_positions SET state = 'failed' WHERE id <> $1 AND state = ANY($2::text[])",
                    position.id, list(OPEN_POSITIONS),
                )  # fmt: skip
            again = Control(config, redis, pools[1])
            await again.load_state()
            restored = again.crosschain.book  # type: ignore[union-attr]
            await asyncio.gather(*restored._tasks)
            seen.append((restored.positions[position.id].state, restored.positions[position.id].version))
            seen.append(await stored(again, position.id))
            return seen
        finally:
            for pool in pools:
                await pool.close()
            await redis.aclose()

    assert asyncio.run(scenario()) == [("in_flight", 1), ("stuck", 3), ("stuck", 27), ("stuck", 28), ("stuck", 28)]


@asynccontextmanager
async def dry_run_legs(venue: Venue, directory: Path, **chain_extra: Any) -> AsyncIterator[LegExecutor]:
    """Agent xa's leg executor on `venue`'s chain, dry-run (its key, its routers, the module's limits)."""
    side, w3 = venue.side, venue.side.chain.w3
    url = str(w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    chain = {
        "name": side.name, "chain_id": w3.eth.chain_id, "http_url": url, "live": False, "max_gas_price_gwei": 100.0,
        "signing_key_file": str(venue.key_file), "swap_router": venue.router.address.lower(),
        **{k: v for k, v in chain_extra.items() if v is not None},
    }  # fmt: skip
    agent = load(agent_config(directory, [chain]))
    gate = RiskGate.from_config(agent)
    gate.update_limits(LIMITS)
    async with aiohttp.ClientSession() as session:
        settings = from_chain_config(agent.chains[0], contract=venue.contract, rpc_url=url)
        executor = ArbitrageExecutor(
            settings, PoolStore(side.name), gate, HttpJsonRpc(url, session), session,
            max_slippage_bps=lambda: LIMITS.max_slippage_bps, signer=Signer.from_file(venue.key_file),
        )  # fmt: skip
        yield LegExecutor(executor, "xa")


def test_a_leg_the_key_cannot_pay_names_the_inventory_or_the_allowance_it_is_short_of(
    venues: tuple[Venue, Venue], tmp_path: Path
) -> None:
    """The router says TRANSFER_FROM_FAILED for both; the leg's reason says which, with both amounts."""
    venue = venues[0]
    side, router = venue.side, venue.router.address
    w3 = side.chain.w3
    me = w3.to_checksum_address(venue.agent)

    def approve(amount: int) -> None:
        w3.provider.make_request("anvil_impersonateAccount", [me])  # type: ignore[arg-type]
        try:
            tx = side.usd.functions.approve(router, amount).transact({"from": me, "gas": TX_GAS, "gasPrice": 0})
            assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
        finally:
            w3.provider.make_request("anvil_stopImpersonatingAccount", [me])  # type: ignore[arg-type]

    def command(amount_in: int) -> CrossChainLegCommand:
        return CrossChainLegCommand(
            issued_by="crosschain", agent="xa", chain=side.name, position_id=new_id(), leg="buy",
            pool=side.pair.address.lower(), token_in=side.usd.address.lower(), token_out=side.weth.address.lower(),
            amount_in=amount_in, expected_out=1, min_out=0, gas_limit=300_000, notional_usd=Decimal(10),
            profit_usd=Decimal(5), native_usd=Decimal(3000), deadline=time.time() + 60,
        )  # fmt: skip

    async def scenario() -> list[Any]:
        async with dry_run_legs(venue, tmp_path) as legs:
            held = side.usd.functions.balanceOf(me).call()
            results = [await legs.execute(command(held + 1))]
            approve(5 * E18)
            try:
                results.append(await legs.execute(command(6 * E18)))
            finally:
                approve(MAX_UINT256)
            results.append(await legs.execute(command(6 * E18)))
            return [held, *results]

    _prices(venues)
    held, short, unapproved, fine = asyncio.run(scenario())
    agent, token = venue.agent, side.usd.address.lower()
    assert short.status == "failed" and short.reason.startswith(
        f"inventory: {agent} holds {held} of {token}, the leg needs {held + 1} (simulation reverted: "
    ), short.reason
    assert unapproved.status == "failed" and unapproved.reason.startswith(
        f"allowance: {agent} lets the router {router.lower()} take {5 * E18} of {token}, the leg needs {6 * E18}: "
        "approve the router for it once"
    ), unapproved.reason
    assert fine.status == "dry_run" and fine.amount_out > 0, fine.reason


def test_a_leg_whose_swap_needs_more_than_its_gas_limit_is_refused_before_signing(
    venues: tuple[Venue, Venue], tmp_path: Path
) -> None:
    """The simulation carries the leg's own gas limit: a swap that fits only the node's default cap would be
    signed, run out of gas on chain and leave the other leg open. The V2 swap here takes about 100,000 gas."""
    venue = venues[0]
    side = venue.side

    def command(gas_limit: int) -> CrossChainLegCommand:
        return CrossChainLegCommand(
            issued_by="crosschain", agent="xa", chain=side.name, position_id=new_id(), leg="buy",
            pool=side.pair.address.lower(), token_in=side.usd.address.lower(), token_out=side.weth.address.lower(),
            amount_in=E18, expected_out=1, min_out=0, gas_limit=gas_limit, notional_usd=Decimal(10),
            profit_usd=Decimal(5), native_usd=Decimal(3000), deadline=time.time() + 60,
        )  # fmt: skip

    async def scenario() -> list[Any]:
        async with dry_run_legs(venue, tmp_path) as legs:
            return [await legs.execute(command(limit)) for limit in (60_000, 300_000)]

    _prices(venues)
    short, enough = asyncio.run(scenario())
    assert short.status == "failed" and short.reason.startswith(
        f"gas: the leg takes more than its limit of 60000 gas through v2_router02 at {venue.router.address.lower()}"
    ), short.reason
    assert short.amount_in == 0 and short.tx_hash is None
    assert enough.status == "dry_run" and enough.amount_out > 0, enough.reason


def test_a_legs_head_gas_price_and_simulation_are_read_in_one_round_trips_wait(
    venues: tuple[Venue, Venue], tmp_path: Path
) -> None:
    """The leg's three reads before the gate are independent: all three are in flight together (before, one after
    the other: three round trips to the node on the way to the send)."""
    venue = venues[0]
    side = venue.side
    in_flight: list[str] = []
    together: list[list[str]] = []

    class Counting:
        def __init__(self, rpc: Any) -> None:
            self.rpc = rpc

        async def call(self, method: str, params: list[Any]) -> Any:
            in_flight.append(method)
            together.append(sorted(in_flight))
            try:
                return await self.rpc.call(method, params)
            finally:
                in_flight.remove(method)

    command = CrossChainLegCommand(
        issued_by="crosschain", agent="xa", chain=side.name, position_id=new_id(), leg="buy",
        pool=side.pair.address.lower(), token_in=side.usd.address.lower(), token_out=side.weth.address.lower(),
        amount_in=E18, expected_out=1, min_out=0, gas_limit=300_000, notional_usd=Decimal(10),
        profit_usd=Decimal(5), native_usd=Decimal(3000), deadline=time.time() + 60,
    )  # fmt: skip

    async def scenario() -> Any:
        async with dry_run_legs(venue, tmp_path) as legs:
            legs.executor.rpc = Counting(legs.executor.rpc)  # type: ignore[assignment]
            return await legs.execute(command)

    _prices(venues)
    result = asyncio.run(scenario())
    assert result.status == "dry_run" and result.amount_out > 0, result.reason
    assert max(together, key=len) == ["eth_blockNumber", "eth_call", "eth_gasPrice"], together


# ---- V3 pools -------------------------------------------------------------------------------------------

V3_FEE = 3000  # tick spacing 60


def _approve_as_agent(venue: Venue, spender: str) -> None:
    w3 = venue.side.chain.w3
    agent = w3.to_checksum_address(venue.agent)
    w3.provider.make_request("anvil_impersonateAccount", [agent])
    for token in (venue.side.usd, venue.side.weth):
        tx = token.functions.approve(spender, MAX_UINT256).transact({"from": agent, "gas": TX_GAS, "gasPrice": 0})
        assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    w3.provider.make_request("anvil_stopImpersonatingAccount", [agent])


@pytest.fixture(scope="module")
def v3(venues: tuple[Venue, Venue]) -> tuple[Venue, Venue]:
    """The published @uniswap/v3-core factory and pool and v3-periphery's SwapRouter on both chains: a WETH/TUSD
    pool at 3,060 per WETH (fee 0.3 %) with two positions (the price's own tick spacing, thin, and ±3,000
    ticks: a swap of the size a gap takes crosses initialized ticks), the agent key approving the router; then a
    new baseline."""
    for venue in venues:
        side, chain = venue.side, venue.side.chain
        side.fresh()
        factory, npm, router, lens = deploy_v3_stack(chain, (side.usd, side.weth))
        chain.transact(factory.functions.createPool(side.usd.address, side.weth.address, V3_FEE))
        address = factory.functions.getPool(side.usd.address, side.weth.address, V3_FEE).call()
        pool = chain.at(f"{V3_CORE}/UniswapV3Pool.sol/UniswapV3Pool.json", address)
        weth0 = int(side.weth.address, 16) < int(side.usd.address, 16)
        chain.transact(pool.functions.initialize(isqrt((3060 << 192) if weth0 else (1 << 192) // 3060)))
        centre = pool.functions.slot0().call()[1] // 60 * 60
        token0, token1 = (side.weth, side.usd) if weth0 else (side.usd, side.weth)
        # The price's own spacing, thin (either way a sale leaves it), then ±3,000 ticks for the depth.
        for (lower, upper), weth in (((centre, centre + 60), E18 // 100), ((centre - 3000, centre + 3000), 2 * E18)):
            amounts = (weth, weth * 3060) if weth0 else (weth * 3060, weth)
            params = (token0.address, token1.address, V3_FEE, lower, upper, *amounts, 0, 0, chain.account, DEADLINE)
            chain.transact(npm.functions.mint(params))
        _approve_as_agent(venue, router.address)
        venue.v3_router, venue.v3_pool, venue.v3_lens = router, pool, lens
        side.deployed = chain.snapshot()
    return venues


def _v3_state(venue: Venue) -> tuple[V3PoolState, bool]:
    """The V3 pool as the agent's state syncer holds it (every initialized tick), and whether WETH is token0."""
    assert venue.v3_pool is not None and venue.v3_lens is not None
    tick = venue.v3_pool.functions.slot0().call()[1]
    state = read_v3_pool(venue.v3_lens, venue.v3_pool, tick - 20_000, tick + 20_000)
    return state, int(venue.side.weth.address, 16) < int(venue.side.usd.address, 16)


def _v2_v3_reporters(va: Venue, vb: Venue) -> list[tuple[PairPriceReporter, str, int]]:
    """Alpha's V2 pair and beta's V3 pool, each through its agent's reporter from the pool store's exact state."""
    assert vb.v3_pool is not None
    alpha, beta = va.side, vb.side
    state, _ = _v3_state(vb)
    pool = vb.v3_pool.address.lower()
    tokens = sorted((beta.usd.address.lower(), beta.weth.address.lower()), key=lambda a: int(a, 16))
    store = PoolStore(beta.name, block=beta.chain.w3.eth.block_number)
    store.add(V3Pool(pool, "uniswap_v3", tokens[0], tokens[1], state))
    weth = alpha.weth.address.lower()
    v2 = PairPricesConfig(pairs=(PairSpec(pool=alpha.pair.address.lower(), base=weth),))
    v3 = PairPricesConfig(pairs=(PairSpec(pool=pool, base=weth),), sell_sizes=(E18,))
    return [
        (PairPriceReporter("xa", alpha.store(), v2, lambda _: None), alpha.pair.address.lower(), store.block),
        (PairPriceReporter("xb", store, v3, lambda _: None), pool, store.block),
    ]


def _v3_out(state: V3PoolState, zero_for_one: bool, amount_in: int) -> tuple[int, V3PoolState]:
    swap = simulate_swap(state, zero_for_one, amount_in)
    out = -(swap.amount1 if zero_for_one else swap.amount0)
    after = dataclasses.replace(state, sqrt_price_x96=swap.sqrt_price_x96, tick=swap.tick, liquidity=swap.liquidity)
    return out, after


def test_a_v2_v3_gap_fills_both_legs_and_closes_with_the_predicted_pnl(
    v3: tuple[Venue, Venue], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    """Alpha's V2 pair at 3,000, beta's V3 pool at 3,060: bought on alpha's pair through Router02, sold on beta's
    V3 pool through the SwapRouter's exactInputSingle; the V3 pool paid what the engine's exact V3 math
    predicted, to the unit, and ended at the simulated price."""
    va, vb = v3
    va.side.set_price(100 * E18, 300_000 * E18)
    vb.side.fresh()
    state, weth0 = _v3_state(vb)
    before = va.balances(), vb.balances()

    async def scenario() -> tuple[Position, Any]:
        async with fleet(v3, redis_server, postgres, tmp_path) as f:
            await f.publish(_v2_v3_reporters(va, vb), tmp_path)
            position = await f.position("closed", "failed", "unwound", "stuck", "refused")
            return position, await f.record(position.id)

    started = time.perf_counter()
    position, (state_db, _record, legs) = asyncio.run(scenario())
    opp = position.opportunity
    amount_in, base, amount_out = int(opp["amount_in"]), int(opp["base_amount"]), int(opp["amount_out"])
    assert position.state == state_db == "closed", position.steps
    assert (opp["buy_v3_fee"], opp["sell_v3_fee"]) == (None, str(V3_FEE))
    assert position.legs["sell"].command.v3_fee == V3_FEE and position.legs["buy"].command.v3_fee is None
    after = va.balances(), vb.balances()
    assert (after[0][0] - before[0][0], after[0][1] - before[0][1]) == (-amount_in, base)
    assert (after[1][0] - before[1][0], after[1][1] - before[1][1]) == (amount_out, -base)
    assert position.realized == {"alpha:TUSD": -amount_in, "alpha:WETH": base, "beta:WETH": -base,
                                 "beta:TUSD": amount_out}  # fmt: skip
    assert amount_out - amount_in == int(opp["gross"]) > 0
    assert position.realized_usd == Decimal(int(opp["gross"])) / E18
    # The V3 pool's own swap against the exact V3 math on the pool's state before it: output and end price.
    swap = simulate_swap(state, weth0, base)
    assert -(swap.amount1 if weth0 else swap.amount0) == amount_out
    assert vb.v3_pool.functions.slot0().call()[0] == swap.sqrt_price_x96  # type: ignore[union-attr]
    assert swap.ticks_crossed >= 1  # the sale crossed initialized ticks of the published range
    assert sorted(legs) == [("buy", "alpha", "landed", amount_in, base), ("sell", "beta", "landed", base, amount_out)]
    print(f"V2-V3 gap: {base} WETH, gross {opp['gross']}, {swap.ticks_crossed} tick(s) crossed, "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip


def test_a_landed_v3_leg_is_unwound_on_its_own_pool_for_exactly_the_expected_output(
    v3: tuple[Venue, Venue], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    """Alpha not live: its V2 buy is only simulated, beta's V3 sale lands and is sold back on the same V3 pool
    (the pool after the sale, from the engine's published state): for exactly the output the book expected."""
    va, vb = v3
    va.side.set_price(100 * E18, 300_000 * E18)
    vb.side.fresh()
    state, weth0 = _v3_state(vb)
    before = vb.balances()

    async def scenario() -> Position:
        async with fleet(v3, redis_server, postgres, tmp_path, live=(False, True), unwind={"action": "sell_back"}) as f:
            await f.publish(_v2_v3_reporters(va, vb), tmp_path)
            return await f.position("unwound", "stuck", "closed", "failed", "refused")

    position = asyncio.run(scenario())
    assert position.state == "unwound", position.steps
    buy, sell, unwind = position.legs["buy"], position.legs["sell"], position.legs["unwind_sell"]
    assert buy.status == "dry_run" and sell.status == "landed" and unwind.status == "landed"
    assert unwind.chain == "beta" and unwind.command.pool == sell.command.pool and unwind.command.v3_fee == V3_FEE
    base = sell.command.amount_in
    sold, moved = _v3_out(state, weth0, base)
    back, _ = _v3_out(moved, not weth0, sold)
    assert sell.amount_out == sold
    assert (unwind.command.amount_in, unwind.command.expected_out, unwind.amount_out) == (sold, back, back)
    after = vb.balances()
    assert (after[0] - before[0], after[1] - before[1]) == (0, back - base)
    assert position.realized == {"beta:WETH": back - base, "beta:TUSD": 0}


def test_a_v3_leg_goes_only_through_a_router_whose_factory_has_its_pool(
    v3: tuple[Venue, Venue], tmp_path: Path
) -> None:
    """The V3 router finds the pool by (tokens, fee) from its own factory: a leg naming another pool (another
    factory's, or the fee of another pool) is rejected before any simulation; the right one is simulated (dry-run)
    for exactly the V3 math's output; a chain without `v3_swap_router` rejects V3 legs and still takes V2 ones."""
    venue = v3[0]
    side = venue.side
    side.fresh()
    assert venue.v3_router is not None and venue.v3_pool is not None
    state, weth0 = _v3_state(venue)

    def command(pool: str, fee: int | None) -> CrossChainLegCommand:
        return CrossChainLegCommand(
            issued_by="crosschain", agent="xa", chain=side.name, position_id=new_id(), leg="sell", pool=pool,
            token_in=side.weth.address.lower(), token_out=side.usd.address.lower(), amount_in=E18, expected_out=1,
            min_out=0, v3_fee=fee, gas_limit=300_000, notional_usd=Decimal(10), profit_usd=Decimal(5),
            native_usd=Decimal(3000), deadline=time.time() + 60,
        )  # fmt: skip

    async def run(v3_router: str | None, commands: list[CrossChainLegCommand]) -> list[Any]:
        (tmp_path / str(len(commands))).mkdir()
        async with dry_run_legs(venue, tmp_path / str(len(commands)), v3_swap_router=v3_router) as legs:
            return [await legs.execute(c) for c in commands]

    pool = venue.v3_pool.address.lower()
    pair = side.pair.address.lower()
    commands = [command(pool, V3_FEE), command(pair, V3_FEE), command(pool, 500)]
    right, other_pool, other_fee = asyncio.run(run(venue.v3_router.address.lower(), commands))
    assert right.status == "dry_run", right.reason
    assert right.amount_out == _v3_out(state, weth0, E18)[0]
    for wrong in (other_pool, other_fee):
        assert wrong.status == "rejected" and wrong.reason.startswith("v3_swap_router: "), wrong.reason
    assert other_fee.reason.endswith(f"not the leg's pool {pool} (another factory?)")
    no_router, v2 = asyncio.run(run(None, [command(pool, V3_FEE), command(side.pair.address.lower(), None)]))
    assert no_router.status == "rejected" and no_router.reason.startswith("v3_swap_router (V3 SwapRouter): ")
    assert v2.status != "rejected", v2.reason  # the V2 leg goes to Router02 as before (the pair is empty: it reverts)


class _CountedRpc:
    """The executor's own RPC to the node, each call written down (method, first parameter) before it is sent."""

    def __init__(self, rpc: HttpJsonRpc) -> None:
        self.rpc = rpc
        self.calls: list[tuple[str, Any]] = []

    async def call(self, method: str, params: list[Any]) -> Any:
        self.calls.append((method, params[0] if params else None))
        return await self.rpc.call(method, params)


def test_an_unwind_on_the_same_v3_pool_asks_the_factory_nothing_again(v3: tuple[Venue, Venue], tmp_path: Path) -> None:
    """A V3 leg checks its pool against the router's factory (factory(), then getPool(tokens, fee)) once; the
    unwind on the same pool names its tokens the other way round and is answered from the same cache entry:
    two RPC calls fewer than the leg, none of them to the factory, and both legs simulated on the node."""
    venue = v3[0]
    side = venue.side
    side.fresh()
    assert venue.v3_router is not None and venue.v3_pool is not None
    pool, weth, usd = venue.v3_pool.address.lower(), side.weth.address.lower(), side.usd.address.lower()
    lookups = {"0x" + FACTORY.hex(), "0x" + GET_POOL.hex()}

    def command(leg: str, token_in: str, token_out: str, amount_in: int) -> CrossChainLegCommand:
        return CrossChainLegCommand(
            issued_by="crosschain", agent="xa", chain=side.name, position_id=new_id(), leg=leg, pool=pool,
            token_in=token_in, token_out=token_out, amount_in=amount_in, expected_out=1, min_out=0, v3_fee=V3_FEE,
            gas_limit=300_000, notional_usd=Decimal(10), profit_usd=Decimal(5), native_usd=Decimal(3000),
            deadline=time.time() + 60,
        )  # fmt: skip

    async def run() -> list[tuple[Any, list[tuple[str, Any]]]]:
        async with dry_run_legs(venue, tmp_path, v3_swap_router=venue.v3_router.address.lower()) as legs:  # type: ignore[union-attr]
            counted = _CountedRpc(legs.executor.rpc)
            legs.executor.rpc = counted  # type: ignore[assignment]
            out = []
            for c in (command("sell", weth, usd, E18), command("unwind", usd, weth, 3000 * E18)):
                counted.calls.clear()
                out.append((await legs.execute(c), list(counted.calls)))
            return out

    (sold, sell_calls), (unwound, unwind_calls) = asyncio.run(run())
    assert sold.status == unwound.status == "dry_run" and unwound.amount_out > 0, (sold.reason, unwound.reason)
    to_factory = [c for c in sell_calls if c[0] == "eth_call" and c[1]["data"][:10] in lookups]
    assert len(to_factory) == 2, sell_calls
    assert not [c for c in unwind_calls if c[0] == "eth_call" and c[1]["data"][:10] in lookups], unwind_calls
    assert len(unwind_calls) == len(sell_calls) - 2


# ---- SwapRouter02 (@uniswap/swap-router-contracts) -----------------------------------------------------------


@pytest.fixture(scope="module")
def router02(v3: tuple[Venue, Venue]) -> tuple[Venue, Venue]:
    """The published SwapRouter02 on both chains, on the chain's V2 factory (the pair's) and V3 factory (the pool's),
    the agent key approving it once per token; then a new baseline."""
    for venue in v3:
        side, chain = venue.side, venue.side.chain
        assert venue.v3_router is not None
        side.fresh()
        factory_v2, factory_v3 = side.pair.functions.factory().call(), venue.v3_router.functions.factory().call()
        venue.router02 = deploy_swap_router02(chain, factory_v2, factory_v3, side.weth.address)
        _approve_as_agent(venue, venue.router02.address)
        side.deployed = chain.snapshot()
    return v3


def _through_router02(venue: Venue, v3: bool) -> Venue:
    """`venue` whose agent names SwapRouter02 for its V3 pool (fee 3000) or its V2 pair (no fee)."""
    assert venue.router02 is not None and venue.v3_pool is not None
    pool = venue.v3_pool.address if v3 else venue.side.pair.address
    entry = {"pool": pool.lower(), "router": venue.router02.address.lower(), "kind": "swap_router02"}
    return dataclasses.replace(venue, leg_venues=({**entry, "fee": V3_FEE} if v3 else entry,))


def test_a_gap_through_swap_router02_lands_both_legs_for_exactly_the_predicted_outputs(
    router02: tuple[Venue, Venue], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    """Alpha's V2 pair at 3,000 (swapExactTokensForTokens through SwapRouter02's V2 path) against beta's V3 pool at
    3,060 (exactInputSingle through SwapRouter02), each in multicall(deadline, ...): both legs land through
    SwapRouter02, the balances move exactly as predicted and the V3 pool pays the exact V3 math's output, crossing
    an initialized tick, ending at the simulated price."""
    va, vb = _through_router02(router02[0], v3=False), _through_router02(router02[1], v3=True)
    va.side.set_price(100 * E18, 300_000 * E18)
    vb.side.fresh()
    state, weth0 = _v3_state(vb)
    before = va.balances(), vb.balances()

    async def scenario() -> Position:
        async with fleet((va, vb), redis_server, postgres, tmp_path) as f:
            await f.publish(_v2_v3_reporters(va, vb), tmp_path)
            return await f.position("closed", "failed", "unwound", "stuck", "refused")

    position = asyncio.run(scenario())
    opp = position.opportunity
    amount_in, base, amount_out = int(opp["amount_in"]), int(opp["base_amount"]), int(opp["amount_out"])
    assert position.state == "closed", position.steps
    for leg, venue in ((position.legs["buy"], va), (position.legs["sell"], vb)):
        sent = venue.side.chain.w3.eth.get_transaction(leg.tx_hash)  # type: ignore[arg-type]
        assert sent["to"] == venue.router02.address, leg.reason  # type: ignore[union-attr]
        used = venue.side.chain.w3.eth.get_transaction_receipt(leg.tx_hash)["gasUsed"]  # type: ignore[arg-type]
        print(f"{leg.chain} leg through SwapRouter02: {used} gas of {leg.command.gas_limit}")
    after = va.balances(), vb.balances()
    assert (after[0][0] - before[0][0], after[0][1] - before[0][1]) == (-amount_in, base)
    assert (after[1][0] - before[1][0], after[1][1] - before[1][1]) == (amount_out, -base)
    assert amount_out - amount_in == int(opp["gross"]) > 0
    swap = simulate_swap(state, weth0, base)
    assert -(swap.amount1 if weth0 else swap.amount0) == amount_out
    assert vb.v3_pool.functions.slot0().call()[0] == swap.sqrt_price_x96  # type: ignore[union-attr]
    assert swap.ticks_crossed >= 1


def test_a_swap_router02_leg_whose_minimum_is_not_met_reverts_and_the_landed_leg_is_sold_back(
    router02: tuple[Venue, Venue], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    """Beta's V3 pool is published, then someone sells WETH into it before the legs: the sale through SwapRouter02
    cannot pay its minimum ("Too little received" at the head's simulation), nothing is signed on beta, and
    alpha's landed buy is sold back (sell_back policy): the position is `unwound`, beta's inventory untouched."""
    va, vb = _through_router02(router02[0], v3=False), _through_router02(router02[1], v3=True)
    va.side.set_price(100 * E18, 300_000 * E18)
    vb.side.fresh()
    reported = _v2_v3_reporters(va, vb)  # beta's pool state as the agent held it
    beta = vb.side
    assert vb.v3_router is not None
    beta.chain.transact(vb.v3_router.functions.exactInputSingle(
        (beta.weth.address, beta.usd.address, V3_FEE, beta.chain.account, DEADLINE, E18 // 2, 0, 0)
    ))  # fmt: skip
    before = vb.balances()
    nonce = beta.chain.w3.eth.get_transaction_count(beta.chain.w3.to_checksum_address(vb.agent))

    async def scenario() -> Position:
        async with fleet((va, vb), redis_server, postgres, tmp_path, unwind={"action": "sell_back"}) as f:
            await f.publish(reported, tmp_path)
            return await f.position("unwound", "stuck", "closed", "failed", "refused")

    position = asyncio.run(scenario())
    sell = position.legs["sell"]
    assert (sell.status, sell.tx_hash) == ("failed", None), sell.reason
    assert "simulation reverted: Too little received" in sell.reason, sell.reason
    assert position.state == "unwound" and position.legs["unwind_buy"].status == "landed", position.steps
    assert vb.balances() == before
    assert beta.chain.w3.eth.get_transaction_count(beta.chain.w3.to_checksum_address(vb.agent)) == nonce


def test_swap_router02_legs_simulate_to_the_base_unit_and_check_the_routers_factories(
    router02: tuple[Venue, Venue], tmp_path: Path
) -> None:
    """Dry-run, as a V2 leg: SwapRouter02's V3 leg is simulated at exactly the V3 math's output and its V2 leg at
    exactly the pair's; one base unit more as the minimum reverts ("Too little received"); a leg whose fee is not
    its pool's venue tier, and a venue whose router's V2 factory has another pair for the tokens, are rejected
    before any simulation."""
    venue = router02[0]
    side = venue.side
    side.set_price(100 * E18, 300_000 * E18)
    assert venue.router02 is not None and venue.v3_pool is not None
    state, weth0 = _v3_state(venue)
    pool, pair, r02 = venue.v3_pool.address.lower(), side.pair.address.lower(), venue.router02.address.lower()
    weth, usd = side.weth.address.lower(), side.usd.address.lower()
    v3_exact = _v3_out(state, weth0, E18)[0]
    v2_exact = get_amount_out(1000 * E18, 300_000 * E18, 100 * E18)  # TUSD in, the pair at 3,000 per WETH

    def command(pool: str, fee: int | None, token_in: str, token_out: str, amount_in: int, min_out: int) -> Any:
        return CrossChainLegCommand(
            issued_by="crosschain", agent="xa", chain=side.name, position_id=new_id(), leg="sell", pool=pool,
            token_in=token_in, token_out=token_out, amount_in=amount_in, expected_out=max(min_out, 1),
            min_out=min_out, v3_fee=fee, gas_limit=300_000, notional_usd=Decimal(10), profit_usd=Decimal(5),
            native_usd=Decimal(3000), deadline=time.time() + 60,
        )  # fmt: skip

    venues = [
        {"pool": pool, "router": r02, "kind": "swap_router02", "fee": V3_FEE},
        {"pool": pair, "router": r02, "kind": "swap_router02"},
        # The V3 pool's address named as a V2 pair: the router's V2 factory has the tokens' pair elsewhere.
        {"pool": "0x" + "00" * 19 + "01", "router": r02, "kind": "swap_router02"},
    ]
    commands = [
        command(pool, V3_FEE, weth, usd, E18, v3_exact), command(pool, V3_FEE, weth, usd, E18, v3_exact + 1),
        command(pair, None, usd, weth, 1000 * E18, v2_exact), command(pair, None, usd, weth, 1000 * E18, v2_exact + 1),
        command(pool, 500, weth, usd, E18, 0), command("0x" + "00" * 19 + "01", None, weth, usd, E18, 0),
    ]  # fmt: skip

    async def run() -> list[Any]:
        async with dry_run_legs(venue, tmp_path, leg_venues=venues) as legs:
            return [await legs.execute(c) for c in commands]

    v3_ok, v3_short, v2_ok, v2_short, wrong_fee, wrong_pair = asyncio.run(run())
    assert (v3_ok.status, v3_ok.amount_out) == ("dry_run", v3_exact), v3_ok.reason
    assert (v2_ok.status, v2_ok.amount_out) == ("dry_run", v2_exact), v2_ok.reason
    for short in (v3_short, v2_short):
        assert short.status == "failed" and "simulation reverted: Too little received" in short.reason, short.reason
    assert wrong_fee.status == "rejected" and wrong_fee.reason == (
        f"leg_venues: pool {pool} is a V3 pool of fee {V3_FEE} through swap_router02 {r02}, the leg says a V3 pool "
        "of fee 500"
    )
    assert wrong_pair.status == "rejected" and wrong_pair.reason == (
        f"leg_venues: swap_router02 {r02} swaps {weth}/{usd} as a V2 pair in pool {pair}, not the leg's pool "
        f"0x{'00' * 19}01 (another factory?)"
    )
