"""The Bridges view (key b): the bridge monitor's routes, the pending and stuck transfers and the cross-chain
engine's open gaps on the dashboard, and the same figures as Prometheus series.

The engine is the real one (two chains of testbed.crosschain's registry, its two bridges): its monitor is fed
deposits, fills and a failed relay the way the bridge watchers feed it, and two pools' prices open a real gap.
Checked: the view's rows equal what the monitor and the engine answer (`performance()`, `bridges_status()`,
`current()`); the metrics' values equal the monitor's; and, against the control plane itself (Control,
Operations and its listeners in the test's loop, over TLS with real Redis and PostgreSQL, so the test feeds
the very engine the page reads), a viewer opens the view with its key in headless chromium (Debian's, by
executable_path) and sees the routes, the stuck transfer and the opportunity, pushed again as the monitor
moves; a bridge, route, deposit and catalog text made of HTML show as text. Without the engine: no view.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import yaml
from eth_utils import to_checksum_address
from mevcontrol.bridge_monitor import route_name
from mevcontrol.config import load_control_config
from mevcontrol.crosschain import CrossChainConfig, CrossChainEngine, CrossChainService
from mevcontrol.dashboard import views
from mevcontrol.metrics import ControlMetrics
from redis.asyncio import Redis

from mevagent.api.app import Refused
from mevagent.bus.events import PairPrice
from testbed.control import Operator, control_config, tls_pair
from testbed.crosschain import registry_file
from testbed.services import Postgres, RedisServer, free_port

from .test_dashboard import SCREENSHOTS, browser, healthy, logged_in

VICTOR = Operator("victor", "viewer")
E18 = 10**18
WETH = {"alpha": "0x" + "a1" * 20, "beta": "0x" + "b1" * 20}
TUSD = {"alpha": "0x" + "a2" * 20, "beta": "0x" + "b2" * 20}
POOL = {"alpha": "0x" + "a3" * 20, "beta": "0x" + "b3" * 20}
FAST = route_name("fastlane", "alpha:WETH", "beta:WETH")
SLOW = route_name("slowmint", "alpha:TUSD", "beta:TUSD")
# Text an attacker could get into a name: shown as text, never parsed (a parsed one sets window.__pwned).
HOSTILE = '<img src=x onerror="window.__pwned=1">'
HOSTILE_ROUTE = route_name(HOSTILE, "alpha:WETH", "beta:WETH")

pytestmark = pytest.mark.timeout(120)


def _registry(directory: Path) -> Path:
    """testbed.crosschain's two chains and bridges, fastlane's `why` made of HTML (the catalog is operators' text)."""
    path = registry_file(directory, *[{c: to_checksum_address(a) for c, a in t.items()} for t in (WETH, TUSD)])
    data = yaml.safe_load(path.read_text())
    data["bridges"]["fastlane"]["why"] = HOSTILE
    path.write_text(yaml.safe_dump(data))
    return path


def _crosschain(directory: Path) -> dict[str, Any]:
    return {"registry_file": str(_registry(directory)), "usd": {"eth": "3000", "tusd": "1"},
            "gas_price_wei": {"alpha": 10**9, "beta": 10**9}, "stuck_after_s": 600}  # fmt: skip


def _price(chain: str, quote_reserve: int) -> PairPrice:
    """A V2 pool of 1,000 WETH against `quote_reserve` TUSD (0.3 %), as an agent's reporter publishes it."""
    return PairPrice(
        agent="x" + chain[0], chain=chain, block=7, pool=POOL[chain], fork="uniswap_v2", base=WETH[chain],
        quote=TUSD[chain], reserve_base=1000 * E18, reserve_quote=quote_reserve * E18, fee_base_in=3, fee_quote_in=3,
        fee_denominator=1000, price=Decimal(quote_reserve) / 1000,
    )  # fmt: skip


def feed(engine: CrossChainEngine) -> float:
    """What the watchers would have told the monitor: fastlane's route filled four times (12, 18, 30 and 40 s),
    one deposit pending; slowmint's filled once (300 s) and one deposit stuck (older than stuck_after_s);
    a bridge and a deposit named in HTML, filled once and failed once. Alpha's pool 3 % below beta's: a gap."""
    now = time.time()
    m = engine.monitor
    for i, took in enumerate((12.0, 18.0, 30.0, 40.0)):
        m.deposit("fastlane", f"31401:{i}", FAST, now - 100)
        m.fill("fastlane", f"31401:{i}", now - 100 + took)
    m.deposit("fastlane", "31401:9", FAST, now - 5)
    m.deposit("slowmint", "0:1", SLOW, now - 1000)
    m.fill("slowmint", "0:1", now - 700)
    m.deposit("slowmint", "0:2", SLOW, now - 700)  # past 600 s: stuck, slowmint unhealthy
    m.deposit(HOSTILE, "h:1", HOSTILE_ROUTE, now - 50)
    m.fill(HOSTILE, "h:1", now - 45)
    m.deposit(HOSTILE, HOSTILE, HOSTILE_ROUTE, now - 20)
    m.failed(HOSTILE, HOSTILE, now - 10)
    engine.check_health(now)
    engine.absorb(_price("alpha", 3_000_000))
    engine.absorb(_price("beta", 3_090_000))
    return now


def _engine(directory: Path) -> CrossChainEngine:
    return CrossChainEngine(CrossChainConfig.model_validate(_crosschain(directory)))


def _view(engine: CrossChainEngine) -> dict[str, Any]:
    """The view as the control plane computes it: its crosschain service holding `engine` (no Redis reached)."""
    ops = SimpleNamespace(control=SimpleNamespace(crosschain=CrossChainService(engine, Redis(port=1))))
    return asyncio.run(views.bridges(ops, views.NoQuery()))  # type: ignore[arg-type]


def test_the_view_is_what_the_monitor_and_the_engine_answer(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    feed(engine)
    view = _view(engine)

    performance = {r["route"]: r for r in engine.monitor.performance()}
    assert {r["route"] for r in view["routes"]} == {FAST, SLOW, HOSTILE_ROUTE}
    for row in view["routes"]:
        assert {k: row[k] for k in performance[row["route"]]} == performance[row["route"]]
    fast = next(r for r in view["routes"] if r["route"] == FAST)
    assert (fast["bridge"], fast["deposits"], fast["fills"], fast["pending"], fast["failures"]) == (
        "fastlane",
        5,
        4,
        1,
        0,
    )
    assert (fast["fill_s_p50"], fast["fill_s_p90"], fast["healthy"]) == (pytest.approx(18), pytest.approx(40), True)
    # The catalog's fastlane fills in 20 s; above 3 x 20 s its p90 would make it unhealthy.
    assert (fast["catalog_fill_s"], fast["slow_above_s"]) == (20, 60)
    slow = next(r for r in view["routes"] if r["route"] == SLOW)
    assert (slow["healthy"], slow["pending"], slow["failures"], slow["catalog_fill_s"]) == (False, 1, 1, 900)
    hostile = next(r for r in view["routes"] if r["route"] == HOSTILE_ROUTE)
    assert (hostile["bridge"], hostile["fills"], hostile["failures"], hostile["catalog_fill_s"]) == (
        HOSTILE,
        1,
        1,
        None,
    )

    status = engine.bridges_status()
    assert view["bridges"] == status["bridges"]
    assert {b["bridge"]: (b["healthy"], b["pending"], b["stuck"]) for b in view["bridges"]} == {
        "fastlane": (True, 1, 0), "slowmint": (False, 1, 1)
    }  # fmt: skip
    # Stuck first, then the oldest; every pending transfer counted.
    assert [(p["deposit"], p["stuck"]) for p in view["pending"]] == [
        ("0:2", True),
        (HOSTILE, False),
        ("31401:9", False),
    ]
    assert (view["pending_total"], view["stuck_total"]) == (3, 1)

    opportunities = [o.as_json() for o in engine.current()]
    assert opportunities and view["opportunities"] == opportunities and view["opportunities_total"] == 1
    (opp,) = view["opportunities"]
    assert opp["kind"] == "dex_dex"
    assert (opp["buy_chain"], opp["sell_chain"], opp["base"], opp["quote"]) == (
        "alpha",
        "beta",
        "alpha:WETH",
        "alpha:TUSD",
    )
    assert Decimal(opp["net_usd"]) > 0 and opp["quote_route"] == "fastlane"  # slowmint: 900 s, past max_bridge_time
    assert view["graph"]["found"] == engine.stats.found == 1


def test_cex_dex_gaps_are_listed_beside_the_dex_dex_ones() -> None:
    """An exchange's book against a pool (test_cex_dex's recorded Binance feed): the view lists the gap as
    /opportunities does, with its own fields (the page shows those it has no column for as they come)."""
    from .test_cex_dex import E6, RECORDING, _pool
    from .test_cex_dex import E18 as WEI_PER_ETH
    from .test_cex_dex import _engine as cex_engine

    engine = cex_engine(recording=str(RECORDING), poll_s=0.001)
    engine.absorb(_pool(1_000 * WEI_PER_ETH, 2_970_000 * E6))
    service = CrossChainService(engine, Redis(port=1))
    asyncio.run(asyncio.wait_for(service._cex(), 20))
    ops = SimpleNamespace(control=SimpleNamespace(crosschain=service))
    view = asyncio.run(views.bridges(ops, views.NoQuery()))  # type: ignore[arg-type]
    assert view["opportunities"] == service.opportunities()["opportunities"]
    (opp,) = view["opportunities"]
    assert (opp["kind"], opp["direction"], opp["exchange"], opp["chain"]) == (
        "cex_dex",
        "dex_to_cex",
        "binance",
        "arbitrum",
    )
    assert view["cex"]["polled"] == 36 and view["graph"]["cex_found"] >= 1
    metrics = ControlMetrics()
    metrics.crosschain_bridges(engine, time.time())
    assert metrics.registry.get_sample_value("mevcontrol_crosschain_opportunities_open") == 1
    found = engine.stats.found + engine.stats.cex_found
    assert metrics.registry.get_sample_value("mevcontrol_crosschain_opportunities_found_total") == found >= 1


def test_without_the_engine_the_view_is_not_served() -> None:
    ops = SimpleNamespace(control=SimpleNamespace(crosschain=None))
    assert not views.bridges_served(ops)  # type: ignore[arg-type]
    with pytest.raises(Refused) as refused:
        asyncio.run(views.bridges(ops, views.NoQuery()))  # type: ignore[arg-type]
    assert refused.value.status == 404 and "crosschain" in str(refused.value)


def test_the_metrics_are_the_monitors_figures(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    now = feed(engine)
    metrics = ControlMetrics()
    metrics.crosschain_bridges(engine, now)
    value = metrics.registry.get_sample_value
    for row in engine.monitor.performance():
        bridge = row["route"].split("@", 1)[0]
        for q, key in (("0.5", "fill_s_p50"), ("0.9", "fill_s_p90"), ("0.99", "fill_s_p99")):
            labels = {"bridge": bridge, "route": row["route"], "quantile": q}
            assert row[key] is not None and value("mevcontrol_crosschain_bridge_fill_seconds", labels) == row[key]
        assert (
            value("mevcontrol_crosschain_bridge_failed_transfers", {"bridge": bridge, "route": row["route"]})
            == (row["failures"])
        )
    fast_p90 = {"bridge": "fastlane", "route": FAST, "quantile": "0.9"}
    assert value("mevcontrol_crosschain_bridge_fill_seconds", fast_p90) == 40
    assert value("mevcontrol_crosschain_bridge_healthy", {"bridge": "slowmint"}) == 0
    assert value("mevcontrol_crosschain_bridge_stuck_transfers", {"bridge": "slowmint"}) == 1
    assert value("mevcontrol_crosschain_opportunities_found_total") == 1
    assert value("mevcontrol_crosschain_opportunities_open") == 1
    # A new gap found: the counter takes only what was added since the last look.
    engine.absorb(_price("beta", 3_100_000))
    metrics.crosschain_bridges(engine, now)
    assert value("mevcontrol_crosschain_opportunities_found_total") == engine.stats.found == 2


@contextlib.asynccontextmanager
async def running(path: Path) -> AsyncIterator[Any]:
    """The control plane as `mevcontrol run` starts it (mevcontrol.cli.serve), in this loop: its Control back."""
    from mevcontrol.api import start_listeners
    from mevcontrol.operations import Operations
    from mevcontrol.service import Control

    control = await Control.open(load_control_config(path))
    ops = Operations(control)
    runners = []
    try:
        await control.start()
        runners = await start_listeners(ops)
        yield control
    finally:
        for runner in runners:
            await runner.cleanup()
        await ops.close()
        await control.close()


def _config(directory: Path, redis_server: RedisServer, postgres: Postgres, **extra: Any) -> tuple[Path, str]:
    path = control_config(directory, redis_server, postgres, [VICTOR], rate_limit_per_s=1000, **extra)
    data = yaml.safe_load(path.read_text())
    cert, key = tls_pair(directory)
    data["listen"].update({"tls_cert_file": str(cert), "tls_key_file": str(key), "bridges_port": free_port()})
    path.write_text(yaml.safe_dump(data))
    return path, f"https://127.0.0.1:{data['listen']['dashboard_port']}"


async def _get(base: str, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(base + path, headers=VICTOR.auth, ssl=False) as r:
        return r.status, await r.json()


def test_a_viewer_sees_the_bridges_view_live_and_every_name_as_text(
    redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    # And an exchange's book (test_cex_dex's recorded Binance ETH/USDC feed, replayed by the control plane's own
    # feed as it starts): the beta pool's price against it is a CEX-DEX gap, listed beside the DEX-DEX one.
    cex = {"exchange": "binance", "markets": [{"symbol": "ETH/USDC", "base": "eth", "quote": "tusd"}],
           "recording": str(Path(__file__).parent / "data" / "cex_binance_eth_usdc.json"), "poll_s": 0.001}  # fmt: skip
    path, base = _config(tmp_path, redis_server, postgres, crosschain=_crosschain(tmp_path) | {"cex": cex})
    problems: list[str] = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def scenario() -> None:
        async with running(path) as control:
            await healthy(base)
            engine = control.crosschain.engine
            feed(engine)
            status, me = await _get(base, "/dashboard/session")
            assert status == 200 and "bridges" in me["views"], me
            deadline = time.monotonic() + 20  # the feed replays the recording's books as the plane starts
            while True:
                status, view = await _get(base, "/dashboard/view/bridges")
                assert status == 200 and len(view["routes"]) == 3, view
                kinds = [o["kind"] for o in view["opportunities"]]
                if "cex_dex" in kinds or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert kinds.count("dex_dex") == 1 and "cex_dex" in kinds and view["cex"]["polled"] >= 1, view
            async with browser() as chromium:
                page = await logged_in(chromium, base, VICTOR, problems=problems)
                assert await page.is_visible("#tab-bridges")
                await page.keyboard.press("b")
                await page.wait_for_selector("#bridges-routes table", timeout=20_000)
                assert await page.get_attribute("#tabs a[data-view='bridges']", "aria-current") == "page"
                routes = page.locator("#bridges-routes tbody tr")
                assert await routes.count() == 3
                fast = await routes.filter(has_text=FAST).inner_text()
                assert "fastlane" in fast and "18.0 s" in fast and "40.0 s" in fast, fast
                cards = await page.inner_text("#bridges-cards")
                assert "1 of 2" in cards, cards  # bridges healthy: slowmint is not
                found = view["graph"]["found"] + view["graph"]["cex_found"]  # both kinds (the feed may add more)
                assert (
                    int((await page.inner_text(".card:has-text('Opportunities found') .value")).replace(",", ""))
                    >= found
                )
                assert await page.locator("#bridges-table [data-healthy='false']").count() == 1
                assert await page.locator("#bridges-pending [data-stuck='true']").count() == 1
                opportunities = await page.inner_text("#bridges-opportunities")
                assert "alpha → beta" in opportunities and "alpha:WETH" in opportunities, opportunities
                assert "base_amount:" in opportunities  # a field with no column of its own: listed as it comes
                cex_row = (
                    await page.locator("#bridges-opportunities tbody tr").filter(has_text="cex_dex").first.inner_text()
                )
                assert "binance" in cex_row and "restore_unpriced:" in cex_row, cex_row  # the new kind's own fields
                # The HTML-made names: as text in the bridges, routes and pending tables, never an element.
                for where in ("#bridges-table", "#bridges-routes", "#bridges-pending"):
                    assert HOSTILE in await page.inner_text(where), where
                assert await page.locator("#view-bridges img").count() == 0
                assert await page.evaluate("() => window.__pwned") is None
                # The monitor moves by itself (no bus event): the page gets it within the refresh (5 s).
                engine.monitor.fill("slowmint", "0:2", time.time())
                engine.check_health(time.time())
                await page.wait_for_function(
                    "() => !document.querySelector(\"#bridges-pending [data-stuck='true']\")", timeout=15_000
                )
                assert "2 of 2" in await page.inner_text("#bridges-cards")
                for width, height in ((1440, 900), (1024, 768)):
                    await page.set_viewport_size({"width": width, "height": height})
                    shot = SCREENSHOTS / f"bridges-viewer-{width}x{height}.png"
                    await page.screenshot(path=str(shot), full_page=True)
                await page.context.close()
        bad = [p for p in problems if "401 (Unauthorized)" not in p]
        assert not bad, bad

    asyncio.run(scenario())


def test_without_the_engine_there_is_no_bridges_view(
    redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    path, base = _config(tmp_path, redis_server, postgres)

    async def scenario() -> None:
        async with running(path):
            await healthy(base)
            status, me = await _get(base, "/dashboard/session")
            assert status == 200 and "bridges" not in me["views"] and "pnl" in me["views"], me
            status, body = await _get(base, "/dashboard/view/bridges")
            assert status == 404 and "not configured" in body["error"], body

    asyncio.run(scenario())
