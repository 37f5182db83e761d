"""Reading a Venus core pool over raw JSON-RPC: the Comptroller's markets and parameters, the oracle's prices,
accounts, and the accounts that existed before the agent looked (a scan of the vTokens' borrow logs).

Words in, words out (mevagent.state.abi) like the Aave reader (mevagent.lending.aave_reader), whose
`call_words` and `address_arg` it shares. A borrow snapshot (principal, interest index) is not readable
from a vToken, but each `Borrow` and `RepayBorrow` log carries the account's new principal
(`accountBorrows`) and the market's borrow index is the same through the whole block it was written in
(interest accrues at most once per block, before any borrow or repay): the snapshot is the last such log
of the account and market, with `borrowIndex()` read at that log's block. A liquidation repays through
`repayBorrowFresh`, which logs `RepayBorrow` as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mevagent.executor.rpc import JsonRpc, is_revert
from mevagent.lending.aave_reader import address_arg, call_words
from mevagent.lending.venus import NATIVE, NATIVE_DECIMALS, VAI_INITIAL_INDEX, Account, VAIDebt, VAIState, VMarket
from mevagent.state.abi import address, selector, topic, words

GET_ALL_MARKETS = selector("getAllMarkets()")
GET_ASSETS_IN = selector("getAssetsIn(address)")
CLOSE_FACTOR = selector("closeFactorMantissa()")
ORACLE = selector("oracle()")
VAI_CONTROLLER = selector("vaiController()")
USER_POOL_ID = selector("userPoolId(address)")
GET_COLLATERAL_FACTOR = selector("getCollateralFactor(address)")
GET_LIQUIDATION_THRESHOLD = selector("getLiquidationThreshold(address)")
GET_LIQUIDATION_INCENTIVE = selector("getLiquidationIncentive(address)")
GET_UNDERLYING_PRICE = selector("getUnderlyingPrice(address)")
UNDERLYING = selector("underlying()")
DECIMALS = selector("decimals()")
GET_CASH = selector("getCash()")
TOTAL_BORROWS = selector("totalBorrows()")
TOTAL_RESERVES = selector("totalReserves()")
TOTAL_SUPPLY = selector("totalSupply()")
BORROW_INDEX = selector("borrowIndex()")
ACCRUAL_BLOCK = selector("accrualBlockNumber()")
BORROW_RATE = selector("borrowRatePerBlock()")
RESERVE_FACTOR = selector("reserveFactorMantissa()")
EXCHANGE_RATE_STORED = selector("exchangeRateStored()")
BALANCE_OF = selector("balanceOf(address)")

# vToken logs (Compound V2's: the accounts are in the data, not in topics).
BORROW = topic("Borrow(address,uint256,uint256,uint256)")  # borrower, amount, accountBorrows, totalBorrows
REPAY_BORROW = topic("RepayBorrow(address,address,uint256,uint256,uint256)")  # payer, borrower, amount, ...
LIQUIDATE_BORROW = topic("LiquidateBorrow(address,address,uint256,address,uint256)")
ACCRUE_INTEREST = topic("AccrueInterest(uint256,uint256,uint256,uint256)")
TRANSFER = topic("Transfer(address,address,uint256)")  # mint, redeem, seize and transfers of vTokens
# Comptroller logs.
MARKET_ENTERED = topic("MarketEntered(address,address)")
MARKET_EXITED = topic("MarketExited(address,address)")
# VAIController logs (the accounts are in the data): a mint or repayment of VAI changes the account's VAI debt.
MINT_VAI = topic("MintVAI(address,uint256)")  # minter, amount
REPAY_VAI = topic("RepayVAI(address,address,uint256)")  # payer, borrower, amount
LIQUIDATE_VAI = topic("LiquidateVAI(address,address,uint256,address,uint256)")  # liquidator, borrower, ...
GET_VAI_REPAY_AMOUNT = selector("getVAIRepayAmount(address)")
# What an account's VAI debt and the controller's interest are made of (mevagent.lending.venus.VAIDebt, VAIState).
MINTED_VAIS = selector("mintedVAIs(address)")  # the Comptroller's
PAST_VAI_INTEREST = selector("pastVAIInterest(address)")
VAI_MINTER_INDEX = selector("getVAIMinterInterestIndex(address)")
VAI_MINT_INDEX = selector("vaiMintIndex()")
VAI_BASE_RATE = selector("baseRateMantissa()")
VAI_FLOAT_RATE = selector("floatRateMantissa()")
VAI_BLOCKS_PER_YEAR = selector("getBlocksPerYear()")
GET_VAI_ADDRESS = selector("getVAIAddress()")
ACCRUE_VAI = selector("accrueVAIInterest()")
LIQUIDATE_VAI_SEIZE = selector("liquidateVAICalculateSeizeTokens(address,uint256)")
VAI_REPAY_PARTS = selector("getVAICalculateRepayAmount(address,uint256)")
# VAIControllerStorageG2.accrualBlockNumber is internal: its storage slot in the VAIUnitroller (admin storage 0-3,
# G1 4-7, then treasuryGuardian 8, treasuryAddress 9, treasuryPercent 10, _notEntered 11, baseRateMantissa 12,
# floatRateMantissa 13, receiver 14, vaiMintIndex 15). Checked on anvil against 10.3.0's VAIController: the slot
# holds the block of its last accrueVAIInterest and slot 15 equals `vaiMintIndex()`.
VAI_ACCRUAL_SLOT = 16
NEW_VAI_CONTROLLER = topic("NewVAIController(address,address)")  # the Comptroller's: the pool is loaded again
# The test oracle's price log (SimplePriceOracle: asset, previous, requested, new).
PRICE_POSTED = topic("PricePosted(address,uint256,uint256,uint256)")
ZERO = "0x" + "00" * 20


async def read_word(rpc: JsonRpc, to: str, data: str, block: str) -> int:
    return (await call_words(rpc, to, data, block))[0]


@dataclass(frozen=True, slots=True)
class Comptroller:
    address: str
    markets: tuple[str, ...]
    close_factor: int
    oracle: str
    vai_controller: str = ZERO  # ZERO: none; else every account's VAI debt counts in its borrows


async def read_comptroller(rpc: JsonRpc, comptroller: str, block: str = "latest") -> Comptroller:
    """The pool's markets, close factor, oracle and VAI controller (an account's VAI debt, with its own interest,
    counts in its borrows: `read_account` reads it and the sizing refuses an account that has any)."""
    vai_controller = address(await read_word(rpc, comptroller, VAI_CONTROLLER, block))
    listed = await call_words(rpc, comptroller, GET_ALL_MARKETS, block)
    markets = tuple(address(w) for w in listed[2 : 2 + listed[1]])
    close_factor = await read_word(rpc, comptroller, CLOSE_FACTOR, block)
    oracle = address(await read_word(rpc, comptroller, ORACLE, block))
    return Comptroller(comptroller.lower(), markets, close_factor, oracle, vai_controller)


async def read_underlying(rpc: JsonRpc, vtoken: str, block: str = "latest") -> str:
    """The vToken's underlying ERC-20, or NATIVE for the market paid in BNB itself (vBNB): BNB Chain's VBNB has no
    `underlying()` (its payable fallback takes the call as a mint of nothing: no answer, or a revert), the 10.3.0
    package's VBNB answers the zero address."""
    try:
        answer = await call_words(rpc, vtoken, UNDERLYING, block)
    except Exception as exc:
        if is_revert(exc):
            return NATIVE
        raise
    return address(answer[0]) if answer and answer[0] else NATIVE


