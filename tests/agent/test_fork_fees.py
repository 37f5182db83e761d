"""V2 forks whose pairs keep their own fee: BiSwap (swapFee, both directions) and Camelot (a fee per
input token, and pairs on the stable x³y + y³x curve that are never priced).

No contract of either fork is published on the npm registry (`npm view` of their core package names
finds nothing, and the registry's search endpoint is not reachable from here), so unlike
test_v2_pair.py nothing here runs a real BiswapPair or CamelotPair on anvil. Their semantics were
read from CamelotPair.sol (getReserves returning both fee percents, _getAmountOut's volatile branch,
the K check subtracting floor(in·fee/100000) from the balance, FeePercentUpdated and SetStableSwap)
and from BiswapPair's ABI and BiswapLibrary.getAmountOut's documented formula, and are tested as
formulas: each quote equals a transcription of the contract's arithmetic in the contract's order
and passes the contract's K check. The syncer's side (what it asks each pair, when it asks again,
what it journals and checkpoints) runs against a scripted node that answers those calls.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mevagent.amm import Revert, V2Hop, cycle_amounts, get_amount_out
from mevagent.core import Head, Hop, Opportunity, PoolUpdate
from mevagent.executor.contract import contract_hops
from mevagent.pricing import Pricer, PricingConfig
from mevagent.rpc import RpcError
from mevagent.state import abi, checkpoint
from mevagent.state.bootstrap import load_pools
from mevagent.state.config import SyncConfig
from mevagent.state.logs import apply_log
from mevagent.state.pools import PoolStore, V2Pool
from mevagent.state.reconcile import reconcile
from mevagent.state.sync import StateSyncer
from mevagent.strategies.dex_arb import DexArbConfig, DexArbStrategy, resimulate

BISWAP_FACTORY = "0x" + "b1" * 20
CAMELOT_FACTORY = "0x" + "ca" * 20
UNISWAP_FACTORY = "0x" + "55" * 20
TOKENS = [f"0x{i:040x}" for i in range(1, 4)]
MAX_UINT112 = (1 << 112) - 1
uint112 = st.integers(min_value=0, max_value=111).flatmap(
    lambda bits: st.integers(min_value=1 << bits, max_value=min((1 << (bits + 1)) - 1, MAX_UINT112))
)


# --- the contracts' arithmetic, transcribed in their order --------------------------------------


def camelot_get_amount_out(amount_in: int, token_in_is_0: bool, r0: int, r1: int, fee0: int, fee1: int) -> int:
    """CamelotPair.getAmountOut on a volatile pair: the fee of the input token, FEE_DENOMINATOR 100000."""
    fee = fee0 if token_in_is_0 else fee1
    reserve_a, reserve_b = (r0, r1) if token_in_is_0 else (r1, r0)
    amount_in = amount_in * (100_000 - fee)
    return (amount_in * reserve_b) // (reserve_a * 100_000 + amount_in)


def camelot_k_accepts(amount_in: int, amount_out: int, token_in_is_0: bool, r0: int, r1: int, fee: int) -> bool:
    """CamelotPair._swap's check: balances less floor(in·fee / 100000) of the input keep x·y."""
    reserve_in, reserve_out = (r0, r1) if token_in_is_0 else (r1, r0)
    if amount_out >= reserve_out:
        return False
    adjusted_in = reserve_in + amount_in - amount_in * fee // 100_000
    return adjusted_in * (reserve_out - amount_out) >= reserve_in * reserve_out


def biswap_get_amount_out(amount_in: int, reserve_in: int, reserve_out: int, swap_fee: int) -> int:
    """BiswapLibrary.getAmountOut(amountIn, reserveIn, reserveOut, swapFee): over 1000."""
    amount_in_with_fee = amount_in * (1000 - swap_fee)
    return amount_in_with_fee * reserve_out // (reserve_in * 1000 + amount_in_with_fee)


