"""The local worlds: real nodes and published contracts, shared by tests/ and bench/.

Plain functions and context managers (anvil and its IPC twin, the published Uniswap, Aave, Balancer and Venus
deployments, the agent's end-to-end world, the Ethereum EL+CL pair, Redis and PostgreSQL, the control plane,
the cross-chain pair of chains, the Solana stand-in): tests/ wraps them in pytest fixtures, bench/ calls them
directly. Nothing here ships in a wheel.
"""
