"""The sandwich view (`GET :8080/api/analytics/sandwiches`, the dashboard's Sandwiches view): the sandwich
detector's risk signals of a window, matched with the classified sandwiches and JIT liquidity around them
(mevcontrol.competition.sandwich_risks), summed per chain, per pool and per sandwicher.

What a sandwiched victim lost is measured, not predicted: its classified swaps in the sandwich's block (the
first one paying the signal's input token, the last one paying out its output token) against the quote the
detector scored it at. An exact-input victim (it paid the quoted input) lost `quote out - received`, in the
output token; an exact-output one (it received the quoted output) lost `paid - quote in`, in the input token.
The quote is of the state the detector saw, so anything else that moved the pool between detection and
inclusion is in that figure too. USD where the classifying agent priced the token (the block's `prices`, or
the sandwich's own price of its profit token).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from mevcontrol.competition import sandwich_risks
from mevcontrol.models import SandwichesQuery

# The classified swaps of each (chain, block, victim transaction), in block order, with the block's prices.
_VICTIM_SWAPS_SQL = """
SELECT k.chain, k.block, k.tx, b.prices, coalesce(
         (SELECT jsonb_agg(s.value ORDER BY s.n) FROM jsonb_array_elements(b.document->'swaps') WITH ORDINALITY
          AS s(value, n) WHERE s.value->>'tx' = k.tx), '[]'::jsonb) AS swaps
