"""The dashboard at :8080 in a real browser (Playwright driving Debian's headless chromium) against the real
control plane process over TLS, real Redis and PostgreSQL, and real agents on anvil: one live agent that
executes arbitrages through a local builder, one dry-run agent. Login, every view populated, an execution
reaching the feed and the P&L (the delay is measured and printed, not asserted), the emergency stop button
stopping the agents (checked through their own APIs), resume through a second operator, a viewer with no
controls whose forged POSTs are refused, CSRF, CSP and cookie flags. Screenshots of every view at 1440x900
and 1024x768 (and dark at 1440x900) go to build/screenshots/dashboard/ (printed)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from mevagent.executor.keys import Signer
from testbed.arb import BuilderBehaviour, builders
from testbed.control import Operator, bus_agent_config, control_config, pending_tx, report_sent, start_control, tls_pair
from testbed.e2e import CHAIN, World, eventually, load, running, world_config
from testbed.evm import REPO
from testbed.services import Postgres, RedisServer

ALICE, BOB, VICTOR = Operator("alice", "operator"), Operator("bob", "operator"), Operator("victor", "viewer")
CHROMIUM = shutil.which("chromium")
SCREENSHOTS = REPO / "build" / "screenshots" / "dashboard"
SIZES = {"1440x900": (1440, 900), "1024x768": (1024, 768)}
VIEWS = ("pnl", "strategy", "risk", "health", "feed", "stuck", "audit")
# What shows that each view was filled from the control plane (not its empty placeholder).
POPULATED = {
    "pnl": "#pnl-table table",
    "strategy": "#strategy-table table",
    "risk": "#risk-agents table",
    "health": "#health-nodes table",
    "feed": "#feed-table table",
    "stuck": "#stuck-table :is(table, .empty)",
    "audit": "#audit-table table",
}

pytestmark = pytest.mark.timeout(240)


def _need_browser() -> Any:
    if CHROMIUM is None:
        pytest.skip("chromium is missing: run `make setup` (Debian's chromium package)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is missing: run `make setup` (pip install -e '.[dev]')")
    return async_playwright


class Plane:
    def __init__(self, base: str, agents: list[Any]) -> None:
        self.base = base
        self.agents = agents  # AgentConfig of the live agent and the dry-run agent


@pytest.fixture(scope="module")
def plane(
    e2e_world: World, redis_server: RedisServer, postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Plane]:
    """The control plane over TLS with the two agents configured (their own tokens for direct calls)."""
    world = e2e_world
    _need_browser()
    directory = tmp_path_factory.mktemp("dashboard")
    cert, key = tls_pair(directory)
    bus = {"redis_url": redis_server.url, "password_file": str(redis_server.password_file), "heartbeat_s": 0.5}
    (directory / "live1").mkdir()
    live = world_config(world, directory / "live1", "http://127.0.0.1:1", live=True, bus={"agent": "live1", **bus})
    dry_data = bus_agent_config(directory / "dry1", world.node, redis_server, "dry1", token="dry1-token-" + "x" * 24)
    dry = load(dry_data)
    entries = [
        {"name": name, "api_url": f"http://127.0.0.1:{config.api.port}", "token_file": str(config.api.token_file)}
        for name, config in (("live1", live), ("dry1", dry))
    ]
    path = control_config(
        directory, redis_server, postgres, [ALICE, BOB, VICTOR], agents=entries, live_chains=[CHAIN],
        ceilings={"max_total_exposure_usd": 100_000}, agent_timeout_s=3, rate_limit_per_s=1000,
    )  # fmt: skip
    data = yaml.safe_load(path.read_text())
    data["listen"].update({"tls_cert_file": str(cert), "tls_key_file": str(key)})
    path.write_text(yaml.safe_dump(data))
    proc = start_control(path, directory / "control.log")
    try:
        yield Plane(f"https://127.0.0.1:{data['listen']['dashboard_port']}", [live, dry_data])
    finally:
        proc.terminate()
        proc.wait(20)


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    async with _need_browser()() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, chromium_sandbox=False, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def logged_in(chromium: Any, base: str, who: Operator, *, problems: list[str]) -> Any:
    """A fresh browser context logged in as `who` through the login form; console errors go to `problems`."""
    context = await chromium.new_context(ignore_https_errors=True, viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith((base, "data:")) else problems.append("off-host: " + r.url))
    await goto(page, base + "/")
    await page.fill("#token", who.token)
    await page.press("#token", "Enter")
    await page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert await page.text_content("#who") == f"{who.name} ({who.role})"
    return page


async def goto(page: Any, url: str) -> None:
    """Navigate; again when chromium saw the machine's interfaces change (other tests make Docker networks)."""
    for attempt in range(5):
        try:
            await page.goto(url)
            return
        except Exception as exc:
            if "ERR_NETWORK_CHANGED" not in str(exc) or attempt == 4:
                raise
            await asyncio.sleep(0.5)