async def read_market(rpc: JsonRpc, comptroller: str, vtoken: str, block: str = "latest") -> VMarket:
    """One market as the Comptroller values it; vBNB's underlying is BNB (NATIVE, 18 decimals), its cash the
    vToken's own balance of it (`getCash`, what its exchange rate counts)."""

    async def word(data: str, to: str = vtoken) -> int:
        return await read_word(rpc, to, data, block)

    underlying = await read_underlying(rpc, vtoken, block)
    arg = address_arg(vtoken)
    return VMarket(
        vtoken=vtoken.lower(),
        underlying=underlying,
        decimals=NATIVE_DECIMALS if underlying == NATIVE else await word(DECIMALS, underlying),
        cash=await word(GET_CASH),
        total_borrows=await word(TOTAL_BORROWS),
        total_reserves=await word(TOTAL_RESERVES),
        total_supply=await word(TOTAL_SUPPLY),
        borrow_index=await word(BORROW_INDEX),
        accrual_block=await word(ACCRUAL_BLOCK),
        borrow_rate=await word(BORROW_RATE),
        reserve_factor=await word(RESERVE_FACTOR),
        initial_exchange_rate=await word(EXCHANGE_RATE_STORED),  # what it is while no vToken exists
        collateral_factor=await word(GET_COLLATERAL_FACTOR + arg, comptroller),
        liquidation_threshold=await word(GET_LIQUIDATION_THRESHOLD + arg, comptroller),
        liquidation_incentive=await word(GET_LIQUIDATION_INCENTIVE + arg, comptroller),
    )


