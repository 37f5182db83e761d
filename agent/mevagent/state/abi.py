"""The few contract calls and events the state syncer needs, encoded and decoded by hand.

Every argument and return value is a 32-byte word, so a selector plus words is the whole ABI; doing it
here keeps web3.py's codec (microseconds per call) off the per-block path.
"""

from __future__ import annotations

from eth_utils import keccak

from mevagent.amm.v3_forks import v3_forks


def selector(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


def topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


# Uniswap V2 factory and pair.
ALL_PAIRS_LENGTH = selector("allPairsLength()")
ALL_PAIRS = selector("allPairs(uint256)")
TOKEN0 = selector("token0()")
TOKEN1 = selector("token1()")
GET_RESERVES = selector("getReserves()")
# Pairs that store their own fee (amm/forks.yml pool_fee): BiswapPair.swapFee() (uint32), and
# CamelotPair.stableSwap() (its fees come with getReserves).
SWAP_FEE = selector("swapFee()")
STABLE_SWAP = selector("stableSwap()")
# Uniswap V3 pool.
SLOT0 = selector("slot0()")
LIQUIDITY = selector("liquidity()")
FEE = selector("fee()")
TICK_SPACING = selector("tickSpacing()")
TICK_BITMAP = selector("tickBitmap(int16)")
TICKS = selector("ticks(int24)")

PAIR_CREATED = topic("PairCreated(address,address,address,uint256)")
POOL_CREATED = topic("PoolCreated(address,address,uint24,int24,address)")
SYNC = topic("Sync(uint112,uint112)")
V3_INITIALIZE = topic("Initialize(uint160,int24)")
V3_SWAP = topic("Swap(address,address,int256,int256,uint160,uint128,int24)")
# Each V3 fork's own Swap topic (PancakeSwap V3 appends two fields, so its topic differs).
V3_SWAP_BY_FORK = {name: fork.swap_topic for name, fork in v3_forks().items()}
# CamelotPair: a new fee per input token, and a switch between the x·y and the x³y + y³x curve.
FEE_PERCENT_UPDATED = topic("FeePercentUpdated(uint16,uint16)")
SET_STABLE_SWAP = topic("SetStableSwap(bool,bool)")
V3_MINT = topic("Mint(address,address,int24,int24,uint128,uint256,uint256)")
V3_BURN = topic("Burn(address,int24,int24,uint128,uint256,uint256)")

# Every event that changes what a swap computes, or adds a pool. V2's Swap/Mint/Burn are each followed
# by a Sync carrying the resulting reserves, so Sync alone is exact for V2.
STATE_TOPICS = (
    PAIR_CREATED,
    POOL_CREATED,
    SYNC,
    FEE_PERCENT_UPDATED,
    SET_STABLE_SWAP,
    V3_INITIALIZE,
    *sorted(set(V3_SWAP_BY_FORK.values())),
    V3_MINT,
    V3_BURN,
)


def encode_uint(value: int) -> str:
    return f"{value:064x}"


def encode_int(value: int) -> str:
    return f"{value & ((1 << 256) - 1):064x}"


def words(data: str) -> list[int]:
    """The 32-byte words of 0x-prefixed return data or log data, as unsigned integers."""
    body = data[2:] if data.startswith("0x") else data
    return [int(body[i : i + 64], 16) for i in range(0, len(body), 64)]


def signed(word: int, bits: int = 256) -> int:
    """A two's-complement word as the signed integer of `bits` bits the contract stored in it."""
    word &= (1 << bits) - 1
    return word - (1 << bits) if word >> (bits - 1) else word


def address(word: int) -> str:
    return f"0x{word & ((1 << 160) - 1):040x}"


def topic_int(topic_hex: str, bits: int) -> int:
    return signed(int(topic_hex, 16), bits)
