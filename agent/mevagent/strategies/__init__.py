"""Strategies: each one file implementing mevagent.core.Strategy over the pool store."""

from mevagent.strategies.dex_arb import DexArbConfig, DexArbStats, DexArbStrategy

__all__ = ["DexArbConfig", "DexArbStats", "DexArbStrategy"]
