"""The sandwich view: `GET :8080/api/analytics/sandwiches` and the dashboard's Sandwiches view, against the real
`mevcontrol run` process over TLS with real Redis and PostgreSQL. The history is written as the agents' events
reach it (Ingest.write): the detector's signals and a block classification, lean as the agent publishes it,
with a sandwich of two victims (one exact input, one exact output) and an untouched signal on another chain.
A viewer reads the answer (exact per chain, pool and sandwicher; each victim's loss against its quote) and the
view in headless chromium (Debian's, by executable_path); a bad query is refused naming the field."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml
from mevcontrol.ingest import Ingest
from redis.asyncio import Redis

from mevagent.analytics.models import BlockClassification, Sandwich, SearcherTx, SwapRecord
from mevagent.analytics.publish import lean
from mevagent.bus.events import BlockClassified, SandwichRiskSeen
from testbed.control import Operator, control_config, start_control, tls_pair
from testbed.services import Postgres, RedisServer

from .test_dashboard import SCREENSHOTS, browser, healthy, logged_in

ALICE, VICTOR = Operator("alice", "operator"), Operator("victor", "viewer")
A, B, C = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20
POOL, OTHER_POOL, ROUTER = "0x" + "01" * 20, "0x" + "02" * 20, "0x" + "03" * 20
SEARCHER, BOT, BUILDER = "0x" + "5e" * 20, "0x" + "b0" * 20, "0x" + "bd" * 20
V1, V2, V3 = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
TX = {name: "0x" + f"{n:064x}" for n, name in enumerate(("front", "victim1", "victim2", "back", "alone", "noise"), 1)}
GWEI = 10**9
PRICE_A = Decimal("2E-18")

pytestmark = pytest.mark.timeout(120)


def _signal(tx: str, sender: str, chain: str, pool: str, amount_in: int, amount_out: int, limit: int,
            max_profit: int, token_out: str = B, price: Decimal | None = PRICE_A) -> SandwichRiskSeen:  # fmt: skip
    return SandwichRiskSeen(
        agent="seer", chain=chain, tx_hash=tx, sender=sender, router=ROUTER, pool=pool, token_in=A,
        token_out=token_out, amount_in=amount_in, amount_out=amount_out, limit=limit, price_impact_bps=42.5,
        slippage_bps=50.0, profit_token=A, max_profit=max_profit, frontrun_amount_in=7 * 10**20,
        profit_usd_per_unit=price,
    )  # fmt: skip


def _swap(tx: str, sender: str, token_in: str, amount_in: int, token_out: str, amount_out: int) -> SwapRecord:
    return SwapRecord(tx=tx, pool=POOL, protocol="uniswap_v2", sender=sender, recipient=sender, token_in=token_in,
                      amount_in=amount_in, token_out=token_out, amount_out=amount_out)  # fmt: skip


def _searcher_tx(tx: str, index: int, gas_used: int, coinbase: int) -> SearcherTx:
    return SearcherTx(tx=tx, index=index, eoa=SEARCHER, to=BOT, gas_used=gas_used, effective_gas_price=3 * GWEI,
                      priority_fee=gas_used * GWEI, coinbase_transfer=coinbase)  # fmt: skip


def history() -> list[Any]:
    """Three signals and the block (lean, as published) where two of them were sandwiched together."""
    signals = [
        # Exact input: pays 1e20 A for a quoted 5e19 B (limit 4.9e19); gets 4.9e19 - 3e17: lost 1.3e18 B.
        _signal(TX["victim1"], V1, "ethereum", POOL, 10**20, 5 * 10**19, 49 * 10**18, 4 * 10**17),
        # Exact output: takes 1e19 B for a quoted 2e19 A (limit 2.2e19); pays 2.1e19 A: lost 1e18 A.
        _signal(TX["victim2"], V2, "ethereum", POOL, 2 * 10**19, 10**19, 22 * 10**18, 10**17),
        # Another chain, another pool, no price; nobody took it.
        _signal(TX["alone"], V3, "arbitrum", OTHER_POOL, 10**18, 10**18, 99 * 10**16, 10**15, token_out=C,
                price=None),
    ]  # fmt: skip
    block = BlockClassification(
        block_number=100, block_hash="0x" + "ab" * 32, coinbase=BUILDER, sources=["logs", "traces"],
        sandwiches=[Sandwich(frontrun_tx=TX["front"], backrun_tx=TX["back"], victim_txs=[TX["victim1"], TX["victim2"]],
                             sandwicher=BOT, profit_token=A, profit_amount=3 * 10**17)],
        arbitrages=[], liquidations=[], jit=[],
        swaps=[
            _swap(TX["front"], BOT, A, 7 * 10**20, B, 34 * 10**19),
            _swap(TX["victim1"], V1, A, 10**20, B, 487 * 10**17),
            _swap(TX["victim2"], V2, A, 21 * 10**18, B, 10**19),
            _swap(TX["noise"], V3, B, 10**18, A, 19 * 10**17),  # not MEV: left out of the lean form
            _swap(TX["back"], BOT, B, 34 * 10**19, A, 7003 * 10**17),
        ],
        transfers=[], payments=[], unresolved_swaps=0,
        searcher_txs=[_searcher_tx(TX["front"], 0, 100_000, 0), _searcher_tx(TX["back"], 3, 90_000, 5 * 10**15)],
        prices={A: "2E-18", B: "4E-18"},
    )  # fmt: skip
    published = lean(block)
    assert [s.tx for s in published.swaps] == [TX["front"], TX["victim1"], TX["victim2"], TX["back"]]
    return [*signals, BlockClassified(agent="seer", chain="ethereum", classification=published)]


class Plane:
    def __init__(self, base: str) -> None:
        self.base = base


@pytest.fixture(scope="module")
def plane(redis_server: RedisServer, postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    directory = tmp_path_factory.mktemp("sandwiches")
    cert, key = tls_pair(directory)
    path = control_config(directory, redis_server, postgres, [ALICE, VICTOR], rate_limit_per_s=1000)
    data = yaml.safe_load(path.read_text())
    data["listen"].update({"tls_cert_file": str(cert), "tls_key_file": str(key)})
    path.write_text(yaml.safe_dump(data))

    async def write() -> None:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
        redis = Redis.from_url(redis_server.url, password=redis_server.password)
        try:
            await Ingest(redis, pool).write(history())  # as the control plane's consumer stores them
        finally:
            await redis.aclose()
            await pool.close()

    asyncio.run(write())
    proc = start_control(path, directory / "control.log")
    try:
        yield Plane(f"https://127.0.0.1:{data['listen']['dashboard_port']}")
    finally:
        proc.terminate()
        proc.wait(20)


async def _get(base: str, path: str, who: Operator | None) -> tuple[int, Any]:
    headers = who.auth if who is not None else {}
    async with aiohttp.ClientSession() as s, s.get(base + path, headers=headers, ssl=False) as r:
        return r.status, await r.json()


def test_the_sandwiches_route_sums_victims_losses_and_attackers_profits_per_chain_pool_and_sandwicher(
    plane: Plane,
) -> None:
    async def scenario() -> None:
        await healthy(plane.base)
        status, body = await _get(plane.base, "/api/analytics/sandwiches?hours=1", VICTOR)  # a viewer may read it
        assert status == 200, body
        assert (body["hours"], body["seen"], body["sandwiched"], body["jit"], body["sandwiches"]) == (1, 3, 2, 0, 1)
        signals = {s["tx"]: s for s in body["signals"]}
        assert signals[TX["victim1"]]["victim_loss"] == {
            "side": "exact_input", "token": B, "quoted": str(5 * 10**19), "realized": str(487 * 10**17),
            "amount": str(13 * 10**17), "usd": signals[TX["victim1"]]["victim_loss"]["usd"], "usd_per_unit": "4E-18",
        }  # fmt: skip
        assert Decimal(signals[TX["victim1"]]["victim_loss"]["usd"]) == Decimal("5.2")
        loss2 = signals[TX["victim2"]]["victim_loss"]
        assert (loss2["side"], loss2["token"], loss2["amount"], Decimal(loss2["usd"])) == (
            "exact_output",
            A,
            str(10**18),
            Decimal(2),
        )
        assert signals[TX["victim2"]]["sandwiched_by"]["searcher"] == SEARCHER
        assert signals[TX["alone"]]["sandwiched_by"] is None and signals[TX["alone"]]["victim_loss"] is None
        chains = {c["chain"]: c for c in body["chains"]}
        eth = chains["ethereum"]
        assert (eth["seen"], eth["sandwiched"], eth["sandwiches"], eth["unpriced"]) == (2, 2, 1, 0)
        # The sandwich of two victims counts once; the victims' losses add up, each in its own token.
        assert eth["attacker_profit"] == {A: str(3 * 10**17)} and Decimal(eth["attacker_profit_usd"]) == Decimal("0.6")
        assert eth["victim_loss"] == {A: str(10**18), B: str(13 * 10**17)}
        assert Decimal(eth["victim_loss_usd"]) == Decimal("7.2")
        assert Decimal(eth["predicted_profit_usd"]) == Decimal("1.0")
        assert eth["sandwichers"] == {SEARCHER: 2}
        arb = chains["arbitrum"]
        assert (arb["seen"], arb["sandwiched"], arb["unpriced"], Decimal(arb["predicted_profit_usd"])) == (
            1, 0, 1, Decimal(0)
        )  # fmt: skip
        assert [(p["chain"], p["pool"], p["sandwiched"]) for p in body["pools"]] == [
            ("ethereum", POOL, 2),
            ("arbitrum", OTHER_POOL, 0),
        ]
        (taker,) = body["sandwichers"]
        assert taker == {
            "searcher": SEARCHER, "contracts": [BOT], "builders": [BUILDER], "chains": ["ethereum"], "pools": 1,
            "victims": 2, "sandwiches": 1, "profit": {A: str(3 * 10**17)}, "profit_usd": taker["profit_usd"],
            "victim_loss_usd": taker["victim_loss_usd"], "gas_paid_wei": str(190_000 * 3 * GWEI),
            "priority_fee_wei": str(190_000 * GWEI), "coinbase_transfer_wei": str(5 * 10**15), "legs_unknown": 0,
        }  # fmt: skip
        # One chain only; a bad query names its field; no token, no answer.
        status, body = await _get(plane.base, "/api/analytics/sandwiches?chain=arbitrum", ALICE)
        assert status == 200 and [s["tx"] for s in body["signals"]] == [TX["alone"]]
        status, body = await _get(plane.base, "/api/analytics/sandwiches?hours=0", ALICE)
        assert status == 400 and body["fields"] == ["hours"]
        status, _ = await _get(plane.base, "/api/analytics/sandwiches", None)
        assert status == 401
        status, doc = await _get(plane.base, "/openapi.json", None)
        route = doc["paths"]["/api/analytics/sandwiches"]["get"]
        assert {p["name"] for p in route["parameters"]} == {"hours", "chain", "limit"}

    asyncio.run(scenario())


def test_a_viewer_and_an_operator_see_the_sandwiches_view_in_the_browser(plane: Plane) -> None:
    problems: list[str] = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def scenario() -> None:
        await healthy(plane.base)
        async with browser() as chromium:
            for who in (VICTOR, ALICE):
                page = await logged_in(chromium, plane.base, who, problems=problems)
                assert await page.is_visible("#tab-sandwiches")
                started = time.perf_counter()
                await page.keyboard.press("9")  # the view's key
                await page.wait_for_selector("#sandwich-takers table", timeout=20_000)
                print(f"sandwiches view ({who.role}): {time.perf_counter() - started:.2f} s to its tables")
                assert await page.get_attribute("#tabs a[data-view='sandwiches']", "aria-current") == "page"
                cards = await page.inner_text("#sandwich-cards")
                # The victims' loss (5.2 + 2 USD), the attacker's profit (once for its two victims).
                assert "$7.20" in cards and "$0.60" in cards, cards
                takers = await page.inner_text("#sandwich-takers")
                assert SEARCHER in takers and BOT in takers
                pools = await page.inner_text("#sandwich-pools")
                assert POOL in pools and OTHER_POOL in pools
                rows = await page.locator("#sandwich-signals tbody tr").count()
                assert rows == 3
                # The chain filter asks the route again for that chain only.
                await page.select_option("#sandwich-chain", "arbitrum")
                await page.wait_for_function(
                    "() => document.querySelectorAll('#sandwich-signals tbody tr').length === 1", timeout=20_000
                )
                assert "nobody sandwiched" in await page.inner_text("#sandwich-takers")
                # The view has no control: nothing an operator sees here that a viewer does not.
                assert await page.locator("#view-sandwiches button, #view-sandwiches [data-operator-only]").count() == 0
                await page.select_option("#sandwich-chain", "")
                await page.wait_for_function(
                    "() => document.querySelectorAll('#sandwich-signals tbody tr').length === 3", timeout=20_000
                )
                for width, height in ((1440, 900), (1024, 768)):  # readable on a laptop: no wider than the window
                    await page.set_viewport_size({"width": width, "height": height})
                    overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
                    assert overflow <= 0, f"{width}x{height}: {overflow} px wider than the window"
                    shot = SCREENSHOTS / f"sandwiches-{who.role}-{width}x{height}.png"
                    await page.screenshot(path=str(shot), full_page=True)
                await page.context.close()
        # Before logging in, the page's session call is refused (401): that is how it knows to show the form.
        bad = [p for p in problems if "401 (Unauthorized)" not in p]
        assert not bad, bad

    asyncio.run(scenario())