@settings(max_examples=300, deadline=None)
@given(
    r0=uint112,
    r1=uint112,
    amount_in=uint112,
    fee0=st.integers(1, 2000),  # CamelotPair.setFeePercent: 0 < fee <= MAX_FEE_PERCENT
    fee1=st.integers(1, 2000),
    zero_for_one=st.booleans(),
)
def test_camelot_quote_is_the_pairs_get_amount_out_per_direction(
    r0: int, r1: int, amount_in: int, fee0: int, fee1: int, zero_for_one: bool
) -> None:
    pool = V2Pool("0x" + "01" * 20, "camelot", TOKENS[0], TOKENS[1], r0, r1, fee0, 100_000, fee1)
    token_in = TOKENS[0] if zero_for_one else TOKENS[1]
    hop = pool.hop(token_in)
    assert hop.fee == (fee0 if zero_for_one else fee1)
    expected = camelot_get_amount_out(amount_in, zero_for_one, r0, r1, fee0, fee1)
    amounts = cycle_amounts([hop], amount_in)
    if amount_in * (100_000 - hop.fee) * hop.reserve_out >= 1 << 256:
        assert amounts is None  # SafeMath.mul reverts in the pair too
        return
    assert amounts == [amount_in, expected]
    if expected > 0:
        assert camelot_k_accepts(amount_in, expected, zero_for_one, r0, r1, hop.fee)


@settings(max_examples=300, deadline=None)
@given(reserve_in=uint112, reserve_out=uint112, amount_in=uint112, swap_fee=st.integers(0, 999))
def test_biswap_quote_is_the_library_formula_for_the_pairs_swap_fee(
    reserve_in: int, reserve_out: int, amount_in: int, swap_fee: int
) -> None:
    pool = V2Pool("0x" + "02" * 20, "biswap", TOKENS[0], TOKENS[1], reserve_in, reserve_out, swap_fee, 1000)
    for token_in in TOKENS[:2]:
        assert pool.hop(token_in).fee == swap_fee  # one fee for both directions
    hop = pool.hop(TOKENS[0])
    assert get_amount_out(amount_in, hop.reserve_in, hop.reserve_out, hop.fee, hop.fee_denominator) == (
        biswap_get_amount_out(amount_in, reserve_in, reserve_out, swap_fee)
    )


def test_a_stable_or_unchargeable_pair_is_never_quoted() -> None:
    stable = V2Pool("0x" + "03" * 20, "camelot", TOKENS[0], TOKENS[1], 10**21, 10**21, 300, 100_000, 300, True)
    volatile = V2Pool("0x" + "04" * 20, "camelot", TOKENS[0], TOKENS[1], 10**21, 10**21, 300, 100_000, 300)
    over = V2Pool("0x" + "05" * 20, "biswap", TOKENS[0], TOKENS[1], 10**21, 10**21, 1000, 1000)
    for pool in (stable, over):
        assert not pool.quotable
        with pytest.raises(Revert):
            pool.hop(TOKENS[0])
        assert resimulate([pool, volatile], [TOKENS[0], TOKENS[1]], 10**18) is None
    assert volatile.quotable and resimulate([volatile], [TOKENS[0]], 10**18) is not None


# --- a scripted node ----------------------------------------------------------------------------


@dataclass
class Pair:
    address: str
    fork: str
    token0: str
    token1: str
    reserve0: int
    reserve1: int
    swap_fee: int = 1  # BiswapPair
    fee0: int = 300  # CamelotPair token0FeePercent / token1FeePercent
    fee1: int = 300
    stable: bool = False


def _word(value: int) -> str:
    return f"{value:064x}"


def _address_word(address: str) -> str:
    return "0" * 24 + address[2:]


