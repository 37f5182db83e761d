"""Lending markets: positions valued exactly as the protocols value them, and what a liquidation pays."""
