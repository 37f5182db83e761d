"""The devnet's Solana pools: the simulator started as the devnet starts it (`--accounts` from the node's
config file, cheats off) holds the pools the devnet inventory names, and the agent's own RPC client, pool
book and cycle finder read them and find the 5 % price gap between them, worth sending by the solana_arb
strategy's default floors (USD and bps) at the inventory's sol_usd."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
import yaml
from solders.pubkey import Pubkey
from solstandin.seed import load

from mevagent.solana.book import PoolBook
from mevagent.solana.config import WRAPPED_SOL
from mevagent.solana.cycles import CycleFinder
from mevagent.solana.rpc import SolanaRpc
from mevagent.strategies.solana_arb import Settings, cycle_settings
from testbed.solana.standin import start_standin
from testbed.solana.world import SOL

from . import devnet_seed

INVENTORY = Path(__file__).resolve().parents[3] / "inventory/devnet.yml"
SOL_USD = yaml.safe_load(INVENTORY.read_text())["fleet"]["agent"]["chains"]["solana"]["solana"]["sol_usd"]


def test_the_template_is_what_the_seed_builds_and_the_inventory_names_its_pools():
    assert devnet_seed.TEMPLATE.read_text() == devnet_seed.render(), (
        "regenerate: python -m tests.agent.solana.devnet_seed"
    )
    chains = yaml.safe_load(INVENTORY.read_text())["fleet"]["agent"]["chains"]
    named = [(p["kind"], p["address"]) for p in chains["solana"]["solana"]["pools"]]
    assert named == [("raydium_cpmm", str(a)) for a in devnet_seed.pools().values()]


def test_seeded_simulator_serves_pools_the_agent_reads_and_searches():
    standin = start_standin("--accounts", str(devnet_seed.TEMPLATE), cheats=False)
    try:
        with pytest.raises(RuntimeError, match="not found"):
            standin.call("requestAirdrop", WRAPPED_SOL, SOL)  # the devnet's simulator: cheats off
        found = asyncio.run(_search(standin.http))
    finally:
        standin.stop()
    assert len(found) == 1
    best = found[0]
    section = Settings()
    assert 0 < best.amount_in <= section.max_input
    assert best.net / SOL * SOL_USD >= section.min_profit_threshold
    assert best.net * 10_000 >= section.min_profit_bps * best.amount_in
    # Buy the dollar token where SOL is dear (pool B: 153), sell it back where it is cheap (pool A: 150).
    first, second = best.cycle.legs
    assert (first.pool.address, second.pool.address) == (devnet_seed.key("pool-b"), devnet_seed.key("pool-a"))


async def _search(url: str):
    book = PoolBook()
    for address in devnet_seed.pools().values():
        book.add("raydium_cpmm", address)
    async with aiohttp.ClientSession() as session:
        rpc = SolanaRpc(session, url)
        read: set[Pubkey] = set()
        while set(book.accounts()) - read:  # a pool's dependencies (config, vaults, mints) appear once it is read
            keys = [k for k in book.accounts() if k not in read]
            items = await rpc.accounts(keys)
            assert all(account is not None for _, account in items), [str(k) for k, a in items if a is None]
            book.apply_many(items)
            read |= set(keys)
    pools = list(book.pools.values())
    assert all(p.ready() for p in pools)
    finder = CycleFinder(cycle_settings(Settings(), WRAPPED_SOL, SOL_USD))
    finder.rebuild(pools)
    return finder.evaluate(pools, slot=1)


@pytest.mark.parametrize(
    ("account", "named"),
    [
        ({"owner": "not-a-key", "lamports": 1}, "owner"),
        ({"owner": WRAPPED_SOL, "lamports": 0}, "lamports"),
        ({"owner": WRAPPED_SOL, "lamports": 1, "data": "@@"}, "not base64"),
        ({"owner": WRAPPED_SOL, "lamports": 1, "rent_epoch": 0}, "rent_epoch"),
    ],
)
def test_a_malformed_seed_is_refused_naming_the_field(tmp_path, account, named):
    path = tmp_path / "accounts.yml"
    path.write_text(yaml.safe_dump({"accounts": {WRAPPED_SOL: account}}))
    with pytest.raises(ValueError, match=named):
        load(path)
