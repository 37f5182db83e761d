"""Cross-chain data both sides share: the token registry and the bridge catalog (registry.py, with
tokens.yml and bridges.yml beside it), and what an agent publishes of its pairs' prices (prices.py)."""