async def read_prices(rpc: JsonRpc, oracle: str, vtokens: Iterable[str], block: str = "latest") -> dict[str, int]:
    """The oracle's `getUnderlyingPrice` of each market at `block`, all asked at once."""
    vtokens = list(vtokens)
    answers = await asyncio.gather(
        *(read_word(rpc, oracle, GET_UNDERLYING_PRICE + address_arg(v), block) for v in vtokens)
    )
    return dict(zip(vtokens, answers, strict=True))


async def read_account(
    rpc: JsonRpc,
    comptroller: str,
    user: str,
    snapshots: dict[str, tuple[int, int]],
    block: str = "latest",
    vai_controller: str = ZERO,
) -> Account:
    """The markets `user` entered and its vToken balances at `block`; its borrow snapshots as the logs gave them;
    with a VAI controller, its VAI debt there (`getVAIRepayAmount`)."""
    listed = await call_words(rpc, comptroller, GET_ASSETS_IN + address_arg(user), block)
    entered = [address(w) for w in listed[2 : 2 + listed[1]]]
    tokens = {}
    for vtoken in entered:
        balance = await read_word(rpc, vtoken, BALANCE_OF + address_arg(user), block)
        if balance:
            tokens[vtoken] = balance
    pool = await read_word(rpc, comptroller, USER_POOL_ID + address_arg(user), block)
    vai = await read_vai_debt(rpc, comptroller, vai_controller, user, block) if int(vai_controller, 16) else VAIDebt()
    return Account(user.lower(), entered, tokens, dict(snapshots), core_pool=pool == 0, vai=vai)


async def read_vai_debt(rpc: JsonRpc, comptroller: str, vai_controller: str, user: str, block: str) -> VAIDebt:
    """`user`'s VAI position at `block`: the Comptroller's `mintedVAIs`, the controller's `pastVAIInterest` and
    `getVAIMinterInterestIndex` (asked at once)."""
    arg = address_arg(user)
    minted, past, index = await asyncio.gather(
        read_word(rpc, comptroller, MINTED_VAIS + arg, block),
        read_word(rpc, vai_controller, PAST_VAI_INTEREST + arg, block),
        read_word(rpc, vai_controller, VAI_MINTER_INDEX + arg, block),
    )
    return VAIDebt(minted, past, index or VAI_INITIAL_INDEX)


async def read_vai(rpc: JsonRpc, vai_controller: str, oracle: str, block: str = "latest") -> VAIState:
    """The VAI controller's interest state at `block`: its mint index and the block it was accrued in (from its
    storage: `accrualBlockNumber` is internal), its base and float rates, blocks per year, its VAI token, and the
    oracle's VAI price when both rates are set (the only case `getVAIRepayRate` asks the oracle)."""
    token, index, base, floating, per_year, slot = await asyncio.gather(
        read_word(rpc, vai_controller, GET_VAI_ADDRESS, block),
        read_word(rpc, vai_controller, VAI_MINT_INDEX, block),
        read_word(rpc, vai_controller, VAI_BASE_RATE, block),
        read_word(rpc, vai_controller, VAI_FLOAT_RATE, block),
        read_word(rpc, vai_controller, VAI_BLOCKS_PER_YEAR, block),
        rpc.call("eth_getStorageAt", [vai_controller, hex(VAI_ACCRUAL_SLOT), block]),
    )
    price = (
        await read_word(rpc, oracle, GET_UNDERLYING_PRICE + address_arg(address(token)), block)
        if base and floating
        else 0
    )
    return VAIState(vai_controller.lower(), address(token), index, int(slot, 16), base, floating, price, per_year)


