"""The Positions view: the cross-chain position book on the dashboard, against the real `mevcontrol run` process
over TLS with real Redis and PostgreSQL and cross-chain execution configured (registry of two chains, two
agents that never answer). Two `stuck` positions are in crosschain_positions when it starts (read back as
after a restart, their exposure counted); the pool of one has a price on the bus, the other's has none.

Checked: the view's figures (counts, exposure per chain at the configured prices, the legs); who may act
(a viewer reads it, has no button, and is refused the action; an operator's retry is audited and sends the
unwind to the leg's agent; a position with no price is refused naming why, an unknown one is a 404; the
retried position comes back `stuck` when its agent does not answer); and the view in headless chromium
(Debian's, by executable_path), key 0, live as the book moves. A control plane without cross-chain
execution serves no such view."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import yaml
from eth_utils import to_checksum_address
from mevcontrol.crosschain import CrossChainConfig, CrossChainEngine
from mevcontrol.positions import Leg, Position, PositionBook
from redis.asyncio import Redis

from mevagent.bus.events import FIELD, CrossChainLegCommand, PairPrice, encode, new_id, stream_of
from testbed.control import Operator, control_config, start_control, tls_pair
from testbed.crosschain import registry_file
from testbed.services import Postgres, RedisServer, free_port

from .test_dashboard import SCREENSHOTS, browser, healthy, logged_in

ALICE, VICTOR = Operator("alice", "operator"), Operator("victor", "viewer")
E18 = 10**18
WETH = {"alpha": "0x" + "a1" * 20, "beta": "0x" + "b1" * 20}
TUSD = {"alpha": "0x" + "a2" * 20, "beta": "0x" + "b2" * 20}
POOL = {"alpha": "0x" + "a3" * 20, "beta": "0x" + "b3" * 20}
ETH_USD = Decimal(3000)

pytestmark = pytest.mark.timeout(150)


def registry(directory: Path) -> Path:
    """The two chains' tokens (addresses as the registry wants them: EIP-55) and the bridges joining them."""
    checksummed = [{c: to_checksum_address(a) for c, a in tokens.items()} for tokens in (WETH, TUSD)]
    return registry_file(directory, *checksummed)


def _command(position: str, leg: str, chain: str, token_in: str, token_out: str, amount_in: int, out: int) -> Any:
    return CrossChainLegCommand(
        id=new_id(), issued_by="control-plane", agent={"alpha": "xa", "beta": "xb"}[chain], chain=chain,
        position_id=position, leg=leg, pool=POOL[chain], token_in=token_in, token_out=token_out, amount_in=amount_in,
        expected_out=out, min_out=out * 99 // 100, gas_limit=150_000, notional_usd=Decimal(3000), profit_usd=1,
        native_usd=3000, deadline=time.time() - 60,
    )  # fmt: skip


def stuck_position(buy_chain: str, sell_chain: str, bought: int) -> Position:
    """Bought `bought` WETH for 3,000 TUSD on `buy_chain`; the sell leg failed on the other, and so did the
    unwind of the bought WETH: stuck, the WETH still held."""
    pid = new_id()
    buy = _command(pid, "buy", buy_chain, TUSD[buy_chain], WETH[buy_chain], 3000 * E18, bought)
    sell = _command(pid, "sell", sell_chain, WETH[sell_chain], TUSD[sell_chain], bought, 3010 * E18)
    unwind = _command(pid, "unwind", buy_chain, WETH[buy_chain], TUSD[buy_chain], bought, 2990 * E18)
    at = time.time() - 120
    position = Position(pid, {"buy_chain": buy_chain, "sell_chain": sell_chain, "base": "eth", "quote": "tusd",
                              "net_usd": "7.5"}, (buy_chain, POOL[buy_chain], sell_chain, POOL[sell_chain]), "stuck",
                        at)  # fmt: skip
    position.legs = {
        "buy": Leg("buy", buy_chain, buy.agent, buy, 0.0, "landed", bought, 3000 * E18, "0x" + "01" * 32),
        "sell": Leg("sell", sell_chain, sell.agent, sell, 0.0, "reverted", 0, 0, "0x" + "02" * 32, "slippage"),
        "unwind_buy": Leg("unwind", buy_chain, unwind.agent, unwind, 0.0, "failed", 0, 0, None, "below min_out"),
    }
    position.steps = [f"{at:.3f} opened", f"{at + 30:.3f} stuck: the unwind of the buy leg failed (below min_out)"]
    return position


@dataclass
class Plane:
    base: str
    pg: str
    redis: RedisServer
    withprice: Position  # its buy leg's pool has a price on the bus
    noprice: Position


