"""The agent's Solana path: exact pool state and quotes decoded from account data, 2/3-hop cycles, and a Jito
bundle executor (dry-run unless the chain is live). No front-running path exists: our own swaps carry the
`jitodontfront` account so nobody can place a transaction before them inside a bundle.
"""
