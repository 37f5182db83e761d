"""A small DEX on anvil for the arbitrage strategy: V2 pairs and a V3 pool from the published artifacts.

Three tokens W (the base token, standing in for WETH), T and U, priced W = 1000 T = 2000 U:

- pairs A and B: W/T from two separate UniswapV2Factory deployments (two DEXes, same tokens);
- pool V: W/T, UniswapV3Pool at 0.3% with a wide position and a ladder of narrow ones, so a
  sizeable trade crosses initialized ticks;
- pairs C (T/U) and D (U/W): the other legs of 3-hop cycles.

All pools start at the same price, so no cycle earns anything until a test moves one of them.
State is read back from the chain into a PoolStore (getReserves; slot0, liquidity and TickLens),
never taken from what the fixture meant to create. Trades run from the test account: V2 hops as
direct pair calls (transfer in, then swap), V3 hops through SwapRouter.exactInputSingle, since a
V3 pool only pays an account that implements its swap callback.
"""

from __future__ import annotations

from dataclasses import dataclass

from web3.contract import Contract

from mevagent.amm.v3.pool import V3PoolState
from mevagent.amm.v3.tick_math import get_sqrt_ratio_at_tick
from mevagent.core import Opportunity
from mevagent.state.pools import PoolStore, V2Pool, V3Pool

from .evm import DEADLINE, V3_CORE, Chain, deploy_token, deploy_v2_pair, deploy_v3_stack, read_v3_pool, set_v2_reserves

E18 = 10**18
V3_FEE = 3000
V3_SPACING = 60


@dataclass(frozen=True)
class Dex:
    chain: Chain
    w: Contract
    t: Contract
    u: Contract
    pairs: dict[str, Contract]  # "A", "B", "C", "D"
    v3: Contract
    router: Contract
    lens: Contract
    v3_tick_range: tuple[int, int]  # lowest and highest initialized tick, for reading the bitmap

    @property
    def tokens(self) -> dict[str, Contract]:
        return {token.address.lower(): token for token in (self.w, self.t, self.u)}

    @property
    def base(self) -> str:
        return self.w.address.lower()

    def contract_of(self, pool: str) -> Contract:
        for contract in (*self.pairs.values(), self.v3):
            if contract.address.lower() == pool:
                return contract
        raise KeyError(pool)

    def balance(self, token: str) -> int:
        return int(self.tokens[token].functions.balanceOf(self.chain.account).call())


def _sorted(a: Contract, b: Contract) -> tuple[Contract, Contract]:
    return (a, b) if int(a.address, 16) < int(b.address, 16) else (b, a)


def _seed_pair(chain: Chain, pair: Contract, a: Contract, amount_a: int, b: Contract, amount_b: int) -> None:
    token0, token1 = _sorted(a, b)
    reserve0, reserve1 = (amount_a, amount_b) if token0 is a else (amount_b, amount_a)
    set_v2_reserves(chain, pair, token0, token1, reserve0, reserve1)


def deploy_dex(chain: Chain) -> Dex:
    w, t, u = deploy_token(chain), deploy_token(chain), deploy_token(chain)
    pairs = {
        name: deploy_v2_pair(chain, x, y)
        for name, (x, y) in {"A": (w, t), "B": (w, t), "C": (t, u), "D": (u, w)}.items()
    }
    _seed_pair(chain, pairs["A"], w, 100 * E18, t, 100_000 * E18)
    _seed_pair(chain, pairs["B"], w, 60 * E18, t, 60_000 * E18)
    _seed_pair(chain, pairs["C"], t, 100_000 * E18, u, 200_000 * E18)
    _seed_pair(chain, pairs["D"], u, 200_000 * E18, w, 100 * E18)

    factory, npm, router, lens = deploy_v3_stack(chain, (w, t, u))
    token0, token1 = _sorted(w, t)
    chain.transact(factory.functions.createPool(token0.address, token1.address, V3_FEE))
    v3 = chain.at(
        f"{V3_CORE}/UniswapV3Pool.sol/UniswapV3Pool.json",
        factory.functions.getPool(token0.address, token1.address, V3_FEE).call(),
    )
    # 1 W = 1000 T: tick 69078 when W is token0 (1.0001^69078 ~ 1000), its negative otherwise.
    center = 69078 if token0 is w else -69078
    chain.transact(v3.functions.initialize(get_sqrt_ratio_at_tick(center)))
    aligned = center - center % V3_SPACING
    wide = (aligned - 60 * V3_SPACING, aligned + 60 * V3_SPACING)
    ladder = [(aligned + k * V3_SPACING, aligned + (k + 2) * V3_SPACING) for k in range(-8, 8, 2)]
    for lower, upper in [wide, *ladder]:
        # About as deep as pair A in the wide range, a few W more around the price: the position
        # takes what its range needs of these.
        w_desired = 100 * E18 if (lower, upper) == wide else 5 * E18
        desired = (w_desired, w_desired * 1000) if token0 is w else (w_desired * 1000, w_desired)
        params = (token0.address, token1.address, V3_FEE, lower, upper, *desired, 0, 0, chain.account, DEADLINE)
        chain.transact(npm.functions.mint(params))
    ticks = [tick for pair in [wide, *ladder] for tick in pair]
    return Dex(chain, w, t, u, pairs, v3, router, lens, (min(ticks), max(ticks)))