@dataclass
class ScriptedNode:
    """Answers the calls the syncer makes of V2 factories and pairs, block by block (no history: every
    eth_call sees the current state, which is all these tests need)."""

    factories: dict[str, list[Pair]]
    block: int = 100
    logs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    # eth_call at a numbered block below this fails as a full node's pruned state does.
    pruned_below: int = 0

    def block_hash(self, number: int) -> str:
        return f"0x{number:064x}"

    def header(self, number: int) -> dict[str, Any]:
        return {
            "number": hex(number),
            "hash": self.block_hash(number),
            "parentHash": self.block_hash(number - 1),
            "timestamp": hex(number * 12),
        }

    def head(self) -> Head:
        return Head("test", self.block, self.block_hash(self.block), self.block_hash(self.block - 1), 0, 0)

    def pair(self, address: str) -> Pair | None:
        return next((p for pairs in self.factories.values() for p in pairs if p.address == address), None)

    def eth_call(self, to: str, data: str) -> str:
        self.calls.append((to, data[:10]))
        selector = data[:10]
        if to in self.factories:
            pairs = self.factories[to]
            if selector == abi.ALL_PAIRS_LENGTH:
                return "0x" + _word(len(pairs))
            if selector == abi.ALL_PAIRS:
                return "0x" + _address_word(pairs[int(data[10:], 16)].address)
        pair = self.pair(to)
        if pair is not None:
            if selector == abi.TOKEN0:
                return "0x" + _address_word(pair.token0)
            if selector == abi.TOKEN1:
                return "0x" + _address_word(pair.token1)
            if selector == abi.GET_RESERVES:
                tail = (pair.fee0, pair.fee1) if pair.fork == "camelot" else (1_700_000_000,)
                return "0x" + "".join(_word(v) for v in (pair.reserve0, pair.reserve1, *tail))
            if selector == abi.SWAP_FEE and pair.fork == "biswap":
                return "0x" + _word(pair.swap_fee)
            if selector == abi.STABLE_SWAP and pair.fork == "camelot":
                return "0x" + _word(int(pair.stable))
        # What a node answers for a function the contract does not have.
        return RpcError("eth_call", 3, "execution reverted")  # type: ignore[return-value]

    async def call(self, method: str, params: Any = ()) -> Any:
        if method == "eth_getBlockByNumber":
            number = self.block if params[0] == "latest" else int(params[0], 16)
            return self.header(number) if number <= self.block else None
        if method == "eth_getLogs":
            query = params[0]
            if "blockHash" in query:
                numbers = [int(query["blockHash"], 16)]
            else:
                numbers = list(range(int(query["fromBlock"], 16), int(query["toBlock"], 16) + 1))
            addresses = {a.lower() for a in query["address"]}
            topics = set(query["topics"][0])
            return [
                entry
                for n in numbers
                for entry in self.logs.get(n, [])
                if entry["address"] in addresses and entry["topics"][0] in topics
            ]
        if method == "eth_call":
            answer = self.eth_call(params[0]["to"], params[0]["data"])
            if isinstance(answer, RpcError):
                raise answer
            return answer
        raise AssertionError(f"unexpected {method}")

    async def batch(self, calls: Any, *, chunk: int = 1000) -> list[Any]:
        answers = []
        for method, params in calls:
            if method == "eth_call" and params[1] != "latest" and int(params[1], 16) < self.pruned_below:
                answers.append(RpcError("eth_call", -32000, "missing trie node"))
            elif method == "eth_call":
                answers.append(self.eth_call(params[0]["to"], params[0]["data"]))
            else:
                answers.append(await self.call(method, params))
        return answers

    def emit(self, address: str, topics: list[str], data: str) -> None:
        """A log in a new block."""
        self.block += 1
        index = len(self.logs.get(self.block, []))
        self.logs.setdefault(self.block, []).append(
            {
                "address": address,
                "topics": topics,
                "data": data,
                "blockNumber": hex(self.block),
                "blockHash": self.block_hash(self.block),
                "logIndex": hex(index),
                "removed": False,
            }
        )


def _node() -> ScriptedNode:
    a, b, c = TOKENS
    return ScriptedNode(
        {
            BISWAP_FACTORY: [
                Pair("0x" + "b0" * 19 + "01", "biswap", a, b, 10**21, 2 * 10**21, swap_fee=2),
                Pair("0x" + "b0" * 19 + "02", "biswap", b, c, 10**20, 10**20, swap_fee=1),
            ],
            CAMELOT_FACTORY: [
                Pair("0x" + "c0" * 19 + "01", "camelot", a, b, 10**21, 10**21, fee0=175, fee1=1200),
                Pair("0x" + "c0" * 19 + "02", "camelot", a, c, 10**21, 10**21, stable=True),
            ],
            UNISWAP_FACTORY: [Pair("0x" + "50" * 19 + "01", "uniswap_v2", a, c, 10**21, 10**21)],
        }
    )


def _config(**overrides: Any) -> SyncConfig:
    factories = [
        {"kind": "v2", "address": BISWAP_FACTORY, "fork": "biswap"},
        {"kind": "v2", "address": CAMELOT_FACTORY, "fork": "camelot"},
        {"kind": "v2", "address": UNISWAP_FACTORY, "fork": "uniswap_v2"},
    ]
    return SyncConfig(factories=factories, **overrides)


def _fees(pool: V2Pool) -> tuple[int, int, int, bool]:
    return (pool.fee, pool.fee_in(pool.token1), pool.fee_denominator, pool.stable)


