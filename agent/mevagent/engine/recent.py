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
    }


class RecentOpportunities:
    def __init__(self, maxlen: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._by_key: dict[int, dict[str, Any]] = {}
        self._seq = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def found(self, opp: Opportunity) -> None:
        if len(self._entries) == self._entries.maxlen:
            self._by_key.pop(id(self._entries[0]["_opportunity"]), None)
        entry = {"seq": next(self._seq), **_opportunity_json(opp), "status": "pending", "_opportunity": opp}
        self._entries.append(entry)
        self._by_key[id(opp)] = entry

    def settled(self, outcome: Outcome) -> None:
        entry = self._by_key.pop(id(outcome.opportunity), None)
        if entry is not None:
            entry["status"] = outcome.status.value
            entry["reason"] = outcome.reason
            entry["realized_profit_usd"] = outcome.realized_profit_usd
            entry["gas_paid_usd"] = outcome.gas_cost_usd
            entry["tx_hashes"] = list(outcome.tx_hashes)

    def dropped(self, opp: Opportunity, reason: str) -> None:
        entry = self._by_key.pop(id(opp), None)
        if entry is not None:
            entry["status"] = f"dropped:{reason}"

    def since(self, seq: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Entries after sequence number `seq`, newest last, at most `limit` (the newest ones)."""
        out = [{k: v for k, v in e.items() if k != "_opportunity"} for e in self._entries if e["seq"] > seq]
        return out[-limit:] if limit > 0 else []