def read_v2(dex: Dex, name: str) -> V2Pool:
    pair = dex.pairs[name]
    reserve0, reserve1, _ = pair.functions.getReserves().call()
    return V2Pool(
        address=pair.address.lower(),
        fork="uniswap_v2",
        token0=pair.functions.token0().call().lower(),
        token1=pair.functions.token1().call().lower(),
        reserve0=reserve0,
        reserve1=reserve1,
        fee=3,
        fee_denominator=1000,
    )


def read_v3_state(dex: Dex) -> V3PoolState:
    return read_v3_pool(dex.lens, dex.v3, *dex.v3_tick_range)


def read_store(dex: Dex) -> PoolStore:
    store = PoolStore("anvil", block=dex.chain.w3.eth.block_number)
    for name in dex.pairs:
        store.add(read_v2(dex, name))
    store.add(
        V3Pool(
            address=dex.v3.address.lower(),
            fork="uniswap_v3",
            token0=dex.v3.functions.token0().call().lower(),
            token1=dex.v3.functions.token1().call().lower(),
            state=read_v3_state(dex),
        )
    )
    return store


def refresh(dex: Dex, store: PoolStore, pool: str) -> None:
    """What the state syncer does after a log of `pool`: its state in the store is current again."""
    entry = store.pools[pool]
    if isinstance(entry, V2Pool):
        entry.reserve0, entry.reserve1, _ = dex.contract_of(pool).functions.getReserves().call()
    else:
        entry.state = read_v3_state(dex)
    store.block = dex.chain.w3.eth.block_number


def swap_v2(dex: Dex, pair: Contract, token_in: str, amount_in: int, amount_out: int) -> None:
    """Pay `amount_in` into the pair and take `amount_out` of the other token: the pair's own K check decides."""
    dex.chain.transact(dex.tokens[token_in].functions.transfer(pair.address, amount_in))
    outs = (0, amount_out) if token_in == pair.functions.token0().call().lower() else (amount_out, 0)
    dex.chain.transact(pair.functions.swap(*outs, dex.chain.account, b""))


def swap_v3(dex: Dex, token_in: str, token_out: str, amount_in: int) -> None:
    params = (
        dex.chain.w3.to_checksum_address(token_in),
        dex.chain.w3.to_checksum_address(token_out),
        V3_FEE,
        dex.chain.account,
        DEADLINE,
        amount_in,
        0,
        0,
    )
    dex.chain.transact(dex.router.functions.exactInputSingle(params))


def execute_hop_by_hop(dex: Dex, opportunity: Opportunity) -> list[int]:
    """Trade the opportunity's amounts on chain, one hop at a time; what each hop actually paid out.

    Each V2 hop asks the pair for exactly the predicted output (the pair reverts if its K check
    refuses it), so a prediction one wei too high fails the transaction; each output is measured
    as the account's balance change, then fed to the next hop.
    """
    amount = opportunity.amount_in
    paid = []
    for hop in opportunity.hops:
        before = dex.balance(hop.token_out)
        if hop.kind == "v2":
            pair = dex.contract_of(hop.pool)
            reserves = pair.functions.getReserves().call()
            token0 = pair.functions.token0().call().lower()
            reserve_in, reserve_out = (
                (reserves[0], reserves[1]) if hop.token_in == token0 else (reserves[1], reserves[0])
            )
            # The most the pair will pay: one wei more than the library formula fails its K check
            # (tests/agent/test_v2_pair.py proves that); the strategy must have predicted exactly this.
            out = (amount * 997 * reserve_out) // (reserve_in * 1000 + amount * 997)
            swap_v2(dex, pair, hop.token_in, amount, out)
        else:
            swap_v3(dex, hop.token_in, hop.token_out, amount)
        amount = dex.balance(hop.token_out) - before
        paid.append(amount)
    return paid


def move_price(dex: Dex, pool: str, token_in: str, amount_in: int) -> None:
    """A trader's swap that knocks `pool` off the common price (V2: exact formula output)."""
    if pool == dex.v3.address.lower():
        other = next(token for token in dex.tokens if token != token_in and token in _v3_tokens(dex))
        swap_v3(dex, token_in, other, amount_in)
        return
    pair = dex.contract_of(pool)
    token0 = pair.functions.token0().call().lower()
    reserve0, reserve1, _ = pair.functions.getReserves().call()
    reserve_in, reserve_out = (reserve0, reserve1) if token_in == token0 else (reserve1, reserve0)
    out = (amount_in * 997 * reserve_out) // (reserve_in * 1000 + amount_in * 997)
    swap_v2(dex, pair, token_in, amount_in, out)


def _v3_tokens(dex: Dex) -> tuple[str, str]:
    return (dex.v3.functions.token0().call().lower(), dex.v3.functions.token1().call().lower())