FROM unnest($1::text[], $2::bigint[], $3::text[]) AS k(chain, block, tx)
JOIN block_classifications b ON b.chain = k.chain AND b.block = k.block
"""


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def victim_loss(signal: dict[str, Any], swaps: list[dict[str, Any]], prices: dict[str, str]) -> dict[str, Any] | None:
    """What the sandwiched victim of `signal` lost against its quote, from its classified `swaps` (None: its
    swaps do not show both ends of its route, or it neither paid the quoted input nor got the quoted output)."""
    paid = next((int(s["amount_in"]) for s in swaps if s["token_in"] == signal["token_in"]), None)
    got = next((int(s["amount_out"]) for s in reversed(swaps) if s["token_out"] == signal["token_out"]), None)
    if paid is None or got is None:
        return None
    quoted_in, quoted_out = int(signal["amount_in"]), int(signal["amount_out"])
    if paid == quoted_in:
        side, token, quoted, realized, amount = "exact_input", signal["token_out"], quoted_out, got, quoted_out - got
    elif got == quoted_out:
        side, token, quoted, realized, amount = "exact_output", signal["token_in"], quoted_in, paid, paid - quoted_in
    else:
        return None
    unit = prices.get(token)
    sandwich = signal["sandwiched_by"]
    if unit is None and token == sandwich["profit_token"]:
        unit = sandwich["profit_usd_per_unit"]
    return {
        "side": side,  # which end the victim fixed; the loss is in the other end's token
        "token": token,
        "quoted": str(quoted),
        "realized": str(realized),
        "amount": str(amount),
        "usd": str(Decimal(amount) * Decimal(unit)) if unit is not None else None,
        "usd_per_unit": unit,
    }


class _Sums:
    """Counts, exact amounts per token and USD sums (of what was priced) for one chain, pool or sandwicher."""

    def __init__(self) -> None:
        self.seen = self.sandwiched = self.jit = 0
        self.predicted_usd = self.profit_usd = self.loss_usd = Decimal(0)
        self.profit: dict[str, int] = defaultdict(int)
        self.loss: dict[str, int] = defaultdict(int)
        self.sandwiches: set[str] = set()
        self.sandwichers: dict[str, int] = defaultdict(int)
        self.unpriced = 0

    def add(self, signal: dict[str, Any]) -> None:
        self.seen += 1
        self.jit += signal["jit_by"] is not None
        if signal["predicted_profit_usd"] is not None:
            self.predicted_usd += Decimal(signal["predicted_profit_usd"])
        else:
            self.unpriced += 1
        sandwich = signal["sandwiched_by"]
        if sandwich is None:
            return
        self.sandwiched += 1
        self.sandwichers[sandwich["searcher"]] += 1
        if sandwich["frontrun_tx"] not in self.sandwiches:  # a sandwich of several victims counts once
            self.sandwiches.add(sandwich["frontrun_tx"])
            self.profit[sandwich["profit_token"]] += int(sandwich["profit_amount"])
            if sandwich["profit_usd"] is not None:
                self.profit_usd += Decimal(sandwich["profit_usd"])
            else:
                self.unpriced += 1
        loss = signal["victim_loss"]
        if loss is not None:
            self.loss[loss["token"]] += int(loss["amount"])
            if loss["usd"] is not None:
                self.loss_usd += Decimal(loss["usd"])
            else:
                self.unpriced += 1

    def json(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "sandwiched": self.sandwiched,
            "jit": self.jit,
            "sandwiches": len(self.sandwiches),
            "predicted_profit_usd": str(self.predicted_usd),
            "attacker_profit": {t: str(a) for t, a in sorted(self.profit.items())},
            "attacker_profit_usd": str(self.profit_usd),
            "victim_loss": {t: str(a) for t, a in sorted(self.loss.items())},
            "victim_loss_usd": str(self.loss_usd),
            "unpriced": self.unpriced,  # predictions, attackers' profits and victims' losses left out of the USD sums
            "sandwichers": dict(sorted(self.sandwichers.items(), key=lambda kv: (-kv[1], kv[0]))),
        }


async def sandwiches(conn: asyncpg.Connection, query: SandwichesQuery) -> dict[str, Any]:
    risks = await sandwich_risks(conn, query)
    signals: list[dict[str, Any]] = risks["signals"]
    taken = [s for s in signals if s["sandwiched_by"] is not None]
    found: dict[tuple[str, int, str], tuple[list[dict[str, Any]], dict[str, str]]] = {}
    if taken:
        rows = await conn.fetch(
            _VICTIM_SWAPS_SQL,
            [s["chain"] for s in taken],
            [s["sandwiched_by"]["block"] for s in taken],
            [s["tx"] for s in taken],
        )
        found = {(r["chain"], r["block"], r["tx"]): (_json(r["swaps"]), _json(r["prices"]) or {}) for r in rows}
    chains: dict[str, _Sums] = defaultdict(_Sums)
    pools: dict[tuple[str, str], _Sums] = defaultdict(_Sums)
    takers: dict[str, dict[str, Any]] = {}
    total = _Sums()
    for signal in signals:
        sandwich = signal["sandwiched_by"]
        signal["victim_loss"] = None
        if sandwich is not None:
            swaps, prices = found.get((signal["chain"], sandwich["block"], signal["tx"]), ([], {}))
            signal["victim_loss"] = victim_loss(signal, swaps, prices)
            taker = takers.setdefault(
                sandwich["searcher"],
                {"searcher": sandwich["searcher"], "contracts": set(), "builders": set(), "chains": set(),
                 "pools": set(), "victims": 0, "sums": _Sums(), "gas_paid_wei": 0, "priority_fee_wei": 0,
                 "coinbase_transfer_wei": 0, "legs_unknown": 0},
            )  # fmt: skip
            taker["victims"] += 1
            taker["chains"].add(signal["chain"])
            taker["pools"].add(signal["pool"])
            taker["contracts"].add(sandwich["contract"] or sandwich["sandwicher"])
            if sandwich["builder"]:
                taker["builders"].add(sandwich["builder"])
            if sandwich["frontrun_tx"] not in taker["sums"].sandwiches:
                if sandwich["gas_paid_wei"] is None:
                    taker["legs_unknown"] += 1
                else:
                    for key in ("gas_paid_wei", "priority_fee_wei", "coinbase_transfer_wei"):
                        taker[key] += int(sandwich[key])
            taker["sums"].add(signal)
        total.add(signal)
        chains[signal["chain"]].add(signal)
        pools[(signal["chain"], signal["pool"])].add(signal)

    def _taker(t: dict[str, Any]) -> dict[str, Any]:
        sums = t["sums"].json()
        return {
            "searcher": t["searcher"],
            "contracts": sorted(t["contracts"]),
            "builders": sorted(t["builders"]),
            "chains": sorted(t["chains"]),
            "pools": len(t["pools"]),
            "victims": t["victims"],
            "sandwiches": sums["sandwiches"],
            "profit": sums["attacker_profit"],
            "profit_usd": sums["attacker_profit_usd"],
            "victim_loss_usd": sums["victim_loss_usd"],
            # What both legs of its sandwiches paid (sandwiches whose legs the classification lacks: left out).
            "gas_paid_wei": str(t["gas_paid_wei"]),
            "priority_fee_wei": str(t["priority_fee_wei"]),
            "coinbase_transfer_wei": str(t["coinbase_transfer_wei"]),
            "legs_unknown": t["legs_unknown"],
        }

    totals = total.json()
    return {
        "hours": query.hours,
        **{k: totals[k] for k in ("seen", "sandwiched", "jit", "sandwiches")},
        "totals": totals,
        "chains": [{"chain": c, **s.json()} for c, s in sorted(chains.items())],
        "pools": [
            {"chain": c, "pool": p, **s.json()}
            for (c, p), s in sorted(pools.items(), key=lambda kv: (-kv[1].sandwiched, -kv[1].seen, kv[0]))
        ],
        "sandwichers": sorted((_taker(t) for t in takers.values()), key=lambda t: (-t["victims"], t["searcher"])),
        "signals": signals,
    }