async def _store(dsn: str, *positions: Position) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for p in positions:
            await conn.execute(
                """INSERT INTO crosschain_positions (id, opened_at, updated_at, state, record)
                   VALUES ($1, to_timestamp($2), now(), $3, $4::jsonb)""",
                p.id, p.opened_at, p.state, orjson.dumps(p.as_json()).decode(),
            )  # fmt: skip
    finally:
        await conn.close()


async def _publish_price(redis_server: RedisServer) -> None:
    """Alpha's pool as an agent's reporter publishes it: 1,000 WETH / 3,000,000 TUSD, 0.3 %."""
    event = PairPrice(
        agent="xa", chain="alpha", block=7, pool=POOL["alpha"], fork="uniswap_v2", base=WETH["alpha"],
        quote=TUSD["alpha"], reserve_base=1000 * E18, reserve_quote=3_000_000 * E18, fee_base_in=3, fee_quote_in=3,
        fee_denominator=1000, price=3000,
    )  # fmt: skip
    redis = Redis.from_url(redis_server.url, password=redis_server.password)
    try:
        stream, _ = stream_of(event)
        await redis.xadd(stream, {FIELD: encode(event)})
    finally:
        await redis.aclose()


@pytest.fixture(scope="module")
def plane(redis_server: RedisServer, postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    directory = tmp_path_factory.mktemp("positions")
    cert, key = tls_pair(directory)
    execution = {"agents": {"alpha": "xa", "beta": "xb"}, "leg_timeout_s": 2, "settle_s": 1}
    crosschain = {"registry_file": str(registry(directory)), "usd": {"eth": str(ETH_USD), "tusd": "1"},
                  "gas_price_wei": {"alpha": 10**9, "beta": 10**9}, "execution": execution}  # fmt: skip
    path = control_config(
        directory, redis_server, postgres, [ALICE, VICTOR], rate_limit_per_s=1000, crosschain=crosschain,
        live_chains=["alpha", "beta"],
    )  # fmt: skip
    data = yaml.safe_load(path.read_text())
    data["listen"].update({"tls_cert_file": str(cert), "tls_key_file": str(key), "bridges_port": free_port()})
    path.write_text(yaml.safe_dump(data))
    withprice, noprice = stuck_position("alpha", "beta", 2 * E18), stuck_position("beta", "alpha", 3 * E18)
    asyncio.run(_store(postgres.dsn, withprice, noprice))
    asyncio.run(_publish_price(redis_server))  # the engine reads the price stream from its start
    proc = start_control(path, directory / "control.log")
    try:
        base = f"https://127.0.0.1:{data['listen']['dashboard_port']}"
        asyncio.run(healthy(base))
        yield Plane(base, postgres.dsn, redis_server, withprice, noprice)
    finally:
        proc.terminate()
        proc.wait(20)
        print((directory / "control.log").read_text()[-3000:])


async def _call(base: str, method: str, path: str, who: Operator | None, body: Any = None) -> tuple[int, Any]:
    headers = who.auth if who is not None else {}
    async with aiohttp.ClientSession() as s, s.request(method, base + path, headers=headers, json=body, ssl=False) as r:
        return r.status, await r.json()


async def _eventually_state(base: str, position_id: str, state: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        _, view = await _call(base, "GET", "/dashboard/view/positions", VICTOR)
        row = next(r for r in view["positions"] if r["id"] == position_id)
        if row["state"] == state:
            return view
        assert time.monotonic() < deadline, f"{position_id} still {row['state']}, not {state}"
        await asyncio.sleep(0.2)


def test_the_view_counts_the_restored_positions_and_only_an_operator_retries_an_unwind(plane: Plane) -> None:
    async def scenario() -> None:
        status, me = await _call(plane.base, "GET", "/dashboard/session", VICTOR)
        assert status == 200 and "positions" in me["views"], me
        status, view = await _call(plane.base, "GET", "/dashboard/view/positions", VICTOR)
        assert status == 200, view
        assert view["counts"]["stuck"] == 2 and sum(view["counts"].values()) == 2, view["counts"]
        # Each stuck position's held WETH at 3,000 USD: 2 on alpha, 3 on beta.
        assert {c: Decimal(v) for c, v in view["exposure_by_chain"].items()} == {"alpha": 6000, "beta": 9000}
        assert Decimal(view["exposure_usd"]) == 15000 and Decimal(view["fleet_exposure_usd"]) >= 15000
        assert view["policy"]["action"] == "sell_back"
        row = next(r for r in view["positions"] if r["id"] == plane.withprice.id)
        assert (row["buy_chain"], row["sell_chain"], row["state"]) == ("alpha", "beta", "stuck")
        assert [(leg["leg"], leg["status"]) for leg in row["legs"]] == [
            ("buy", "landed"), ("sell", "reverted"), ("unwind", "failed")
        ]  # fmt: skip
        assert "command" not in row["legs"][0] and row["last_step"].endswith("restored after a restart: stuck")

        act = "/dashboard/act/positions/{}/unwind"
        # A viewer may read, not act; an unknown position; one whose pool has no price yet (named).
        status, body = await _call(plane.base, "POST", act.format(plane.withprice.id), VICTOR, {})
        assert status == 403, body
        status, body = await _call(plane.base, "POST", act.format(new_id()), ALICE, {})
        assert status == 404 and body["fields"] == ["id"], body
        status, body = await _call(plane.base, "POST", act.format(plane.noprice.id), ALICE, {})
        assert status == 409 and f"no price yet for pool {POOL['beta']} on beta" in body["error"], body
        _, view = await _call(plane.base, "GET", "/dashboard/view/positions", VICTOR)
        refused = next(r for r in view["positions"] if r["id"] == plane.noprice.id)
        assert refused["state"] == "stuck" and refused["last_step"].endswith("restored after a restart: stuck")

        # The operator's retry: the held 2 WETH sold back on alpha's pool at its price now, by alpha's agent.
        status, body = await _call(plane.base, "POST", act.format(plane.withprice.id), ALICE, {"max_slippage_bps": 80})
        assert status == 200 and body["state"] == "unwinding", body
        status, body = await _call(plane.base, "POST", act.format(plane.withprice.id), ALICE, {})
        assert status == 409 and "unwinding, not stuck" in body["error"], body
        conn = await asyncpg.connect(plane.pg)
        try:
            command = await conn.fetchrow(
                """SELECT target, payload FROM commands WHERE kind = 'crosschain_leg'
                   AND payload->>'position_id' = $1 AND payload->>'leg' = 'unwind'""",
                plane.withprice.id,
            )
            audit = await conn.fetch(
                """SELECT operator, result, after FROM audit_log WHERE action = 'crosschain_unwind' AND target = $1
                   ORDER BY id""",
                plane.withprice.id,
            )
            refused = await conn.fetch(
                "SELECT result FROM audit_log WHERE action = 'crosschain_unwind' AND target = $1 ORDER BY id",
                plane.noprice.id,
            )
        finally:
            await conn.close()
        sent = orjson.loads(command["payload"])
        expected = (2 * E18 * 997 * 3_000_000 * E18) // (1000 * E18 * 1000 + 2 * E18 * 997)  # the pool's V2 output
        assert command["target"] == "xa" and int(sent["amount_in"]) == 2 * E18
        assert int(sent["expected_out"]) == expected and int(sent["min_out"]) == expected * (10_000 - 80) // 10_000
        # The intent, then what became of it: the operator's bound and the unwind's command id; the refused one.
        assert [(a["operator"], a["result"]) for a in audit] == [("alice", "requested"), ("alice", "sent")]
        assert orjson.loads(audit[1]["after"]) == {"max_slippage_bps": 80, "command_ids": [sent["id"]]}
        assert [r["result"] for r in refused] == ["requested", "refused"]
        # Nobody answers for alpha: after the leg's deadline and settle time the position is stuck again.
        await _eventually_state(plane.base, plane.withprice.id, "stuck")

    asyncio.run(scenario())


def test_a_viewer_sees_the_positions_and_an_operator_unwinds_from_the_page(plane: Plane) -> None:
    problems: list[str] = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def scenario() -> None:
        await _eventually_state(plane.base, plane.withprice.id, "stuck")  # whichever test ran first
        async with browser() as chromium:
            for who in (VICTOR, ALICE):
                page = await logged_in(chromium, plane.base, who, problems=problems)
                assert await page.is_visible("#tab-positions")
                await page.keyboard.press("0")  # the tenth view's key
                await page.wait_for_selector("#positions-table table", timeout=20_000)
                assert await page.get_attribute("#tabs a[data-view='positions']", "aria-current") == "page"
                cards = await page.inner_text("#positions-cards")
                assert "$15,000.00" in cards and "sell_back" in cards, cards
                assert await page.locator("#positions-table tbody tr").count() == 2
                assert await page.locator("#positions-table [data-state='stuck']").count() == 2
                exposure = await page.inner_text("#positions-exposure")
                assert "alpha" in exposure and "$6,000.00" in exposure and "$9,000.00" in exposure, exposure
                buttons = page.locator("#positions-table button[data-unwind]")
                if who is VICTOR:
                    assert await buttons.count() == 0
                else:
                    assert await buttons.count() == 2
                    await page.click(f"button[data-unwind='{plane.withprice.id}']")
                    # The answer, then the row as the book moved (pushed live): unwinding, then stuck again.
                    await page.wait_for_selector("#toast .msg:not(.bad)", timeout=10_000)
                    assert "unwinding" in await page.inner_text("#toast")
                    await page.wait_for_selector(
                        "#positions-table [data-state='unwinding']", state="attached", timeout=10_000
                    )
                    await page.wait_for_function(
                        "() => document.querySelectorAll(\"#positions-table [data-state='stuck']\").length === 2",
                        timeout=20_000,
                    )
                for width, height in ((1440, 900), (1024, 768)):  # readable on a laptop: no wider than the window
                    await page.set_viewport_size({"width": width, "height": height})
                    overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
                    assert overflow <= 0, f"{width}x{height}: {overflow} px wider than the window"
                    await page.screenshot(path=str(SCREENSHOTS / f"positions-{who.role}-{width}x{height}.png"))
                await page.context.close()
        bad = [p for p in problems if "401 (Unauthorized)" not in p]
        assert not bad, bad

    asyncio.run(scenario())


def test_without_cross_chain_execution_there_is_no_positions_view(
    redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    path = control_config(tmp_path, redis_server, postgres, [VICTOR])
    data = yaml.safe_load(path.read_text())
    cert, key = tls_pair(tmp_path)
    data["listen"].update({"tls_cert_file": str(cert), "tls_key_file": str(key)})
    path.write_text(yaml.safe_dump(data))
    proc = start_control(path, tmp_path / "control.log")
    try:
        base = f"https://127.0.0.1:{data['listen']['dashboard_port']}"

        async def scenario() -> None:
            await healthy(base)
            status, me = await _call(base, "GET", "/dashboard/session", VICTOR)
            assert status == 200 and "positions" not in me["views"] and "pnl" in me["views"], me
            status, body = await _call(base, "GET", "/dashboard/view/positions", VICTOR)
            assert status == 404 and "crosschain.execution" in body["error"], body

        asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_registry_the_engine_refuses_stops_the_control_plane_with_one_line_naming_it(
    redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    bad = tmp_path / "registry.yml"
    bad.write_text(registry(tmp_path).read_text().replace(to_checksum_address(WETH["alpha"]), WETH["alpha"]))
    crosschain = {"registry_file": str(bad), "usd": {"eth": "3000", "tusd": "1"}}
    path = control_config(tmp_path, redis_server, postgres, [VICTOR], crosschain=crosschain)
    data = yaml.safe_load(path.read_text())
    data["listen"]["bridges_port"] = free_port()
    path.write_text(yaml.safe_dump(data))
    command = [sys.executable, "-m", "mevcontrol.cli", "run", "--config", str(path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "crosschain.registry_file" in run.stderr, run.stderr
    assert "tokens.alpha:WETH" in run.stderr and "EIP-55" in run.stderr, run.stderr


def test_a_held_position_restored_before_any_price_goes_stuck_once_instead_of_retrying(tmp_path: Path) -> None:
    """After a restart the hold may run out before the agents reported the pool's price: the sale back cannot
    be priced, so the position is stuck (its exposure counted, the alert fires) with one step saying why.
    Before, the missing price raised out of the time check every 0.1 s, each time adding a step."""
    config = CrossChainConfig.model_validate({
        "registry_file": str(registry(tmp_path)), "usd": {"eth": "3000", "tusd": "1"},
        "execution": {"agents": {"alpha": "xa", "beta": "xb"}, "unwind": {"action": "hold", "hold_s": 1}},
    })  # fmt: skip
    sent: list[Any] = []

    class Fleet:
        def refusal(self, adding_usd: Decimal) -> str:
            return ""

        async def send(self, agent: str, command: Any) -> None:
            sent.append(command)

        async def record_position(self, position: Position, version: int) -> None:
            pass

    async def scenario() -> Position:
        assert config.execution is not None
        book = PositionBook(config.execution, CrossChainEngine(config), Fleet())
        held = stuck_position("alpha", "beta", 2 * E18)
        del held.legs["unwind_buy"]
        held.state = "held"
        record = held.as_json() | {"hold_until_at": time.time() - 1}  # the hold ran out while it was down
        position = book.restore(record, 1)
        for _ in range(5):
            book.check_time()
            await asyncio.sleep(0)
        return position

    position = asyncio.run(scenario())
    assert position.state == "stuck" and sent == []
    not_sent = [s for s in position.steps if "not sent" in s]
    assert len(not_sent) == 1, position.steps
    assert not_sent[0].endswith(f"no price yet for pool {POOL['alpha']} on alpha"), position.steps
