"""What every bench prints its latencies with (imported as a sibling module: benches run as scripts)."""

from __future__ import annotations


def pct(values: list[float], q: float) -> float:
    """The q-th percentile as the value at index ⌊q·n⌋ of the sorted values (the p99 of 100 runs is their
    largest); NaN for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")