def borrow_log(log: dict[str, Any]) -> tuple[str, str, int] | None:
    """(vToken, borrower, new principal) of a Borrow or RepayBorrow log."""
    head = log["topics"][0]
    data = words(log["data"])
    if head == BORROW:
        return log["address"].lower(), address(data[0]), data[2]
    if head == REPAY_BORROW:
        return log["address"].lower(), address(data[1]), data[3]
    return None


def accounts_touched(log: dict[str, Any]) -> list[str]:
    """The accounts whose position a vToken, Comptroller or VAI controller log changed."""
    head = log["topics"][0]
    if head in (BORROW, REPAY_BORROW):
        found = borrow_log(log)
        return [found[1]] if found else []
    if head == TRANSFER:
        return [address(int(t, 16)) for t in log["topics"][1:3]]
    if head in (MARKET_ENTERED, MARKET_EXITED):  # (vToken indexed, account indexed)
        return [address(int(log["topics"][2], 16))]
    if head == LIQUIDATE_BORROW:
        return [address(words(log["data"])[1])]
    if head == MINT_VAI:
        return [address(words(log["data"])[0])]
    if head in (REPAY_VAI, LIQUIDATE_VAI):
        return [address(words(log["data"])[1])]
    return []


async def scan_vai_minters(
    rpc: JsonRpc, vai_controller: str, from_block: int, to_block: int, span: int = 2_000
) -> list[str]:
    """Every account with a MintVAI log of the VAI controller in the range (its VAI debt is read with the
    account), in the order they first minted."""
    found: dict[str, None] = {}
    for start in range(from_block, to_block + 1, span):
        end = min(start + span - 1, to_block)
        query = {"address": vai_controller, "topics": [[MINT_VAI]]}
        for log in await rpc.call("eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end), **query}]):
            found[address(words(log["data"])[0])] = None
    return list(found)


async def scan_borrowers(
    rpc: JsonRpc, markets: Sequence[str], from_block: int, to_block: int, span: int = 2_000
) -> dict[str, dict[str, tuple[int, int]]]:
    """Every account with a Borrow or RepayBorrow log of `markets` in the range, with its borrow snapshot per
    market: the last log's principal and the market's borrow index in that log's block."""
    last: dict[tuple[str, str], tuple[int, int]] = {}  # (user, vToken) -> (principal, block)
    for start in range(from_block, to_block + 1, span):
        end = min(start + span - 1, to_block)
        query = {"address": list(markets), "topics": [[BORROW, REPAY_BORROW]]}
        logs = await rpc.call("eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end), **query}])
        for log in logs:
            found = borrow_log(log)
            if found is not None:
                vtoken, user, principal = found
                last[(user, vtoken)] = (principal, int(log["blockNumber"], 16))
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for (user, vtoken), (principal, at) in last.items():
        index = await read_word(rpc, vtoken, BORROW_INDEX, hex(at))
        out.setdefault(user, {})[vtoken] = (principal, index)
    return out


def price_posted(log: dict[str, Any]) -> tuple[str, int] | None:
    """(underlying asset, new price) of a SimplePriceOracle PricePosted log."""
    if log["topics"][0] != PRICE_POSTED:
        return None
    data = words(log["data"])
    return address(data[0]), data[3]


ACCRUE = selector("accrueInterest()")
LIQUIDATE_ALLOWED = selector("liquidateBorrowAllowed(address,address,address,address,uint256)")
SEIZE_TOKENS = selector("liquidateCalculateSeizeTokens(address,address,address,uint256)")
LIQUIDATOR_CONTRACT = selector("liquidatorContract()")
PROBE = "0x" + "00" * 19 + "01"  # the liquidator the simulation names when the agent has no account of its own


@dataclass(frozen=True, slots=True)
class Simulated:
    """What the Comptroller answers for a liquidation in the simulated next block, both markets accrued."""

    allowed: int  # liquidateBorrowAllowed's error code (0: allowed)
    seize_error: int
    seized: int  # liquidateCalculateSeizeTokens' vTokens
    exchange_rate: int  # the collateral market's, after its accrual
    # The collateral market after its accrual: cash, total borrows, reserves and supply (what a redemption moves).
    collateral: tuple[int, int, int, int] = (0, 0, 0, 0)
    paid: int = 0  # simulate_vai: what liquidateVAI would take from the liquidator (burnt + current interest)


async def _simulate_block(rpc: JsonRpc, block: int, calls: list[dict[str, str]]) -> list[dict[str, Any]]:
    """`eth_simulateV1` of one block numbered `block` on top of the head holding `calls` in order; every call
    must succeed (a failed one is named by its index)."""
    query = {"blockStateCalls": [{"blockOverrides": {"number": hex(block)}, "calls": calls}], "validation": False}
    (simulated,) = await rpc.call("eth_simulateV1", [query, "latest"])
    results = simulated["calls"]
    failed = [i for i, r in enumerate(results) if r.get("status") != "0x1"]
    if failed:
        raise RuntimeError(f"eth_simulateV1: call {failed[0]} failed: {results[failed[0]].get('error')}")
    return results


async def simulate(
    rpc: JsonRpc,
    comptroller: str,
    borrowed: str,
    collateral: str,
    borrower: str,
    repay: int,
    block: int,
    liquidator: str = PROBE,
) -> Simulated:
    """`eth_simulateV1` of one block numbered `block` on top of the head: both markets' `accrueInterest` (as
    `liquidateBorrow` runs them), then the Comptroller's `liquidateBorrowAllowed` and
    `liquidateCalculateSeizeTokens` and the collateral's `exchangeRateStored` (and its cash, borrows, reserves and
    supply). `liquidator`: who the Comptroller is asked about (its Liquidator when it accepts only that). No token
    moves, so the
    liquidator needs no balance: only the Comptroller's decision and amounts are simulated."""

    def call(to: str, data: str) -> dict[str, str]:
        return {"from": liquidator, "to": to, "data": data}

    args = address_arg(borrowed) + address_arg(collateral)
    calls = [call(borrowed, ACCRUE), call(collateral, ACCRUE)]
    calls += [
        call(comptroller, LIQUIDATE_ALLOWED + args + address_arg(liquidator) + address_arg(borrower) + f"{repay:064x}"),
        call(comptroller, SEIZE_TOKENS + address_arg(borrower) + args + f"{repay:064x}"),
        call(collateral, EXCHANGE_RATE_STORED),
        *(call(collateral, data) for data in (GET_CASH, TOTAL_BORROWS, TOTAL_RESERVES, TOTAL_SUPPLY)),
    ]
    results = await _simulate_block(rpc, block, calls)
    allowed = words(results[2]["returnData"])[0]
    seize_error, seized = words(results[3]["returnData"])[:2]
    cash, borrows, reserves, supply = (words(r["returnData"])[0] for r in results[5:9])
    return Simulated(
        allowed, seize_error, seized, words(results[4]["returnData"])[0], (cash, borrows, reserves, supply)
    )


async def simulate_vai(
    rpc: JsonRpc,
    comptroller: str,
    vai_controller: str,
    collateral: str,
    borrower: str,
    repay: int,
    paid: int,
    block: int,
    liquidator: str = PROBE,
) -> Simulated:
    """`simulate` for `VAIController.liquidateVAI`: one block numbered `block` with the collateral's
    `accrueInterest` and the controller's `accrueVAIInterest` (as liquidateVAI runs them), then the Comptroller's
    `liquidateBorrowAllowed(vaiController, ...)`, the controller's `getVAICalculateRepayAmount` (what it takes:
    `Simulated.paid`), the Comptroller's `liquidateVAICalculateSeizeTokens` of `paid` (the sizing's: compare it
    with `Simulated.paid`) and the collateral's exchange rate and state."""

    def call(to: str, data: str) -> dict[str, str]:
        return {"from": liquidator, "to": to, "data": data}

    amount = f"{repay:064x}"
    calls = [call(collateral, ACCRUE), call(vai_controller, ACCRUE_VAI)]
    calls += [
        call(
            comptroller,
            LIQUIDATE_ALLOWED
            + address_arg(vai_controller)
            + address_arg(collateral)
            + address_arg(liquidator)
            + address_arg(borrower)
            + amount,
        ),
        call(vai_controller, VAI_REPAY_PARTS + address_arg(borrower) + amount),
        call(comptroller, LIQUIDATE_VAI_SEIZE + address_arg(collateral) + f"{paid:064x}"),
        call(collateral, EXCHANGE_RATE_STORED),
        *(call(collateral, data) for data in (GET_CASH, TOTAL_BORROWS, TOTAL_RESERVES, TOTAL_SUPPLY)),
    ]
    results = await _simulate_block(rpc, block, calls)
    allowed = words(results[2]["returnData"])[0]
    burnt, current, _past = words(results[3]["returnData"])[:3]
    seize_error, seized = words(results[4]["returnData"])[:2]
    cash, borrows, reserves, supply = (words(r["returnData"])[0] for r in results[6:10])
    rate = words(results[5]["returnData"])[0]
    return Simulated(allowed, seize_error, seized, rate, (cash, borrows, reserves, supply), paid=burnt + current)


async def liquidator_contract(rpc: JsonRpc, comptroller: str, block: str = "latest") -> str:
    """The only liquidator the Comptroller accepts (Venus' Liquidator contract on BNB Chain), or ZERO: anyone."""
    return address(await read_word(rpc, comptroller, LIQUIDATOR_CONTRACT, block))


TREASURY_PERCENT = selector("treasuryPercent()")
# The Comptroller's (SetterFacet) logs of a change to what execution_terms reads: the collector re-reads the terms
# at the block that logged one, so the strategy's copy is exact from that block on.
NEW_LIQUIDATOR_CONTRACT = topic("NewLiquidatorContract(address,address)")
NEW_TREASURY_PERCENT = topic("NewTreasuryPercent(uint256,uint256)")
# Venus' Liquidator: its treasury share of a seizure and its VAI rule, and its logs of a change to them.
LIQUIDATOR_TREASURY_PERCENT = selector("treasuryPercentMantissa()")
FORCE_VAI_LIQUIDATE = selector("forceVAILiquidate()")
MIN_LIQUIDATABLE_VAI = selector("minLiquidatableVAI()")
LIQUIDATION_RESTRICTED = selector("liquidationRestricted(address)")
ALLOWED_LIQUIDATORS = selector("allowedLiquidatorsByAccount(address,address)")
NEW_LIQUIDATION_TREASURY_PERCENT = topic("NewLiquidationTreasuryPercent(uint256,uint256)")
NEW_MIN_LIQUIDATABLE_VAI = topic("NewMinLiquidatableVAI(uint256,uint256)")
FORCE_VAI_PAUSED = topic("ForceVAILiquidationPaused(address)")
FORCE_VAI_RESUMED = topic("ForceVAILiquidationResumed(address)")
TERMS_CHANGED = frozenset(
    {
        NEW_LIQUIDATOR_CONTRACT,
        NEW_TREASURY_PERCENT,
        NEW_LIQUIDATION_TREASURY_PERCENT,
        NEW_MIN_LIQUIDATABLE_VAI,
        FORCE_VAI_PAUSED,
        FORCE_VAI_RESUMED,
    }
)


@dataclass(frozen=True, slots=True)
class ExecutionTerms:
    """What the Comptroller (and, when it names one, Venus' Liquidator) imposes on the agent's contract
    liquidating in its pool."""

    liquidator: str  # the only liquidator it accepts (`liquidatorContract`), ZERO: anyone
    treasury_percent: int  # 1e18: a vToken's redeem sends floor(amount * this / 1e18) of its payout to the treasury
    # Venus' Liquidator's, when the Comptroller names one that answers them (None otherwise): its
    # `treasuryPercentMantissa` (its share of a seizure's bonus) and its VAI rule (`forceVAILiquidate`: a borrower
    # owing at least `minLiquidatableVAI` VAI must be liquidated in VAI first).
    liquidator_percent: int | None = None
    force_vai: bool = False
    min_vai: int = 0
    vai_controller: str = ZERO  # the one the Liquidator asks for a borrower's VAI debt

    @property
    def through_liquidator(self) -> bool:
        """The contract liquidates through Venus' Liquidator (the Comptroller accepts only it)."""
        return self.liquidator != ZERO and self.liquidator_percent is not None

    @property
    def refusal(self) -> str:
        """Why the contract cannot liquidate here ("" when it can)."""
        if self.liquidator != ZERO and self.liquidator_percent is None:
            return (
                f"the Comptroller accepts only its liquidator contract {self.liquidator}, which does not answer as "
                "Venus' Liquidator (treasuryPercentMantissa, forceVAILiquidate, minLiquidatableVAI)"
            )
        return ""

    def args(self) -> dict[str, int | str]:
        """As a LendingEvent carries them (`VenusLoaded`, `VenusTerms`)."""
        out: dict[str, int | str] = {"liquidator": self.liquidator, "treasury_percent": self.treasury_percent}
        if self.liquidator_percent is not None:
            out |= {"liquidator_percent": self.liquidator_percent, "force_vai": int(self.force_vai)}
            out |= {"min_vai": self.min_vai, "vai_controller": self.vai_controller}
        return out

    @classmethod
    def of(cls, args: dict[str, int | str]) -> ExecutionTerms | None:
        """The terms a LendingEvent carries, None when it carries none."""
        if "liquidator" not in args or "treasury_percent" not in args:
            return None
        liquidator, percent = str(args["liquidator"]), int(args["treasury_percent"])
        if "liquidator_percent" not in args:
            return cls(liquidator, percent)
        share, force, minimum = int(args["liquidator_percent"]), bool(int(args["force_vai"])), int(args["min_vai"])
        return cls(liquidator, percent, share, force, minimum, str(args["vai_controller"]))


async def execution_terms(rpc: JsonRpc, comptroller: str, block: str = "latest") -> ExecutionTerms:
    """The Comptroller's `liquidatorContract` and `treasuryPercent` at `block` (both asked at once), and when a
    liquidator contract is set, its treasury share and VAI rule (none when it does not answer them). Read by the
    collector at each load and at each block whose Comptroller or Liquidator logs change them (TERMS_CHANGED),
    not per liquidation: the strategy carries them on what it finds."""
    only, percent = await asyncio.gather(
        liquidator_contract(rpc, comptroller, block), read_word(rpc, comptroller, TREASURY_PERCENT, block)
    )
    if only == ZERO:
        return ExecutionTerms(only, percent)
    try:
        share, force, minimum, vai = await asyncio.gather(
            read_word(rpc, only, LIQUIDATOR_TREASURY_PERCENT, block),
            read_word(rpc, only, FORCE_VAI_LIQUIDATE, block),
            read_word(rpc, only, MIN_LIQUIDATABLE_VAI, block),
            read_word(rpc, only, VAI_CONTROLLER, block),
        )
    except IndexError:  # no answer: not a contract, or not Venus' Liquidator
        return ExecutionTerms(only, percent)
    except Exception as exc:
        if is_revert(exc):
            return ExecutionTerms(only, percent)
        raise
    return ExecutionTerms(only, percent, share, bool(force), minimum, address(vai))


async def liquidator_refusal(
    rpc: JsonRpc, terms: ExecutionTerms, borrower: str, caller: str, block: str = "latest"
) -> str:
    """Why Venus' Liquidator would refuse `caller` liquidating `borrower` ("" when it would not), asked at `block`:
    the borrower's liquidations restricted to an allowlist that does not name `caller` (`LiquidationNotAllowed`),
    or, with `forceVAILiquidate` on, a VAI debt of at least `minLiquidatableVAI` (`VAIDebtTooHigh`: its VAI must
    be liquidated first; forced liquidations and a paused VAI liquidation, which lift that rule, are not
    modelled)."""
    liquidator = terms.liquidator
    checks = [
        read_word(rpc, liquidator, LIQUIDATION_RESTRICTED + address_arg(borrower), block),
        read_word(rpc, liquidator, ALLOWED_LIQUIDATORS + address_arg(borrower) + address_arg(caller), block),
    ]
    if terms.force_vai and int(terms.vai_controller, 16):
        checks.append(read_word(rpc, terms.vai_controller, GET_VAI_REPAY_AMOUNT + address_arg(borrower), block))
    restricted, allowed, *vai = await asyncio.gather(*checks)
    if restricted and not allowed:
        return (
            f"Venus' Liquidator {liquidator} restricts liquidations of {borrower} to its allowlist, which does not "
            f"name {caller} (LiquidationNotAllowed)"
        )
    if vai and vai[0] >= terms.min_vai:
        return (
            f"{borrower} owes {vai[0]} VAI, at least the Liquidator's minLiquidatableVAI {terms.min_vai} with "
            "forceVAILiquidate on: its VAI debt must be liquidated first (VAIDebtTooHigh)"
        )
    return ""


def redeem_fee(redeemed: int, treasury_percent: int) -> int:
    """What a vToken's redeem of `redeemed` underlying sends to the treasury (VToken.redeemFresh, checked on anvil
    against 10.3.0's: the redeemer gets `redeemed` less this)."""
    return redeemed * treasury_percent // 10**18