async def healthy(base: str) -> None:
    async def probe() -> bool:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with aiohttp.ClientSession() as s, s.get(base + "/health", ssl=False) as r:
                return r.status == 200
        return False

    await eventually(probe, 60, "the control plane's /health")


async def agent_stopped(config: Any, session: aiohttp.ClientSession) -> bool:
    """The agent's own answer (its API, its own token): is its emergency stop engaged?"""
    token = Path(config.api.token_file).read_text().strip()
    url = f"http://127.0.0.1:{config.api.port}/exposure/current"
    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200
        return bool((await response.json())["emergency_stop"]["engaged"])


async def _own(config: Any, session: aiohttp.ClientSession, *keys: Any) -> bool:
    """The agent's own /exposure/current holds the value at the end of `keys` at that path."""
    token = Path(config.api.token_file).read_text().strip()
    url = f"http://127.0.0.1:{config.api.port}/exposure/current"
    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        value: Any = await response.json()
    *path, wanted = keys
    for key in path:
        value = value[key]
    return value == wanted


async def screenshots(page: Any, name: str, selector: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size, (width, height) in SIZES.items():
        await page.set_viewport_size({"width": width, "height": height})
        await page.wait_for_selector(selector, timeout=20_000)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-{size}.png"), full_page=True)
        # Readable on a laptop: nothing wider than the window (long values wrap or scroll in their table).
        overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} at {size}: {overflow} px wider than the window"
    await page.emulate_media(color_scheme="dark")
    await page.set_viewport_size({"width": 1440, "height": 900})
    await page.wait_for_timeout(100)  # the charts are redrawn in the dark palette
    await page.screenshot(path=str(SCREENSHOTS / f"{name}-1440x900-dark.png"), full_page=True)
    await page.emulate_media(color_scheme="light")


