"""USD values of classified MEV, live and offline, from one price source.

The live classifier prices a block with its chain's `mevagent.pricing.Pricer` (the agent's `pricing:`
section: a configured USD price, or a reference pool read from the pool store right after the block) and
`priced`. Offline, the same `PricingConfig`, `Pricer` and `priced` are used; only the pool store differs:
`mevagent classify` has block files and no node, so its store is empty and a token priced by a reference
pool stays unpriced; `backfill` reads each reference pool's state at the block it classifies (`eth_call` at
that block: the state right after it, as the live store has it), so a volatile token is valued at the price
the chain traded it at in that block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from pydantic import ValidationError

from mevagent.amm.v3.pool import V3PoolState
from mevagent.analytics.models import BlockClassification
from mevagent.pricing import Pricer, PricingConfig
from mevagent.state import abi
from mevagent.state.pools import PoolStore, V2Pool, V3Pool

Price = Callable[[str], float | None]  # USD per base unit of a token, None when it has no price now


def priced(result: BlockClassification, price: Price) -> BlockClassification:
    """`result` with the USD price of each token its MEV is denominated in, where `price` knows one.

    Read right after the block was classified, so a pool-derived price is the chain's price at that head."""
    tokens = {a.profit_token for a in result.arbitrages} | {s.profit_token for s in result.sandwiches}
    tokens.update(t for x in result.liquidations for t in (x.debt_token, x.collateral_token))
    prices = {}
    for token in sorted(tokens):
        unit = price(token)
        if unit is not None and unit > 0:
            prices[token] = repr(float(unit))
    return result.model_copy(update={"prices": prices}) if prices else result


# What each reference pool is asked at a block; getReserves answers on a V2 pair, slot0 on a V3 pool.
_CALLS = (abi.TOKEN0, abi.TOKEN1, abi.GET_RESERVES, abi.SLOT0, abi.STABLE_SWAP)


class PricingFileError(ValueError):
    """The pricing file cannot be read or is not a `pricing:` section: the message names the file and field."""


def load_pricing(path: Path) -> PricingConfig:
    """A YAML file holding a chain's `pricing:` section as the agent's config has it (the mapping itself, or
    under a top-level `pricing:` key)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PricingFileError(f"{path}: {exc}") from None
    if isinstance(data, dict) and set(data) == {"pricing"}:
        data = data["pricing"]
    try:
        return PricingConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "pricing"
        raise PricingFileError(f"{path}: {where}: {first['msg']}") from None


def reference_pools(config: PricingConfig) -> list[str]:
    return sorted({e.reference_pool for e in config.tokens.values() if e.reference_pool is not None})


def static_price(config: PricingConfig) -> Price:
    """The configured prices only (no pool state: `mevagent classify` on block files)."""
    return Pricer(config, PoolStore("offline")).usd_per_unit


def _word(answer: dict[str, Any], index: int) -> int | None:
    result = answer.get("result")
    if "error" in answer or not isinstance(result, str) or len(result) < 2 + 64 * (index + 1):
        return None
    return int(result[2 + 64 * index : 2 + 64 * (index + 1)], 16)


def _pool(address: str, answers: Sequence[dict[str, Any]]) -> V2Pool | V3Pool | None:
    token0, token1, reserves, slot0, stable = answers
    t0, t1 = _word(token0, 0), _word(token1, 0)
    if t0 is None or t1 is None:
        return None
    tokens = abi.address(t0), abi.address(t1)
    reserve0, reserve1 = _word(reserves, 0), _word(reserves, 1)
    if reserve0 is not None and reserve1 is not None:
        # The fee does not enter a price; a Camelot pair on its stable curve is refused by the Pricer.
        return V2Pool(address, "reference", *tokens, reserve0, reserve1, 3, 1000, stable=_word(stable, 0) == 1)
    sqrt_price = _word(slot0, 0)
    if sqrt_price is None or sqrt_price == 0:
        return None
    tick = abi.signed(_word(slot0, 1) or 0, 24)
    state = V3PoolState(sqrt_price_x96=sqrt_price, tick=tick, liquidity=0, fee=0, tick_spacing=1)
    return V3Pool(address, "reference", *tokens, state)


async def reference_stores(
    session: aiohttp.ClientSession, url: str, config: PricingConfig, numbers: Sequence[int]
) -> dict[int, PoolStore]:
    """Per block of `numbers`, the reference pools as they stood right after it (one JSON-RPC batch). A pool the
    node cannot answer for (not deployed yet, pruned state) is left out: its token is unpriced in that block."""
    pools = reference_pools(config)
    stores = {n: PoolStore("reference", block=n) for n in numbers}
    if not pools:
        return stores
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "eth_call",
         "params": [{"to": pool, "data": data}, hex(number)]}
        for i, (number, pool, data) in enumerate((n, p, d) for n in numbers for p in pools for d in _CALLS)
    ]  # fmt: skip
    async with session.post(url, data=orjson.dumps(batch), headers={"Content-Type": "application/json"}) as response:
        answers = orjson.loads(await response.read()) if response.status == 200 else []
    by_id = {a.get("id"): a for a in answers} if isinstance(answers, list) else {}
    i = 0
    for number in numbers:
        for pool in pools:
            found = _pool(pool, [by_id.get(i + k) or {} for k in range(len(_CALLS))])
            i += len(_CALLS)
            if found is not None:
                stores[number].add(found)
    return stores
