"""Executor routes: the name an opportunity carries to the executor that carries it out on its chain.

A strategy plug-in declares the route of its action; the router (mevagent.app.ChainRouter) looks up
(chain, route) and knows nothing else about either. A plug-in whose action needs an executor the agent
does not have brings it (StrategyPlugin.open_route) under a route name of its own.
"""

# mevagent.executor.executor.ArbitrageExecutor: the ArbExecutor contract's execute(), simulated with
# eth_call and sent as a bundle (or to the sequencer) after the risk gate allowed it.
ARB_CONTRACT = "arb_contract"