def test_an_operator_sees_every_view_live_stops_the_fleet_and_resuming_takes_a_second_operator(
    plane: Plane, e2e_world: World, redis_server: RedisServer, tmp_path: Path
) -> None:
    world = e2e_world
    problems: list[str] = []

    async def scenario() -> None:
        await healthy(plane.base)
        live_config, dry_data = plane.agents
        async with builders([BuilderBehaviour("builder", include=True)], world.http_url) as (builder,):
            live_data = live_config.model_dump(mode="json")
            live_data["chains"][0]["endpoints"][0]["url"] = builder.url
            async with (
                running(load(live_data)) as (live, api),
                running(load(dry_data)) as (_dry, _dry_api),
                browser() as chromium,
                aiohttp.ClientSession() as session,
            ):
                await eventually(api.ready, 30, "/ready of the live agent")
                await eventually(lambda: _now(live.bus.lease.fresh()), 30, "a lease from the control plane")
                page = await logged_in(chromium, plane.base, ALICE, problems=problems)

                # An execution on anvil: measured from its settlement to the page's feed and P&L.
                block = await asyncio.to_thread(world.gap)
                entry = await _entry(api, block, "landed")
                key = f"{entry['id']}:outcome"
                arrived = await eventually(
                    lambda: page.evaluate("(k) => window.__dash.arrivals[k] || null", key), 30, "the feed item"
                )
                pnl = await eventually(
                    lambda: page.evaluate("() => window.__dash.pnlExecutions > 0 ? window.__dash.pnlAt : null"),
                    30, "the P&L with the execution",
                )  # fmt: skip
                # The outcome's settlement time (the agent's clock; the same machine as the browser's).
                settled = await page.evaluate("(k) => window.__dash.eventAt[k]", key)
                print(f"\ndashboard: settled → in the page's feed {arrived / 1000 - settled:.3f} s, → its P&L "
                      f"{pnl / 1000 - settled:.3f} s")  # fmt: skip
                # The P&L view shows it (a landing can open a smaller gap, executed too: one or more).
                await page.wait_for_function(
                    """() => [...document.querySelectorAll('#pnl-cards .card')].some((c) =>
                         c.querySelector('.label').textContent === 'Executions' &&
                         Number(c.querySelector('.value').textContent) >= 1)""",
                    timeout=10_000,
                )
                # Gas and builder payments are apart, in the cards and the table (this builder is paid nothing).
                assert "Builder payments" in await page.text_content("#pnl-cards")
                assert "Builder payments" in await page.text_content("#pnl-table")

                # Every view through the keyboard, populated from the control plane, screenshotted.
                for number, view in enumerate(VIEWS, start=1):
                    await page.keyboard.press(str(number))
                    await page.wait_for_selector(f"#view-{view}:not([hidden])")
                    await page.wait_for_selector(POPULATED[view], timeout=20_000)
                    await screenshots(page, view, POPULATED[view])
                # The competition view, when this control plane serves /api/analytics/competition.
                if await page.is_visible("#tab-competition"):
                    await page.keyboard.press("8")
                    await page.wait_for_selector("#competition-body :is(table, .cards, .empty)", timeout=20_000)
                    await screenshots(page, "competition", "#competition-body :is(table, .cards, .empty)")
                feed = await page.text_content("#feed-table")
                assert "landed" in feed and "found" in feed
                assert "live1" in await page.text_content("#health-agents")
                # Peers per node: anvil has no net_peerCount, so the column says it was not reported.
                assert "Peers (node · beacon)" in await page.text_content("#health-nodes")
                await page.keyboard.press("4")
                await page.wait_for_selector("#health-agents span.good >> text=/^ready$/", timeout=20_000)  # its /ready

                # Limits: the fleet's (within the ceiling: at once) and every agent's own (through the bus).
                await page.keyboard.press("3")
                await page.fill("#lim-exposure", "60000")
                await page.click("#limits-form button[type=submit]")
                await page.wait_for_selector("#toast >> text=Fleet limits applied", timeout=20_000)
                # Every agent's own limits: shown per agent, changed through the form after a confirmation step.
                position = "#agent-limits input[data-limit=max_position_size_usd]"
                await page.wait_for_selector("#risk-agent-limits tr:has-text('live1') >> text=$10,000", timeout=20_000)
                await page.fill(position, "1234")
                await page.click("#agent-limits button[type=submit]")
                await page.wait_for_selector("#confirm-limits[open] >> text=max_position_size_usd")
                await page.click("#limits-cancel")  # cancelled: nothing is sent
                await page.wait_for_selector("#confirm-limits:not([open])", state="attached")
                assert await page.text_content("#agent-limits-answer") == ""
                await page.click("#agent-limits button[type=submit]")
                await page.wait_for_selector("#confirm-limits[open]")
                confirm = await page.text_content("#confirm-limits-changes")  # each agent's value now → the new one
                assert confirm == "max_position_size_usd: dry1 10000, live1 10000 → 1234", confirm
                await page.click("#limits-go")
                await page.wait_for_selector("#agent-limits-answer.good >> text=limits accepted", timeout=20_000)
                assert "live1 acked" in await page.text_content("#agent-limits-answer")
                configs = (live_config, load(dry_data))
                for config in configs:
                    await eventually(
                        lambda c=config: _own(c, session, "limits", "max_position_size_usd", 1234.0), 10, "the limit"
                    )
                await page.wait_for_selector("#risk-agent-limits tr:has-text('dry1') >> text=$1,234", timeout=20_000)
                await screenshots(page, "risk-agent-limits", "#agent-limits-answer.good")
                # A bad value (the form lets 0 through, the route does not): refused naming the field, nothing sent.
                await page.fill(position, "0")
                await page.click("#agent-limits button[type=submit]")
                await page.click("#confirm-limits[open] #limits-go")
                await page.wait_for_selector("#agent-limits-answer.bad >> text=Refused", timeout=20_000)
                assert "changes.max_position_size_usd" in await page.text_content("#agent-limits-answer")
                await page.wait_for_timeout(500)
                for config in configs:
                    assert await _own(config, session, "limits", "max_position_size_usd", 1234.0)
                # Live trading on another chain: only requested (four-eyes).
                await page.click("#live-chains button:has-text('Enable live on ethereum')")
                await page.wait_for_selector("#toast >> text=Awaiting a second operator", timeout=10_000)

                # The emergency stop: a confirmation step, then every agent stops (their own APIs say so).
                await page.focus("#btn-stop")  # by keyboard: Enter opens the confirmation, Escape closes it
                await page.keyboard.press("Enter")
                await page.wait_for_selector("#confirm-stop[open]")
                await page.keyboard.press("Escape")
                await page.wait_for_selector("#confirm-stop:not([open])", state="attached")
                assert not await agent_stopped(live_config, session)
                await page.click("#btn-stop")
                assert await page.is_visible("#confirm-stop")
                await page.fill("#stop-confirm", "STOP")
                await page.click("#stop-go")
                await page.wait_for_selector("#toast >> text=Emergency stop engaged", timeout=20_000)
                for config in (live_config, load(dry_data)):
                    assert await eventually(lambda c=config: agent_stopped(c, session), 10, "the agent's stop")
                await page.wait_for_selector("#hdr-stop.bad", timeout=10_000)
                await screenshots(page, "risk-stopped", "#risk-agents table")

                # Resuming: alice requests it; only another operator (bob, his own session) can approve it.
                await page.click("#btn-resume")
                await page.wait_for_selector("#toast >> text=Awaiting a second operator", timeout=10_000)
                await page.keyboard.press("7")
                await page.wait_for_selector("#audit-pending tr:has-text('emergency_resume')", timeout=10_000)
                assert await page.locator("#audit-pending >> text=needs another operator").count() == 2
                assert await page.locator("#audit-pending button").count() == 0
                assert await agent_stopped(live_config, session)
                bob = await logged_in(chromium, plane.base, BOB, problems=problems)
                await bob.keyboard.press("7")
                await bob.click("#audit-pending tr:has-text('emergency_resume') button:has-text('Approve')")
                await bob.wait_for_selector("#toast >> text=Approved: emergency_resume", timeout=20_000)
                await bob.click("#audit-pending tr:has-text('enable_live') button:has-text('Approve')")
                await bob.wait_for_selector("#toast >> text=Approved: enable_live", timeout=20_000)
                await page.keyboard.press("3")
                await page.wait_for_selector("#live-chains >> text=Disable live on ethereum", timeout=10_000)
                for config in (live_config, load(dry_data)):
                    await eventually(lambda c=config: _negate(agent_stopped(c, session)), 10, "the agent's resume")
                await page.keyboard.press("7")
                await page.wait_for_selector("#audit-table td >> text=released", timeout=10_000)
                await screenshots(page, "audit-approved", "#audit-table table")

                # A stuck transaction of the live agent (anvil does not mine meanwhile): its Cancel button (CSRF
                # like every control) has the agent sign 0 to itself at that nonce; the row says cancelled.
                w3, signer = world.w3, Signer.from_file(world.key_file)
                w3.provider.make_request("evm_setAutomine", [False])
                try:
                    nonce = w3.eth.get_transaction_count(signer.address, "latest")
                    stuck = pending_tx(w3, signer, nonce, to=signer.address, value=1)
                    report_sent(redis_server, "live1", CHAIN, stuck, w3.eth.block_number - 5, "stuck-dashboard")
                    await page.keyboard.press("6")
                    row = f"#stuck-table tr:has-text('{stuck}')"
                    await page.click(f"{row} button[data-stuck-action=cancel]", timeout=20_000)
                    await page.wait_for_selector("#toast >> text=Cancel: acked", timeout=20_000)
                    await page.wait_for_selector(f"{row} >> text=/cancelled/", timeout=10_000)
                    await screenshots(page, "stuck-cancelled", row)
                    w3.provider.make_request("evm_mine", [])
                    assert w3.eth.get_transaction_count(signer.address, "latest") == nonce + 1
                    assert w3.provider.make_request("eth_getTransactionReceipt", [stuck]).get("result") is None
                finally:
                    w3.provider.make_request("evm_setAutomine", [True])

    asyncio.run(scenario())
    print(f"dashboard screenshots: {SCREENSHOTS}")
    csp = [p for p in problems if "Content Security Policy" in p or "off-host" in p]
    assert not csp, csp