def test_bootstrap_reads_each_pairs_own_fee_and_curve_in_the_same_batch() -> None:
    node = _node()
    pools, _ = asyncio.run(load_pools(node, _config(), node.block))
    by_address = {pool.address: pool for pool in pools if isinstance(pool, V2Pool)}
    biswap, biswap_default, camelot, stable = (
        p.address for p in (*node.factories[BISWAP_FACTORY], *node.factories[CAMELOT_FACTORY])
    )
    assert _fees(by_address[biswap]) == (2, 2, 1000, False)  # the pair's swapFee, not the fork's default 1
    assert _fees(by_address[biswap_default]) == (1, 1, 1000, False)
    assert _fees(by_address[camelot]) == (175, 1200, 100_000, False)  # per input token
    assert by_address[stable].stable and not by_address[stable].quotable
    assert _fees(by_address["0x" + "50" * 19 + "01"]) == (3, 3, 1000, False)
    # Only the pairs that keep a fee are asked for it; a Uniswap pair is asked what it always was.
    uniswap_calls = {sel for to, sel in node.calls if to == "0x" + "50" * 19 + "01"}
    assert uniswap_calls == {abi.TOKEN0, abi.TOKEN1, abi.GET_RESERVES}
    assert (biswap, abi.SWAP_FEE) in node.calls and (camelot, abi.STABLE_SWAP) in node.calls


def test_reconcile_sees_a_changed_swap_fee_and_fee_percents_and_the_undo_restores_them() -> None:
    node = _node()
    pools, _ = asyncio.run(load_pools(node, _config(), node.block))
    biswap_pair, camelot_pair = node.factories[BISWAP_FACTORY][0], node.factories[CAMELOT_FACTORY][0]
    # The factory owner changes them without an event the syncer follows (BiswapFactory.setSwapFee).
    biswap_pair.swap_fee = 5
    camelot_pair.fee0, camelot_pair.fee1 = 400, 90
    node.factories[CAMELOT_FACTORY][1].stable = False
    undo: list = []
    found = asyncio.run(reconcile(node, pools, node.block, undo, 100))
    assert sorted((d.pool, d.field, d.ours, d.node) for d in found) == sorted(
        [
            (biswap_pair.address, "fee", 2, 5),
            (biswap_pair.address, "fee1", 2, 5),
            (camelot_pair.address, "fee", 175, 400),
            (camelot_pair.address, "fee1", 1200, 90),
            (node.factories[CAMELOT_FACTORY][1].address, "stable", True, False),
        ]
    )
    by_address = {pool.address: pool for pool in pools if isinstance(pool, V2Pool)}
    assert by_address[biswap_pair.address].hop(TOKENS[1]).fee == 5
    assert _fees(by_address[camelot_pair.address]) == (400, 90, 100_000, False)
    assert by_address[node.factories[CAMELOT_FACTORY][1].address].quotable
    for step in reversed(undo):
        step()
    assert by_address[biswap_pair.address].hop(TOKENS[1]).fee == 2
    assert _fees(by_address[camelot_pair.address]) == (175, 1200, 100_000, False)
    assert asyncio.run(reconcile(node, pools, node.block, [], 100)) != []


def test_camelot_fee_and_curve_events_are_applied_exactly_and_undone() -> None:
    node = _node()
    store = PoolStore("test")
    for pool in asyncio.run(load_pools(node, _config(), node.block))[0]:
        store.add(pool)
    config = _config()
    factories = {f.address: f for f in config.factories}
    camelot = node.factories[CAMELOT_FACTORY][0].address
    pool = store.pools[camelot]
    assert isinstance(pool, V2Pool)
    undo: list = []
    fee_log = {"address": camelot, "topics": [abi.FEE_PERCENT_UPDATED], "data": "0x" + _word(50) + _word(2000)}
    assert apply_log(store, {}, factories, fee_log, undo) == camelot
    assert _fees(pool) == (50, 2000, 100_000, False)
    curve_log = {"address": camelot, "topics": [abi.SET_STABLE_SWAP], "data": "0x" + _word(0) + _word(1)}
    assert apply_log(store, {}, factories, curve_log, undo) == camelot
    assert pool.stable and not pool.quotable
    for step in reversed(undo):
        step()
    assert _fees(pool) == (175, 1200, 100_000, False)
    # The same events from a pair of another fork are not Camelot's: nothing changes.
    biswap = node.factories[BISWAP_FACTORY][0].address
    assert apply_log(store, {}, factories, {**fee_log, "address": biswap}, []) is None
    assert store.pools[biswap].fee == 2


