"""SOL valued at the price the chain trades it (`solana.sol_usd_pool`): the config takes exactly one of a fixed
`sol_usd` or a reference pool; the price read from real Raydium CPMM and Orca Whirlpool account layouts is
the pool's mid price (its fee removed) and follows the pool; the strategy's profit floor and USD values
follow it batch by batch; with no price the strategy searches nothing and the executor sends nothing.
In-process (the pool book fed the accounts' bytes), well under a second."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pydantic
import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from mevagent.config import GasSettings, ProfitSettings
from mevagent.core import Decision, PoolUpdate, Status
from mevagent.engine.settings import LiveSettings
from mevagent.solana.book import PoolBook
from mevagent.solana.config import SolanaChainConfig
from mevagent.solana.executor import ExecutorSettings, SolanaExecutor, SolanaOpportunity
from mevagent.solana.layouts import RAYDIUM_CPMM, AccountData
from mevagent.solana.price import FixedSolPrice, PoolSolPrice, sol_price
from mevagent.solana.whirlpool import WHIRLPOOL_PROGRAM
from mevagent.strategies.solana_arb import NAME, Settings, SolanaArb, cycle_settings
from testbed.solana.world import (
    SOL,
    cpmm_config_data,
    cpmm_pool_data,
    mint_data,
    spl_owned,
    token_account_data,
    whirlpool_data,
)

USD = 1_000_000  # a 6-decimal USD stablecoin's units per whole token
# How close the price read is to the pool's own mid price: the probe's residual impact and integer rounding
# (10⁻⁵ of the pool's depth, 1.5·10⁶ USD units) are orders below it; a one-way quote misses by its fee (>2·10⁻³).
TOLERANCE = 1e-4


def keys(n: int) -> list[Pubkey]:
    return [Keypair().pubkey() for _ in range(n)]


BASE, STABLE, OTHER, OWNER, REF = keys(5)


def add_cpmm(book: PoolBook, sol: int, usd: int, mints: tuple[Pubkey, Pubkey] = (BASE, STABLE)) -> list[Pubkey]:
    """A CPMM pool (0.25% fee) holding `sol` lamports and `usd` units of the second mint: [pool, vault a, vault b]."""
    pool, config, vault_a, vault_b = keys(4)
    book.add("raydium_cpmm", pool)
    book.apply_many(
        [
            (pool, AccountData(cpmm_pool_data(config, vault_a, vault_b, *mints), RAYDIUM_CPMM)),
            (config, AccountData(cpmm_config_data(2_500), RAYDIUM_CPMM)),
            (vault_a, spl_owned(token_account_data(mints[0], OWNER, sol))),
            (vault_b, spl_owned(token_account_data(mints[1], OWNER, usd))),
        ]
    )
    return [pool, vault_a, vault_b]


def set_vault(book: PoolBook, vault: Pubkey, mint: Pubkey, amount: int) -> None:
    book.apply_many([(vault, spl_owned(token_account_data(mint, OWNER, amount)))])


def chain(pools: list[Pubkey], **price: object) -> SolanaChainConfig:
    listed = [{"kind": "raydium_cpmm", "address": str(p)} for p in pools]
    return SolanaChainConfig.model_validate({"pools": listed, "base_mint": str(BASE), **price})


def reference(pool: Pubkey) -> dict[str, object]:
    return {"sol_usd_pool": {"address": str(pool), "usd_mint": str(STABLE), "usd_decimals": 6}}


def pegged(pool: Pubkey, peg_pool: Pubkey, reference: Pubkey = REF, decimals: int = 8) -> dict[str, object]:
    """`reference(pool)` with the stablecoin checked in `reference` (8 decimals) on `peg_pool`, within 1%."""
    peg = {"pool": str(peg_pool), "reference_mint": str(reference), "reference_decimals": decimals}
    return {"sol_usd_pool": {**reference_of(pool), "peg": {**peg, "tolerance_bps": 100}}}


def reference_of(pool: Pubkey) -> dict[str, object]:
    source = reference(pool)["sol_usd_pool"]
    assert isinstance(source, dict)
    return source


@pytest.mark.parametrize(
    ("price", "named"),
    [
        ({}, "give exactly one of sol_usd"),
        ({"sol_usd": 150.0, **reference(OTHER)}, "give exactly one of sol_usd"),
        (reference(OWNER), f"sol_usd_pool.address {OWNER} is not one of pools"),
        ({"sol_usd_pool": {"address": str(OTHER), "usd_mint": str(BASE), "usd_decimals": 6}}, "usd_mint is the base"),
        ({"sol_usd_pool": {"address": str(OTHER), "usd_mint": str(STABLE)}}, "sol_usd_pool.usd_decimals"),
        (pegged(OTHER, OWNER), f"sol_usd_pool.peg.pool {OWNER} is not one of pools"),
        (pegged(OTHER, OTHER), "sol_usd_pool.peg.pool is sol_usd_pool.address"),
        (pegged(OTHER, OTHER, reference=STABLE), "peg.reference_mint must be a USD token other than usd_mint"),
    ],
    # Named, not derived from the values: the keys are random per process, and pytest-xdist refuses workers
    # that collected different test ids.
    ids=[
        "neither",
        "both",
        "pool-not-listed",
        "usd-mint-is-base",
        "no-usd-decimals",
        "peg-pool-not-listed",
        "peg-pool-is-the-sol-pool",
        "peg-reference-is-usd-mint",
    ],
)
def test_config_takes_exactly_one_sol_price_naming_the_field(price, named):
    with pytest.raises(pydantic.ValidationError) as exc:
        chain([OTHER], **price)
    assert named in str(exc.value)


def test_both_config_options_are_taken():
    assert chain([OTHER], sol_usd=150.0).sol_usd_pool is None
    given = chain([OTHER], **reference(OTHER)).sol_usd_pool
    assert given is not None and given.probe_lamports == 10_000_000 and given.usd_decimals == 6


def test_price_is_the_cpmm_pools_mid_price_and_follows_it(monkeypatch):
    book = PoolBook()
    pool, vault_a, vault_b = add_cpmm(book, 1_000 * SOL, 150_000 * USD)
    price = sol_price(chain([pool], **reference(pool)), book)
    assert isinstance(price, PoolSolPrice)
    mid = price.sol_usd()
    assert mid is not None and abs(mid / 150.0 - 1) < TOLERANCE
    one_way = book.pools[pool].quote(SOL, True) / USD  # what a plain quote says: the fee taken off
    assert abs(one_way / 150.0 - 1) > 20 * TOLERANCE

    set_vault(book, vault_b, STABLE, 180_000 * USD)  # someone bought SOL: 180 USD per SOL now
    moved = price.sol_usd()
    assert moved is not None and abs(moved / 180.0 - 1) < TOLERANCE
    set_vault(book, vault_a, BASE, 2_000 * SOL)
    moved = price.sol_usd()
    assert moved is not None and abs(moved / 90.0 - 1) < TOLERANCE

    # Quoted once per pool state: a batch in which the pool did not move reads the kept price.
    cls = type(book.pools[pool])
    quote, quotes = cls.quote, []
    monkeypatch.setattr(cls, "quote", lambda self, *args: quotes.append(args) or quote(self, *args))
    assert [price.sol_usd() for _ in range(3)] == [moved] * 3 and quotes == []
    set_vault(book, vault_a, BASE, 1_000 * SOL)
    assert price.sol_usd() == pytest.approx(180.0, rel=TOLERANCE) and len(quotes) == 2


def test_price_is_the_whirlpools_mid_price_with_the_stablecoin_as_token_a():
    book = PoolBook()
    whirl, vault_a, vault_b = keys(3)
    book.add("orca_whirlpool", whirl)
    tick = 18_972  # 1.0001^tick ≈ 6.667 lamports per USD unit: 150 USD per SOL
    book.apply_many(
        [
            (whirl, AccountData(whirlpool_data(STABLE, vault_a, BASE, vault_b, tick, 10**13), WHIRLPOOL_PROGRAM)),
            (STABLE, spl_owned(mint_data(decimals=6))),
            (BASE, spl_owned(mint_data())),
        ]
    )
    pool = book.pools[whirl]
    book.apply_many([(k, None) for k in pool.accounts()[1:-2]])  # no tick initialized: one liquidity range
    assert pool.ready()
    config = SolanaChainConfig.model_validate(
        {"pools": [{"kind": "orca_whirlpool", "address": str(whirl)}], "base_mint": str(BASE), **reference(whirl)}
    )
    price = sol_price(config, book)
    sqrt_price = pool.state.sqrt_price / 2**64
    lamports_per_unit = sqrt_price * sqrt_price  # token b (SOL) per token a (the stablecoin), in units
    expected = 1 / lamports_per_unit * SOL / USD
    assert abs(expected / 150.0 - 1) < 1e-3  # the tick is the one meant
    mid = price.sol_usd()
    assert mid is not None and abs(mid / expected - 1) < TOLERANCE


def test_no_price_from_a_pool_not_read_or_of_other_mints():
    book = PoolBook()
    pool = keys(1)[0]
    book.add("raydium_cpmm", pool)  # listed, nothing read yet
    price = sol_price(chain([pool], **reference(pool)), book)
    assert price.sol_usd() is None and "is not read yet" in price.missing()
    other, _, _ = add_cpmm(book, 1_000 * SOL, 150_000 * USD, mints=(BASE, OTHER))
    price = sol_price(chain([other], **reference(other)), book)
    assert price.sol_usd() is None and "does not pair the base mint with usd_mint" in price.missing()


def test_fixed_sol_usd_is_todays_price():
    book = PoolBook()
    pool = keys(1)[0]
    price = sol_price(chain([pool], sol_usd=150.0), book)
    assert price == FixedSolPrice(150.0) and price.sol_usd() == 150.0


def strategy(book: PoolBook, config: SolanaChainConfig) -> SolanaArb:
    live = LiveSettings(GasSettings(), ProfitSettings(), {NAME: Settings(min_profit_threshold=1.0, min_profit_bps=0)})
    ctx = SimpleNamespace(name=NAME, chain=SimpleNamespace(name="solana", solana=config), settings=live)
    return SolanaArb(ctx, book, sol_price(config, book))  # type: ignore[arg-type]


def update(pool: Pubkey, slot: int) -> list[object]:
    return [PoolUpdate("solana", str(pool), slot, 0)]


def test_strategy_floor_and_usd_values_follow_the_pool_and_nothing_without_a_price():
    book = PoolBook()
    reference_pool, _, reference_usd = add_cpmm(book, 1_000 * SOL, 150_000 * USD)
    dearer, _, _ = add_cpmm(book, 1_000 * SOL, 160_000 * USD)
    config = chain([reference_pool, dearer], **reference(reference_pool))
    arb = strategy(book, config)

    (found,) = arb.on_events(update(dearer, 5))
    assert isinstance(found, SolanaOpportunity) and found.sized is not None
    at = arb.price.sol_usd()
    assert at is not None and abs(at / 150.0 - 1) < TOLERANCE
    assert (
        arb.finder.settings.min_profit_lamports
        == int(1.0 / at * SOL)
        == cycle_settings(arb.section, str(BASE), at).min_profit_lamports
    )
    assert found.profit_usd == found.sized.gross * at / SOL

    set_vault(book, reference_usd, STABLE, 300_000 * USD)  # SOL doubles in the reference pool
    (found,) = arb.on_events(update(reference_pool, 6))
    now = arb.price.sol_usd()
    assert now is not None and abs(now / 300.0 - 1) < TOLERANCE
    assert arb.finder.settings.min_profit_lamports == int(1.0 / now * SOL) < 3_400_000
    assert found.sized is not None and found.profit_usd == found.sized.gross * now / SOL

    # The reference pool's vault not read yet: no price, no search, counted.
    fresh = PoolBook()
    unread = keys(1)[0]
    fresh.add("raydium_cpmm", unread)
    dear, _, _ = add_cpmm(fresh, 1_000 * SOL, 160_000 * USD)
    other, _, _ = add_cpmm(fresh, 1_000 * SOL, 150_000 * USD)
    arb = strategy(fresh, chain([unread, dear, other], **reference(unread)))
    assert arb.on_events(update(dear, 5)) == [] and arb.unpriced == 1 and arb.unprofitable == 0
    assert arb.cycles_checked == 0  # nothing was searched
    # The same pools valued at a fixed sol_usd: found, the floor as before this option existed.
    arb = strategy(fresh, chain([unread, dear, other], sol_usd=150.0))
    assert len(arb.on_events(update(dear, 5))) == 1 and arb.unpriced == 0
    assert arb.finder.settings.min_profit_lamports == int(1.0 / 150.0 * SOL)


class Gate:
    def __init__(self) -> None:
        self.checked: list[object] = []
        self.recorded: list[object] = []

    def check(self, opportunity: object, *, unwind: bool = False) -> Decision:
        self.checked.append(opportunity)
        return Decision(True)

    def record(self, outcome: object) -> None:
        self.recorded.append(outcome)


class Rpc:
    """The node as a dry run uses it: a blockhash, a simulation that passes."""

    async def blockhash(self) -> Hash:
        return Hash.default()

    async def simulate(self, tx: object) -> dict[str, object]:
        return {"err": None}


def test_executor_rejects_without_a_price_and_values_the_outcome_at_the_price_now():
    book = PoolBook()
    reference_pool, _, reference_usd = add_cpmm(book, 1_000 * SOL, 150_000 * USD)
    dearer, _, _ = add_cpmm(book, 1_000 * SOL, 160_000 * USD)
    config = chain([reference_pool, dearer], **reference(reference_pool))
    (opp,) = strategy(book, config).on_events(update(dearer, 5))
    assert isinstance(opp, SolanaOpportunity) and opp.sized is not None

    def executor(price_book: PoolBook, gate: Gate) -> SolanaExecutor:
        accounts = {BASE: Keypair().pubkey(), STABLE: Keypair().pubkey()}
        price = sol_price(config, price_book)
        return SolanaExecutor(Rpc(), [], Keypair(), accounts, gate, ExecutorSettings(), [OWNER], price=price)  # type: ignore[arg-type]

    unread, gate = PoolBook(), Gate()
    unread.add("raydium_cpmm", reference_pool)
    outcome = asyncio.run(executor(unread, gate).run(opp, opp.sized, 400_000, 1))
    assert outcome.status is Status.REJECTED and outcome.reason.startswith("no SOL price: sol_usd_pool")
    assert gate.checked == [] and gate.recorded == []  # refused before the gate: nothing signed

    gate = Gate()
    priced = executor(book, gate)
    set_vault(book, reference_usd, STABLE, 165_000 * USD)  # SOL moved between finding and executing
    outcome = asyncio.run(priced.run(opp, opp.sized, 400_000, 1))
    now = priced.price.sol_usd()
    assert now is not None and abs(now / 165.0 - 1) < TOLERANCE
    assert outcome.status is Status.DRY_RUN and gate.recorded == [outcome]
    assert outcome.realized_profit_usd == opp.sized.gross * now / SOL != opp.profit_usd

    with pytest.raises(ValueError, match="needs a SOL price"):
        SolanaExecutor(Rpc(), [], Keypair(), {}, gate, ExecutorSettings(), [OWNER])  # type: ignore[arg-type]


def test_a_stablecoin_off_its_peg_gives_no_price():
    """With `peg`, the stablecoin is read in a second USD token (8 decimals here, against its 6) on a second
    pool: within 1% SOL is priced as before (the stablecoin at 1 USD); beyond, no price, the reason naming
    the reading; a reference pool not read gives no price either."""
    book = PoolBook()
    sol_pool, _, _ = add_cpmm(book, 1_000 * SOL, 150_000 * USD)
    peg_pool = keys(1)[0]
    book.add("raydium_cpmm", peg_pool)
    price = sol_price(chain([sol_pool, peg_pool], **pegged(sol_pool, peg_pool)), book)
    assert isinstance(price, PoolSolPrice)
    assert price.sol_usd() is None and f"sol_usd_pool.peg.pool {peg_pool} is not read yet" in price.missing()
    book.pools.pop(peg_pool)
    book_peg, vault_stable, vault_ref = add_cpmm(book, 0, 0, mints=(STABLE, REF))  # stable first, reference second
    price = sol_price(chain([sol_pool, book_peg], **pegged(sol_pool, book_peg)), book)
    for stable, ref, reads in ((1_000_000, 1_000_000, 1.0), (1_000_000, 995_000, 0.995), (1_000_000, 1_008_000, 1.008)):
        set_vault(book, vault_stable, STABLE, stable * USD)
        set_vault(book, vault_ref, REF, ref * 10**8)
        assert price.stable_usd() == pytest.approx(reads, rel=TOLERANCE)
        assert price.sol_usd() == pytest.approx(150.0, rel=TOLERANCE)  # the stablecoin taken at 1 USD
    for stable, ref, reads in ((1_000_000, 970_000, 0.97), (1_000_000, 1_020_000, 1.02)):
        set_vault(book, vault_stable, STABLE, stable * USD)
        set_vault(book, vault_ref, REF, ref * 10**8)
        assert price.sol_usd() is None
        assert f"usd_mint reads {reads:.6f} reference_mint {REF}" in price.missing()
        assert "beyond sol_usd_pool.peg.tolerance_bps 100 of 1" in price.missing()
    set_vault(book, vault_ref, REF, 1_000_000 * 10**8)
    assert price.sol_usd() == pytest.approx(150.0, rel=TOLERANCE)