def test_a_viewer_has_no_controls_and_forged_or_cross_site_posts_are_refused(plane: Plane) -> None:
    problems: list[str] = []

    async def scenario() -> None:
        await healthy(plane.base)
        async with browser() as chromium, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            page = await logged_in(chromium, plane.base, VICTOR, problems=problems)
            for number, view in enumerate(VIEWS, start=1):
                await page.keyboard.press(str(number))
                await page.wait_for_selector(f"#view-{view}:not([hidden])")
            assert await page.locator("[data-operator-only]").count() == 0
            # The agents' own limits: shown, but no form and no confirmation to change them.
            await page.keyboard.press("3")
            await page.wait_for_selector("#risk-agent-limits :is(table, .empty)", timeout=20_000)
            assert await page.locator("#agent-limits, #confirm-limits, #view-risk input, #view-risk form").count() == 0
            await page.keyboard.press("7")
            labels = " ".join(await page.locator("button").all_text_contents())
            for control in ("Emergency", "Approve", "Pause", "Resume", "Apply", "Enable", "Disable", "Replace"):
                assert control not in labels, labels
            assert await page.evaluate("() => document.cookie") == ""  # HttpOnly: no script sees the session
            # The viewer forges the POST the stop button would send (with its valid CSRF token): refused.
            forged = await page.evaluate(
                """async () => {
                    const me = await (await fetch('/dashboard/session')).json();
                    const r = await fetch('/dashboard/act/emergency/stop', {method: 'POST',
                        headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf}, body: '{}'});
                    return [r.status, await r.json()];
                }"""
            )
            assert forged[0] == 403 and "viewer" in forged[1]["error"], forged
            forged = await page.evaluate(
                """async () => {
                    const me = await (await fetch('/dashboard/session')).json();
                    const r = await fetch('/dashboard/act/transactions/stuck/0x' + 'ab'.repeat(32) + '/cancel', {
                        method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf},
                        body: '{}'});
                    return [r.status, await r.json()];
                }"""
            )
            assert forged[0] == 403 and "viewer" in forged[1]["error"], forged
            await screenshots(page, "viewer-risk", "#view-audit:not([hidden])")
            # Logging out ends the session on the control plane (a viewer's too): its views answer 401.
            await page.click("#logout")
            await page.wait_for_selector("#login:not([hidden])")
            gone = await page.evaluate("async () => (await fetch('/dashboard/view/risk')).status")
            assert gone == 401

            # An operator's session cookie without the CSRF header, with a wrong one, from another origin.
            async with http.post(plane.base + "/dashboard/login", json={"token": ALICE.token}, ssl=False) as r:
                assert r.status == 200
                csrf = (await r.json())["csrf"]
                cookie = r.headers["Set-Cookie"]
                for flag in ("HttpOnly", "Secure", "SameSite=Strict"):
                    assert flag in cookie, cookie
                for header in ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"):
                    assert header in r.headers
            stop = plane.base + "/dashboard/act/emergency/stop"
            for headers in ({}, {"X-CSRF-Token": "x" * 43}, {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}):
                async with http.post(stop, json={"reason": "forged"}, headers=headers, ssl=False) as r:
                    assert r.status == 403, (headers, await r.text())
                    assert "CSRF" in (await r.json())["error"]
            async with http.get(plane.base + "/dashboard/view/risk", ssl=False) as r:
                assert r.status == 200 and not (await r.json())["emergency_stop"]["engaged"]
            async with http.get(plane.base + "/dashboard/", ssl=False) as r:
                csp = r.headers["Content-Security-Policy"]
                assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
                assert r.headers["Cache-Control"] == "no-store"
                html = await r.text()
                assert "<script>" not in html  # no inline script: every script is a file of this host
            # Every asset is asked by its content hash and kept by the browser; the same file without it revalidates.
            assets = re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', html)
            assert len(assets) == 4 and all("?v=" in a for a in assets), assets
            for asset in assets:
                async with http.get(plane.base + asset, ssl=False) as r:
                    body = await r.read()
                    assert r.status == 200 and r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
                    assert hashlib.sha256(body).hexdigest().startswith(asset.split("?v=")[1])
                async with http.get(plane.base + asset.split("?")[0], ssl=False) as r:
                    assert r.status == 200 and r.headers["Cache-Control"] == "no-cache"
            # A view without a session: 401, and the login refuses a cross-site page.
            async with aiohttp.ClientSession() as anonymous:
                async with anonymous.get(plane.base + "/dashboard/view/pnl", ssl=False) as r:
                    assert r.status == 401
                async with anonymous.post(
                    plane.base + "/dashboard/login", json={"token": ALICE.token},
                    headers={"Origin": "https://evil.example"}, ssl=False,
                ) as r:  # fmt: skip
                    assert r.status == 403

    asyncio.run(scenario())
    csp = [p for p in problems if "Content Security Policy" in p or "off-host" in p]
    assert not csp, csp


def test_the_chart_library_is_the_npm_pinned_one_served_from_the_host() -> None:
    from mevcontrol.dashboard.vendor import FILES, VENDOR, pinned

    for package, files in FILES.items():
        for name in files:
            served = VENDOR / Path(name).name
            assert served.is_file(), f"{served} is missing: run `make setup` (python -m mevcontrol.dashboard.vendor)"
            assert served.read_bytes() == (REPO / "node_modules" / package / name).read_bytes()
        assert (
            pinned(package) == yaml.safe_load((REPO / "node_modules" / package / "package.json").read_text())["version"]
        )
    page = (VENDOR.parent / "index.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing from a CDN


async def _entry(api: Any, block: int, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        entries = await api.opportunities()
        return next((e for e in entries if e["block"] == block and e["status"] == status), None)

    return await eventually(probe, 30, f"an opportunity of block {block} with status {status}")


async def _now(value: bool) -> bool:
    return value


async def _negate(awaitable: Any) -> bool:
    return not await awaitable