def test_a_pair_created_while_syncing_gets_its_own_fee_and_the_checkpoint_keeps_it(tmp_path: Path) -> None:
    node = _node()
    syncer = StateSyncer(PoolStore("test"), _config(checkpoint_path=tmp_path / "pools.json"))
    asyncio.run(syncer.start(node))
    a, _, c = TOKENS
    new_biswap = Pair("0x" + "b0" * 19 + "03", "biswap", a, c, 5 * 10**20, 10**21, swap_fee=7)
    new_camelot = Pair("0x" + "c0" * 19 + "03", "camelot", c, a, 10**20, 10**20, fee0=20, fee1=30)
    for factory, pair in ((BISWAP_FACTORY, new_biswap), (CAMELOT_FACTORY, new_camelot)):
        node.factories[factory].append(pair)
        topics = [abi.PAIR_CREATED, "0x" + _address_word(pair.token0), "0x" + _address_word(pair.token1)]
        node.emit(factory, topics, "0x" + _address_word(pair.address) + _word(len(node.factories[factory])))
        changed = asyncio.run(syncer.sync_to(node, node.head()))
        assert pair.address in changed
    created = syncer.store.pools[new_biswap.address]
    assert isinstance(created, V2Pool) and _fees(created) == (7, 7, 1000, False)
    created = syncer.store.pools[new_camelot.address]
    assert isinstance(created, V2Pool) and _fees(created) == (20, 30, 100_000, False)

    assert syncer.write_checkpoint()
    saved = checkpoint.load(tmp_path / "pools.json")
    assert saved is not None
    restored = PoolStore("test")
    checkpoint.restore(saved, restored, {})
    for address, pool in syncer.store.pools.items():
        assert restored.pools[address] == pool  # fee1 and the stable flag included
    assert restored.pools[node.factories[CAMELOT_FACTORY][1].address].stable


def test_a_pair_created_in_a_block_whose_state_is_pruned_gets_the_latest_fee() -> None:
    node = _node()
    syncer = StateSyncer(PoolStore("test"), _config())
    asyncio.run(syncer.start(node))
    a, b, _ = TOKENS
    pair = Pair("0x" + "b0" * 19 + "04", "biswap", a, b, 10**20, 10**20, swap_fee=9)
    node.factories[BISWAP_FACTORY].append(pair)
    topics = [abi.PAIR_CREATED, "0x" + _address_word(a), "0x" + _address_word(b)]
    node.emit(BISWAP_FACTORY, topics, "0x" + _address_word(pair.address) + _word(3))
    node.pruned_below = node.block + 1
    asyncio.run(syncer.sync_to(node, node.head()))
    created = syncer.store.pools[pair.address]
    assert isinstance(created, V2Pool) and _fees(created) == (9, 9, 1000, False)


