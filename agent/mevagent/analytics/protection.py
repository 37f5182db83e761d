"""Protection: what a sandwich could have taken from one of our own executions, had it been public.

Our executions go privately (bundles, sequencers), so nobody could sandwich them; recording what
the same route would have lost in the public mempool tells the operator what private submission
is worth, per execution. The victim's limit is the contract's: the cycle must return at least
amount_in + min_profit, or it reverts.
"""

from __future__ import annotations

from mevagent.analytics.sandwich_risk import SandwichRisk, route_hops, score_route
from mevagent.core import Opportunity
from mevagent.state.pools import PoolStore


def execution_exposure(store: PoolStore, opportunity: Opportunity, min_profit: int) -> SandwichRisk | None:
    """The sandwich exposure of `opportunity` on the pools as `store` holds them (None: a pool is unknown)."""
    hops = route_hops(store, [(h.pool, h.token_in, h.token_out) for h in opportunity.hops])
    if hops is None:
        return None
    return score_route(hops, True, opportunity.amount_in, opportunity.amount_in + min_profit)
