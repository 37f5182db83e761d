"""Executes arbitrage cycles: the atomic contract, its deployment, nonces, keys, bundles and the dry-run gate."""