def test_a_checkpoint_from_before_per_direction_fees_loads_with_one_fee(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    entry = {
        "address": "0x" + "50" * 19 + "01",
        "fork": "uniswap_v2",
        "token0": TOKENS[0],
        "token1": TOKENS[2],
        "reserve0": "10",
        "reserve1": "20",
        "fee": 3,
        "fee_denominator": 1000,
    }
    body = {"version": 1, "chain": "test", "block": 5, "block_hash": "0x05", "factories": [], "v2": [entry], "v3": []}
    path.write_text(json.dumps(body))
    saved = checkpoint.load(path)
    assert saved is not None
    store = PoolStore("test")
    checkpoint.restore(saved, store, {})
    pool = store.pools[entry["address"]]
    assert isinstance(pool, V2Pool) and _fees(pool) == (3, 3, 1000, False)
    path.write_text(json.dumps({**body, "v2": [{**entry, "fork": "gone_swap"}]}))
    with pytest.raises(checkpoint.CheckpointError, match=r"v2\.0\.fork"):
        checkpoint.load(path)


# --- the strategy -------------------------------------------------------------------------------


def _strategy(pools: list[V2Pool]) -> DexArbStrategy:
    store = PoolStore("test", block=7)
    for pool in pools:
        store.add(pool)
    pricing = PricingConfig(native_token=TOKENS[0], tokens={t: {"usd": 1.0, "decimals": 18} for t in TOKENS})
    strategy = DexArbStrategy(store, DexArbConfig(base_tokens=(TOKENS[0],), max_hops=2), Pricer(pricing, store))
    strategy.on_head(Head("test", 7, "0x", "0x", 0, 0))
    return strategy


@pytest.mark.parametrize("fee_b_in", [1, 2000])
def test_the_strategy_charges_each_direction_its_own_fee(fee_b_in: int) -> None:
    a, b = TOKENS[0], TOKENS[1]  # a is token0 of both pairs
    # The reference pair prices b at 1 a; the Camelot pair pays 1.2% more a per b. Buying b on the
    # reference and selling it to Camelot (b in) earns the gap less the fees: b's fee on Camelot decides.
    reference = V2Pool("0x" + "50" * 20, "uniswap_v2", a, b, 10**24, 10**24, 3, 1000)
    fee_a_in = 2001 - fee_b_in  # the other direction's fee is the other one: a single fee gets one case wrong
    camelot = V2Pool("0x" + "ca" * 20, "camelot", a, b, 1012 * 10**21, 10**24, fee_a_in, 100_000, fee_b_in)
    strategy = _strategy([reference, camelot])
    found = strategy.on_pool_updates([PoolUpdate("test", camelot.address, 7, 0)])
    if fee_b_in == 2000:
        assert found == []  # 2% on b in is more than the 1.2% gap
        return
    best = found[0]
    assert [h.pool for h in best.hops] == [reference.address, camelot.address]
    amounts = resimulate([reference, camelot], [a, b], best.amount_in)
    assert amounts is not None and amounts[-1] == best.amount_out > best.amount_in
    # The Camelot hop is quoted with the fee of b, its input: 1/100000, not a's 2000/100000.
    assert amounts[2] == get_amount_out(amounts[1], camelot.reserve1, camelot.reserve0, 1, 100_000)
    assert camelot.hop(b) == V2Hop(camelot.reserve1, camelot.reserve0, 1, 100_000)


def test_the_strategy_never_prices_a_stable_pair() -> None:
    a, b = TOKENS[0], TOKENS[1]
    reference = V2Pool("0x" + "50" * 20, "uniswap_v2", a, b, 10**24, 10**24, 3, 1000)
    # As x·y this pair would be a 10% arbitrage; on the stable curve it is something else entirely.
    stable = V2Pool("0x" + "ca" * 20, "camelot", a, b, 10**24, 11 * 10**23, 300, 100_000, 300, True)
    strategy = _strategy([reference, stable])
    assert strategy.on_pool_updates([PoolUpdate("test", stable.address, 7, 0)]) == []
    stable.stable = False  # switched back to x·y: the same reserves now are an opportunity
    assert strategy.on_pool_updates([PoolUpdate("test", stable.address, 7, 0)]) != []


def test_the_executor_hands_the_contract_the_fee_of_the_token_paid_in_and_refuses_a_stable_pair() -> None:
    # The contract computes each V2 hop's output with the fee it is given: on a Camelot pair whose two
    # tokens pay different fees, the reverse hop must carry token1's fee, or the contract's quote (and
    # its transfer-then-swap) would ask the pair for more than its K check allows.
    camelot = V2Pool("0x" + "06" * 20, "camelot", TOKENS[0], TOKENS[1], 10**21, 10**21, 300, 100_000, 175)
    stable = V2Pool("0x" + "07" * 20, "camelot", TOKENS[0], TOKENS[1], 10**21, 10**21, 300, 100_000, 300, True)
    store = PoolStore("test", block=7)
    for pool in (camelot, stable):
        store.add(pool)

    def through(pool: V2Pool, token_in: str) -> Opportunity:
        token_out = pool.token1 if token_in == pool.token0 else pool.token0
        hops = (Hop(pool.address, "v2", token_in, token_out), Hop(pool.address, "v2", token_out, token_in))
        return Opportunity("test", "dex_arb", 7, hops, 10**18, 10**18 + 1, 250_000, 1, 0, 1.0, 1.0, 0.1, 0)

    forward, backward = contract_hops(through(camelot, TOKENS[0]), store)
    assert (forward.fee, backward.fee, forward.fee_denominator) == (300, 175, 100_000)
    forward, backward = contract_hops(through(camelot, TOKENS[1]), store)
    assert (forward.fee, backward.fee) == (175, 300)
    with pytest.raises(ValueError, match="cannot be quoted as constant product"):
        contract_hops(through(stable, TOKENS[0]), store)
