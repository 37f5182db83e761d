"""Exact pool state of every tracked pool, kept current from the node's logs."""
