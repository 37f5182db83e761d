"""The last N opportunities and what became of them, for GET /opportunities (bounded: a deque)."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from mevagent.core import Opportunity, Outcome


def _opportunity_json(opp: Opportunity) -> dict[str, Any]:
    return {
        "id": opp.id,
        "chain": opp.chain,
        "strategy": opp.strategy,
        "block": opp.block,
        "hops": [{"pool": h.pool, "kind": h.kind, "token_in": h.token_in, "token_out": h.token_out} for h in opp.hops],
        # Integers beyond 2**53 do not survive JSON readers that parse numbers as doubles: strings.
        "amount_in": str(opp.amount_in),
        "amount_out": str(opp.amount_out),
        "gas_limit": opp.gas_limit,
        "gas_price": str(opp.gas_price),
        "builder_payment": str(opp.builder_payment),
        "notional_usd": opp.notional_usd,
        "profit_usd": opp.profit_usd,
        "gas_cost_usd": opp.gas_cost_usd,
        "net_profit_usd": opp.net_profit_usd,
        # A strategy's own action may say more (what a liquidation repays and seizes ...).
        **(opp.details() if hasattr(opp, "details") else {}),
    }


class RecentOpportunities:
    def __init__(self, maxlen: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._by_key: dict[int, dict[str, Any]] = {}
        # By the opportunity's own id too: an executor may settle it as the trade it became (funded by a
        # flashloan, a liquidation planned with its swap), a new object carrying the same id.
        self._by_oid: dict[str, int] = {}
        self._seq = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def found(self, opp: Opportunity) -> None:
        if len(self._entries) == self._entries.maxlen:
            oldest = self._entries[0]["_opportunity"]
            self._by_key.pop(id(oldest), None)
            if self._by_oid.get(oldest.id) == id(oldest):
                del self._by_oid[oldest.id]
        entry = {"seq": next(self._seq), **_opportunity_json(opp), "status": "pending", "_opportunity": opp}
        self._entries.append(entry)
        self._by_key[id(opp)] = entry
        if opp.id:
            self._by_oid[opp.id] = id(opp)

    def _take(self, opp: Opportunity) -> dict[str, Any] | None:
        entry = self._by_key.pop(id(opp), None)
        if entry is None and opp.id and opp.id in self._by_oid:
            entry = self._by_key.pop(self._by_oid[opp.id], None)
        if entry is not None and self._by_oid.get(entry["_opportunity"].id) == id(entry["_opportunity"]):
            del self._by_oid[entry["_opportunity"].id]
        return entry

    def settled(self, outcome: Outcome) -> None:
        entry = self._take(outcome.opportunity)
        if entry is not None:
            if outcome.opportunity is not entry["_opportunity"]:  # what it became: its amounts and details
                entry.update(_opportunity_json(outcome.opportunity))
            entry["status"] = outcome.status.value
            entry["reason"] = outcome.reason
            entry["realized_profit_usd"] = outcome.realized_profit_usd
            entry["gas_paid_usd"] = outcome.gas_cost_usd
            entry["tx_hashes"] = list(outcome.tx_hashes)
            if outcome.sandwich_exposure is not None:  # decimal string: exact base units
                entry["sandwich_exposure"] = str(outcome.sandwich_exposure)
                entry["sandwich_exposure_usd"] = outcome.sandwich_exposure_usd

    def dropped(self, opp: Opportunity, reason: str) -> None:
        entry = self._take(opp)
        if entry is not None:
            entry["status"] = f"dropped:{reason}"

    def since(self, seq: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Entries after sequence number `seq`, newest last, at most `limit` (the newest ones)."""
        out = [{k: v for k, v in e.items() if k != "_opportunity"} for e in self._entries if e["seq"] > seq]
        return out[-limit:] if limit > 0 else []
